"""The Overview page's numbers: per village and per day, net of reversals.

The numbers are sums by village, kind, category and local day
(``(wall_ms + UTC offset) // 86_400_000``, the same integer arithmetic on SQLite and
PostgreSQL) over the last twelve months; everything else is summed from those groups
here. A reversal counts on its own day, under the kind of the entry it cancels (as
`central.reports.village_totals` counts it). The UTC offset is the time zone's at the
moment of the query: exact for China, which has no daylight saving time.

Those sums come from `central.rollup`'s table, kept by ingest, when the console's zone
is at the rollup's UTC offset (UTC+8, the default); otherwise, and as the reference the
tests hold the rollup to (`overview_raw`), from one GROUP BY over the entries, which
takes seconds on a county of 2,000,000 entries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, func, literal_column, select
from sqlalchemy.orm import aliased

from central import db, rollup
from central.store import CentralStore
from greenpass.record.entries import Kind

DAY_MS = 86_400_000
CHART_DAYS = 30
CHART_MONTHS = 12
EPOCH = date(1970, 1, 1)
_COUNTED = (Kind.DEPOSIT.value, Kind.AWARD.value, Kind.REDEEM.value)  # what the page shows


@dataclass
class Sums:
    grams: int = 0
    issued: int = 0
    redeemed: int = 0
    co2e_g: int = 0

    def add(self, other: Sums) -> None:
        self.grams += other.grams
        self.issued += other.issued
        self.redeemed += other.redeemed
        self.co2e_g += other.co2e_g


@dataclass
class Overview:
    today: date
    days: list[date]  # the last CHART_DAYS days, oldest first
    months: list[date]  # the first day of each of the last CHART_MONTHS months
    villages: dict[str, tuple[Sums, Sums]] = field(default_factory=dict)  # today, month
    grams_by_category_day: dict[str, list[int]] = field(default_factory=dict)
    issued_by_day: list[int] = field(default_factory=list)
    redeemed_by_day: list[int] = field(default_factory=list)
    co2e_by_month: list[int] = field(default_factory=list)


def _month_start(d: date, back: int = 0) -> date:
    index = d.year * 12 + d.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def _frame(now_ms: int, tz: ZoneInfo) -> tuple[Overview, int]:
    """An Overview with no numbers yet, and the UTC offset of `tz` at `now_ms`."""
    now = datetime.fromtimestamp(now_ms / 1000, tz)
    offset = now.utcoffset() or timedelta(0)
    today = now.date()
    days = [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    months = [_month_start(today, n) for n in range(CHART_MONTHS - 1, -1, -1)]
    out = Overview(today=today, days=days, months=months)
    out.issued_by_day = [0] * CHART_DAYS
    out.redeemed_by_day = [0] * CHART_DAYS
    out.co2e_by_month = [0] * CHART_MONTHS
    return out, int(offset.total_seconds() * 1000)


def overview(store: CentralStore, villages: list[str], now_ms: int, tz: ZoneInfo) -> Overview:
    """The numbers for `villages` (an empty list: no numbers), at `now_ms` in `tz`."""
    out, offset_ms = _frame(now_ms, tz)
    if offset_ms != rollup.OFFSET_MS:
        return overview_raw(store, villages, now_ms, tz)
    out.villages = {v: (Sums(), Sums()) for v in villages}
    if not villages:
        return out
    adder = _Adder(out)
    r = rollup.overview_rollup
    mine = r.c.village_id.in_(villages) & r.c.kind.in_(_COUNTED)
    sums = [func.sum(r.c.grams), func.sum(r.c.points), func.sum(r.c.co2e_g)]
    # Two small GROUP BYs rather than every row: the villages' table needs only this
    # month, by village; the charts need the year, but summed over the villages.
    this_month = (
        select(r.c.village_id, r.c.kind, r.c.day, *sums)
        .where(mine & (r.c.day >= (out.months[-1] - EPOCH).days))
        .group_by(r.c.village_id, r.c.kind, r.c.day)
    )
    year = (
        select(r.c.kind, r.c.category, r.c.day, *sums)
        .where(mine & (r.c.day >= (out.months[0] - EPOCH).days))
        .group_by(r.c.kind, r.c.category, r.c.day)
    )
    with store.read("reading the overview", snapshot=True) as conn:
        by_village, by_day = conn.execute(this_month).all(), conn.execute(year).all()
    for village, kind, day, grams, points, co2e_g in by_village:
        adder.village(village, kind, int(day), _sums(kind, grams, points, co2e_g))
    for kind, category, day, grams, points, co2e_g in by_day:
        s = _sums(kind, grams, points, co2e_g)
        adder.charts(kind, category or None, int(day), s)
    return adder.done()


def overview_raw(store: CentralStore, villages: list[str], now_ms: int, tz: ZoneInfo) -> Overview:
    """`overview` from the entries themselves: any time zone, the reference."""
    out, offset_ms = _frame(now_ms, tz)
    out.villages = {v: (Sums(), Sums()) for v in villages}
    if not villages:
        return out
    since_day = (out.months[0] - EPOCH).days
    e = db.entries
    target = aliased(e)
    # Inlined integers, not bound parameters: PostgreSQL would see the SELECT's and the
    # GROUP BY's copies of the expression as different ($1 vs $2) and refuse the query.
    local_ms = e.c.wall_ms + literal_column(str(offset_ms), BigInteger)
    day = (local_ms // literal_column(str(DAY_MS), BigInteger)).label("day")
    q = (
        select(
            e.c.village_id,
            e.c.kind,
            target.c.kind.label("target_kind"),
            e.c.category,
            day,
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
        .where(e.c.village_id.in_(villages))
        .where(e.c.wall_ms >= since_day * DAY_MS - offset_ms)
        .group_by(e.c.village_id, e.c.kind, target.c.kind, e.c.category, day)
    )
    with store.read("reading the overview", snapshot=True) as conn:
        groups = conn.execute(q).all()
    adder = _Adder(out)
    for r in groups:
        kind = r.target_kind if r.kind == Kind.REVERSAL else r.kind
        s = _sums(kind, r.grams, r.points, r.co2e_g)
        adder.village(r.village_id, kind, int(r.day), s)
        adder.charts(kind, r.category, int(r.day), s)
    return adder.done()


def _sums(kind: str | None, grams: Any, points: Any, co2e_g: Any) -> Sums:
    """What a group of `kind` adds to the page (nothing for kinds it does not show)."""
    s = Sums()
    if kind == Kind.DEPOSIT:
        s.grams, s.issued, s.co2e_g = int(grams or 0), int(points), int(co2e_g)
    elif kind == Kind.AWARD:
        s.issued = int(points)
    elif kind == Kind.REDEEM:
        s.redeemed = -int(points)
    return s


class _Adder:
    """Adds groups of one local day to an Overview: to a village's today and this
    month, and to the county's charts."""

    def __init__(self, out: Overview) -> None:
        self.out = out
        self.grams_by_cat: dict[str, list[int]] = defaultdict(lambda: [0] * CHART_DAYS)
        self.month_index = {m: i for i, m in enumerate(out.months)}

    def village(self, village_id: str, kind: str | None, day: int, s: Sums) -> None:
        if kind not in _COUNTED:
            return
        when = EPOCH + timedelta(days=day)
        today_sums, month_sums = self.out.villages[village_id]
        if when == self.out.today:
            today_sums.add(s)
        if _month_start(when) == self.out.months[-1]:
            month_sums.add(s)

    def charts(self, kind: str | None, category: str | None, day: int, s: Sums) -> None:
        if kind not in _COUNTED:
            return
        out, when = self.out, EPOCH + timedelta(days=day)
        i = (when - out.days[0]).days
        if 0 <= i < CHART_DAYS:
            # Every category deposited in the window has a line, even one whose
            # deposits were all reversed: the same on both paths, however grouped.
            if kind == Kind.DEPOSIT and category is not None:
                self.grams_by_cat[category][i] += s.grams
            out.issued_by_day[i] += s.issued
            out.redeemed_by_day[i] += s.redeemed
        m = self.month_index.get(_month_start(when))
        if m is not None:
            out.co2e_by_month[m] += s.co2e_g

    def done(self) -> Overview:
        self.out.grams_by_category_day = dict(sorted(self.grams_by_cat.items()))
        return self.out
