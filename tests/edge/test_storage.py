"""The SQLite file: durability settings, append-only enforcement, migrations, and a
full disk refusing cleanly without losing anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.ledger.ledger import Ledger
from edge.ledger.migrations import MIGRATIONS
from edge.ledger.store import Store
from greenpass.errors import IntegrityError, StorageError


def test_durable_settings(ledger: Ledger) -> None:
    conn = ledger.store.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_migrations_are_recorded(ledger: Ledger) -> None:
    rows = ledger.store.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in rows] == [(v, n) for v, n, _ in MIGRATIONS]


def test_newer_schema_is_refused(tmp_path: Path, ledger: Ledger) -> None:
    ledger.store.conn.execute("INSERT INTO schema_migrations(version, name) VALUES (999, 'x')")
    path = ledger.store.path
    ledger.close()
    with pytest.raises(IntegrityError, match="newer than this software"):
        Store(path)


def test_entries_cannot_be_updated_or_deleted(ledger: Ledger, villager: str) -> None:
    ledger.deposit(villager, "paper", 1_000)
    for sql in ("UPDATE entries SET points = 1000", "DELETE FROM entries"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            ledger.store.conn.execute(sql)
    assert ledger.verify().ok


def test_full_disk_refuses_cleanly_and_loses_nothing(ledger: Ledger, villager: str) -> None:
    # Cap the file at its current size: the next page SQLite needs is "disk full".
    conn = ledger.store.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    before = ledger.head()
    confirmed = []
    with pytest.raises(StorageError, match="disk is full"):
        for _ in range(1000):
            confirmed.append(ledger.deposit(villager, "paper", 1_000).seq)
            ledger.clock.advance(60_000)  # type: ignore[attr-defined]
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # every deposit that returned is there; the one that failed left no trace
    assert ledger.head()[0] == before[0] + len(confirmed)
    assert ledger.verify().ok
    conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
    e = ledger.deposit(villager, "paper", 1_000)
    assert e.seq == ledger.head()[0] and ledger.verify().ok


def test_unopenable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot be opened"):
        Store(tmp_path / "no" / "such" / "dir" / "x.db")


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="damaged"):
        Ledger.open(bad)
