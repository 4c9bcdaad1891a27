"""Exports for people: a village's totals, a village's entries and a passbook's
statement over a range of local dates, as tables that `central.export_files` writes
as CSV or XLSX.

Unlike `reports.export_rows` (the raw copy of the ledger, for programs), these are
for a village office's spreadsheet: local date-times in the village's time zone,
category names in Chinese and English, words for kinds, readable headers, and no
hashes or epoch milliseconds. Grams, points and grams CO2e stay integers; the kg
columns beside them are for reading only.

A date range is of whole local days, both ends included: ``from=2026-01-05`` starts
at 00:00 on the 5th in the village's time zone, so an entry at 23:30 Shanghai time on
the 5th belongs to the 5th although it is the 5th's 15:30 in UTC. The village's time
zone is its profile's (`greenpass central village add`), else the console's.

Totals count a reversal on its own day, under the kind of the entry it cancels (as
the Overview does), so a range's totals add up to the whole's.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from central import db, reports, rules_versions
from central.store import CentralStore
from greenpass.errors import RulesError
from greenpass.record.entries import Kind
from greenpass.record.rules import Rules, default_rules, parse_rules

Cell = str | int | float | datetime | None
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Column headers: (Chinese, English).
HEADERS: dict[str, tuple[str, str]] = {
    "time": ("时间", "Time"),
    "device": ("设备", "Kiosk"),
    "seq": ("序号", "Seq"),
    "kind": ("类型", "Kind"),
    "passbook": ("存折号", "Passbook"),
    "household": ("户名", "Household"),
    "category": ("类别代码", "Category key"),
    "category_zh": ("类别（中文）", "Category (Chinese)"),
    "category_en": ("类别（英文）", "Category (English)"),
    "deposits": ("投放次数", "Deposits"),
    "grams": ("克", "Grams"),
    "kg": ("公斤", "kg"),
    "points": ("积分", "Points"),
    "issued": ("发放积分", "Points issued"),
    "redeemed": ("兑换积分", "Points redeemed"),
    "balance": ("余额", "Balance"),
    "co2e_g": ("减排 CO2e 克", "CO2e g"),
    "co2e_kg": ("减排 CO2e 公斤", "CO2e kg"),
    "item": ("商品", "Item"),
    "qty": ("数量", "Qty"),
    "reverses": ("撤销序号", "Reverses seq"),
    "staff": ("工作人员", "Staff"),
    "reason": ("原因", "Reason"),
    "rules": ("规则版本", "Rules version"),
    "clock_ok": ("时钟可信", "Clock OK"),
    "received": ("中心收到", "Received"),
    "entry_id": ("条目编号", "Entry id"),
}

KINDS: dict[str, tuple[str, str]] = {
    Kind.ENROL: ("登记", "enrolment"),
    Kind.DEPOSIT: ("投放", "deposit"),
    Kind.REDEEM: ("兑换", "redemption"),
    Kind.AWARD: ("奖励", "award"),
    Kind.REVERSAL: ("撤销", "reversal"),
    Kind.RESTOCK: ("补货", "restock"),
    Kind.ADJUST_STOCK: ("库存调整", "stock adjustment"),
    Kind.VILLAGER_STATUS: ("村民状态", "villager status"),
}
ALL = ("合计", "All")
NO_CATEGORY = ("奖励与兑换", "awards and redemptions")
YES_NO = (("是", "否"), ("yes", "no"))


@dataclass(frozen=True)
class Period:
    """Whole local days `first`..`last` (both included; None: open) in `tz`. A `first`
    after `last` holds nothing (an empty file, not an error: nothing was asked wrongly)."""

    first: date | None
    last: date | None
    tz: ZoneInfo

    @property
    def start_ms(self) -> int | None:
        return None if self.first is None else _midnight_ms(self.first, self.tz)

    @property
    def end_ms(self) -> int | None:
        """The first millisecond after the range."""
        if self.last is None or self.last == date.max:
            return None
        return _midnight_ms(self.last + timedelta(days=1), self.tz)

    def holds(self, wall_ms: int) -> bool:
        start, end = self.start_ms, self.end_ms
        return (start is None or wall_ms >= start) and (end is None or wall_ms < end)

    def label(self) -> str:
        first = self.first.isoformat() if self.first else "start"
        last = self.last.isoformat() if self.last else "now"
        return f"{first}_{last}"

    def local(self, ms: int) -> datetime | None:
        """`ms` as a naive local date-time (what a spreadsheet shows), to the second;
        None for a clock no calendar holds (only a kiosk with a broken clock sends one)."""
        try:
            return datetime.fromtimestamp(ms // 1000, self.tz).replace(tzinfo=None)
        except (OverflowError, ValueError, OSError):
            return None


def _midnight_ms(d: date, tz: ZoneInfo) -> int:
    return int(datetime.combine(d, time(0), tz).timestamp() * 1000)


@dataclass(frozen=True)
class Table:
    """One sheet: `headers`, then `rows` (an iterator: a large village is streamed)."""

    title: str
    headers: list[str]
    rows: Iterable[list[Cell]]


def _header(keys: Iterable[str], lang: str) -> list[str]:
    i = 1 if lang == "en" else 0
    return [HEADERS[k][i] for k in keys]


def _kind(kind: str, lang: str) -> str:
    names = KINDS.get(kind)
    return kind if names is None else names[1 if lang == "en" else 0]


def _kg(grams: int | None) -> float | None:
    return None if grams is None else round(grams / 1000, 3)


# --- where and when ---------------------------------------------------------------------------


def village_tz(store: CentralStore, village_id: str, default: ZoneInfo) -> ZoneInfo:
    """The village's time zone (its profile's), else `default` (the console's)."""
    p = db.village_profiles
    with store.read("reading the village's time zone") as conn:
        name = conn.scalar(select(p.c.timezone).where(p.c.village_id == village_id))
    try:
        return ZoneInfo(name) if name else default
    except (ZoneInfoNotFoundError, ValueError):  # checked when set; never stop an export
        return default


class CategoryNames:
    """Category names in both languages: from the rules version an entry names, else
    the rules in force, else the shipped default, else the key itself."""

    def __init__(self, store: CentralStore, village_id: str) -> None:
        self._store, self._village = store, village_id
        r = db.village_rules
        with store.read("reading the village's rules") as conn:
            text = conn.scalar(select(r.c.text).where(r.c.village_id == village_id))
        self._current = default_rules()
        # Checked when stored: if they no longer parse, the default's names will do.
        with contextlib.suppress(RulesError):
            if text:
                self._current = parse_rules(text, f"<rules for {village_id}>")
        self._by_version: dict[str, Rules] = {}

    def learn(self, versions: Iterable[str | None]) -> None:
        wanted = {v for v in versions if v and v not in self._by_version}
        if wanted:
            self._by_version.update(rules_versions.known_rules(self._store, self._village, wanted))

    def __call__(self, category: str | None, version: str | None = None) -> tuple[str, str]:
        if category is None:
            return ("", "")
        for rules in (self._by_version.get(version or ""), self._current, default_rules()):
            found = None if rules is None else rules.category(category)
            if found is not None:
                return (found.name_zh, found.name_en)
        return (category, category)


# --- totals -------------------------------------------------------------------------------


@dataclass
class _Sums:
    deposits: int = 0
    grams: int = 0
    issued: int = 0
    redeemed: int = 0
    co2e_g: int = 0


def totals(store: CentralStore, village_id: str, period: Period) -> dict[str, _Sums]:
    """Sums per category over `period` ("" for awards and redemptions), net of reversals."""
    with store.read("reading village totals") as conn:
        return totals_in(conn, village_id, period)


def totals_in(conn: Connection, village_id: str, period: Period) -> dict[str, _Sums]:
    """`totals` in the caller's transaction (an evidence pack's snapshot)."""
    e = db.entries
    q = reports.totals_query(village_id)
    if period.start_ms is not None:
        q = q.where(e.c.wall_ms >= period.start_ms)
    if period.end_ms is not None:
        q = q.where(e.c.wall_ms < period.end_ms)
    groups = conn.execute(q).all()
    out: dict[str, _Sums] = defaultdict(_Sums)
    for r in groups:
        kind, sign = r.kind, 1
        if kind == Kind.REVERSAL:
            kind, sign = r.target_kind, -1
        if kind == Kind.DEPOSIT:
            s = out[r.category or ""]
            s.deposits += sign * int(r.n)
            s.grams += int(r.grams)
            s.issued += int(r.points)
            s.co2e_g += int(r.co2e_g)
        elif kind == Kind.AWARD:
            out[""].issued += int(r.points)
        elif kind == Kind.REDEEM:
            out[""].redeemed -= int(r.points)
    return dict(out)


def totals_as_api(store: CentralStore, village_id: str, period: Period) -> dict[str, Any]:
    """`totals` in the shape of `reports.village_totals` (the JSON totals route)."""
    return sums_as_api(village_id, totals(store, village_id, period))


def sums_as_api(village_id: str, sums: dict[str, _Sums]) -> dict[str, Any]:
    cats = {k: s for k, s in sums.items() if k}
    return {
        "village_id": village_id,
        "grams_by_category": {k: cats[k].grams for k in sorted(cats)},
        "deposits": sum(s.deposits for s in sums.values()),
        "points_issued": sum(s.issued for s in sums.values()),
        "points_redeemed": sum(s.redeemed for s in sums.values()),
        "co2e_g": sum(s.co2e_g for s in sums.values()),
    }


def totals_table(store: CentralStore, village_id: str, period: Period, lang: str) -> Table:
    keys = ["category", "category_zh", "category_en", "deposits", "grams", "kg"]
    keys += ["issued", "redeemed", "co2e_g", "co2e_kg"]
    sums = totals(store, village_id, period)
    names = CategoryNames(store, village_id)
    rows: list[list[Cell]] = []
    whole = _Sums()
    for cat in sorted(sums, key=lambda k: (k == "", k)):
        s = sums[cat]
        zh, en = names(cat) if cat else NO_CATEGORY
        rows.append([cat, zh, en, s.deposits, s.grams, _kg(s.grams), s.issued, s.redeemed])
        rows[-1] += [s.co2e_g, _kg(s.co2e_g)]
        for name in ("deposits", "grams", "issued", "redeemed", "co2e_g"):
            setattr(whole, name, getattr(whole, name) + getattr(s, name))
    w = whole
    rows.append(["", *ALL, w.deposits, w.grams, _kg(w.grams), w.issued, w.redeemed])
    rows[-1] += [w.co2e_g, _kg(w.co2e_g)]
    return Table("totals", _header(keys, lang), rows)


# --- entries and statements -----------------------------------------------------------------

ENTRY_KEYS = (
    "time", "device", "seq", "kind", "passbook", "household", "category", "category_zh",
    "category_en", "grams", "kg", "points", "co2e_g", "co2e_kg", "item", "qty", "reverses",
    "staff", "reason", "rules", "clock_ok", "received", "entry_id",
)  # fmt: skip


def entries_table(store: CentralStore, village_id: str, period: Period, lang: str) -> Table:
    """Every entry of the village in the period, by local time (then kiosk and seq)."""
    return Table("entries", _header(ENTRY_KEYS, lang), _entry_rows(store, village_id, period, lang))


def _entry_rows(
    store: CentralStore, village_id: str, period: Period, lang: str
) -> Iterator[list[Cell]]:
    e, v = db.entries, db.villagers
    q = (
        select(e, v.c.household_name)
        .select_from(e.outerjoin(v, v.c.passbook_id == e.c.passbook_id))
        .where(e.c.village_id == village_id)
        .order_by(e.c.wall_ms, e.c.device_id, e.c.seq)
    )
    if period.start_ms is not None:
        q = q.where(e.c.wall_ms >= period.start_ms)
    if period.end_ms is not None:
        q = q.where(e.c.wall_ms < period.end_ms)
    names = CategoryNames(store, village_id)
    yes, no = YES_NO[1 if lang == "en" else 0]
    with store.read("exporting entries") as conn:
        versions = conn.scalars(
            select(e.c.rules_version).where(e.c.village_id == village_id).distinct()
        ).all()
        names.learn(versions)
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(q)
        for r in result:
            zh, en = names(r.category, r.rules_version)
            grams = None if r.grams is None else int(r.grams)
            yield [
                period.local(int(r.wall_ms)), r.device_id, int(r.seq), _kind(r.kind, lang),
                r.passbook_id, r.household_name, r.category, zh or None, en or None,
                grams, _kg(grams), int(r.points), int(r.co2e_g), _kg(int(r.co2e_g)),
                r.item_id, r.qty, r.ref_seq, r.staff_id, r.reason, r.rules_version,
                yes if r.clock_ok else no, period.local(int(r.received_ms)), r.entry_id,
            ]  # fmt: skip


STATEMENT_KEYS = (
    "time", "device", "seq", "kind", "passbook", "category", "category_zh", "category_en",
    "grams", "kg", "points", "balance", "co2e_g", "item", "qty", "reverses", "staff", "reason",
)  # fmt: skip


def statement_table(
    store: CentralStore,
    lines: list[reports.StatementLine],
    village_id: str,
    period: Period,
    lang: str,
) -> Table:
    """A passbook's `reports.statement` lines in the period, each with the balance after
    it counted over the whole history (so the first row's balance includes what came
    before the range)."""
    names = CategoryNames(store, village_id)
    names.learn(x.entry.rules_version for x in lines)
    rows: list[list[Cell]] = []
    for line in lines:
        x = line.entry
        if not period.holds(x.wall_ms):
            continue
        zh, en = names(x.category, x.rules_version)
        row: list[Cell] = [
            period.local(x.wall_ms), x.device_id, x.seq, _kind(x.kind, lang), x.passbook_id,
            x.category, zh or None, en or None, x.grams, _kg(x.grams), x.points,
            line.balance, x.co2e_g, x.item_id, x.qty,
            x.ref_seq if x.ref_device is None else f"{x.ref_device}#{x.ref_seq}",
            x.staff_id, x.reason,
        ]  # fmt: skip
        rows.append(row)
    return Table("statement", _header(STATEMENT_KEYS, lang), rows)
