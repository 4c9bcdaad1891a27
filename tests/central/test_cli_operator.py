"""Operator commands: `central issuer-key` trusts an office's card key; `prune-dead-letters`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from central import db
from central.store import CentralStore
from sync.keys import generate_key, public_bytes


def gp(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenpass", "central", "issuer-key", "--db",
         str(tmp_path / "c.db"), "--home", str(tmp_path / "home"), *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_trust_an_office_key_once(tmp_path: Path) -> None:
    key = public_bytes(generate_key()).hex()
    args = ("--village", "dongcun", "--key-id", "dongcun-office", "--public-key", key)
    first = gp(tmp_path, *args)
    assert first.returncode == 0, first.stderr
    assert "now trusted for dongcun" in first.stdout
    assert "already trusted" in gp(tmp_path, *args).stdout
    with sqlite3.connect(tmp_path / "c.db") as conn:
        rows = conn.execute("SELECT key_id, village_id, public_key FROM issuer_keys").fetchall()
    assert rows == [("dongcun-office", "dongcun", bytes.fromhex(key))]

    other = public_bytes(generate_key()).hex()
    clash = gp(
        tmp_path, "--village", "dongcun", "--key-id", "dongcun-office", "--public-key", other
    )
    assert clash.returncode == 2 and "already used for another key" in clash.stderr
    bad = gp(tmp_path, "--village", "dongcun", "--key-id", "k2", "--public-key", "zz")
    assert bad.returncode == 2 and "64 hex digits" in bad.stderr
    short = gp(tmp_path, "--village", "dongcun", "--key-id", "k3", "--public-key", "abcd")
    assert short.returncode == 2 and "issuer key 'k3'" in short.stderr


def test_prune_dead_letters_by_age(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    with CentralStore.open(tmp_path / "c.db") as store, store.engine.begin() as conn:
        for age_days in (200, 100, 10, 0):
            conn.execute(
                db.dead_letters.insert().values(
                    received_ms=now_ms - age_days * 86_400_000, topic="gp/v1/dev/X/up/batch",
                    claimed_device="X", status="bad_signature", reason="test", payload=b"x", size=1,
                )
            )  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "greenpass", "central", "prune-dead-letters", "--db",
         str(tmp_path / "c.db"), "--home", str(tmp_path / "home"), "--days", "90"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "deleted 2 dead letters" in r.stdout
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 2
