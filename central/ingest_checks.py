"""The checks ingest makes of a batch before its transaction (`central.ingest`), cheapest
and least trusting first: the device signed it and its signature verifies against the
enrolled key (before anything is decompressed); the signed head it carries, if any,
verifies too; each entry fits the database the same way on both dialects and keeps to
the device's village; each entry means what it says (`central.recheck`).

A failure raises `ProtocolError`, which ingest turns into a dead letter and an ack.
"""

from __future__ import annotations

from itertools import chain

from central import recheck
from central.db import Device
from central.store import CentralStore
from greenpass.errors import ProtocolError
from greenpass.heads import head_verifies
from greenpass.record.entries import Entry, Kind
from sync import protocol
from sync.keys import public_key

INT64 = (-(2**63), 2**63 - 1)
VILLAGER_STATUSES = frozenset({"active", "inactive", "revoked"})


def opened(env: protocol.Envelope, dev: Device) -> protocol.Batch:
    """The batch in `env` if `dev` sent it."""
    if env.signer != dev.device_id:
        raise ProtocolError(
            "rejected",
            f"sender {env.signer!r} signed a batch on device {dev.device_id!r}'s topic",
        )
    protocol.check_signature(env, public_key(dev.public_key))
    return protocol.decode_batch(env)


def checked(store: CentralStore, batch: protocol.Batch, dev: Device) -> protocol.Batch:
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


_ROW = {name: n for n, name in enumerate(protocol.ROW_FIELDS)}
_NUMBERS = [_ROW[c] for c in ("wall_ms", "mono_ms", "grams", "points", "co2e_g", "qty", "ref_seq")]
_TEXTS = [_ROW[c] for c in ("boot_id", "passbook_id", "category", "item_id", "staff_id",
                            "reason", "rules_version", "flags", "ref_device")]  # fmt: skip
KIND, DATA = _ROW["kind"], _ROW["data"]
VILLAGER_KIND_VALUES = frozenset({Kind.ENROL.value, Kind.VILLAGER_STATUS.value})


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
    data = [d for d in cols[DATA] if d]
    texts = chain(*(cols[n] for n in _TEXTS), *(chain(d, d.values()) for d in data))
    if not numbers_ok or "\0" in "".join(filter(None, texts)):
        _check_each_entry(batch, village_id)
        raise AssertionError("the batch failed a column check that no entry failed")
    if not VILLAGER_KIND_VALUES.isdisjoint(cols[KIND]):
        for n, kind in enumerate(cols[KIND]):
            if kind in VILLAGER_KIND_VALUES:
                _check_villager_entry(batch.entry(n), village_id)


def _check_each_entry(batch: protocol.Batch, village_id: str) -> None:
    """The same checks entry by entry, in order: the first failure is the reason."""
    lo, hi = INT64
    for e, _ in batch.entries:
        for n in (e.wall_ms, e.mono_ms, e.grams, e.points, e.co2e_g, e.qty, e.ref_seq):
            if n is not None and not lo <= n <= hi:
                raise ProtocolError("rejected", f"entry seq {e.seq}: a number is out of range")
        texts = (e.boot_id, e.passbook_id, e.category, e.item_id, e.staff_id, e.reason,
                 e.rules_version, e.flags, e.ref_device,
                 *e.data.keys(), *e.data.values())  # fmt: skip
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
