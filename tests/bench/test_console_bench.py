"""The console bench (`python -m bench.console`) on a tiny county, on SQLite and on
PostgreSQL: a second run on a kept database measures it again (its data and its
`bench` account) instead of failing, and a database it did not fill is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import console
from central.store import CentralStore
from sync.keys import generate_key, public_bytes
from tests.central import conftest
from tests.central.conftest import NOW

central_url = conftest.central_url  # the fixture: a SQLite file, then a PostgreSQL schema

TINY = ["--entries", "2000", "--villages", "2", "--kiosks", "2", "--renders", "1"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    console.main([*TINY, *args])  # its goal (0 or 1) is the machine's business, not ours
    out = capsys.readouterr().out
    assert "/       median" in out and "/fleet  median" in out, out
    return out


def test_a_kept_database_is_measured_again(
    central_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--db-url", central_url] if "://" in central_url else ["--keep", str(tmp_path)]
    first = _run(capsys, *where)
    assert "4 kiosks, 2,000 entries written" in first
    second = _run(capsys, *where)
    assert "4 kiosks, 2,000 entries kept from an earlier run" in second
    assert "rollup" not in second  # nothing written again


def test_a_database_it_did_not_fill_is_refused(central_url: str) -> None:
    with CentralStore.open(central_url, now_ms=NOW) as store:
        store.create_village("V1")
        token = store.create_enrol_token("K1", "V1", NOW, actor="test")
        store.enrol(token, "K1", public_bytes(generate_key()), NOW)
    with pytest.raises(SystemExit, match="did not fill"):
        console.main([*TINY, "--db-url", central_url])


def test_help_says_what_keep_and_db_url_do(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        console.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "keep the SQLite database in DIR/central.db" in out
    assert "measures it again without writing the county anew" in out
    assert "--db-url URL" in out and "postgresql://" in out
