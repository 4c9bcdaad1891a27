"""Reports over central's copy of every kiosk's ledger: village totals, a passbook's
statement, overdrafts, entries reversed at two kiosks, dead letters, and rows for CSV
export.

Quantities are signed (a reversal carries the negated grams, points and CO2e of what
it cancels), so totals are plain sums. A reversal is counted under the kind of the
entry it cancels: reversing a deposit lowers deposits, grams, points issued and CO2e;
reversing a redemption lowers points redeemed.

Order across kiosks is by wall clock, the only clock they share; within one kiosk it
is always by `seq` (docs/design.md §3: a Pi without an RTC may step its clock back, and seq
is the truth). `merged` interleaves each kiosk's seq-ordered entries by wall clock.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import RowMapping, Select, func, select
from sqlalchemy.orm import aliased

from central import db, passbooks
from greenpass.record.entries import Entry, Kind

if TYPE_CHECKING:  # a type only: the store opens through modules that import this one
    from central.store import CentralStore

EXPORT_COLUMNS = (
    "village_id",
    "device_id",
    "seq",
    "entry_id",
    "kind",
    "wall_ms",
    "clock_ok",
    "passbook_id",
    "category",
    "grams",
    "points",
    "co2e_g",
    "item_id",
    "qty",
    "ref_seq",
    "staff_id",
    "reason",
    "rules_version",
    "flags",
    "received_ms",
    "h",
    "ref_device",  # last: added with cross-kiosk reversals; empty for every other entry
)

_ENTRY_FIELDS = (
    "device_id",
    "seq",
    "entry_id",
    "kind",
    "wall_ms",
    "clock_ok",
    "boot_id",
    "mono_ms",
    "passbook_id",
    "category",
    "grams",
    "points",
    "co2e_g",
    "item_id",
    "qty",
    "ref_seq",
    "staff_id",
    "reason",
    "rules_version",
    "flags",
    "data",
    "ref_device",
)


@dataclass(frozen=True)
class StatementLine:
    entry: Entry
    balance: int  # the passbook's balance after this entry, across all kiosks


@dataclass(frozen=True)
class Overdraft:
    """A passbook whose balance went below zero: two kiosks spent the same points offline."""

    passbook_id: str
    lowest: int  # the lowest balance reached
    device_id: str  # the entry that first took it below zero
    seq: int
    wall_ms: int


@dataclass(frozen=True)
class DoubleReversal:
    """An entry reversed both by its own kiosk and by the kiosk holding central's
    reservation of it, offline at once (`central.reservations`): both reversals count,
    so the passbook lost `points` once too often and the village office gives them back."""

    passbook_id: str
    device_id: str  # the reversed entry
    seq: int
    points: int  # the entry's points, taken a second time
    reversals: tuple[tuple[str, int], ...]  # (device, seq) of each reversal
    wall_ms: int  # when the later reversal was made


@dataclass(frozen=True)
class DeadLetter:
    id: int
    received_ms: int
    topic: str
    claimed_device: str | None
    status: str
    reason: str
    size: int
    payload: bytes  # at most the first MAX_PAYLOAD bytes


def entry_from_row(m: RowMapping) -> Entry:
    return Entry(
        device_id=m["device_id"],
        seq=int(m["seq"]),
        entry_id=m["entry_id"],
        kind=Kind(m["kind"]),
        wall_ms=int(m["wall_ms"]),
        clock_ok=bool(m["clock_ok"]),
        boot_id=m["boot_id"],
        mono_ms=int(m["mono_ms"]),
        passbook_id=m["passbook_id"],
        category=m["category"],
        grams=None if m["grams"] is None else int(m["grams"]),
        points=int(m["points"]),
        co2e_g=int(m["co2e_g"]),
        item_id=m["item_id"],
        qty=None if m["qty"] is None else int(m["qty"]),
        ref_seq=None if m["ref_seq"] is None else int(m["ref_seq"]),
        ref_device=m["ref_device"],
        staff_id=m["staff_id"],
        reason=m["reason"],
        rules_version=m["rules_version"],
        flags=m["flags"],
        data=json.loads(m["data"]),
    )


def device_chain(store: CentralStore, device_id: str) -> list[tuple[Entry, bytes]]:
    """Central's copy of one device's ledger in seq order, with the stored hashes
    (for `greenpass.record.entries.check_chain` / `greenpass verify`)."""
    e = db.entries
    cols = [e.c[name] for name in _ENTRY_FIELDS]
    with store.read("reading a device's entries") as conn:
        rows = conn.execute(
            select(*cols, e.c.h).where(e.c.device_id == device_id).order_by(e.c.seq)
        ).all()
    return [(entry_from_row(r._mapping), bytes(r.h)) for r in rows]


def merged(entries: Iterable[Entry]) -> Iterator[Entry]:
    """Entries of several kiosks interleaved by (wall_ms, device_id), each kiosk's own
    kept in seq order even where its clock stepped back."""
    per_device: dict[str, list[Entry]] = defaultdict(list)
    for x in entries:
        per_device[x.device_id].append(x)
    streams = [sorted(xs, key=lambda x: x.seq) for xs in per_device.values()]
    # heapq.merge compares only the heads, so each stream's own order is kept.
    return heapq.merge(*streams, key=lambda x: (x.wall_ms, x.device_id, x.seq))


def _passbook_entries(store: CentralStore, where: Any) -> list[Entry]:
    e = db.entries
    cols = [e.c[name] for name in _ENTRY_FIELDS]
    with store.read("reading passbook entries") as conn:
        return [entry_from_row(m) for m in conn.execute(select(*cols).where(where)).mappings()]


def statement(store: CentralStore, passbook_id: str) -> list[StatementLine]:
    """Every entry of a passbook across all kiosks, in order, with the running balance:
    of the household's account, with the cards it replaced or that replaced it."""
    with store.read("reading passbook links") as conn:
        account = passbooks.members([passbook_id], passbooks.links(conn))
    lines, balance = [], 0
    for x in merged(_passbook_entries(store, db.entries.c.passbook_id.in_(account))):
        balance += x.points
        lines.append(StatementLine(x, balance))
    return lines


def overdrafts(store: CentralStore, village_id: str) -> list[Overdraft]:
    """Passbooks of the village whose running balance ever went below zero (a replaced
    card's entries count under the household's newest passbook)."""
    e = db.entries
    found = _passbook_entries(store, (e.c.village_id == village_id) & e.c.passbook_id.is_not(None))
    with store.read("reading passbook links") as conn:
        replaced = passbooks.links(conn, village_id)
    by_passbook: dict[str, list[Entry]] = defaultdict(list)
    for x in found:
        assert x.passbook_id is not None
        by_passbook[passbooks.account_of(x.passbook_id, replaced)].append(x)
    out = []
    for pid in sorted(by_passbook):
        balance, lowest, first = 0, 0, None
        for x in merged(by_passbook[pid]):
            balance += x.points
            if balance < 0 and first is None:
                first = x
            lowest = min(lowest, balance)
        if first is not None:
            out.append(Overdraft(pid, lowest, first.device_id, first.seq, first.wall_ms))
    return out


def double_reversals(store: CentralStore, village_id: str) -> list[DoubleReversal]:
    """The village's entries reversed at two kiosks, oldest first."""
    e, t = db.entries, aliased(db.entries)
    owner = func.coalesce(e.c.ref_device, e.c.device_id)
    twice = (
        select(owner.label("device_id"), e.c.ref_seq.label("seq"))
        .where((e.c.village_id == village_id) & (e.c.kind == Kind.REVERSAL.value))
        .group_by(owner, e.c.ref_seq)
        .having(func.count() > 1)
        .subquery()
    )
    q = (
        select(
            t.c.device_id, t.c.seq, t.c.passbook_id, t.c.points, e.c.device_id, e.c.seq, e.c.wall_ms
        )
        .join(twice, (t.c.device_id == twice.c.device_id) & (t.c.seq == twice.c.seq))
        .join(
            e,
            (func.coalesce(e.c.ref_device, e.c.device_id) == t.c.device_id)
            & (e.c.ref_seq == t.c.seq)
            & (e.c.kind == Kind.REVERSAL.value),
        )
        .order_by(t.c.device_id, t.c.seq, e.c.device_id)
    )
    found: dict[tuple[str, int], list[Any]] = {}
    with store.read("reading entries reversed twice") as conn:
        for device, seq, passbook, points, by_device, by_seq, wall_ms in conn.execute(q):
            row = found.setdefault((device, int(seq)), [passbook or "", int(points), [], 0])
            row[2].append((str(by_device), int(by_seq)))
            row[3] = max(row[3], int(wall_ms))
    out = [
        DoubleReversal(p, device, seq, points, tuple(revs), when)
        for (device, seq), (p, points, revs, when) in found.items()
    ]
    return sorted(out, key=lambda d: (d.wall_ms, d.device_id, d.seq))


def totals_query(village_id: str) -> Select[Any]:
    """Per kind, reversed entry's kind and category: count and sums of `village_id`'s
    entries (a reversal's own amounts are the negation of what it cancels). Callers
    narrow it by time (`central.exports`) and fold it into their totals."""
    e = db.entries
    target = aliased(e)
    return (
        select(
            e.c.kind,
            target.c.kind.label("target_kind"),
            e.c.category,
            func.count().label("n"),
            func.coalesce(func.sum(e.c.grams), 0).label("grams"),
            func.coalesce(func.sum(e.c.points), 0).label("points"),
            func.coalesce(func.sum(e.c.co2e_g), 0).label("co2e_g"),
        )
        .select_from(
            e.outerjoin(
                target,
                (target.c.device_id == func.coalesce(e.c.ref_device, e.c.device_id))
                & (target.c.seq == e.c.ref_seq),
            )
        )
        .where(e.c.village_id == village_id)
        .group_by(e.c.kind, target.c.kind, e.c.category)
    )


def village_totals(store: CentralStore, village_id: str) -> dict[str, Any]:
    """Grams per category, deposits, points issued and redeemed, CO2e: net of reversals."""
    q = totals_query(village_id)
    grams: dict[str, int] = defaultdict(int)
    deposits = issued = redeemed = co2e = 0
    with store.read("reading village totals") as conn:
        groups = conn.execute(q).all()
    for r in groups:
        kind, sign = r.kind, 1
        if kind == Kind.REVERSAL:
            kind, sign = r.target_kind, -1
        points = int(r.points)
        if kind == Kind.DEPOSIT:
            deposits += sign * int(r.n)
            issued += points
            co2e += int(r.co2e_g)
            if r.category is not None:
                grams[r.category] += int(r.grams)
        elif kind == Kind.AWARD:
            issued += points
        elif kind == Kind.REDEEM:
            redeemed -= points
    return {
        "village_id": village_id,
        "grams_by_category": dict(sorted(grams.items())),
        "deposits": deposits,
        "points_issued": issued,
        "points_redeemed": redeemed,
        "co2e_g": co2e,
    }


def dead_letters(store: CentralStore, limit: int = 100) -> list[DeadLetter]:
    """The most recent refused messages, newest first."""
    t = db.dead_letters
    with store.read("reading dead letters") as conn:
        rows = conn.execute(select(t).order_by(t.c.id.desc()).limit(limit)).all()
    return [
        DeadLetter(
            id=int(r.id),
            received_ms=int(r.received_ms),
            topic=r.topic,
            claimed_device=r.claimed_device,
            status=r.status,
            reason=r.reason,
            size=int(r.size),
            payload=bytes(r.payload),
        )
        for r in rows
    ]


def export_rows(store: CentralStore, village_id: str) -> Iterator[dict[str, Any]]:
    """Every entry of the village as a flat dict with `EXPORT_COLUMNS` (for csv.DictWriter),
    streamed so a large village does not sit in memory."""
    e = db.entries
    cols = [e.c[name] for name in EXPORT_COLUMNS]
    q = select(*cols).where(e.c.village_id == village_id).order_by(e.c.device_id, e.c.seq)
    with store.read("exporting entries") as conn:
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(q)
        for r in result:
            row = dict(r._mapping)
            row["clock_ok"] = int(bool(row["clock_ok"]))
            row["h"] = bytes(row["h"]).hex()
            yield row
