"""Reports: village totals, statements, overdrafts, dead letters and CSV export."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from central import reports
from central.ingest import ingest
from central.state import build_state
from central.store import CentralStore
from greenpass.record.entries import Kind
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate


def sync(store: CentralStore, k: Kiosk) -> None:
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def expected_totals(*kiosks: Kiosk) -> dict[str, object]:
    """The totals, computed from the kiosks' own ledgers."""
    grams: dict[str, int] = defaultdict(int)
    deposits = issued = redeemed = co2e = 0
    for k in kiosks:
        for e, _ in k.rows():
            kind, sign = e.kind, 1
            if kind is Kind.REVERSAL:
                assert e.ref_seq is not None
                kind, sign = k.ledger.entry(e.ref_seq).kind, -1
            if kind is Kind.DEPOSIT:
                assert e.category is not None and e.grams is not None
                grams[e.category] += e.grams
                deposits += sign
                issued += e.points
                co2e += e.co2e_g
            elif kind is Kind.AWARD:
                issued += e.points
            elif kind is Kind.REDEEM:
                redeemed -= e.points
    return {
        "village_id": "V1",
        "grams_by_category": dict(sorted((c, g) for c, g in grams.items())),
        "deposits": deposits,
        "points_issued": issued,
        "points_redeemed": redeemed,
        "co2e_g": co2e,
    }


def two_kiosks(store: CentralStore, k1: Kiosk, tmp_path: Path) -> tuple[Kiosk, dict[str, str]]:
    ids = populate(k1)
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    k2.apply(build_state(store, "K2", NOW))
    led, step = k2.ledger, k2.clock.advance
    led.put_item("soap", name_zh="肥皂", name_en="Soap", points_price=5, staff_id="S1")
    led.restock("soap", 20, staff_id="S1")
    step(7_200_000)
    led.deposit(ids["wang"], "metal", 4000)
    step(60_000)
    led.deposit(ids["li"], "plastic_hdpe", 2000)
    led.award(ids["li"], 15, staff_id="S1", reason="helped at the kiosk")
    bought = led.redeem(ids["wang"], [("soap", 2)], staff_id="S1")
    led.reverse(bought[0].seq, staff_id="S1", reason="changed their mind")
    led.redeem(ids["wang"], [("soap", 1)], staff_id="S1")
    sync(store, k2)
    return k2, ids


def test_totals_equal_the_sums_of_the_kiosk_ledgers(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    k2, _ = two_kiosks(store, k1, tmp_path)
    totals = reports.village_totals(store, "V1")
    assert totals == expected_totals(k1, k2)
    assert totals["deposits"] == 6  # 5 + 2 deposits, one reversed
    assert totals["points_redeemed"] == 50 + 5
    assert reports.village_totals(store, "V9")["deposits"] == 0
    k2.ledger.close()


def test_statement_runs_across_kiosks(store: CentralStore, k1: Kiosk, tmp_path: Path) -> None:
    k2, ids = two_kiosks(store, k1, tmp_path)
    lines = reports.statement(store, ids["li"])
    assert {line.entry.device_id for line in lines} == {"K1", "K2"}
    walls = [line.entry.wall_ms for line in lines]
    assert walls == sorted(walls)
    assert lines[-1].balance == k2.ledger.balance(ids["li"])
    assert [line.balance for line in lines] == [
        sum(x.entry.points for x in lines[: n + 1]) for n in range(len(lines))
    ]
    assert reports.overdrafts(store, "V1") == []
    k2.ledger.close()


def test_overdraft_when_two_kiosks_spend_the_same_points_offline(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    k1.ledger.deposit(li, "aluminium", 1000)  # 60 points
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    k2.apply(build_state(store, "K2", NOW))
    for k in (k1, k2):
        k.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=50, staff_id="S1")
        k.ledger.restock("rice", 5, staff_id="S1")
    # Both kiosks are offline; each believes Li has 60 points.
    k1.clock.advance(60_000)
    k1.ledger.redeem(li, [("rice", 1)], staff_id="S1")
    k2.clock.advance(120_000)
    k2.ledger.redeem(li, [("rice", 1)], staff_id="S1")
    sync(store, k2)
    sync(store, k1)
    (found,) = reports.overdrafts(store, "V1")
    assert (found.passbook_id, found.lowest, found.device_id) == (li, -40, "K2")
    assert found.seq == k2.head_seq
    assert build_state(store, "K1", NOW).balances[li] == -40  # flagged, not silently fixed
    k2.ledger.close()


def test_each_kiosks_own_order_is_kept_when_its_clock_steps_back(
    store: CentralStore, k1: Kiosk
) -> None:
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    k1.ledger.deposit(li, "aluminium", 1000)
    k1.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=50, staff_id="S1")
    k1.ledger.restock("rice", 5, staff_id="S1")
    k1.clock.advance(-3_600_000)  # NTP stepped the clock back an hour
    k1.ledger.redeem(li, [("rice", 1)], staff_id="S1")
    sync(store, k1)
    assert reports.overdrafts(store, "V1") == []
    assert [line.balance for line in reports.statement(store, li)] == [0, 60, 10]


def test_export_rows_and_csv(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    sync(store, k1)
    rows = list(reports.export_rows(store, "V1"))
    assert len(rows) == k1.head_seq
    assert tuple(rows[0]) == reports.EXPORT_COLUMNS
    assert [r["seq"] for r in rows] == list(range(1, k1.head_seq + 1))
    assert rows[-1]["h"] == k1.ledger.head()[1]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reports.EXPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert parsed[0]["kind"] == "enrol" and parsed[0]["clock_ok"] == "1"


def test_dead_letters_newest_first(store: CentralStore, k1: Kiosk) -> None:
    for n in range(3):
        ingest(store, k1.topic, b"junk %d" % n, NOW + n)
    letters = reports.dead_letters(store, 2)
    assert [d.payload for d in letters] == [b"junk 2", b"junk 1"]
    assert [d.received_ms for d in letters] == [NOW + 2, NOW + 1]
