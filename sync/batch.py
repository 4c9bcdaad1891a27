"""Compact, signed batches of ledger entries: what a kiosk sends home (docs/design.md §5).

A batch of contiguous entries `first_seq..last_seq` of one device carries only
what central cannot recompute or infer: device id and seq are implied, hashes are
recomputed (the batch carries the last one to compare), times are deltas, a
UUIDv7's timestamp is the entry's wall clock, repeated boot ids and rules versions
are indexed. The body is MessagePack in a signed `sync.envelope.Envelope`.

Central checks the signature on the bytes as received, then the schema, then
rebuilds each entry, recomputes the chain from `prev_h` and compares the result
with `last_h`. A batch may also carry the kiosk's signature over its last entry's
place in the chain (`head_sig`, `greenpass.heads`), which central keeps after the
batch is gone. Pure: no network, no database.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from functools import cached_property
from typing import Any

import msgspec

from greenpass import heads
from greenpass.errors import ProtocolError
from greenpass.record.entries import CANONICAL_VERSION, Entry, Kind
from sync.envelope import DECODE_ERRORS, VERSION, Envelope, inflate, pack, seal
from sync.keys import Ed25519PrivateKey

MAX_ENTRIES = 500  # per batch
MAX_BATCH_BYTES = 64 * 1024  # uncompressed body a kiosk aims to stay under

_KIND_CODES = {kind.value: n for n, kind in enumerate(Kind)}  # a Kind finds its value's
_KINDS = list(Kind)
_KIND_VALUES = [kind.value for kind in Kind]
_REVERSAL_CODE = _KIND_CODES[Kind.REVERSAL.value]


class WireEntry(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    kind: int
    eid: bytes  # 10-byte UUIDv7 tail when its timestamp is wall_ms, else all 16 bytes
    wall: int  # wall_ms minus the previous entry's (the first: absolute)
    mono: int  # likewise
    ok: bool
    boot: int  # index into BatchBody.boots
    passbook: str | None
    category: str | None
    grams: int | None
    points: int
    co2e: int
    item: str | None
    qty: int | None
    ref: int | None
    staff: str | None
    reason: str | None
    rules: int | None  # index into BatchBody.rules
    flags: str
    data: dict[str, str]


class WirePersonal(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A household's personal data, beside the chain (`greenpass.record.personal`): central checks
    it against the commitment in the passbook's enrolment and keeps it where it can be
    corrected and erased. Never part of an entry or its hash."""

    passbook: str
    fields: dict[str, str]
    salt: bytes


class _BatchBodyV1(msgspec.Struct, array_like=True):
    """A batch as centrals from before personal records decode it: nine elements."""

    v: int
    device_id: str
    first_seq: int
    prev_h: bytes
    last_h: bytes
    sent_ms: int
    boots: list[str]
    rules: list[str]
    entries: list[WireEntry]


class _BatchBodyV2(_BatchBodyV1):
    """A batch as centrals from before signed heads decode it: ten elements."""

    # Sent only to a central whose acks say it takes them (`ACCEPT_PERSONAL`): one from
    # before them refuses a body with a tenth element (and msgspec writes an
    # array-like struct's trailing defaults, so an empty list goes as `_BatchBodyV1`).
    personal: list[WirePersonal] = []


class _BatchBodyV3(_BatchBodyV2):
    # The kiosk's signature of its last entry's head (`greenpass.heads`), sent only to a
    # central whose acks say it takes them (`ACCEPT_HEADS`): one from before them
    # refuses an eleventh element, so a body without it goes as `_BatchBodyV2` or V1.
    head_sig: bytes = b""


class BatchBody(_BatchBodyV3, forbid_unknown_fields=True):
    # `Entry.ref_device` of the entries that have one (reversals of another kiosk's
    # entry), by their index in `entries`: beside them, not in `WireEntry`, so that the
    # entries of every other batch stay as they were. Only kiosks whose central accepts
    # them (`ACCEPT_REF_DEVICE`) write such entries; a central from before them refuses a
    # twelfth element, so a body without any goes as `_BatchBodyV3` or shorter.
    ref_devices: dict[int, str] = {}


MAX_PERSONAL = 200  # personal records in one batch; the rest go with the next


_batch_decoder = msgspec.msgpack.Decoder(BatchBody)


# An entry as a row (`Batch.rows`, `encode_rows`): `Entry`'s fields in declaration
# order, the kind as its string value, data a dict. Positions are used as they are.
ROW_FIELDS = (
    "device_id", "seq", "entry_id", "kind", "wall_ms", "clock_ok", "boot_id", "mono_ms",
    "passbook_id", "category", "grams", "points", "co2e_g", "item_id", "qty", "ref_seq",
    "staff_id", "reason", "rules_version", "flags", "data", "ref_device",
)  # fmt: skip
if tuple(f.name for f in dataclass_fields(Entry)) != ROW_FIELDS:  # pragma: no cover
    raise RuntimeError("sync.batch.ROW_FIELDS no longer lists Entry's fields in order")


@dataclass(frozen=True)
class Batch:
    """A decoded, verified batch. `rows[n]` holds entry n's fields in `ROW_FIELDS` order
    (the kind as its string value, data a dict) and `hashes[n]` its recomputed chain
    hash: central checks and stores these as they are. `entries` builds `Entry` objects
    for whoever wants them; the ingest path does not, it only needs the values."""

    device_id: str
    first_seq: int
    last_seq: int
    prev_h: bytes
    sent_ms: int
    rows: list[tuple[Any, ...]] = field(repr=False)
    hashes: list[bytes] = field(repr=False)
    personal: list[WirePersonal] = field(default_factory=list, repr=False)
    # The kiosk's signature of (device_id, last_seq, hashes[-1]), `greenpass.heads`;
    # empty when the batch carries none (a kiosk from before them). Not checked here:
    # the device's key is central's to know.
    head_sig: bytes = field(default=b"", repr=False)

    def entry(self, n: int) -> Entry:
        r = self.rows[n]
        return Entry(*(*r[:3], Kind(r[3]), *r[4:]))

    @cached_property
    def entries(self) -> list[tuple[Entry, bytes]]:
        return [(self.entry(n), h) for n, h in enumerate(self.hashes)]


def _eid(entry_id: str, wall_ms: int) -> bytes:
    # bytes.fromhex of the 32 digits is what uuid.UUID parses, without building one;
    # anything it does not take (braces, "urn:", …) goes the long way.
    digits = entry_id.replace("-", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raw = b""
    if len(raw) != 16 or len(digits) != 32:
        raw = uuid.UUID(entry_id).bytes
    if raw[6] >> 4 == 7 and int.from_bytes(raw[:6], "big") == wall_ms & (2**48 - 1):
        return raw[6:]
    return raw


def _wire(
    rows: Sequence[tuple[tuple[Any, ...], bytes]],
) -> tuple[list[WireEntry], list[str], list[str], dict[int, str]]:
    boots: dict[str, int] = {}
    rules: dict[str, int] = {}
    refs: dict[int, str] = {}
    out: list[WireEntry] = []
    wall = mono = 0
    kinds = _KIND_CODES
    for r, _ in rows:  # positions: ROW_FIELDS; r[8:18] are WireEntry's passbook..reason
        rules_version = r[18]
        if len(r) > 21 and r[21] is not None:
            refs[len(out)] = r[21]
        out.append(
            WireEntry(
                kinds[r[3]],
                _eid(r[2], r[4]),
                r[4] - wall,
                r[7] - mono,
                r[5],
                boots.setdefault(r[6], len(boots)),
                r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15], r[16], r[17],
                None if rules_version is None else rules.setdefault(rules_version, len(rules)),
                r[19],
                r[20],
            )
        )  # fmt: skip
        wall, mono = r[4], r[7]
    return out, list(boots), list(rules), refs


def _entry_fields(entry: Entry) -> tuple[Any, ...]:
    """An entry as a row of `Batch.rows` / `encode_rows` (ROW_FIELDS order, kind as str)."""
    values = tuple(getattr(entry, name) for name in ROW_FIELDS)
    return (*values[:3], entry.kind.value, *values[4:20], dict(entry.data), entry.ref_device)


def encode_batch(
    device_id: str,
    rows: Sequence[tuple[Entry, bytes]],
    prev_h: bytes,
    key: Ed25519PrivateKey,
    sent_ms: int,
    *,
    max_bytes: int = MAX_BATCH_BYTES,
    personal: Sequence[WirePersonal] = (),
    sign_head: bool = False,
) -> tuple[bytes, int]:
    """`encode_rows` for (Entry, hash) pairs."""
    fields = [(_entry_fields(e), h) for e, h in rows]
    return encode_rows(
        device_id, fields, prev_h, key, sent_ms,
        max_bytes=max_bytes, personal=personal, sign_head=sign_head,
    )  # fmt: skip


def encode_rows(
    device_id: str,
    rows: Sequence[tuple[tuple[Any, ...], bytes]],
    prev_h: bytes,
    key: Ed25519PrivateKey,
    sent_ms: int,
    *,
    max_bytes: int = MAX_BATCH_BYTES,
    personal: Sequence[WirePersonal] = (),
    sign_head: bool = False,
) -> tuple[bytes, int]:
    """Sign the longest prefix of `rows` (contiguous entries after `prev_h`, each its
    field values in ROW_FIELDS order, the kind as its string value, and its hash) whose
    body fits `max_bytes`; returns (payload, number of entries taken). One entry always
    goes, however large, so an oversized entry cannot stall the queue. `personal`
    records go with it whole (at most MAX_PERSONAL, a few KiB). `sign_head` adds the
    signed head of the last entry taken (only for a central that takes it)."""
    if not rows:
        raise ValueError("a batch needs at least one entry")
    if len(personal) > MAX_PERSONAL:
        raise ValueError(f"at most {MAX_PERSONAL} personal records in a batch")
    n = len(rows)
    while True:
        wire, boots, rules, refs = _wire(rows[:n])
        last_h = rows[n - 1][1]
        head = (VERSION, device_id, rows[0][0][1], prev_h, last_h, sent_ms, boots, rules)
        sig = heads.sign_head(key, device_id, rows[n - 1][0][1], last_h) if sign_head else b""
        # The shortest body that carries what is present: an older central refuses more.
        if refs:
            body = pack.encode(BatchBody(*head, wire, list(personal), sig, refs))
        elif sign_head:
            body = pack.encode(_BatchBodyV3(*head, wire, list(personal), sig))
        elif personal:
            body = pack.encode(_BatchBodyV2(*head, wire, list(personal)))
        else:
            body = pack.encode(_BatchBodyV1(*head, wire))
        if len(body) <= max_bytes or n == 1:
            return seal("batch", device_id, body, key), n
        n = max(1, n * max_bytes // len(body) * 9 // 10)


def _entry_id(eid: bytes, wall_ms: int) -> str:
    if len(eid) == 10:
        eid = (wall_ms & (2**48 - 1)).to_bytes(6, "big") + eid
    elif len(eid) != 16:
        raise ProtocolError("rejected", f"entry id of {len(eid)} bytes")
    h = eid.hex()  # str(uuid.UUID(bytes=eid)), without building the UUID
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Canonical(msgspec.Struct):
    """An entry as `greenpass.record.entries.canonical_bytes` sees it, fields in sorted order: with
    order="deterministic" (struct fields as declared, dict keys sorted) it encodes to
    the kiosk's bytes without building a dict per entry and sorting its keys. Checked
    against `Entry` below; tests/sync/test_protocol.py compares the hashes."""

    boot_id: str
    category: str | None
    clock_ok: bool
    co2e_g: int
    data: dict[str, str]
    device_id: str
    entry_id: str
    flags: str
    grams: int | None
    item_id: str | None
    kind: str
    mono_ms: int
    passbook_id: str | None
    points: int
    qty: int | None
    reason: str | None
    ref_device: str | msgspec.UnsetType  # UNSET: left out of the bytes (canonical_bytes)
    ref_seq: int | None
    rules_version: str | None
    seq: int
    staff_id: str | None
    v: int
    wall_ms: int


if _Canonical.__struct_fields__ != tuple(sorted([*ROW_FIELDS, "v"])):  # pragma: no cover
    raise RuntimeError("sync.batch._Canonical no longer lists Entry's fields, sorted")
_canonical = msgspec.json.Encoder(order="deterministic").encode


def decode_batch(env: Envelope) -> Batch:
    """Rebuild the entries of a batch whose signature has been checked, recompute the
    chain from its `prev_h`, and check it ends at the `last_h` the kiosk stored."""
    try:
        body = _batch_decoder.decode(inflate(env))
    except DECODE_ERRORS as exc:
        raise ProtocolError("rejected", f"malformed batch: {exc}") from exc
    if body.v != VERSION:
        raise ProtocolError("rejected", f"batch version {body.v} is not supported")
    if body.device_id != env.signer:
        raise ProtocolError(
            "rejected", f"batch names device {body.device_id!r} but is signed by {env.signer!r}"
        )
    if not body.entries or len(body.entries) > MAX_ENTRIES:
        raise ProtocolError("rejected", f"a batch holds 1..{MAX_ENTRIES} entries")
    if body.first_seq < 1 or len(body.prev_h) != 32 or len(body.last_h) != 32:
        raise ProtocolError("rejected", "bad first_seq or hash length")
    if body.head_sig and len(body.head_sig) != heads.SIGNATURE_SIZE:
        raise ProtocolError("rejected", f"a head signature of {len(body.head_sig)} bytes")
    refs, unset = body.ref_devices, msgspec.UNSET
    for n, named in refs.items():
        if not (0 <= n < len(body.entries) and body.entries[n].kind == _REVERSAL_CODE):
            raise ProtocolError("rejected", f"ref_device for entry {n}, which is no reversal")
        if not named or named == body.device_id:
            raise ProtocolError("rejected", f"entry {n}: ref_device {named!r}")
    n_kinds, boots, rules = len(_KINDS), body.boots, body.rules
    n_boots, n_rules = len(boots), len(rules)
    rows: list[tuple[Any, ...]] = []
    hashes: list[bytes] = []
    prev, wall, mono = body.prev_h, 0, 0
    device, seq = body.device_id, body.first_seq
    sha256, canonical, version = hashlib.sha256, _canonical, CANONICAL_VERSION
    # Central's hot path: every synced entry passes here once, so the loop builds only
    # the row it stores and the struct it hashes.
    for n, w in enumerate(body.entries):
        # Explicit ranges: a negative index would silently pick from the end.
        if not (0 <= w.kind < n_kinds and 0 <= w.boot < n_boots) or (
            w.rules is not None and not 0 <= w.rules < n_rules
        ):
            raise ProtocolError(
                "rejected", f"entry {n}: a kind, boot or rules index is out of range"
            )
        wall += w.wall
        mono += w.mono
        entry_id = _entry_id(w.eid, wall)
        kind, boot = _KIND_VALUES[w.kind], boots[w.boot]
        rules_version = None if w.rules is None else rules[w.rules]
        ref_device = refs.get(n) if refs else None
        prev = sha256(
            prev
            + canonical(
                _Canonical(
                    boot, w.category, w.ok, w.co2e, w.data, device, entry_id, w.flags,
                    w.grams, w.item, kind, mono, w.passbook, w.points, w.qty, w.reason,
                    unset if ref_device is None else ref_device, w.ref, rules_version, seq,
                    w.staff, version, wall,
                )
            )
        ).digest()  # fmt: skip
        rows.append(
            (device, seq, entry_id, kind, wall, w.ok, boot, mono, w.passbook, w.category,
             w.grams, w.points, w.co2e, w.item, w.qty, w.ref, w.staff, w.reason,
             rules_version, w.flags, w.data, ref_device)
        )  # fmt: skip
        hashes.append(prev)
        seq += 1
    if prev != body.last_h:
        raise ProtocolError(
            "bad_chain",
            f"entries {body.first_seq}..{seq - 1} do not hash to the "
            "batch's last_h (changed in transit or on the kiosk)",
        )
    if len(body.personal) > MAX_PERSONAL:
        raise ProtocolError("rejected", f"a batch holds at most {MAX_PERSONAL} personal records")
    return Batch(
        device, body.first_seq, seq - 1, body.prev_h, body.sent_ms, rows, hashes, body.personal,
        body.head_sig,
    )  # fmt: skip
