"""Which central worker pushes a village's changed state: the first to claim the change.

Every worker learns that a village changed (its own ingest, or `villages.changed_ms`
polled: another worker's ingest, an operator's edit) and used to push the village's
states itself: with N workers each kiosk got N copies of each state, and central
built every state N times, which took the CPU a reconnect storm needed for ingest.

Now a worker claims a change before pushing: `claim` records the village's
`changed_ms` as pushed, and only the one worker whose write changed that record
pushes. `changed_ms` moves on with every change (`db.village_changed`), even two in
one millisecond or from a worker whose clock is behind, so a change made after a
claim is always claimed again.

A state is built from a snapshot after its version is taken (`central.state`), so a
worker may publish an older state after another worker published a newer one, and
the broker keeps the last published as the retained state. So a worker that finds
the village changed after the snapshot it just built from pushes the village again
(unclaimed) a few seconds later: the last state published then holds every change.

A worker that claims and then dies before publishing leaves the change unpushed
until the village's next change or until a worker connects to the broker, which
pushes every state (`CentralService.all_states`); systemd starts a dead worker again
within seconds. Pushes that serve one kiosk (one that is new to this worker, or
asks for log proofs) are not claimed: they answer that kiosk, not a change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, Connection, String, Table, text

from central import db

if TYPE_CHECKING:  # central.store runs the migrations, which make this module's table
    from central.store import CentralStore

village_pushes = Table(
    "village_pushes",
    db.metadata,
    Column("village_id", String(64), primary_key=True),
    Column("changed_ms", BigInteger, nullable=False),  # the last change claimed
)

# Both dialects: an upsert that writes only when the change is newer than the one
# claimed (`changed_ms` only grows). On PostgreSQL the second of two workers waits for
# the first's row lock, then finds the change claimed and writes nothing (rowcount 0).
_CLAIM = text(
    "INSERT INTO village_pushes (village_id, changed_ms) "
    "SELECT village_id, changed_ms FROM villages WHERE village_id = :village "
    "ON CONFLICT (village_id) DO UPDATE SET changed_ms = excluded.changed_ms "
    "WHERE village_pushes.changed_ms < excluded.changed_ms"
)


def migrate_v12(conn: Connection) -> None:
    village_pushes.create(conn, checkfirst=False)


def claim(store: CentralStore, village_id: str) -> bool:
    """Whether this worker is the one to push `village_id`'s current change."""
    with store.write(f"claiming the state push of {village_id}") as conn:
        return conn.execute(_CLAIM, {"village": village_id}).rowcount == 1


def changed_ms(store: CentralStore, village_id: str) -> int:
    """The village's `changed_ms` now."""
    with store.read(f"reading whether {village_id} changed") as conn:
        found = conn.execute(_CHANGED, {"village": village_id}).scalar()
        return int(found or 0)


_CHANGED = text("SELECT changed_ms FROM villages WHERE village_id = :village")
