"""Appending one entry to the hash chain, inside a write transaction the caller holds.

Every write method of the ledger checks its rules and then appends through here,
in the same transaction, so the new entry's seq and `prev_h` are the head the
checks saw. This is on the deposit path, which is timed against a raw durable
insert (bench/ledger_commit.py): statements are constant strings (sqlite3 keeps
them prepared) and each entry's fields are turned into a dict once.
"""

from __future__ import annotations

import json
import sqlite3
from operator import itemgetter
from typing import Any

from edge.ledger.clock import Clock
from edge.ledger.rows import ENTRY_COLUMNS
from greenpass.record.entries import GENESIS_H, Entry, Kind, chain_hash_of_fields
from greenpass.record.ids import uuid7

HEAD_SQL = "SELECT seq, h FROM entries ORDER BY seq DESC LIMIT 1"
_INSERT_SQL = (
    f"INSERT INTO entries ({', '.join(ENTRY_COLUMNS)}, h) "
    f"VALUES ({', '.join('?' * len(ENTRY_COLUMNS))}, ?)"
)
_row_values = itemgetter(*ENTRY_COLUMNS)

Now = tuple[int, bool, int]  # wall ms, clock synchronised, monotonic ms
Head = tuple[int, bytes]  # last seq and its chain hash (0 and 32 zero bytes when empty)


class Appender:
    """Writes entries of one device, stamped by one clock."""

    def __init__(self, device_id: str, clock: Clock) -> None:
        self.device_id = device_id
        self.clock = clock

    def now(self) -> Now:
        return self.clock.wall_ms(), self.clock.clock_ok(), self.clock.mono_ms()

    @staticmethod
    def head(conn: sqlite3.Connection) -> Head:
        row = conn.execute(HEAD_SQL).fetchone()
        return (row[0], bytes(row[1])) if row else (0, GENESIS_H)

    def append(self, conn: sqlite3.Connection, kind: Kind, now: Now, **fields: Any) -> Entry:
        return self.write(conn, self.head(conn), kind, now, fields)[0]

    def write(
        self, conn: sqlite3.Connection, head: Head, kind: Kind, now: Now, fields: dict[str, Any]
    ) -> tuple[Entry, bytes]:
        """Insert the entry after `head` (read in this transaction); its hash comes back
        with it."""
        seq, prev_h = head
        wall, ok, mono = now
        entry = Entry(
            device_id=self.device_id,
            seq=seq + 1,
            entry_id=str(uuid7(wall)),
            kind=kind,
            wall_ms=wall,
            clock_ok=ok,
            boot_id=self.clock.boot_id,
            mono_ms=mono,
            **fields,
        )
        values = entry.fields()
        h = chain_hash_of_fields(prev_h, values)
        data = values["data"]
        values["data"] = json.dumps(data, sort_keys=True, ensure_ascii=False) if data else "{}"
        values["clock_ok"] = int(ok)
        conn.execute(_INSERT_SQL, (*_row_values(values), h))
        return entry, h
