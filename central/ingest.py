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
Batches checked ahead and waiting together (`Ingest.batches`) share one transaction,
one commit for all; if it fails on a refusal, a conflict or a database error, each is
stored on its own as above.

A database failure raises `StorageError` and produces no ack at all: the kiosk keeps
the entries and resends after its timeout, which is safe because ingest is idempotent.

The parts: the checks before the transaction (`central.ingest_checks`), the
transaction (`central.ingest_place`), the rows it adds (`central.ingest_rows`), dead
letters (`central.ingest_dead_letters`); this module holds the order of it all.
`Ingest` is the service object (`CentralService` holds one): it keeps each device as
last read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Engine

from central.db import Device
from central.ingest_checks import checked, opened
from central.ingest_dead_letters import dead_letter
from central.ingest_place import (
    ACCEPTS,
    DeviceChanged,
    IngestResult,
    Prepared,
    store_batch,
    store_group,
)
from central.store import CentralStore
from greenpass.errors import ProtocolError, StorageError
from sync import protocol

__all__ = ["ACCEPTS", "GROUP_MAX", "Ingest", "IngestResult", "Prepared", "ingest"]

_FRESH_ATTEMPTS = 3  # a device re-enrolled during each of them: give up, no ack
# Batches one transaction may place (`Ingest.batches`): a commit and the rollup's and
# villages' rows for all of them. More holds the rows longer for nothing: a storm's
# batches are rarely more than this ahead of the one stored.
GROUP_MAX = 8


class Ingest:
    """Ingests batches into `store`, keeping each device as last read.

    A batch from a known device is checked against this copy and needs no read of its
    own: the transaction re-reads the row under its lock and starts over if the key or
    village changed. A refusal is always decided on a fresh read, so a stale copy can
    neither refuse a batch nor let one through."""

    def __init__(self, store: CentralStore) -> None:
        self.store = store
        # Written by the receiver's thread and, through `remember`, by the thread of
        # the state pushes: a row put back stale is harmless, as every use re-reads
        # it under its lock.
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
                    return store_batch(store, ready.device, ready.batch, now_ms)
                except (ProtocolError, DeviceChanged):
                    known.pop(device_id, None)  # decide on the device row as it is now
            env = protocol.open_envelope(payload, "batch")
            cached = known.get(device_id)
            if cached is not None:
                try:
                    batch = checked(store, opened(env, cached), cached)
                    return store_batch(store, cached, batch, now_ms)
                except (ProtocolError, DeviceChanged):
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
                    result = store_batch(store, dev, batch, now_ms)
                except DeviceChanged:
                    continue
                known[device_id] = dev
                return result
            raise StorageError(f"device {device_id} kept changing while its batch was stored")
        except ProtocolError as exc:
            ack, now = dead_letter(
                store, topic, payload, now_ms, device_id, dev, batch, exc, list(ACCEPTS)
            )
            return IngestResult(ack, device_id, now.village_id if now else None, 0)

    def batches(
        self, items: Sequence[tuple[str, bytes, Prepared | None]], now_ms: int
    ) -> Iterator[IngestResult]:
        """Ingest batches (topic, payload, what `prepare` made of them) in arrival order,
        each as `batch` would. Consecutive ones prepared against their device as it
        still is share one transaction, up to `GROUP_MAX`: one commit, and the rollup and
        village rows written once. If that transaction fails on a refusal, a conflict or a
        database error it is rolled back and each of its batches goes through
        `batch` on its own, which decides and reports as always."""
        n = 0
        while n < len(items):
            run: list[Prepared] = []
            while n + len(run) < len(items) and len(run) < GROUP_MAX:
                ready = items[n + len(run)][2]
                if ready is None or self._known.get(ready.device.device_id) is not ready.device:
                    break
                run.append(ready)
            placed = store_group(self.store, run, now_ms) if len(run) > 1 else None
            if placed:
                yield from placed
                n += len(placed)
                continue
            alone = items[n : n + max(1, len(run))]  # one not prepared, or a group undone
            for topic, payload, ready in alone:
                yield self.batch(topic, payload, now_ms, ready)
            n += len(alone)


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
