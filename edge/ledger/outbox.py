"""What the kiosk has not yet got central to acknowledge.

The outbox is one number: `acked_seq`, the highest seq central has confirmed
committing. Every entry after it is unsynced. Nothing is copied, flagged,
evicted or expired, whatever the backlog: an entry leaves the outbox only when
an `ok` ack covers it, and even then it stays in the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.ledger.rows import SELECT_ENTRY, entry_from_row, fields_from_row
from edge.ledger.store import Store
from greenpass.errors import IntegrityError
from greenpass.record.entries import Entry


@dataclass(frozen=True)
class Backlog:
    acked_seq: int
    head_seq: int
    oldest_unsynced_ms: int | None  # wall clock of the first unsynced entry

    @property
    def depth(self) -> int:
        return self.head_seq - self.acked_seq


class Outbox:
    """The sync view of one ledger file (its own connection is fine: reads are
    snapshot-consistent under WAL, and `mark_acked` is one short write)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def acked_seq(self) -> int:
        row = self.store.conn.execute("SELECT acked_seq FROM outbox WHERE id = 1").fetchone()
        return int(row[0])

    def backlog(self) -> Backlog:
        with self.store.read() as conn:
            acked = int(conn.execute("SELECT acked_seq FROM outbox WHERE id = 1").fetchone()[0])
            head = int(conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()[0])
            row = conn.execute("SELECT wall_ms FROM entries WHERE seq = ?", (acked + 1,)).fetchone()
        return Backlog(acked, head, int(row[0]) if row else None)

    def read(self, after_seq: int, limit: int) -> Sequence[tuple[Entry, bytes]]:
        """Up to `limit` entries after `after_seq`, in seq order, with their hashes."""
        rows = self.store.conn.execute(
            f"{SELECT_ENTRY} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [entry_from_row(r) for r in rows]

    def read_fields(self, after_seq: int, limit: int) -> list[tuple[tuple[Any, ...], bytes]]:
        """`read` as field values (`edge.ledger.rows.fields_from_row`), not `Entry` objects:
        the uplink's batch reading, where building the objects was a third of the cost."""
        rows = self.store.conn.execute(
            f"{SELECT_ENTRY} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [fields_from_row(r) for r in rows]

    def hash_at(self, seq: int) -> bytes | None:
        """The chain hash after entry `seq` (32 zero bytes for seq 0)."""
        if seq == 0:
            return bytes(32)
        row = self.store.conn.execute("SELECT h FROM entries WHERE seq = ?", (seq,)).fetchone()
        return bytes(row[0]) if row else None

    def mark_acked(self, seq: int, now_ms: int) -> bool:
        """Record central's `ok` for everything up to `seq`. Never moves backwards
        (a late, duplicated ack is ignored: False); an ack beyond this ledger's head
        means central holds entries this file does not — refuse loudly."""
        with self.store.write() as conn:
            acked = int(conn.execute("SELECT acked_seq FROM outbox WHERE id = 1").fetchone()[0])
            if seq <= acked:
                return False
            head = int(conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()[0])
            if seq > head:
                raise IntegrityError(
                    f"central acknowledged seq {seq} but this ledger ends at {head}: the "
                    "ledger file was replaced or restored; stop the kiosk and call support"
                )
            conn.execute(
                "UPDATE outbox SET acked_seq = ?, acked_ms = ? WHERE id = 1", (seq, now_ms)
            )
        return True
