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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any
from weakref import WeakKeyDictionary

import msgspec
import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Engine,
    LargeBinary,
    String,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from central import (
    audit,
    db,
    heads,
    kiosk_replacements,
    personal,
    recheck,
    recheck_state,
    rollup,
)
from central.dead_letter_limit import limit_for
from central.store import CentralStore, Device, device_from_row, storage_error
from greenpass.errors import ProtocolError, StorageError
from greenpass.heads import head_verifies
from greenpass.record.entries import Entry, Kind
from sync import protocol
from sync.keys import public_key

INT64 = (-(2**63), 2**63 - 1)
VILLAGER_STATUSES = frozenset({"active", "inactive", "revoked"})

_data_json = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True)
class IngestResult:
    """`ack` goes to `gp/v1/dev/<device_id>/down/ack`; None only when the topic names
    no device. `stored` is how many entries this call added."""

    ack: protocol.Ack | None
    device_id: str | None
    village_id: str | None
    stored: int


class _DeviceChanged(Exception):
    """The device row, read under the transaction's lock, is not the one the batch was
    checked against (re-enrolled with a new key, moved to another village)."""


# Each engine's devices as last read. A batch from a known device is checked against
# this copy and needs no read of its own: the transaction re-reads the row under its
# lock and starts over if the key or village changed. A refusal is always decided on
# a fresh read, so a stale copy can neither refuse a batch nor let one through.
_known: WeakKeyDictionary[Engine, dict[str, Device]] = WeakKeyDictionary()
_FRESH_ATTEMPTS = 3  # a device re-enrolled during each of them: give up, no ack


def ingest(
    store_or_engine: CentralStore | Engine, topic: str, payload: bytes, now_ms: int
) -> IngestResult:
    store = (
        store_or_engine
        if isinstance(store_or_engine, CentralStore)
        else CentralStore(store_or_engine)
    )
    device_id = protocol.device_of(topic, protocol.BATCH)
    known = _known.setdefault(store.engine, {})
    dev: Device | None = None
    batch: protocol.Batch | None = None
    try:
        if device_id is None:
            raise ProtocolError(
                "rejected", f"topic {topic!r} is not {protocol.TOPIC_ROOT}/<D>/up/batch"
            )
        env = protocol.open_envelope(payload, "batch")
        cached = known.get(device_id)
        if cached is not None:
            try:
                batch = _checked(store, _opened(env, cached), cached)
                return _store_batch(store, cached, batch, now_ms)
            except (ProtocolError, _DeviceChanged):
                known.pop(device_id, None)  # decide on the device row as it is now
        for _ in range(_FRESH_ATTEMPTS):
            dev, batch = store.device(device_id), None
            if dev is None:
                raise ProtocolError("rejected", f"device {device_id!r} is not enrolled")
            if dev.status != "active":
                raise ProtocolError("rejected", f"device {device_id!r} is revoked")
            batch = _opened(env, dev)  # kept: a refusal's ack names the batch's seqs
            _checked(store, batch, dev)
            try:
                result = _store_batch(store, dev, batch, now_ms)
            except _DeviceChanged:
                continue
            known[device_id] = dev
            return result
        raise StorageError(f"device {device_id} kept changing while its batch was stored")
    except ProtocolError as exc:
        return dead_letter(store, topic, payload, now_ms, device_id, dev, batch, exc)


def _opened(env: protocol.Envelope, dev: Device) -> protocol.Batch:
    """The batch in `env` if `dev` sent it."""
    if env.signer != dev.device_id:
        raise ProtocolError(
            "rejected",
            f"sender {env.signer!r} signed a batch on device {dev.device_id!r}'s topic",
        )
    protocol.check_signature(env, public_key(dev.public_key))
    return protocol.decode_batch(env)


def _checked(store: CentralStore, batch: protocol.Batch, dev: Device) -> protocol.Batch:
    """`batch` if it holds nothing central refuses: its signed head, then entry by entry."""
    if batch.head_sig and not head_verifies(
        public_key(dev.public_key), dev.device_id, batch.last_seq, batch.hashes[-1], batch.head_sig
    ):
        raise ProtocolError(
            "bad_signature",
            f"the signed head of entries ..{batch.last_seq} does not verify against "
            f"device {dev.device_id!r}'s enrolled key",
        )
    check_entries(batch, dev.village_id)
    recheck.check_meaning(store, batch, dev.village_id)
    return batch


# --- per-entry checks -------------------------------------------------------------------


_ROW = {name: n for n, name in enumerate(protocol.ROW_FIELDS)}
_NUMBERS = [_ROW[c] for c in ("wall_ms", "mono_ms", "grams", "points", "co2e_g", "qty", "ref_seq")]
_TEXTS = [_ROW[c] for c in ("boot_id", "passbook_id", "category", "item_id", "staff_id",
                            "reason", "rules_version", "flags")]  # fmt: skip
_KIND, _DATA = _ROW["kind"], _ROW["data"]
_VILLAGER_KIND_VALUES = frozenset({Kind.ENROL.value, Kind.VILLAGER_STATUS.value})


def check_entries(batch: protocol.Batch, village_id: str) -> None:
    """What the signature and schema cannot say: each entry fits the database the same
    way on both dialects (64-bit integers, no NUL in text) and keeps to its village.

    Column by column over the whole batch (min, max and one joined string, all in C);
    only a batch that fails goes entry by entry, to name the entry in the reason."""
    lo, hi = INT64
    if batch.last_seq > hi:
        raise ProtocolError("rejected", f"seq {batch.last_seq} is out of range")
    cols = list(zip(*batch.rows, strict=True))
    # filter(None, …) drops None (and 0, which is in range; and "", which holds no NUL).
    numbers_ok = all(
        lo <= min(filter(None, cols[n]), default=0) and max(filter(None, cols[n]), default=0) <= hi
        for n in _NUMBERS
    )
    data = [d for d in cols[_DATA] if d]
    texts = chain(*(cols[n] for n in _TEXTS), *(chain(d, d.values()) for d in data))
    if not numbers_ok or "\0" in "".join(filter(None, texts)):
        _check_each_entry(batch, village_id)
        raise AssertionError("the batch failed a column check that no entry failed")
    if not _VILLAGER_KIND_VALUES.isdisjoint(cols[_KIND]):
        for n, kind in enumerate(cols[_KIND]):
            if kind in _VILLAGER_KIND_VALUES:
                _check_villager_entry(batch.entry(n), village_id)


def _check_each_entry(batch: protocol.Batch, village_id: str) -> None:
    """The same checks entry by entry, in order: the first failure is the reason."""
    lo, hi = INT64
    for e, _ in batch.entries:
        for n in (e.wall_ms, e.mono_ms, e.grams, e.points, e.co2e_g, e.qty, e.ref_seq):
            if n is not None and not lo <= n <= hi:
                raise ProtocolError("rejected", f"entry seq {e.seq}: a number is out of range")
        texts = (e.boot_id, e.passbook_id, e.category, e.item_id, e.staff_id, e.reason,
                 e.rules_version, e.flags, *e.data.keys(), *e.data.values())  # fmt: skip
        if any(t is not None and "\0" in t for t in texts):
            raise ProtocolError("rejected", f"entry seq {e.seq}: text contains a NUL character")
        if e.kind is Kind.ENROL or e.kind is Kind.VILLAGER_STATUS:
            _check_villager_entry(e, village_id)


def _check_villager_entry(e: Entry, village_id: str) -> None:
    if not e.passbook_id:
        raise ProtocolError("rejected", f"entry seq {e.seq}: {e.kind} without a passbook")
    if e.kind is Kind.ENROL:
        village = e.data.get("village")
        if village != village_id:
            raise ProtocolError(
                "rejected",
                f"entry seq {e.seq} enrols {e.passbook_id!r} into village {village!r}, "
                f"but the device belongs to {village_id!r}",
            )
    elif e.data.get("status") not in VILLAGER_STATUSES:
        raise ProtocolError("rejected", f"entry seq {e.seq}: unknown villager status")


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


# What this central takes in a batch beyond its first version, named in every ack.
ACCEPTS = (protocol.ACCEPT_PERSONAL, protocol.ACCEPT_HEADS)


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


log = logging.getLogger(__name__)

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
_VILLAGE_CHANGED = update(db.villages).where(db.villages.c.village_id == bindparam("b_village"))


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
            conn.execute(_VILLAGE_CHANGED, {"b_village": dev.village_id, "changed_ms": now_ms})
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
        if batch.rows[n][_KIND] in _VILLAGER_KIND_VALUES
    ]
    if villager_changes:  # an enrolment from before version 2 names its household
        rows = [(*r[:_DATA], personal.stored_data(r[_KIND], r[_DATA])) for r in rows]
    insert_entries(conn, rows, hashes, dev.village_id, now_ms)
    _apply_villagers(conn, dev, villager_changes)
    personal.keep_erased(conn, {x.passbook_id for x in villager_changes if x.passbook_id})
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
    conn.execute(_VILLAGE_CHANGED, {"b_village": dev.village_id, "changed_ms": now_ms})
    return _ack(dev, batch, "ok", batch.last_seq), len(rows)


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


# Column order of the INSERT and the COPY: an entry's row as `protocol.Batch` holds it,
# then what central adds. Checked against the table at import.
ENTRY_COLUMNS = (*protocol.ROW_FIELDS, "h", "village_id", "received_ms")
if tuple(c.name for c in db.entries.columns) != ENTRY_COLUMNS:  # pragma: no cover
    raise RuntimeError("central.db.entries and ingest.ENTRY_COLUMNS disagree")
_ROWS_PER_STATEMENT = 1000  # 24,000 parameters, under SQLite's limit of 32,766


@lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    one = "(" + ", ".join(["?"] * len(ENTRY_COLUMNS)) + ")"
    return f"INSERT INTO entries ({', '.join(ENTRY_COLUMNS)}) VALUES " + ", ".join([one] * rows)


def _copy_type(column: Any) -> str:
    t = column.type
    if isinstance(t, BigInteger):
        return "int8"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, LargeBinary):
        return "bytea"
    if isinstance(t, String):  # Text too
        return "text"
    raise TypeError(f"entries.{column.name}: no COPY type for {t!r}")  # pragma: no cover


_COPY_SQL = f"COPY entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = [_copy_type(c) for c in db.entries.columns]


def _data_text(data: dict[str, str]) -> str:
    return _data_json.encode(data).decode() if data else "{}"


def insert_entries(
    conn: Connection,
    rows: Sequence[tuple[Any, ...]],
    hashes: Sequence[bytes],
    village_id: str,
    now_ms: int,
) -> None:
    """Insert a batch's new entries (`protocol.Batch.rows` and their hashes): the hot
    path of a sync storm, so values go to the driver as they are, not through Core.

    SQLite: one multi-row INSERT per 1,000 rows (half the time of a row-by-row
    executemany). PostgreSQL: binary COPY on the connection's psycopg handle, in the
    same transaction, about four times less work for both ends than the pipelined
    executemany (psycopg formats a COPY row in C; an INSERT's parameters in Python).
    It is the one place central leaves SQLAlchemy: Core has no COPY, and this is the
    only statement whose cost grows with the backlog. A psycopg error is turned into
    SQLAlchemy's (IntegrityError, DataError, …), so the caller treats it as it treats
    an INSERT's."""
    if conn.dialect.name == "postgresql":
        _copy_entries(conn, rows, hashes, village_id, now_ms)
        return
    n_data = _DATA
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        flat: list[Any] = []
        for row, h in zip(chunk, hashes[start : start + _ROWS_PER_STATEMENT], strict=True):
            flat += row[:n_data]
            flat += (_data_text(row[n_data]), h, village_id, now_ms)
        conn.exec_driver_sql(_insert_sql(len(chunk)), tuple(flat))


def _copy_entries(
    conn: Connection,
    rows: Sequence[tuple[Any, ...]],
    hashes: Sequence[bytes],
    village_id: str,
    now_ms: int,
) -> None:
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    n_data = _DATA
    try:
        with raw.cursor() as cur, cur.copy(_COPY_SQL) as copy:
            copy.set_types(_COPY_TYPES)
            for row, h in zip(rows, hashes, strict=True):
                copy.write_row((*row[:n_data], _data_text(row[n_data]), h, village_id, now_ms))
    except psycopg.Error as exc:
        raise DBAPIError.instance(
            _COPY_SQL, None, exc, psycopg.Error, dialect=conn.dialect
        ) from exc


_VILLAGER_UPDATED = ("household_name", "status", "updated_ms", "source_device", "source_seq")


def _apply_villagers(conn: Connection, dev: Device, changes: list[Entry]) -> None:
    """Keep `villagers` current from enrol and villager_status entries.

    The first enrolment of a passbook wins (kiosks refuse a second one locally; across
    kiosks it is a clash for the operator, not something to overwrite). A status change
    wins when it is at least as recent by wall clock as the one stored, so a kiosk that
    syncs late cannot undo a newer change made elsewhere. A status change that arrives
    before the enrolment (another kiosk still offline) creates the row without a name;
    the enrolment fills it in later.
    """
    if not changes:
        return
    v = db.villagers
    ids = {x.passbook_id for x in changes}
    rows: dict[str, dict[str, Any]] = {
        r.passbook_id: dict(r._mapping)
        for r in conn.execute(select(v).where(v.c.passbook_id.in_(ids)))
    }
    existing, changed = set(rows), set()
    for x in changes:
        pid = x.passbook_id
        assert pid is not None  # check_entries refused it otherwise
        cur = rows.get(pid)
        source = {"updated_ms": x.wall_ms, "source_device": dev.device_id, "source_seq": x.seq}
        if x.kind is Kind.ENROL:
            name = x.data.get("household_name", "")
            if cur is None:
                rows[pid] = _villager(pid, dev.village_id, name, "active", source)
            elif cur["household_name"] == "" and cur["village_id"] == dev.village_id:
                cur["household_name"] = name
            else:
                continue
        elif cur is None:
            rows[pid] = _villager(pid, dev.village_id, "", x.data["status"], source)
        elif cur["village_id"] == dev.village_id and x.wall_ms >= cur["updated_ms"]:
            cur.update(status=x.data["status"], **source)
        else:
            continue
        changed.add(pid)
    fresh = [rows[p] for p in changed - existing]
    if fresh:
        conn.execute(insert(v), fresh)
    for pid in changed & existing:
        r = rows[pid]
        conn.execute(
            update(v).where(v.c.passbook_id == pid).values({k: r[k] for k in _VILLAGER_UPDATED})
        )


def _villager(
    pid: str, village: str, name: str, status: str, source: dict[str, Any]
) -> dict[str, Any]:
    return {
        "passbook_id": pid,
        "village_id": village,
        "household_name": name,
        "status": status,
        **source,
    }


# --- dead letters -----------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _clean(text: str, limit: int) -> str:
    # Dead letters hold whatever arrived; PostgreSQL text cannot hold NUL, and a reason
    # must stay one line for the ack and the operator's table.
    return " ".join(text.replace("\0", "\ufffd").split())[:limit]


def dead_letter(
    store: CentralStore,
    topic: str,
    payload: bytes,
    now_ms: int,
    device_id: str | None,
    dev: Device | None,
    batch: protocol.Batch | None,
    exc: ProtocolError,
) -> IngestResult:
    """Record a refused message (within `central.dead_letter_limit`'s budget) and build
    the ack that tells the device why."""
    reason = _clean(str(exc), 500)
    keep = limit_for(store.engine).admit(device_id, payload, now_ms)
    try:
        with store.engine.begin() as conn:
            if device_id is not None:
                # Re-read: the ack carries the device's current acked_seq.
                row = conn.execute(
                    select(db.devices).where(db.devices.c.device_id == device_id)
                ).first()
                dev = None if row is None else device_from_row(row)
            if keep:
                conn.execute(
                    insert(db.dead_letters).values(
                        received_ms=now_ms,
                        topic=_clean(topic, 1000),
                        claimed_device=None if device_id is None else _clean(device_id, 200),
                        status=exc.code,
                        reason=reason,
                        payload=payload[: protocol.MAX_PAYLOAD],
                        size=len(payload),
                    )
                )
    except SQLAlchemyError as db_exc:
        raise storage_error(db_exc, "recording a dead letter") from db_exc
    if device_id is None:
        return IngestResult(None, None, None, 0)
    acked = dev.acked_seq if dev is not None else 0
    ack = protocol.Ack(
        device_id=device_id,
        status=exc.code,
        acked_seq=acked,
        expected_seq=acked + 1,
        first_seq=batch.first_seq if batch else 0,
        last_seq=batch.last_seq if batch else 0,
        reason=reason,
        accepts=list(ACCEPTS),
    )
    return IngestResult(ack, device_id, dev.village_id if dev else None, 0)
