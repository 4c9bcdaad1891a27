"""The backlog drain (`python -m bench.sync_drain`) on a small backlog: it runs to the
end and prints each figure its goal line needs. (It once stopped at its raw baseline:
`entries` gained a column, and the bench built its rows from a fixed list of fields;
they now follow `sync.batch.ROW_FIELDS`.)"""

from __future__ import annotations

import re

import pytest

from bench import sync_drain
from devkit.mqtt_broker import mosquitto_binary
from tests.central.conftest import _pg_admin


def test_a_small_drain_runs_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    mosquitto_binary()  # skips without Mosquitto (fails under CI=true)
    try:
        _pg_admin().close()  # a failure under CI=true
        pg = True
    except pytest.skip.Exception:  # no PostgreSQL here: its half is left out
        pg = False
    argv = ["--entries", "300", "--repeat", "1", *([] if pg else ["--no-pg"])]
    assert sync_drain.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"raw batched SQLite insert +\d+ entries/s", out), out
    assert re.search(r"drain, central on SQLite +\d+ entries/s .*\d+% of raw", out), out
    if pg:
        assert re.search(r"raw batched PostgreSQL COPY +\d+ entries/s", out), out
        assert re.search(r"drain, central on PostgreSQL +\d+ entries/s .*\d+% of raw", out), out


def test_postgresql_only_without_a_postgresql_measures_nothing_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--entries", "50", "--repeat", "1", "--no-sqlite",
            "--pg", "postgresql://nobody@127.0.0.1:1/none"]  # fmt: skip
    assert sync_drain.main(argv) == 1
    out = capsys.readouterr().out
    assert "PostgreSQL skipped" in out and "no database to drain into" in out
    assert "SQLite" not in out
