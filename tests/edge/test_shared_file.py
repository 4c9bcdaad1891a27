"""Two `Ledger` objects on one file: the kiosk UI's and the sync uplink's. What one
installs (rules from central) the other uses at its next write, and reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.ledger.central_state import CentralState
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.errors import Refused
from greenpass.record.rules import Rules, default_rules, parse_rules
from tests.conftest import make_ledger


def changed_rules(version: str, paper_points_per_kg: int, max_award: int = 500) -> Rules:
    text = default_rules().text
    text = re.sub(r'(?m)^version = "[^"]*"', f'version = "{version}"', text)
    text = re.sub(r"(?m)^max_award_points = \d+", f"max_award_points = {max_award}", text)
    text = text.replace(
        '[categories.paper]\nname_zh = "废纸"\nname_en = "Paper"\npoints_per_kg = 8\n',
        f'[categories.paper]\nname_zh = "废纸"\nname_en = "Paper"\n'
        f"points_per_kg = {paper_points_per_kg}\n",
    )
    rules = parse_rules(text)
    assert rules.categories["paper"].points_per_tonne == paper_points_per_kg * 1000
    return rules


@pytest.fixture
def pair(tmp_path: Path, clock: FixedClock):  # type: ignore[no-untyped-def]
    kiosk = make_ledger(tmp_path / "kiosk.db", clock)
    uplink = Ledger.open(tmp_path / "kiosk.db", clock)
    yield kiosk, uplink
    uplink.close()
    kiosk.close()


def test_rules_central_pushed_through_the_uplink_price_the_kiosks_next_deposit(
    pair: tuple[Ledger, Ledger], clock: FixedClock
) -> None:
    kiosk, uplink = pair
    old = kiosk.rules.version
    pb = kiosk.enrol("Li household", staff_id="S1").passbook_id
    assert pb is not None
    before = kiosk.deposit(pb, "paper", 2_000)
    assert (before.rules_version, before.points) == (old, 16)  # 8 points/kg

    new = changed_rules("cn-2027.01", paper_points_per_kg=12, max_award=50)
    assert uplink.apply_state(CentralState(version=1, included_seq=0, rules_text=new.text))

    clock.advance(60_000)
    after = kiosk.deposit(pb, "paper", 2_000)
    assert (after.rules_version, after.points) == ("cn-2027.01", 24)  # 12 points/kg
    assert kiosk.rules.version == "cn-2027.01"
    assert kiosk.rules.max_award_points == 50
    with pytest.raises(Refused) as refused:
        kiosk.award(pb, 60, staff_id="S1", reason="river clean-up")
    assert refused.value.code == "bad_points"
    assert kiosk.award(pb, 50, staff_id="S1", reason="river clean-up").rules_version == new.version
    kiosk.put_item("soap", name_zh="肥皂", name_en="Soap", points_price=5, staff_id="S1")
    kiosk.restock("soap", 2, staff_id="S1")
    (redeemed,) = kiosk.redeem(pb, [("soap", 1)], staff_id="S1")
    assert redeemed.rules_version == new.version


def test_rules_installed_by_either_ledger_are_seen_by_the_other(
    pair: tuple[Ledger, Ledger], clock: FixedClock
) -> None:
    kiosk, uplink = pair
    old = default_rules()
    pb = kiosk.enrol("Li household", staff_id="S1").passbook_id
    assert pb is not None
    new = changed_rules("cn-2027.02", paper_points_per_kg=10)
    assert uplink.install_rules(new)
    assert kiosk.deposit(pb, "paper", 1_000).rules_version == new.version
    assert not kiosk.install_rules(new)  # already active in the file
    assert kiosk.install_rules(old)  # the office goes back to the old rules
    assert uplink.rules.version == old.version
    clock.advance(60_000)
    assert uplink.deposit(pb, "paper", 1_000).rules_version == old.version
    assert kiosk.verify().ok


def test_a_category_central_dropped_is_refused_at_once(
    pair: tuple[Ledger, Ledger], clock: FixedClock
) -> None:
    kiosk, uplink = pair
    pb = kiosk.enrol("Li household", staff_id="S1").passbook_id
    assert pb is not None
    kiosk.deposit(pb, "batteries", 100)
    text = re.sub(
        r"(?ms)^\[categories\.batteries\].*?(?=^\[categories\.)", "", default_rules().text
    )
    text = text.replace('version = "', 'version = "no-batteries-')
    assert uplink.apply_state(CentralState(version=2, included_seq=0, rules_text=text))
    clock.advance(60_000)
    with pytest.raises(Refused) as refused:
        kiosk.deposit(pb, "batteries", 100)
    assert refused.value.code == "unknown_category"
    assert "batteries" not in kiosk.rules.categories
