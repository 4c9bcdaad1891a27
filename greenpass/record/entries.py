"""Ledger entries, their canonical bytes and the hash chain.

An entry is immutable. Its hash is

    h = SHA-256(prev_h ‖ canonical_bytes(entry))      prev_h of seq 1 = 32 zero bytes

`canonical_bytes` is UTF-8 JSON of every field except `h`, keys sorted, no
whitespace, integers as integers, absent values as null (format version 1, in
the field `v`). The one exception is `ref_device`, added later: it is in the bytes
only when it is set (a reversal of another kiosk's entry), so every entry written
before it, and every entry without it, hashes exactly as it always did. Central
recomputes the same bytes from the synced fields, so this function is the contract
between kiosk and central: change it only with a new `v`.

Signed quantities make every total a plain sum: a reversal carries the negated
grams, points, CO2e and stock of the entry it cancels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec

CANONICAL_VERSION = 1
GENESIS_H = bytes(32)


class Kind(StrEnum):
    ENROL = "enrol"
    DEPOSIT = "deposit"
    REDEEM = "redeem"
    AWARD = "award"
    REVERSAL = "reversal"
    RESTOCK = "restock"
    ADJUST_STOCK = "adjust_stock"
    VILLAGER_STATUS = "villager_status"


# Kinds a staff member may reverse. Enrolments and status changes are undone by
# another status change; a reversal is never itself reversed.
REVERSIBLE = frozenset({Kind.DEPOSIT, Kind.REDEEM, Kind.AWARD, Kind.RESTOCK, Kind.ADJUST_STOCK})


@dataclass(frozen=True)
class Entry:
    device_id: str
    seq: int
    entry_id: str
    kind: Kind
    wall_ms: int
    clock_ok: bool
    boot_id: str
    mono_ms: int
    passbook_id: str | None = None
    category: str | None = None
    grams: int | None = None
    points: int = 0
    co2e_g: int = 0
    item_id: str | None = None
    qty: int | None = None  # stock delta of item_id
    ref_seq: int | None = None  # the entry a reversal cancels
    staff_id: str | None = None
    reason: str | None = None
    rules_version: str | None = None
    flags: str = ""  # comma-separated review flags, e.g. "burst,heavy"
    data: Mapping[str, str] = field(default_factory=dict)  # kind-specific text fields
    # The device whose entry `ref_seq` is, when it is not this one: a reversal of another
    # kiosk's entry, reserved at central first (docs/design.md §3). Last, so positional
    # readers of older rows stay as they were; None for every other entry.
    ref_device: str | None = None

    def fields(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict deep-copies and was a third of a deposit.
        # The instance dict holds exactly the fields (a frozen dataclass without slots).
        d = dict(self.__dict__)
        d["kind"] = str(self.kind)
        d["data"] = dict(self.data)
        return d


def canonical_bytes(entry: Entry) -> bytes:
    return _canonical(entry.fields())


# msgspec's sorted, compact JSON is byte-for-byte what
# `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes
# (tests/edge/test_canonical.py holds it to that) and eight times faster, which
# matters at the kiosk (every deposit) and at central (every synced entry).
_ENCODER = msgspec.json.Encoder(order="sorted")


def _canonical(fields: dict[str, Any]) -> bytes:
    doc = {**fields, "v": CANONICAL_VERSION}
    if doc.get("ref_device") is None:
        doc.pop("ref_device", None)  # absent, not null: older entries' bytes stay as they were
    return _ENCODER.encode(doc)


def chain_hash(prev_h: bytes, entry: Entry) -> bytes:
    return hashlib.sha256(prev_h + canonical_bytes(entry)).digest()


def chain_hash_of_fields(prev_h: bytes, fields: dict[str, Any]) -> bytes:
    """`chain_hash` for an entry already turned into `Entry.fields()` (saves a copy)."""
    return hashlib.sha256(prev_h + _canonical(fields)).digest()


@dataclass(frozen=True)
class ChainReport:
    """Result of checking a chain; `first_bad_seq` is None when it is intact."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    head_seq: int = 0
    head_h: str = GENESIS_H.hex()


def check_chain(
    rows: Iterable[tuple[Entry, bytes]],
    *,
    device_id: str,
    expected_head: tuple[int, str] | None = None,
) -> ChainReport:
    """Walk (entry, stored h) pairs in seq order and say where the chain first breaks.

    Detects an edited row (its hash no longer matches), a deleted row (a gap in
    seq), reordered rows (seq and hash disagree), a foreign device id, and, given
    the head recorded beside the entries, a truncated tail.
    """
    prev = GENESIS_H
    expected_seq = 1
    checked = 0
    for entry, stored_h in rows:
        if entry.seq != expected_seq:
            problem = (
                f"entry seq {expected_seq} is missing (deleted or reordered); "
                f"found seq {entry.seq} next"
            )
            return ChainReport(False, checked, expected_seq, problem, expected_seq - 1, prev.hex())
        if entry.device_id != device_id:
            return ChainReport(
                False,
                checked,
                entry.seq,
                f"entry seq {entry.seq} names device {entry.device_id!r}, "
                f"this ledger is {device_id!r}",
                entry.seq - 1,
                prev.hex(),
            )
        h = chain_hash(prev, entry)
        if h != stored_h:
            return ChainReport(
                False,
                checked,
                entry.seq,
                f"entry seq {entry.seq} does not match its hash "
                "(changed after it was written, or rows swapped)",
                entry.seq - 1,
                prev.hex(),
            )
        prev = h
        expected_seq += 1
        checked += 1
    head_seq = expected_seq - 1
    if expected_head is not None:
        want_seq, want_h = expected_head
        if want_seq > head_seq:
            return ChainReport(
                False,
                checked,
                head_seq + 1,
                f"entries {head_seq + 1}..{want_seq} are missing (the ledger's tail was cut off)",
                head_seq,
                prev.hex(),
            )
        if want_seq < head_seq:
            return ChainReport(
                False,
                checked,
                want_seq + 1,
                f"entries {want_seq + 1}..{head_seq} were not written by the "
                "ledger (appended behind its back)",
                head_seq,
                prev.hex(),
            )
        if want_h != prev.hex():
            return ChainReport(
                False,
                checked,
                head_seq,
                f"the recorded head hash does not match entry seq {head_seq}",
                head_seq,
                prev.hex(),
            )
    return ChainReport(True, checked, None, "", head_seq, prev.hex())
