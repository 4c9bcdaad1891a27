"""Editing, deleting, reordering or appending stored rows behind the ledger's back
is caught by `verify` at the right entry (the tamperer drops our triggers first)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edge.ledger.ledger import Ledger
from greenpass.record.entries import chain_hash
from tests.conftest import make_ledger


@pytest.fixture
def db(tmp_path: Path, clock) -> Path:
    ledger = make_ledger(tmp_path / "t.db", clock)
    pb = ledger.enrol("Chen household", staff_id="S1").passbook_id
    assert pb
    for i, cat in enumerate(["paper", "glass", "metal", "cardboard", "plastic_pet"]):
        clock.advance(30_000)
        ledger.deposit(pb, cat, 1_000 + i * 100)
    ledger.award(pb, 10, staff_id="S1", reason="clean-up day")
    ledger.close()
    return tmp_path / "t.db"


def tamper(db: Path, *sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute("DROP INDEX entries_reversed_once")
    for s in sql:
        conn.execute(s)
    conn.commit()
    conn.close()


def verify(db: Path, clock):
    with Ledger.open(db, clock) as ledger:
        return ledger.verify()


def test_intact_ledger_verifies(db, clock) -> None:
    report = verify(db, clock)
    assert report.ok and report.checked == 7 and report.first_bad_seq is None


@pytest.mark.parametrize(
    "column,value",
    [
        ("grams", "grams + 1"),
        ("points", "points * 10"),
        ("passbook_id", "'K1-99999'"),
        ("wall_ms", "wall_ms - 86400000"),
        ("flags", "'x'"),
        ("clock_ok", "0"),
    ],
)
def test_edited_field_is_found_at_that_entry(db, clock, column, value) -> None:
    tamper(db, f"UPDATE entries SET {column} = {value} WHERE seq = 4")
    report = verify(db, clock)
    assert not report.ok and report.first_bad_seq == 4 and report.checked == 3


def test_recomputed_hash_of_edited_row_breaks_the_next_entry(db, clock) -> None:
    # A tamperer who rehashes the edited row itself still breaks the link to seq 5.
    with Ledger.open(db, clock) as ledger:
        rows = list(ledger.iter_entries())
        prev_h = rows[2][1]
        forged = replace(rows[3][0], points=999)
        new_h = chain_hash(prev_h, forged).hex()
    tamper(db, f"UPDATE entries SET points = 999, h = x'{new_h}' WHERE seq = 4")
    report = verify(db, clock)
    assert not report.ok and report.first_bad_seq == 5


def test_deleted_row_is_found(db, clock) -> None:
    tamper(db, "DELETE FROM entries WHERE seq = 3")
    report = verify(db, clock)
    assert not report.ok and report.first_bad_seq == 3 and "missing" in report.problem


def test_reordered_rows_are_found(db, clock) -> None:
    # swap the contents of seq 2 and 3 (keeping their seq numbers)
    cols = "entry_id, kind, passbook_id, category, grams, points, co2e_g, wall_ms, mono_ms, h"
    tamper(
        db,
        f"CREATE TEMP TABLE a AS SELECT {cols} FROM entries WHERE seq = 2",
        f"CREATE TEMP TABLE b AS SELECT {cols} FROM entries WHERE seq = 3",
        "UPDATE entries SET entry_id = 'tmp-' || seq WHERE seq IN (2, 3)",
        *(f"UPDATE entries SET {c} = (SELECT {c} FROM b) WHERE seq = 2" for c in cols.split(", ")),
        *(f"UPDATE entries SET {c} = (SELECT {c} FROM a) WHERE seq = 3" for c in cols.split(", ")),
    )
    report = verify(db, clock)
    assert not report.ok and report.first_bad_seq == 2


def test_truncated_tail_is_found(db, clock) -> None:
    tamper(db, "DELETE FROM entries WHERE seq >= 6")
    report = verify(db, clock)
    assert not report.ok and report.first_bad_seq == 6 and "tail" in report.problem


def test_row_appended_behind_the_ledgers_back_is_found(db, clock) -> None:
    tamper(
        db,
        "INSERT INTO entries SELECT seq + 7, entry_id || 'x', device_id, kind, "
        "passbook_id, category, grams, points, co2e_g, item_id, qty, ref_seq, staff_id, "
        "reason, rules_version, wall_ms, clock_ok, boot_id, mono_ms, flags, data, h, ref_device "
        "FROM entries WHERE seq = 7",
    )
    report = verify(db, clock)
    assert not report.ok and report.first_bad_seq == 8


def test_verify_cli_exit_codes(db) -> None:
    cmd = [sys.executable, "-m", "greenpass", "verify", str(db)]
    ok = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "chain intact, 7 entries" in ok.stdout
    tamper(db, "UPDATE entries SET grams = 5000 WHERE seq = 2")
    bad = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "BROKEN at entry 2" in bad.stderr
