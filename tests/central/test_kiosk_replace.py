"""A lost card replaced at a kiosk, offline, as central ingests it (central.ingest,
central.kiosk_replacements): the link and the revocation in the ingest's transaction,
balances folded in the state pushed back, the old card refused at every kiosk, an
offline redemption with the old card an overdraft, and the cases where no link can be
made kept without refusing anything. Real kiosk ledgers; SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from central import audit, db, passbooks, reports
from central.ingest import ingest
from central.state import build_state
from central.store import CentralStore
from edge.ledger.central_state import CentralState, VillagerRecord
from greenpass.errors import Refused
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk


def sync(store: CentralStore, k: Kiosk) -> int:
    """Send the kiosk's backlog as its uplink would; the entries stored."""
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)
    return result.stored


def push(store: CentralStore, k: Kiosk) -> None:
    assert k.apply(build_state(store, k.device_id, NOW))


def links(store: CentralStore) -> dict[str, tuple[str, str]]:
    lk = db.passbook_links
    with store.read("test") as conn:
        rows = conn.execute(select(lk.c.old_passbook_id, lk.c.new_passbook_id, lk.c.replaced_by))
        return {old: (new, by) for old, new, by in rows}


def with_rice(k: Kiosk, stock: int = 20) -> None:
    k.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=10, staff_id="S1")
    k.ledger.restock("rice", stock, staff_id="S1")


def test_the_balance_is_carried_before_and_after_central_ingests_the_replacement(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    with_rice(k1)
    k1.ledger.award(li, 60, staff_id="S1", reason="clean-up")
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    push(store, k2)  # K2 knows Li has 60
    with_rice(k2)
    push(store, k1)  # K1's snapshot: Li 60, included up to the award
    k1.clock.advance(30_000)
    k1.ledger.deposit(li, "aluminium", 1_000)  # +60, not yet at central

    enrolled, _ = k1.ledger.replace_passbook(li, staff_id="S1")
    new = enrolled.passbook_id
    assert new == "K1-00002"
    # At once, offline: the old card is refused, the new one holds all 120 points.
    with pytest.raises(Refused) as refused:
        k1.ledger.deposit(li, "paper", 2_000)
    assert refused.value.code == "revoked_passbook"
    assert k1.ledger.balance(new) == 120 and k1.ledger.balance(li) == 0
    k1.ledger.redeem(new, [("rice", 5)], staff_id="S1")  # 50 of the carried points
    assert k1.ledger.balance(new) == 70

    # K2, offline, has not heard: it lets the old card spend 40 of its 60 (as today).
    k2.ledger.redeem(li, [("rice", 4)], staff_id="S1")

    # Central ingests the deposit, the replacement and the redemption in one batch:
    # accepted (the redemption spends what the account had), linked, revoked.
    assert sync(store, k1) == 4
    assert links(store) == {li: (new, "kiosk:K1")}
    status = passbooks.status(store, li)
    assert (status["status"], status["reason"], status["replaced_by"]) == (
        "revoked",
        f"replaced by {new}",
        new,
    )
    assert passbooks.status(store, new)["household_name"] == "Li household"
    row = audit.rows(store, village_id="V1", limit=1)[0]
    assert (row.actor, row.action, row.target) == ("kiosk:K1", "passbook.replace", li)
    assert row.after["passbook_id"] == new and row.after["staff_id"] == "S1"

    # The state folds the account under the new passbook and revokes the old one.
    state = build_state(store, "K1", NOW)
    assert state.balances[new] == 70 and li not in state.balances
    assert li in state.revoked
    push(store, k1)
    assert k1.ledger.balance(new) == 70 and k1.ledger.balance(li) == 0
    k1.clock.advance(30_000)
    k1.ledger.deposit(new, "paper", 2_000)  # +16
    assert k1.ledger.balance(new) == 86

    # K2 gets the state: the old card is refused there too, the new one is known.
    push(store, k2)
    with pytest.raises(Refused) as refused:
        k2.ledger.deposit(li, "paper", 2_000)
    assert refused.value.code == "revoked_passbook"
    assert k2.ledger.villager(new) is not None
    # ... and its offline redemption with the old card still syncs, counted against
    # the household's account: 120 earned, 50 + 40 spent, no overdraft.
    sync(store, k2)
    assert reports.overdrafts(store, "V1") == []
    sync(store, k1)
    lines = reports.statement(store, new)
    assert {x.entry.passbook_id for x in lines} == {li, new}
    assert lines[-1].balance == 120 - 50 - 40 + 16
    push(store, k1)
    assert k1.ledger.balance(new) == 46
    k2.ledger.close()


def test_an_old_card_spent_offline_after_the_replacement_is_an_overdraft(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    k1.ledger.award(li, 30, staff_id="S1", reason="clean-up")
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    push(store, k2)  # K2 knows Li has 30
    with_rice(k1)
    with_rice(k2)
    new = k1.ledger.replace_passbook(li, staff_id="S1")[0].passbook_id
    k1.ledger.redeem(new, [("rice", 3)], staff_id="S1")  # the household spends 30 ...
    k2.clock.advance(60_000)
    k2.ledger.redeem(li, [("rice", 3)], staff_id="S1")  # ... and the old card, offline
    sync(store, k1)
    sync(store, k2)  # honest when made: stored, not refused
    (over,) = reports.overdrafts(store, "V1")
    assert (over.passbook_id, over.lowest) == (new, -30)
    k2.ledger.close()


def test_a_card_already_replaced_at_central_is_kept_but_not_linked_again(
    store: CentralStore, k1: Kiosk
) -> None:
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    with_rice(k1)
    k1.ledger.award(li, 60, staff_id="S1", reason="clean-up")
    sync(store, k1)
    push(store, k1)
    # The household phoned the office: the operator replaced the card at central ...
    first = passbooks.replace(store, li, actor="cli:tester", now_ms=NOW)
    # ... and, before K1 had the new state, the staff replaced it at the kiosk too and
    # let the household spend the carried points with the kiosk's new card.
    new = k1.ledger.replace_passbook(li, staff_id="S1")[0].passbook_id
    assert new is not None
    k1.ledger.redeem(new, [("rice", 3)], staff_id="S1")
    assert sync(store, k1) == 3  # nothing valid is refused
    k1.ledger.redeem(new, [("rice", 3)], staff_id="S1")
    assert sync(store, k1) == 1  # nor later, from the replacement central stored

    assert links(store) == {li: (first, "cli:tester")}  # no second link
    row = audit.rows(store, village_id="V1", limit=1)[0]
    assert (row.actor, row.action, row.target) == ("kiosk:K1", "passbook.replace_not_linked", li)
    assert f"already replaced by {first!r}" in row.after["reason"]
    # The first replacement holds the account; the kiosk's card spent what it thought
    # it carried, which shows as its overdraft.
    state = build_state(store, "K1", NOW)
    assert state.balances[first] == 60 and state.balances[new] == -60
    (over,) = reports.overdrafts(store, "V1")
    assert (over.passbook_id, over.lowest) == (new, -60)
    push(store, k1)
    assert k1.ledger.balance(new) == -60
    assert k1.ledger.villager(first) is not None


def test_a_passbook_unknown_at_central_is_kept_but_not_linked(
    store: CentralStore, k1: Kiosk
) -> None:
    # A kiosk knows a passbook central does not (a state it was handed by hand).
    ghost = VillagerRecord("GHOST-1", "Ghost household", "V1", "active")
    k1.ledger.apply_state(CentralState(version=1, included_seq=0, villagers=[ghost]))
    new = k1.ledger.replace_passbook("GHOST-1", staff_id="S1")[0].passbook_id
    assert sync(store, k1) == 2
    assert links(store) == {}
    assert passbooks.status(store, new or "")["status"] == "active"
    row = audit.rows(store, village_id="V1", limit=1)[0]
    assert row.action == "passbook.replace_not_linked"
    assert "'GHOST-1' is unknown at central" in row.after["reason"]
