"""Ingest one batch from `gp/v1/dev/<D>/up/batch` (docs/design.md §5): check it, store it, ack it.

Checks run cheapest and least trusting first: the topic names a device; the envelope
parses within the size limit; the device is enrolled and active; it signed the batch
itself; the signature verifies against its enrolled key (before anything is
decompressed); the body decodes and its chain ends at the `last_h` it claims; the
signed head it carries, if any, verifies against the same key; each entry is
storable; each entry means what it says, priced by the rules version it names
(`central.recheck`: a signature proves who sent an entry, not that it is right).
A failure writes a dead letter (what arrived, why) and returns an ack saying so;
nothing of the batch enters `entries`.

Then one transaction, holding the device row, places the batch against what central
already has for the device (`acked_seq`, `last_h`): a duplicate is acked again (and
proven identical by its hash), a gap asks for `acked_seq + 1`, an overlap stores only
the new tail, and the first new entry must chain onto `last_h`. The new entries must
fit what is stored before them (`central.recheck_state`: reversal targets, stock,
balances). The caller publishes the ack only after this commit, so an `ok` always
means "durably stored".

The same transaction keeps `villagers` from enrol and villager_status entries, links
a lost card replaced at the kiosk to its new one (`central.kiosk_replacements`), and
keeps the batch's signed head (`central.heads`) once its entry is stored and matches.

That transaction is the only one per batch: the checks above use the device row as
last read, and the transaction re-reads it under its lock and starts over on a fresh
read if the key or village changed meanwhile. Every refusal is decided on a fresh read.

A database failure raises `StorageError` and produces no ack at all: the kiosk keeps
the entries and resends after its timeout, which is safe because ingest is idempotent.

The parts: the checks before the transaction (`central.ingest_checks`), the rows it
adds (`central.ingest_rows`), dead letters (`central.ingest_dead_letters`); this
module holds the order of it all and the transaction. `Ingest` is the service object
(`CentralService` holds one): it keeps each device as last read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from central import audit, db, heads, kiosk_replacements, personal, recheck_state, rollup
from central.db import Device, storage_error
from central.ingest_checks import DATA, KIND, VILLAGER_KIND_VALUES, checked, opened
from central.ingest_dead_letters import dead_letter
from central.ingest_rows import apply_villagers, insert_entries
from central.store import CentralStore
from greenpass.errors import ProtocolError, StorageError
from greenpass.record.entries import Entry, Kind
from greenpass.record.personal import LEGACY_NAME_KEY
from sync import protocol

log = logging.getLogger(__name__)

# What this central takes in a batch beyond its first version, named in every ack.
ACCEPTS = (protocol.ACCEPT_PERSONAL, protocol.ACCEPT_HEADS, protocol.ACCEPT_REF_DEVICE)
_FRESH_ATTEMPTS = 3  # a device re-enrolled during each of them: give up, no ack


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


class _DeviceChanged(Exception):
    """The device row, read under the transaction's lock, is not the one the batch was
    checked against (re-enrolled with a new key, moved to another village)."""


class Ingest:
    """Ingests batches into `store`, keeping each device as last read.

    A batch from a known device is checked against this copy and needs no read of its
    own: the transaction re-reads the row under its lock and starts over if the key or
    village changed. A refusal is always decided on a fresh read, so a stale copy can
    neither refuse a batch nor let one through."""

    def __init__(self, store: CentralStore) -> None:
        self.store = store
        self._known: dict[str, Device] = {}

    def remember(self, devices: list[Device]) -> None:
        """Keep these device rows as last read (all the active ones, as central reads
        them on connecting to the broker)."""
        self._known.update((d.device_id, d) for d in devices)

    def prepare(self, topic: str, payload: bytes) -> Prepared | None:
        """The checks of a batch from a known device, made ahead of `batch` (on another
        thread: `sync.receiver.Receiver`'s first stage). None when the batch needs
        `batch`'s whole path: an unknown device, or anything refused, since a refusal is
        decided on a fresh read there. Never raises: `batch` repeats whatever failed."""
        device_id = protocol.device_of(topic, protocol.BATCH)
        cached = self._known.get(device_id) if device_id is not None else None
        if cached is None:
            return None
        try:
            env = protocol.open_envelope(payload, "batch")
            return Prepared(cached, checked(self.store, opened(env, cached), cached))
        except Exception:  # noqa: BLE001 - decided again, and reported, by `batch`
            return None

    def batch(
        self, topic: str, payload: bytes, now_ms: int, ready: Prepared | None = None
    ) -> IngestResult:
        """Ingest one batch; `ready` is what `prepare` made of the same topic and payload,
        taken if the device is still as it was checked against."""
        store = self.store
        known = self._known
        device_id = protocol.device_of(topic, protocol.BATCH)
        dev: Device | None = None
        batch: protocol.Batch | None = None
        try:
            if device_id is None:
                raise ProtocolError(
                    "rejected", f"topic {topic!r} is not {protocol.TOPIC_ROOT}/<D>/up/batch"
                )
            if ready is not None and known.get(device_id) is ready.device:
                try:
                    return _store_batch(store, ready.device, ready.batch, now_ms)
                except (ProtocolError, _DeviceChanged):
                    known.pop(device_id, None)  # decide on the device row as it is now
            env = protocol.open_envelope(payload, "batch")
            cached = known.get(device_id)
            if cached is not None:
                try:
                    batch = checked(store, opened(env, cached), cached)
                    return _store_batch(store, cached, batch, now_ms)
                except (ProtocolError, _DeviceChanged):
                    known.pop(device_id, None)  # decide on the device row as it is now
            for _ in range(_FRESH_ATTEMPTS):
                dev, batch = store.device(device_id), None
                if dev is None:
                    raise ProtocolError("rejected", f"device {device_id!r} is not enrolled")
                if dev.status != "active":
                    raise ProtocolError("rejected", f"device {device_id!r} is revoked")
                batch = opened(env, dev)  # kept: a refusal's ack names the batch's seqs
                checked(store, batch, dev)
                try:
                    result = _store_batch(store, dev, batch, now_ms)
                except _DeviceChanged:
                    continue
                known[device_id] = dev
                return result
            raise StorageError(f"device {device_id} kept changing while its batch was stored")
        except ProtocolError as exc:
            ack, now = dead_letter(
                store, topic, payload, now_ms, device_id, dev, batch, exc, list(ACCEPTS)
            )
            return IngestResult(ack, device_id, now.village_id if now else None, 0)


def ingest(
    store_or_engine: CentralStore | Engine, topic: str, payload: bytes, now_ms: int
) -> IngestResult:
    """One batch, with no device remembered from an earlier call (scripts and tests; a
    long-running central keeps an `Ingest`)."""
    store = (
        store_or_engine
        if isinstance(store_or_engine, CentralStore)
        else CentralStore(store_or_engine)
    )
    return Ingest(store).batch(topic, payload, now_ms)


# --- the transaction --------------------------------------------------------------------


def _store_batch(
    store: CentralStore, dev: Device, batch: protocol.Batch, now_ms: int
) -> IngestResult:
    # The row lock (PostgreSQL) and BEGIN IMMEDIATE (SQLite) already serialise two
    # workers handed the same batch. The primary key is the last guard should that
    # ever not hold: the loser rolls back and, on its second pass, sees a duplicate.
    for attempt in (1, 2):
        try:
            with store.engine.begin() as conn:
                ack, stored = _place(conn, store.postgres, dev, batch, now_ms)
            return IngestResult(ack, dev.device_id, dev.village_id, stored)
        except DBIntegrityError as exc:
            if attempt == 2:
                # Not a race (that resolves on the retry): the batch conflicts with
                # stored data, e.g. an entry_id another device already used.
                raise ProtocolError(
                    "rejected", f"the batch conflicts with stored entries: {_first_line(exc)}"
                ) from exc
        except DataError as exc:
            # The database refused a value: it will refuse it on every resend too.
            raise ProtocolError(
                "rejected", f"a value cannot be stored: {_first_line(exc)}"
            ) from exc
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"storing a batch from {dev.device_id}") from exc
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
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
_STORED_H = select(_e.c.h).where(
    (_e.c.device_id == bindparam("b_device")) & (_e.c.seq == bindparam("b_seq"))
)
_SEEN = update(_d).where(_d.c.device_id == bindparam("b_device"))
_VILLAGE_CHANGED = (
    update(db.villages)
    .where(db.villages.c.village_id == bindparam("b_village"))
    .values(changed_ms=db.village_changed(bindparam("b_now")))
)


def _place(
    conn: Connection, postgres: bool, dev: Device, batch: protocol.Batch, now_ms: int
) -> tuple[protocol.Ack, int]:
    key = {"b_device": dev.device_id}
    row = conn.execute(_LOCK_DEVICE_FOR_UPDATE if postgres else _LOCK_DEVICE, key).first()
    if row is None or (bytes(row.public_key), row.village_id) != (dev.public_key, dev.village_id):
        raise _DeviceChanged
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
            conn.execute(_VILLAGE_CHANGED, {"b_village": dev.village_id, "b_now": now_ms})
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
    # Last on purpose: every kiosk of the village writes these rows (the rollup's and the
    # village's), so on PostgreSQL their locks are held only from here to the commit.
    rollup.add(conn, dev.device_id, dev.village_id, rows)
    conn.execute(_VILLAGE_CHANGED, {"b_village": dev.village_id, "b_now": now_ms})
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
