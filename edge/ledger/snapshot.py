"""Central's balances as of this device's `included_seq` (docs/design.md §3).

balance(passbook) = the snapshot's points + this kiosk's entries after
`included_seq` (`queries.balance`). `edge.ledger.central_state` applies a snapshot as
part of central's whole pushed state; `apply_snapshot` takes one on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge.ledger.store import Store
from greenpass.errors import IntegrityError


def apply_snapshot(
    store: Store, version: int, included_seq: int, balances: Mapping[str, int], now_ms: int
) -> bool:
    """An older or equal version is ignored (False); the swap is atomic. A snapshot that
    includes entries this ledger does not have means the file was replaced: refused."""
    with store.write() as conn:
        row = conn.execute("SELECT version FROM snapshot WHERE id = 1").fetchone()
        if row is not None and row[0] >= version:
            return False
        head = conn.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()[0]
        if not 0 <= included_seq <= head:
            raise IntegrityError(
                f"central's snapshot includes seq {included_seq} but this ledger ends at "
                f"{head}: the ledger file was replaced or restored; stop and call support"
            )
        conn.execute("DELETE FROM snapshot_balances")
        conn.executemany("INSERT INTO snapshot_balances VALUES (?, ?)", balances.items())
        conn.execute(
            "INSERT OR REPLACE INTO snapshot VALUES (1, ?, ?, ?)", (version, included_seq, now_ms)
        )
    return True
