"""The Overview's summary table (issue 12): sums per village, local day, kind and
category, kept by ingest in the transaction that stores the entries.

Why: the Overview groups the last twelve months of entries. On a county of 2,000,000
entries that GROUP BY alone takes seconds on SQLite; the page must render in under
300 ms. This table holds what that GROUP BY returns (about 15 entries to a row in the
bench's county), so the console groups a much smaller table, with no join.

- **Kind counted**: a reversal counts under the kind of the entry it cancels (as
  `central.reports.village_totals` and the Overview count it), on its own day, with
  its own (negated) amounts, and -1 in `n`. Its target is always stored by then:
  `central.recheck_state` refused the batch otherwise.
- **Local day** is ``(wall_ms + OFFSET_MS) / DAY_MS`` (integer division, as SQL
  does it) at a fixed UTC+8: China's one time zone, without daylight saving time since
  1991, and the default of the console's and of every village's time zone. The console
  reads this table when its own zone is at UTC+8 (what its raw query would then
  group by) and groups the entries themselves otherwise: correct, only slower. A
  village's own zone (`village_profiles.timezone`, for its exports) is not part of the
  Overview, which shows every village in the console's zone, so it is no key here.
  Keyed by UTC hour instead, any zone could be summed from it, but it would hardly be
  a summary: in the bench's county (2,000,000 entries over 90 days, 100 villages,
  entries at every hour) a village-day holds ~15 rows (kinds and categories), a
  village-hour ~3.4, so 733,732 hourly rows against 136,234 daily ones; grouping the
  charts' year from them took ~1.0 s from hours against ~0.2 s from days (2 cores).
- **Idempotent**: only the entries a batch adds (after a duplicate or overlap is
  cut off) are counted, in the same transaction as their insert, so a resent batch
  counts nothing twice and a rolled-back batch nothing at all.
- **Locks**: every kiosk of a village adds to the same rows. They are written in key
  order, so two PostgreSQL workers ingesting kiosks of one village wait for each
  other instead of deadlocking; and last in the transaction, once for all its
  batches (`central.ingest_place.Tail`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import aliased

from central import db
from central.recheck import CATEGORY, CO2E, GRAMS, KIND, POINTS, REF, REF_DEVICE
from greenpass.record.entries import Kind
from sync import protocol

OFFSET_MS = 8 * 3_600_000  # UTC+8: see the module's docstring
DAY_MS = 86_400_000
NO_CATEGORY = ""  # a primary key column cannot hold NULL on PostgreSQL
WALL = protocol.ROW_FIELDS.index("wall_ms")

overview_rollup = Table(
    "overview_rollup",
    db.metadata,
    Column("village_id", Text, nullable=False),
    Column("day", BigInteger, nullable=False),  # (wall_ms + OFFSET_MS) / DAY_MS
    Column("kind", String(16), nullable=False),  # a reversal: the kind it cancels
    Column("category", Text, nullable=False),  # NO_CATEGORY for none
    Column("n", BigInteger, nullable=False),  # entries; a reversal counts -1
    Column("grams", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),  # as signed in the entries
    Column("co2e_g", BigInteger, nullable=False),
    PrimaryKeyConstraint("village_id", "day", "kind", "category", name="overview_rollup_pk"),
)

_SUMS = ("n", "grams", "points", "co2e_g")
# The same text on SQLite and PostgreSQL (both have had ON CONFLICT … DO UPDATE since
# 2018); built once, like ingest's other statements.
_ADD = text(
    "INSERT INTO overview_rollup (village_id, day, kind, category, n, grams, points, co2e_g) "
    "VALUES (:village_id, :day, :kind, :category, :n, :grams, :points, :co2e_g) "
    "ON CONFLICT (village_id, day, kind, category) DO UPDATE SET "
    + ", ".join(f"{c} = overview_rollup.{c} + excluded.{c}" for c in _SUMS)
)
_e = db.entries


def day_of(wall_ms: int) -> int:
    """The local day of `wall_ms`, truncated toward zero as SQL's integer division is
    (it differs from Python's // only before 1970, a kiosk clock far off)."""
    q = abs(wall_ms + OFFSET_MS) // DAY_MS
    return q if wall_ms + OFFSET_MS >= 0 else -q


def add_many(
    conn: Connection, counted: Sequence[tuple[str, str, Sequence[tuple[Any, ...]]]]
) -> None:
    """Count batches' new entries (`protocol.Batch.rows`, already inserted), each
    (device, village, rows), in one statement: a transaction of several batches
    (`central.ingest_place`) writes each
    rollup row once, all in one order, so two workers' transactions cannot wait on
    each other's rollup rows in a circle."""
    # A reversal's target: this kiosk's own entry, or another's (`ref_device`).
    refs = {
        (r[REF_DEVICE] or device_id, r[REF])
        for device_id, _, rows in counted
        for r in rows
        if r[KIND] == Kind.REVERSAL
    }
    targets: dict[tuple[str, int], str] = {}
    if refs:
        q = select(_e.c.device_id, _e.c.seq, _e.c.kind).where(
            tuple_(_e.c.device_id, _e.c.seq).in_(refs)
        )
        targets = {(str(dev), int(seq)): str(kind) for dev, seq, kind in conn.execute(q)}
    sums: dict[tuple[str, int, str, str], list[int]] = {}
    # Entries of one batch mostly fall on one day: its bounds are computed once.
    day, day_start, day_end = 0, 0, -1
    for device_id, village_id, rows in counted:
        for r in rows:
            kind, sign = str(r[KIND]), 1
            if kind == Kind.REVERSAL:
                target = targets.get((r[REF_DEVICE] or device_id, r[REF]))
                if target is None:
                    continue  # never stored: the raw query's outer join counts it nowhere
                kind, sign = target, -1
            wall = r[WALL]
            if not day_start <= wall < day_end:
                day = day_of(wall)
                day_start, day_end = _day_bounds(day)
            key = (village_id, day, kind, r[CATEGORY] or NO_CATEGORY)
            s = sums.get(key)
            if s is None:
                s = sums[key] = [0, 0, 0, 0]
            s[0] += sign
            s[1] += r[GRAMS] or 0
            s[2] += r[POINTS]
            s[3] += r[CO2E]
    if sums:
        conn.execute(
            _ADD,
            [
                {"village_id": village, "day": day, "kind": kind, "category": cat,
                 **dict(zip(_SUMS, s, strict=True))}
                for (village, day, kind, cat), s in sorted(sums.items())
            ],
        )  # fmt: skip


def _day_bounds(day: int) -> tuple[int, int]:
    """The wall_ms range [start, end) whose `day_of` is `day`: for day 0 that is the
    whole of (-DAY_MS, DAY_MS) less the offset, truncation toward zero making it twice
    as long, so it is left to `day_of` (an empty range)."""
    if day > 0:
        return day * DAY_MS - OFFSET_MS, (day + 1) * DAY_MS - OFFSET_MS
    if day < 0:
        return (day - 1) * DAY_MS - OFFSET_MS + 1, day * DAY_MS - OFFSET_MS + 1
    return 0, -1


def rebuild(conn: Connection, *, ref_device: bool = True) -> None:
    """The whole table again from `entries`: the migration that creates it, and after
    entries were written by something other than ingest (the console bench).
    `ref_device=False`: for migration 5, which runs before `entries.ref_device` exists
    (migration 11; no reversal could name another kiosk's entry before it)."""
    conn.execute(delete(overview_rollup))
    target = aliased(_e)
    owner = func.coalesce(_e.c.ref_device, _e.c.device_id) if ref_device else _e.c.device_id
    # Inlined literals, not bound parameters: PostgreSQL would see the SELECT's and the
    # GROUP BY's copies of an expression as different ($1 vs $2) and refuse the query.
    is_reversal = _e.c.kind == literal_column(f"'{Kind.REVERSAL.value}'")
    counted = case((is_reversal, target.c.kind), else_=_e.c.kind)
    sign = case((is_reversal, literal_column("-1")), else_=literal_column("1"))
    local_ms = _e.c.wall_ms + literal_column(str(OFFSET_MS), BigInteger)
    day = local_ms // literal_column(str(DAY_MS), BigInteger)
    category = func.coalesce(_e.c.category, literal_column(f"'{NO_CATEGORY}'"))
    q = (
        select(
            _e.c.village_id,
            day,
            counted,
            category,
            func.sum(sign),
            func.coalesce(func.sum(_e.c.grams), 0),
            func.sum(_e.c.points),
            func.sum(_e.c.co2e_g),
        )
        .select_from(
            _e.outerjoin(
                target,
                (target.c.device_id == owner) & (target.c.seq == _e.c.ref_seq),
            )
        )
        .where(counted.is_not(None))
        .group_by(_e.c.village_id, day, counted, category)
    )
    cols = ["village_id", "day", "kind", "category", *_SUMS]
    conn.execute(insert(overview_rollup).from_select(cols, q))
