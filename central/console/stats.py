"""The Overview page's numbers: per village and per day, net of reversals.

One query groups the entries of the last twelve months by village, kind, category and
local day (``(wall_ms + UTC offset) // 86_400_000``, the same integer arithmetic on
SQLite and PostgreSQL); everything else is summed from those groups here. A reversal
counts on its own day, under the kind of the entry it cancels (as
`central.reports.village_totals` counts it). The UTC offset is the time zone's at the
moment of the query: exact for China, which has no daylight saving time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, func, literal_column, select
from sqlalchemy.orm import aliased

from central import db
from central.store import CentralStore
from edge.entries import Kind

DAY_MS = 86_400_000
CHART_DAYS = 30
CHART_MONTHS = 12


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


def overview(store: CentralStore, villages: list[str], now_ms: int, tz: ZoneInfo) -> Overview:
    """The numbers for `villages` (an empty list: no numbers), at `now_ms` in `tz`."""
    now = datetime.fromtimestamp(now_ms / 1000, tz)
    offset = now.utcoffset() or timedelta(0)
    offset_ms = int(offset.total_seconds() * 1000)
    today = now.date()
    days = [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    months = [_month_start(today, n) for n in range(CHART_MONTHS - 1, -1, -1)]
    out = Overview(today=today, days=days, months=months)
    out.villages = {v: (Sums(), Sums()) for v in villages}
    out.issued_by_day = [0] * CHART_DAYS
    out.redeemed_by_day = [0] * CHART_DAYS
    out.co2e_by_month = [0] * CHART_MONTHS
    if not villages:
        return out
    epoch = date(1970, 1, 1)
    since_day = (months[0] - epoch).days
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
                target, (target.c.device_id == e.c.device_id) & (target.c.seq == e.c.ref_seq)
            )
        )
        .where(e.c.village_id.in_(villages))
        .where(e.c.wall_ms >= since_day * DAY_MS - offset_ms)
        .group_by(e.c.village_id, e.c.kind, target.c.kind, e.c.category, day)
    )
    with store.read("reading the overview", snapshot=True) as conn:
        groups = conn.execute(q).all()
    grams_by_cat: dict[str, list[int]] = defaultdict(lambda: [0] * CHART_DAYS)
    month_index = {m: i for i, m in enumerate(months)}
    for r in groups:
        kind = r.target_kind if r.kind == Kind.REVERSAL else r.kind
        when = epoch + timedelta(days=int(r.day))
        s = Sums()
        if kind == Kind.DEPOSIT:
            s.grams, s.issued, s.co2e_g = int(r.grams), int(r.points), int(r.co2e_g)
        elif kind == Kind.AWARD:
            s.issued = int(r.points)
        elif kind == Kind.REDEEM:
            s.redeemed = -int(r.points)
        else:
            continue
        today_sums, month_sums = out.villages[r.village_id]
        if when == today:
            today_sums.add(s)
        if _month_start(when) == months[-1]:
            month_sums.add(s)
        i = (when - days[0]).days
        if 0 <= i < CHART_DAYS:
            if s.grams and r.category is not None:
                grams_by_cat[r.category][i] += s.grams
            out.issued_by_day[i] += s.issued
            out.redeemed_by_day[i] += s.redeemed
        m = month_index.get(_month_start(when))
        if m is not None:
            out.co2e_by_month[m] += s.co2e_g
    out.grams_by_category_day = dict(sorted(grams_by_cat.items()))
    return out
