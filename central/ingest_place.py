"""The transaction of ingest (`central.ingest`): each batch placed against what central
already holds for its device, under the device row's lock, and the rows it adds written.

One batch gets a transaction of its own (`store_batch`); batches prepared together may
share one (`store_group`): one commit, and the rows every kiosk of a village writes
(rollup, the village's change mark) written once, last, in one order (`Tail`). A
transaction of several that fails in any way is rolled back, and the caller redoes
each batch alone; on PostgreSQL a device row another worker holds ends it instead of
being waited for while this one holds others' rows (`Busy`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from central import audit, db, heads, kiosk_replacements, personal, recheck_state, rollup
from central.db import Device, storage_error
from central.ingest_checks import DATA, KIND, VILLAGER_KIND_VALUES
from central.ingest_rows import apply_villagers, insert_entries
from central.store import CentralStore
from greenpass.errors import ProtocolError
from greenpass.record.entries import Entry, Kind
from greenpass.record.personal import LEGACY_NAME_KEY
from sync import protocol

log = logging.getLogger("central.ingest")

# What this central takes in a batch beyond its first version, named in every ack.
ACCEPTS = (protocol.ACCEPT_PERSONAL, protocol.ACCEPT_HEADS, protocol.ACCEPT_REF_DEVICE)


@dataclass(frozen=True)
class IngestResult:
    """`ack` goes to `gp/v1/dev/<device_id>/down/ack`; None only when the topic names
    no device. `stored` is how many entries this call added."""

    ack: protocol.Ack | None
    device_id: str | None
    village_id: str | None
    stored: int


@dataclass(frozen=True)
class Prepared:
    """A batch checked against `device`, the device row as last read (`Ingest.prepare`)."""

    device: Device
    batch: protocol.Batch


class DeviceChanged(Exception):
    """The device row, read under the transaction's lock, is not the one the batch was
    checked against (re-enrolled with a new key, moved to another village)."""


def store_batch(
    store: CentralStore, dev: Device, batch: protocol.Batch, now_ms: int
) -> IngestResult:
    # The row lock (PostgreSQL) and BEGIN IMMEDIATE (SQLite) already serialise two
    # workers handed the same batch. The primary key is the last guard should that
    # ever not hold: the loser rolls back and, on its second pass, sees a duplicate.
    for attempt in (1, 2):
        try:
            with store.engine.begin() as conn:
                tail = Tail()
                ack, stored = place(conn, store.postgres, dev, batch, now_ms, tail)
                tail.write(conn, now_ms)
            return IngestResult(ack, dev.device_id, dev.village_id, stored)
        except DBIntegrityError as exc:
            if attempt == 2:
                # Not a race (that resolves on the retry): the batch conflicts with
                # stored data, e.g. an entry_id another device already used.
                raise ProtocolError(
                    "rejected", f"the batch conflicts with stored entries: {first_line(exc)}"
                ) from exc
        except DataError as exc:
            # The database refused a value: it will refuse it on every resend too.
            raise ProtocolError("rejected", f"a value cannot be stored: {first_line(exc)}") from exc
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"storing a batch from {dev.device_id}") from exc
    raise AssertionError("unreachable")


def store_group(
    store: CentralStore, run: Sequence[Prepared], now_ms: int
) -> list[IngestResult] | None:
    """Batches checked against their devices, placed in one transaction: all of them,
    or those before a device another worker holds (the first is waited for, as a
    batch alone waits). None if the transaction failed (nothing of it stored)."""
    out: list[IngestResult] = []
    try:
        with store.engine.begin() as conn:
            tail = Tail()
            for k, ready in enumerate(run):
                dev = ready.device
                try:
                    ack, stored = place(
                        conn, store.postgres, dev, ready.batch, now_ms, tail, unless_held=k > 0
                    )
                except Busy:
                    break
                out.append(IngestResult(ack, dev.device_id, dev.village_id, stored))
            tail.write(conn, now_ms)
    except (ProtocolError, DeviceChanged, SQLAlchemyError) as exc:
        log.info(
            "ingest: %d batches in one transaction: %s; each on its own",
            len(run), first_line(exc),
        )  # fmt: skip
        return None
    return out


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ack(
    dev: Device, batch: protocol.Batch, status: str, acked: int, reason: str = ""
) -> protocol.Ack:
    return protocol.Ack(
        device_id=dev.device_id,
        status=status,
        acked_seq=acked,
        expected_seq=acked + 1,
        first_seq=batch.first_seq,
        last_seq=batch.last_seq,
        reason=reason,
        accepts=list(ACCEPTS),
    )


_d, _e = db.devices, db.entries
# Built once: building a Core statement costs more than running it.
_LOCK_DEVICE = select(
    _d.c.acked_seq, _d.c.last_h, _d.c.status, _d.c.public_key, _d.c.village_id
).where(_d.c.device_id == bindparam("b_device"))
# Serialises ingest per device across central workers on PostgreSQL; SQLite's BEGIN
# IMMEDIATE already holds the whole database.
_LOCK_DEVICE_FOR_UPDATE = _LOCK_DEVICE.with_for_update()
# A later batch of a transaction of several: a device another worker holds ends the
# transaction before it (`Busy`) rather than wait for it while holding others' rows.
_LOCK_DEVICE_UNLESS_HELD = _LOCK_DEVICE.with_for_update(skip_locked=True)
_STORED_H = select(_e.c.h).where(
    (_e.c.device_id == bindparam("b_device")) & (_e.c.seq == bindparam("b_seq"))
)
_SEEN = update(_d).where(_d.c.device_id == bindparam("b_device"))
_VILLAGE_CHANGED = (
    update(db.villages)
    .where(db.villages.c.village_id == bindparam("b_village"))
    .values(changed_ms=db.village_changed(bindparam("b_now")))
)


class Busy(Exception):
    """The device row is locked by another worker's transaction (PostgreSQL)."""


class Tail:
    """What a transaction writes last, for all its batches at once: the counts in the
    rollup and the villages changed. Every kiosk of a village writes these rows, so on
    PostgreSQL their locks are held only from here to the commit, taken in one order."""

    def __init__(self) -> None:
        self.counted: list[tuple[str, str, Sequence[tuple[Any, ...]]]] = []
        self.villages: set[str] = set()

    def write(self, conn: Connection, now_ms: int) -> None:
        if self.counted:
            rollup.add_many(conn, self.counted)
        if self.villages:
            conn.execute(
                _VILLAGE_CHANGED, [{"b_village": v, "b_now": now_ms} for v in sorted(self.villages)]
            )


def place(
    conn: Connection,
    postgres: bool,
    dev: Device,
    batch: protocol.Batch,
    now_ms: int,
    tail: Tail,
    *,
    unless_held: bool = False,
) -> tuple[protocol.Ack, int]:
    """Place one batch in the caller's transaction; `tail` collects what is written
    once the transaction's batches are all placed. `unless_held`: raise `Busy`,
    having written nothing, if another transaction holds the device row."""
    key = {"b_device": dev.device_id}
    lock = _LOCK_DEVICE
    if postgres:
        lock = _LOCK_DEVICE_UNLESS_HELD if unless_held else _LOCK_DEVICE_FOR_UPDATE
    row = conn.execute(lock, key).first()
    if row is None and unless_held:
        raise Busy  # or gone: a transaction of its own finds out which
    if row is None or (bytes(row.public_key), row.village_id) != (dev.public_key, dev.village_id):
        raise DeviceChanged
    if row.status != "active":
        raise ProtocolError("rejected", f"device {dev.device_id!r} is revoked")
    acked, last_h = int(row.acked_seq), bytes(row.last_h)

    if batch.last_seq <= acked:
        stored_h = conn.scalar(_STORED_H, {**key, "b_seq": batch.last_seq})
        if stored_h is None or bytes(stored_h) != batch.hashes[-1]:
            raise ProtocolError(
                "bad_chain",
                f"entries {batch.first_seq}..{batch.last_seq} were already stored with "
                "different content (a replay or a rewritten ledger)",
            )
        conn.execute(_SEEN, {**key, "last_seen_ms": now_ms})
        if batch.head_sig:  # its entry is stored with the hash it signs (checked above)
            heads.keep(conn, dev.device_id, batch.last_seq, batch.head_sig, dev.public_key, now_ms)
        # A kiosk resends an entry central holds to bring personal records of
        # enrolments it sent before this central took them (sync.uplink).
        if _accept_personal(conn, dev, batch, now_ms):
            tail.villages.add(dev.village_id)
        return _ack(dev, batch, "ok", acked, f"duplicate: already stored up to {acked}"), 0

    if batch.first_seq > acked + 1:
        conn.execute(_SEEN, {**key, "last_seen_ms": now_ms})
        reason = f"expected seq {acked + 1}, the batch starts at {batch.first_seq}"
        return _ack(dev, batch, "gap", acked, reason), 0

    skip = acked - batch.first_seq + 1  # entries central already holds (overlap)
    before = batch.prev_h if skip == 0 else batch.hashes[skip - 1]
    if before != last_h:
        raise ProtocolError(
            "bad_chain",
            f"the batch does not continue central's chain at seq {acked} "
            "(its history differs from what this device sent before)",
        )
    recheck_state.check_against_ledger(conn, dev.device_id, dev.village_id, batch, skip)
    rows, hashes = batch.rows[skip:], batch.hashes[skip:]
    villager_changes = [
        batch.entry(n)
        for n in range(skip, len(batch.rows))
        if batch.rows[n][KIND] in VILLAGER_KIND_VALUES
    ]
    if villager_changes:  # an enrolment from before version 2 names its household
        rows = [(*r[:DATA], personal.stored_data(r[KIND], r[DATA]), *r[DATA + 1 :]) for r in rows]
    insert_entries(conn, rows, hashes, dev.village_id, now_ms)
    apply_villagers(conn, dev, villager_changes)
    # Only an enrolment from before version 2 carries a name that could undo an erasure.
    personal.keep_erased(
        conn, {x.passbook_id for x in villager_changes if x.passbook_id and _names(x)}
    )
    personal.record_commitments(conn, dev, [x for x in villager_changes if x.kind is Kind.ENROL])
    _accept_personal(conn, dev, batch, now_ms)
    if any(kiosk_replacements.replaces(x) for x in villager_changes):
        kiosk_replacements.record(conn, dev.device_id, dev.village_id, villager_changes, now_ms)
    conn.execute(
        _SEEN,
        {**key, "acked_seq": batch.last_seq, "last_h": hashes[-1], "last_seen_ms": now_ms},
    )
    if batch.head_sig:  # of the entry just stored, the new acked_seq
        heads.keep(conn, dev.device_id, batch.last_seq, batch.head_sig, dev.public_key, now_ms)
    tail.counted.append((dev.device_id, dev.village_id, rows))
    tail.villages.add(dev.village_id)
    return _ack(dev, batch, "ok", batch.last_seq), len(rows)


def _names(x: Entry) -> bool:
    return x.kind is Kind.ENROL and bool(x.data.get(LEGACY_NAME_KEY))


def _accept_personal(conn: Connection, dev: Device, batch: protocol.Batch, now_ms: int) -> int:
    """Take the batch's personal records (how many were taken); one that does not match
    its enrolment's commitment is not taken, and audited (the entries are kept)."""
    taken, refused = personal.accept(conn, dev, batch.personal, now_ms)
    for problem in refused:
        log.warning("ingest %s: personal record not taken: %s", dev.device_id, problem)
        audit.record(
            conn, actor=f"device:{dev.device_id}", action="personal.refused",
            target=problem.split(":", 1)[0], now_ms=now_ms, village_id=dev.village_id,
            after={"reason": problem},
        )  # fmt: skip
    return taken
