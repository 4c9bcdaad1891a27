"""The ledger's operations and refusals, on a real SQLite file."""

from __future__ import annotations

import json

import pytest

from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.errors import LedgerError, Refused
from greenpass.record.entries import Kind
from greenpass.record.personal import household_fields, matches
from tests.conftest import make_ledger


def head(ledger: Ledger) -> int:
    return ledger.head()[0]


def refused(code: str, ledger: Ledger, fn: object, *args: object, **kw: object) -> None:
    """Assert the call is refused with `code` and that nothing was written."""
    before = ledger.head()
    with pytest.raises(Refused) as info:
        fn(*args, **kw)  # type: ignore[operator]
    assert info.value.code == code, str(info.value)
    assert str(info.value)  # a human-readable message, not just a code
    assert ledger.head() == before
    assert ledger.verify().ok


def test_deposit_prices_with_integer_floor_and_records_everything(
    ledger: Ledger, villager: str, clock: FixedClock
) -> None:
    e = ledger.deposit(villager, "paper", 2_345)
    assert e.kind is Kind.DEPOSIT and e.seq == 2  # seq 1 is the enrolment
    assert e.points == 2_345 * 8 // 1000 == 18  # 8 points/kg, floored
    assert e.co2e_g == 2_345 * 3913 // 1000 == 9_175
    assert e.rules_version == ledger.rules.version
    assert (e.wall_ms, e.mono_ms, e.boot_id) == (clock.wall_ms(), clock.mono_ms(), clock.boot_id)
    assert e.clock_ok is True
    assert len(e.entry_id) == 36 and e.entry_id[14] == "7"  # UUIDv7
    assert ledger.balance(villager) == 18


def test_seq_is_gapless_across_kinds_and_reopen(tmp_path, clock, villager, ledger) -> None:
    ledger.deposit(villager, "paper", 1000)
    ledger.put_item("soap", name_zh="肥皂", name_en="Soap", points_price=5, staff_id="S1")
    ledger.restock("soap", 3, staff_id="S1")
    ledger.redeem(villager, [("soap", 1)], staff_id="S1")
    path = ledger.store.path
    ledger.close()
    again = Ledger.open(path, clock)
    assert [e.seq for e, _ in again.iter_entries()] == [1, 2, 3, 4]
    assert again.verify().ok
    again.close()


def test_redeem_cart_is_all_or_nothing(ledger: Ledger, villager: str, clock) -> None:
    ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=10, staff_id="S1")
    ledger.put_item("soap", name_zh="肥皂", name_en="Soap", points_price=4, staff_id="S1")
    ledger.restock("rice", 5, staff_id="S1")
    ledger.restock("soap", 1, staff_id="S1")
    ledger.award(villager, 30, staff_id="S1", reason="cleaned the river bank")
    refused(
        "out_of_stock", ledger, ledger.redeem, villager, [("rice", 1), ("soap", 2)], staff_id="S1"
    )
    refused(
        "insufficient_points",
        ledger,
        ledger.redeem,
        villager,
        [("rice", 3), ("soap", 1)],
        staff_id="S1",
    )
    entries = ledger.redeem(villager, [("rice", 2), ("soap", 1)], staff_id="S1")
    assert [(e.item_id, e.qty, e.points) for e in entries] == [("rice", -2, -20), ("soap", -1, -4)]
    assert ledger.balance(villager) == 6
    assert (ledger.stock("rice"), ledger.stock("soap")) == (3, 0)


def test_reversal_negates_once_and_is_audited(ledger: Ledger, villager: str) -> None:
    d = ledger.deposit(villager, "metal", 4_000)
    r = ledger.reverse(d.seq, staff_id="S1", reason="weighed with the basket")
    assert (r.ref_seq, r.points, r.grams, r.co2e_g) == (d.seq, -d.points, -4_000, -d.co2e_g)
    assert r.staff_id == "S1" and r.reason == "weighed with the basket"
    assert ledger.balance(villager) == 0
    refused("already_reversed", ledger, ledger.reverse, d.seq, staff_id="S1", reason="again")
    refused("not_reversible", ledger, ledger.reverse, r.seq, staff_id="S1", reason="undo")
    refused("not_reversible", ledger, ledger.reverse, 1, staff_id="S1", reason="enrol")
    refused("unknown_entry", ledger, ledger.reverse, 999, staff_id="S1", reason="x")
    refused("reason_required", ledger, ledger.reverse, d.seq, staff_id="S1", reason=" ")


def test_reversal_cannot_take_spent_points_or_sold_stock(ledger, villager) -> None:
    ledger.put_item("oil", name_zh="油", name_en="Oil", points_price=30, staff_id="S1")
    restock = ledger.restock("oil", 1, staff_id="S1")
    d = ledger.deposit(villager, "aluminium", 1_000)  # 60 points
    ledger.redeem(villager, [("oil", 1)], staff_id="S1")
    refused("insufficient_points", ledger, ledger.reverse, d.seq, staff_id="S1", reason="x")
    refused("out_of_stock", ledger, ledger.reverse, restock.seq, staff_id="S1", reason="x")


def test_daily_cap_counts_today_only_and_ignores_reversed(ledger, villager, clock) -> None:
    cap = ledger.rules.categories["batteries"].daily_cap_grams  # 2000 g
    first = ledger.deposit(villager, "batteries", 1_500)
    clock.advance(60_000)
    refused("daily_cap", ledger, ledger.deposit, villager, "batteries", cap - 1_500 + 1)
    ledger.reverse(first.seq, staff_id="S1", reason="were not batteries")
    ledger.deposit(villager, "batteries", 1_900)  # the reversed 1500 g no longer counts
    clock.advance(24 * 3600_000)
    ledger.deposit(villager, "batteries", 1_900)  # a new day


def test_cooldown_per_category_uses_monotonic_time(ledger, villager, clock) -> None:
    ledger.deposit(villager, "paper", 1_000)
    ledger.deposit(villager, "glass", 1_000)  # another category: no wait
    clock.advance(5_000)
    refused("cooldown", ledger, ledger.deposit, villager, "paper", 1_000)
    clock._wall -= 3600_000  # NTP steps the wall clock back an hour; monotonic still moves
    clock.advance(ledger.rules.cooldown_seconds * 1000)
    ledger.deposit(villager, "paper", 1_000)


def test_review_flags_heavy_and_burst(ledger, villager, clock) -> None:
    for _ in range(3):
        assert ledger.deposit(villager, "paper", 1_000).flags == ""
        clock.advance(21_000)
    assert ledger.deposit(villager, "paper", 6_000).flags == "heavy"
    clock.advance(21_000)
    for cat in ("glass", "metal", "cardboard", "plastic_pet"):
        e = ledger.deposit(villager, cat, 1_000)
    assert "burst" in e.flags.split(",")


@pytest.mark.parametrize(
    ("grams", "code"),
    [
        (-5, "bad_weight"),
        (0, "bad_weight"),
        (True, "bad_weight"),
        (1.5, "bad_weight"),
        (10**12, "too_heavy"),
        (60_000, "too_heavy"),
        (199, "too_light"),
    ],
)
def test_bad_weights_are_refused(ledger, villager, grams, code) -> None:
    refused(code, ledger, ledger.deposit, villager, "paper", grams)


def test_unknown_passbook_category_and_inactive_villager(ledger, villager) -> None:
    refused("unknown_passbook", ledger, ledger.deposit, "NOPE-1", "paper", 1_000)
    refused("unknown_category", ledger, ledger.deposit, villager, "uranium", 1_000)
    ledger.set_villager_status(villager, "inactive", staff_id="S1", reason="moved away")
    refused("inactive_villager", ledger, ledger.deposit, villager, "paper", 1_000)
    ledger.set_villager_status(villager, "revoked", staff_id="S1", reason="card lost")
    refused("revoked_passbook", ledger, ledger.deposit, villager, "paper", 1_000)
    ledger.set_villager_status(villager, "active", staff_id="S1", reason="new card")
    ledger.deposit(villager, "paper", 1_000)


def test_staff_actions_need_known_active_staff_with_the_right_role(ledger, villager) -> None:
    refused("unknown_staff", ledger, ledger.award, villager, 5, staff_id="S9", reason="x")
    ledger.add_staff("T1", name="Tech", role="technician", pin="1357", by_staff_id="S1")
    refused("not_allowed", ledger, ledger.award, villager, 5, staff_id="T1", reason="x")
    refused("bad_points", ledger, ledger.award, villager, 0, staff_id="S1", reason="x")
    refused("bad_points", ledger, ledger.award, villager, 10_000, staff_id="S1", reason="x")


def test_enrol_validates_and_generates_ids(ledger) -> None:
    a = ledger.enrol("Wang household", staff_id="S1")
    b = ledger.enrol("Zhao household", staff_id="S1", passbook_id="V1-0042")
    assert (a.passbook_id, b.passbook_id) == ("K1-00001", "V1-0042")
    # The chain holds a commitment, the name stays beside it (greenpass.record.personal).
    assert set(a.data) == {"personal", "village"} and a.data["village"] == "V1"
    wang = ledger.store.conn.execute(
        "SELECT household_name, salt FROM villagers WHERE passbook_id = 'K1-00001'"
    ).fetchone()
    assert wang[0] == "Wang household"
    assert matches(household_fields(wang[0]), bytes(wang[1]), a.data["personal"])
    assert "Wang" not in json.dumps(a.data)
    refused("passbook_exists", ledger, ledger.enrol, "Again", staff_id="S1", passbook_id="V1-0042")
    refused("bad_passbook_id", ledger, ledger.enrol, "X", staff_id="S1", passbook_id="a b")
    refused("bad_name", ledger, ledger.enrol, "  ", staff_id="S1")


def test_stock_adjustments(ledger) -> None:
    ledger.put_item("vinegar", name_zh="醋", name_en="Vinegar", points_price=8, staff_id="S1")
    refused("bad_quantity", ledger, ledger.restock, "vinegar", 0, staff_id="S1")
    refused("unknown_item", ledger, ledger.restock, "beer", 1, staff_id="S1")
    ledger.restock("vinegar", 4, staff_id="S1")
    refused(
        "out_of_stock", ledger, ledger.adjust_stock, "vinegar", -5, staff_id="S1", reason="count"
    )
    ledger.adjust_stock("vinegar", -1, staff_id="S1", reason="one bottle broke")
    assert ledger.stock("vinegar") == 3


def test_snapshot_balance_and_versioning(ledger, villager) -> None:
    ledger.deposit(villager, "aluminium", 1_000)  # seq 2: 60 points
    # Central has seen up to seq 2 and knows 25 more points earned at another kiosk.
    assert ledger.apply_snapshot(7, 2, {villager: 85})
    assert ledger.balance(villager) == 85
    ledger.deposit(villager, "glass", 1_000)  # +2 locally, after included_seq
    assert ledger.balance(villager) == 87
    assert not ledger.apply_snapshot(6, 3, {villager: 0})  # older: ignored
    assert ledger.balance(villager) == 87
    lines = ledger.statement(villager)
    assert lines[-1].balance == 87
    with pytest.raises(LedgerError):
        ledger.apply_snapshot(8, 99, {})  # includes entries this ledger never had


def test_create_refuses_an_existing_ledger(tmp_path, clock) -> None:
    make_ledger(tmp_path / "a.db", clock).close()
    with pytest.raises(LedgerError, match="already holds a ledger"):
        make_ledger(tmp_path / "a.db", clock)
    with pytest.raises(LedgerError, match="no ledger here"):
        Ledger.open(tmp_path / "missing.db", clock)
