"""Replacing a lost card at the kiosk (`Ledger.replace_passbook`), on a real SQLite file:
the two entries, the balance carried before and after central's snapshot covers them,
the old card refused at once, the histories linked, and every refusal."""

from __future__ import annotations

import pytest

from edge.ledger.central_state import CentralState, VillagerRecord
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.errors import Refused
from greenpass.record.entries import Kind
from tests.conftest import PIN
from tests.edge.test_ledger import refused


def earn(ledger: Ledger, clock: FixedClock, passbook: str) -> int:
    """Two deposits and an award; the points they gave."""
    before = ledger.balance(passbook)
    ledger.deposit(passbook, "aluminium", 1_000)  # 60
    clock.advance(30_000)
    ledger.deposit(passbook, "paper", 2_000)  # 16
    ledger.award(passbook, 24, staff_id="S1", reason="river clean-up")
    return ledger.balance(passbook) - before


def test_replace_writes_an_enrol_and_a_revocation_in_one_go(
    ledger: Ledger, villager: str, clock: FixedClock
) -> None:
    points = earn(ledger, clock, villager)
    assert points == 100
    head = ledger.head()[0]

    enrolled, revoked = ledger.replace_passbook(villager, staff_id="S1")

    new = enrolled.passbook_id
    assert new == "K1-00002"  # the kiosk's own id scheme, after the household's K1-00001
    assert (enrolled.seq, revoked.seq) == (head + 1, head + 2)
    assert enrolled.kind is Kind.ENROL and enrolled.staff_id == "S1"
    # A commitment to the household name as for a normal enrolment, the old card
    # named; nothing else (the name itself stays in `villagers`).
    assert set(enrolled.data) == {"personal", "village", "replaces"}
    assert (enrolled.data["village"], enrolled.data["replaces"]) == ("V1", villager)
    made = ledger.villager(new)
    assert made is not None and made.household_name == "Li household"
    assert enrolled.points == 0
    assert revoked.kind is Kind.VILLAGER_STATUS and revoked.passbook_id == villager
    assert revoked.data == {"status": "revoked"}
    assert revoked.reason == f"replaced by {new}"
    assert ledger.verify().ok

    # The old card is refused at once; the new one holds the household's points.
    assert ledger.villager(villager).status == "revoked"  # type: ignore[union-attr]
    refused("revoked_passbook", ledger, ledger.deposit, villager, "glass", 1_000)
    refused("revoked_passbook", ledger, ledger.award, villager, 5, staff_id="S1", reason="x")
    assert ledger.villager(new).status == "active"  # type: ignore[union-attr]
    assert ledger.villager(new).household_name == "Li household"  # type: ignore[union-attr]
    assert ledger.balance(new) == points
    assert ledger.balance(villager) == 0  # counted under the new card, as central does
    assert ledger.replaced_by(villager) == new

    # The carried points can be spent with the new card, and no more.
    ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=30, staff_id="S1")
    ledger.restock("rice", 10, staff_id="S1")
    ledger.redeem(new, [("rice", 3)], staff_id="S1")
    assert ledger.balance(new) == 10
    refused("insufficient_points", ledger, ledger.redeem, new, [("rice", 1)], staff_id="S1")

    # One statement for the household: both cards' entries, one running balance.
    lines = ledger.statement(new)
    assert {ln.entry.passbook_id for ln in lines} == {villager, new}
    assert lines[-1].balance == 10
    assert [ln.balance for ln in ledger.statement(villager)] == [ln.balance for ln in lines]


def test_the_balance_is_right_before_and_after_central_covers_the_replacement(
    ledger: Ledger, villager: str, clock: FixedClock
) -> None:
    earn(ledger, clock, villager)  # 100 here, seq 2..4
    # Central has seen seq 1..4 and knows 40 more points earned at another kiosk.
    assert ledger.apply_state(CentralState(version=1, included_seq=4, balances={villager: 140}))
    assert ledger.balance(villager) == 140
    clock.advance(30_000)
    ledger.deposit(villager, "paper", 1_000)  # +8, not yet seen by central (seq 5)

    enrolled, _ = ledger.replace_passbook(villager, staff_id="S1")  # seq 6 and 7
    new = enrolled.passbook_id
    assert new is not None
    # Before sync: the snapshot's 140 under the old id + the local 8 under the old id.
    assert ledger.balance(new) == 148
    assert ledger.balance(villager) == 0
    clock.advance(30_000)
    ledger.deposit(new, "paper", 1_000)  # the new card earns here (seq 8)
    assert ledger.balance(new) == 156

    # Central has ingested up to seq 6 (the enrol, not yet the revocation): it links the
    # cards and puts the whole account under the new id, nothing under the old.
    villagers = [
        VillagerRecord(villager, "Li household", "V1", "active"),
        VillagerRecord(new, "Li household", "V1", "active"),
    ]
    assert ledger.apply_state(
        CentralState(version=2, included_seq=6, balances={new: 148}, villagers=villagers)
    )
    assert ledger.balance(new) == 156  # 148 from central + the local 8 after seq 6
    assert ledger.balance(villager) == 0
    # The local revocation (seq 7, after included_seq) is newer than central's list.
    assert ledger.villager(villager).status == "revoked"  # type: ignore[union-attr]

    # Central has everything; the state says the old card is revoked.
    villagers[0] = VillagerRecord(villager, "Li household", "V1", "revoked")
    assert ledger.apply_state(
        CentralState(
            version=3, included_seq=8, balances={new: 156}, villagers=villagers, revoked=[villager]
        )
    )
    assert ledger.balance(new) == 156
    assert ledger.balance(villager) == 0
    refused("revoked_passbook", ledger, ledger.deposit, villager, "glass", 1_000)


def test_a_card_replaced_twice_keeps_the_whole_account(
    ledger: Ledger, villager: str, clock: FixedClock
) -> None:
    points = earn(ledger, clock, villager)
    second = ledger.replace_passbook(villager, staff_id="S1")[0].passbook_id
    assert second is not None
    clock.advance(30_000)
    ledger.deposit(second, "paper", 1_000)
    third = ledger.replace_passbook(second, staff_id="S1", new_passbook_id="V1-LI-3")[0]
    assert third.passbook_id == "V1-LI-3"
    assert ledger.balance("V1-LI-3") == points + 8
    assert ledger.balance(second) == ledger.balance(villager) == 0
    assert {ln.entry.passbook_id for ln in ledger.statement(villager)} == {
        villager,
        second,
        "V1-LI-3",
    }


def test_reversing_an_old_cards_entry_counts_the_account(
    ledger: Ledger, villager: str, clock: FixedClock
) -> None:
    ledger.deposit(villager, "aluminium", 1_000)  # seq 2: 60
    new = ledger.replace_passbook(villager, staff_id="S1")[0].passbook_id
    assert new is not None
    ledger.reverse(2, staff_id="S1", reason="weighed twice")
    assert ledger.balance(new) == 0
    assert ledger.verify().ok


def test_a_replaced_card_cannot_be_made_active_again(ledger: Ledger, villager: str) -> None:
    new = ledger.replace_passbook(villager, staff_id="S1")[0].passbook_id
    for status in ("active", "inactive"):
        refused(
            "already_replaced",
            ledger,
            ledger.set_villager_status,
            villager,
            status,
            staff_id="S1",
            reason="found it",
        )
    # Revoking it again changes nothing that matters and is allowed.
    ledger.set_villager_status(villager, "revoked", staff_id="S1", reason="again")
    assert ledger.replaced_by(villager) == new


def test_refusals(ledger: Ledger, villager: str, clock: FixedClock) -> None:
    replace = ledger.replace_passbook
    refused("unknown_passbook", ledger, replace, "K1-09999", staff_id="S1")
    refused("unknown_staff", ledger, replace, villager, staff_id="S9")
    ledger.add_staff("T1", name="Tech", role="technician", pin="1357", by_staff_id="S1")
    refused("not_allowed", ledger, replace, villager, staff_id="T1")
    ledger.add_staff("S2", name="Clerk", role="staff", pin=PIN, by_staff_id="S1")

    refused("same_passbook", ledger, replace, villager, staff_id="S2", new_passbook_id=villager)
    other = ledger.enrol("Wang household", staff_id="S1").passbook_id
    assert other is not None
    refused("passbook_exists", ledger, replace, villager, staff_id="S2", new_passbook_id=other)
    refused("bad_passbook_id", ledger, replace, villager, staff_id="S2", new_passbook_id="a b")

    new = replace(villager, staff_id="S2")[0].passbook_id  # a clerk (role staff) may
    with pytest.raises(Refused) as info:
        replace(villager, staff_id="S2")
    assert info.value.code == "already_replaced"
    assert info.value.details == {"replaced_by": new}

    # Revoked by central or by a kiosk: central may have replaced it already.
    ledger.set_villager_status(other, "revoked", staff_id="S1", reason="card lost")
    refused("revoked_passbook", ledger, replace, other, staff_id="S2")

    # Households central told this kiosk about: another village's, and one whose
    # enrolment central has not had yet (a status change came first: no name).
    ledger.apply_state(
        CentralState(
            version=1,
            included_seq=0,
            villagers=[
                VillagerRecord("K7-00001", "Zhao household", "V2", "active"),
                VillagerRecord("K8-00001", "", "V1", "active"),
            ],
        )
    )
    refused("foreign_village", ledger, replace, "K7-00001", staff_id="S2")
    refused("no_household", ledger, replace, "K8-00001", staff_id="S2")


def test_find_villagers_by_id_or_name(ledger: Ledger, villager: str) -> None:
    wang = ledger.enrol("王家", staff_id="S1").passbook_id
    zhang = ledger.enrol("张大明", staff_id="S1").passbook_id
    new = ledger.replace_passbook(villager, staff_id="S1")[0].passbook_id
    ledger.apply_state(
        CentralState(
            version=1,
            included_seq=0,
            villagers=[VillagerRecord("K7-00001", "张三", "V2", "active")],  # another village
        )
    )

    def ids(query: str) -> list[str]:
        return [f.villager.passbook_id for f in ledger.find_villagers(query)]

    # Every passbook of the village, revoked ones last.
    assert ids("") == [wang, zhang, new, villager]
    assert ids("张") == [zhang]  # any part of the name; not the other village's 张三
    assert ids("k1-0000") == [wang, zhang, new, villager]  # any part of the id, any case
    assert ids("00003") == [zhang]
    assert ids("nobody") == []
    assert ids("Li") == [new, villager]  # the same household: the old card is revoked
    old = ledger.find_villagers("Li")[1]
    assert old.villager.status == "revoked" and old.replaced_by == new
    assert len(ledger.find_villagers("", limit=2)) == 2
