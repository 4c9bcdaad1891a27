"""What this kiosk holds of its cross-check of central's transparency log, in its
ledger file (tables `log_check` and `log_faults`, migration 6): the checkpoint it
accepted last, how far its own entries are proven in it, and its log faults.

The checking itself is `sync.log_check`; this module only reads and writes, so the
kiosk's screen, `greenpass doctor` and `greenpass sync log` read the same record
the uplink keeps, from the file (a fault survives a restart, and is there to read
while the kiosk is stopped).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.ledger.store import Store


@dataclass(frozen=True)
class Accepted:
    """The last checkpoint this kiosk accepted, and where its own entries stand in it."""

    origin: str  # the log's name, pinned from the first checkpoint accepted
    size: int
    root: bytes
    note: str  # the checkpoint as central signed it
    checked_seq: int  # this kiosk's entries 1 … checked_seq are proven in the log
    accepted_ms: int
    owed_ms: int | None  # since when entries central acknowledged wait for a proof


@dataclass(frozen=True)
class LogFaultRecord:
    code: str  # one of `sync.protocol.LOG_FAULTS`
    message: str
    seq: int  # this kiosk's entry it is about (0: the checkpoint)
    size: int  # the checkpoint size concerned
    since_ms: int
    evidence: str = ""  # the checkpoint that failed, as central signed it
    cleared_ms: int | None = None


_FAULT_COLUMNS = "code, message, seq, size, since_ms, evidence, cleared_ms"


def accepted(conn: sqlite3.Connection) -> Accepted | None:
    row = conn.execute(
        "SELECT origin, size, root, note, checked_seq, accepted_ms, owed_ms "
        "FROM log_check WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    origin, size, root, note, checked, accepted_ms, owed_ms = row
    return Accepted(origin, size, bytes(root), note, checked, accepted_ms, owed_ms)


def save_accepted(conn: sqlite3.Connection, a: Accepted) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO log_check VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
        (a.origin, a.size, a.root, a.note, a.checked_seq, a.accepted_ms, a.owed_ms),
    )


def current_fault(conn: sqlite3.Connection) -> LogFaultRecord | None:
    row = conn.execute(
        f"SELECT {_FAULT_COLUMNS} FROM log_faults WHERE cleared_ms IS NULL"
    ).fetchone()
    return None if row is None else LogFaultRecord(*row)


def fault_history(conn: sqlite3.Connection) -> list[LogFaultRecord]:
    """Every log fault this kiosk found, oldest first (the current one last)."""
    rows = conn.execute(f"SELECT {_FAULT_COLUMNS} FROM log_faults ORDER BY id").fetchall()
    return [LogFaultRecord(*r) for r in rows]


def raise_fault(conn: sqlite3.Connection, f: LogFaultRecord) -> None:
    """Record `f` as the current fault (the caller has checked there is none)."""
    conn.execute(
        f"INSERT INTO log_faults ({_FAULT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)",
        (f.code, f.message, f.seq, f.size, f.since_ms, f.evidence),
    )


def clear_fault(conn: sqlite3.Connection, now_ms: int) -> None:
    conn.execute("UPDATE log_faults SET cleared_ms = ? WHERE cleared_ms IS NULL", (now_ms,))


def reset(store: Store, now_ms: int) -> LogFaultRecord | None:
    """A technician's reset, once the operator has looked at the fault: the current
    fault is cleared (kept in the history), and the accepted checkpoint and its log's
    name are forgotten, so the next checkpoint central sends is taken as new and this
    kiosk's entries are all proven again from seq 1. Returns the fault it cleared."""
    with store.write() as conn:
        fault = current_fault(conn)
        clear_fault(conn, now_ms)
        conn.execute("DELETE FROM log_check")
    return fault
