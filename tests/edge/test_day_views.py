"""What the kiosk's screens read from the ledger: a villager's deposits today, and the
day report for staff."""

from __future__ import annotations

from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from edge.ledger.queries import CategoryTotal


def test_today_deposits_are_todays_standing_deposits_newest_first(
    ledger: Ledger, villager: str, clock: FixedClock
) -> None:
    assert ledger.today_deposits(villager) == []
    ledger.deposit(villager, "paper", 2_345)
    clock.advance(60_000)
    ledger.deposit(villager, "glass", 1_000)
    wrong = ledger.deposit(villager, "metal", 4_000)
    ledger.reverse(wrong.seq, staff_id="S1", reason="weighed with the basket")
    other = ledger.enrol("Wang household", staff_id="S1").passbook_id
    assert other is not None
    ledger.deposit(other, "paper", 5_000)

    lines = ledger.today_deposits(villager)
    assert [(x.category, x.grams, x.points) for x in lines] == [
        ("glass", 1_000, 2),
        ("paper", 2_345, 18),
    ]
    assert lines[1].co2e_g == 9_175 and lines[1].wall_ms < lines[0].wall_ms
    clock.advance(24 * 3600_000)
    assert ledger.today_deposits(villager) == []


def test_day_report_sums_todays_standing_entries_and_lists_stock(
    ledger: Ledger, villager: str, clock: FixedClock
) -> None:
    yesterday = ledger.deposit(villager, "paper", 9_000)  # 72 points
    clock.advance(24 * 3600_000)
    ledger.put_item("soap", name_zh="肥皂", name_en="Soap", points_price=5, staff_id="S1")
    ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=40, staff_id="S1")
    ledger.restock("soap", 10, staff_id="S1")
    ledger.deposit(villager, "paper", 1_000)  # 8 points, 3913 g CO2e
    ledger.deposit(villager, "glass", 2_000)  # 4 points
    clock.advance(60_000)
    ledger.deposit(villager, "paper", 1_500)  # 12 points
    wrong = ledger.deposit(villager, "metal", 4_000)
    ledger.reverse(wrong.seq, staff_id="S1", reason="weighed with the basket")
    ledger.award(villager, 20, staff_id="S1", reason="river clean-up")
    ledger.redeem(villager, [("soap", 3)], staff_id="S1")  # 15 points out
    ledger.reverse(yesterday.seq, staff_id="S1", reason="found out today")

    report = ledger.day_report()
    paper, glass = ledger.rules.categories["paper"], ledger.rules.categories["glass"]
    assert report.categories == [
        CategoryTotal("glass", 1, 2_000, 4, glass.co2e_for(2_000)),
        CategoryTotal("paper", 2, 2_500, 20, paper.co2e_for(1_000) + paper.co2e_for(1_500)),
    ]
    assert (report.points_in, report.points_out) == (8 + 4 + 12 + 20, 15)
    assert report.co2e_g == sum(c.co2e_g for c in report.categories)
    assert [(i.item_id, i.stock) for i in report.stock] == [("rice", 0), ("soap", 7)]
    # The restock, three deposits, the award and the redemption; not the reversed
    # deposit, the reversals, yesterday's deposit or the catalogue's items.
    assert report.entries == 6
    assert report.day_start_ms <= clock.wall_ms() < report.day_start_ms + 24 * 3600_000
