"""The Overview's rollup (central.rollup): kept by ingest, it gives the same page as
the GROUP BY over the entries, whatever the batches' order, overlaps and resends."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text

from central import db, rollup
from central.console import stats
from central.ingest import ingest
from central.store import CentralStore
from edge.ledger.clock import FixedClock
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_MS = 86_400_000


def same_overview(store: CentralStore, now_ms: int, tz: ZoneInfo = SHANGHAI) -> stats.Overview:
    fast = stats.overview(store, ["V1"], now_ms, tz)
    assert fast == stats.overview_raw(store, ["V1"], now_ms, tz)
    return fast


def rollup_rows(store: CentralStore) -> list[tuple[Any, ...]]:
    r = rollup.overview_rollup
    with store.read() as conn:
        return [tuple(x) for x in conn.execute(select(r).order_by(*r.primary_key.columns))]


def rebuilt_rows(store: CentralStore) -> list[tuple[Any, ...]]:
    """The table as the migration's backfill makes it from the entries (rolled back)."""
    r = rollup.overview_rollup
    with store.engine.connect() as conn, conn.begin() as tx:
        rollup.rebuild(conn)
        rows = [tuple(x) for x in conn.execute(select(r).order_by(*r.primary_key.columns))]
        tx.rollback()
    return rows


def ok(store: CentralStore, k: Kiosk, first: int = 1, last: int | None = None) -> int:
    result = ingest(store, k.topic, k.batch(first, last), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    return result.stored


def a_month_at_k2(store: CentralStore, tmp_path: Path) -> Kiosk:
    """A second kiosk of V1 whose entries start 40 days before NOW, over several days:
    deposits, an award, a redemption, and reversals of entries synced days before."""
    k2 = new_kiosk(tmp_path / "k2", "K2", FixedClock(NOW - 40 * DAY_MS))
    enrol(store, k2)
    led, step = k2.ledger, k2.clock.advance
    pid = led.enrol("Sun household", staff_id="S1").passbook_id
    assert pid
    led.put_item("rice", name_zh="大米", name_en="Rice 1 kg", points_price=50, staff_id="S1")
    led.restock("rice", 5, staff_id="S1")
    deposits = []
    for n, cat in enumerate(["paper", "glass", "paper", "cardboard", "aluminium"] * 3):
        step(2 * DAY_MS + 3_600_000)  # across days, months and local midnights
        deposits.append(led.deposit(pid, cat, 1000 + 250 * n).seq)
    ok(store, k2)
    step(5 * 3_600_000)
    led.award(pid, 30, staff_id="S1", reason="clean-up")
    led.redeem(pid, [("rice", 1)], staff_id="S1")
    led.reverse(deposits[-1], staff_id="S1", reason="wrong category")  # stored earlier
    led.reverse(deposits[0], staff_id="S1", reason="wrong weight")  # a month ago
    return k2


def test_rollup_overview_equals_the_raw_one(store: CentralStore, k1: Kiosk, tmp_path: Path) -> None:
    populate(k1)  # deposits, an award, a redemption and a reversal, all in one batch
    head = k1.head_seq
    assert ok(store, k1, 1, 6) == 6
    assert ok(store, k1, 4, head) == head - 6  # overlap: only the tail counts
    assert ok(store, k1) == 0  # a resend counts nothing
    assert ok(store, k1, 2, 5) == 0
    k2 = a_month_at_k2(store, tmp_path)
    tail = k2.head_seq
    ok(store, k2, 1, tail)
    ok(store, k2, 1, tail)
    for now in (NOW, NOW - 10 * DAY_MS, NOW + 2 * DAY_MS, NOW + 45 * DAY_MS):
        same_overview(store, now)
    page = same_overview(store, NOW)  # 2 January, 04:40 in Shanghai
    today, month = page.villages["V1"]
    assert today == stats.Sums() and month.redeemed == 50 and month.grams > 0
    assert sum(page.redeemed_by_day) == 100  # K1's on 1 January, K2's in December
    assert "cardboard" in page.grams_by_category_day  # reversed at K1, kept at K2
    assert page.co2e_by_month[-3] > 0  # K2's November, one deposit reversed a month later
    assert sum(page.co2e_by_month[-3:]) == sum(page.co2e_by_month)
    today, month = same_overview(store, k1.clock.wall_ms()).villages["V1"]
    assert today == month and today.grams > 0 and today.redeemed == 50
    assert rollup_rows(store) == rebuilt_rows(store) != []
    # Reversals count under the kind they cancel: no row is kept as "reversal".
    assert "reversal" not in {r[2] for r in rollup_rows(store)}


def test_a_zone_not_at_utc8_is_computed_from_the_entries(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    ok(store, k1)
    for zone in ("UTC", "America/New_York", "Asia/Kathmandu"):
        page = same_overview(store, NOW, ZoneInfo(zone))
        assert page == stats.overview_raw(store, ["V1"], NOW, ZoneInfo(zone))
        assert sum(page.issued_by_day) > 0


def test_migration_backfills_the_rollup_from_stored_entries(
    central_url: str, store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    populate(k1)
    ok(store, k1)
    ok(store, a_month_at_k2(store, tmp_path))
    kept = rollup_rows(store)
    with store.write() as conn:  # the database as schema version 4 left it
        conn.execute(delete(db.schema_migrations).where(db.schema_migrations.c.version == 5))
        rollup.overview_rollup.drop(conn)
    with CentralStore.open(central_url, now_ms=NOW + 1) as again:
        assert rollup_rows(again) == kept != []
        same_overview(again, NOW)
        same_overview(again, NOW - 20 * DAY_MS)


def test_local_day_is_sqls_integer_division(store: CentralStore) -> None:
    walls = [NOW, 0, -rollup.OFFSET_MS, -rollup.OFFSET_MS - 1, -5 * DAY_MS - 7, 16 * 3_600_000]
    with store.read() as conn:
        for w in walls:
            sql = conn.scalar(text(f"SELECT ({w} + {rollup.OFFSET_MS}) / {DAY_MS}"))
            assert rollup.day_of(w) == sql, w


def test_a_days_bounds_hold_exactly_the_times_of_that_day() -> None:
    """`rollup.add_many` computes a batch's day once and reuses it while the entries'
    times stay within its bounds: those bounds must be exactly `day_of`'s, also before
    1970 (a kiosk clock far off), where SQL's division truncates toward zero."""
    offset = rollup.OFFSET_MS
    edges = [d * DAY_MS - offset + e for d in range(-4, 5) for e in (-2, -1, 0, 1, 2)]
    edges += [NOW, NOW + DAY_MS - 1, -1, 0, 1]
    for wall in edges:
        day = rollup.day_of(wall)
        start, end = rollup._day_bounds(day)
        if day == 0:
            assert start > end  # day 0 spans two days' width: left to day_of each time
            continue
        assert start <= wall < end, (wall, day, start, end)
        assert rollup.day_of(start) == day == rollup.day_of(end - 1)
        assert rollup.day_of(start - 1) != day and rollup.day_of(end) != day
