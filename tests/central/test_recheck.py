"""Central re-checks what entries mean (central.recheck, central.recheck_state) and knows
the rules versions they name (central.rules_versions). The end-to-end forgeries of
issue 11 are in tests/security/test_minting.py; this file holds the finer points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from central import db, reports
from central.ingest import ingest
from central.recheck import check_row
from central.rules_versions import known_rules, remember_rules
from central.state import build_state
from central.store import CentralStore
from greenpass.errors import CentralError, ProtocolError
from greenpass.record.entries import Kind
from greenpass.record.rules import default_rules, parse_rules
from sync.protocol import ROW_FIELDS
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate
from tests.central.forge import assert_rejected, forged_batch, sync

RULES = default_rules()
VERSION = RULES.version


def rules_text(version: str, paper_points_per_kg: int) -> str:
    """The default file under another version, paying another price for paper."""
    text = RULES.text.replace(f'version = "{VERSION}"', f'version = "{version}"')
    text = text.replace("points_per_kg = 8\n", f"points_per_kg = {paper_points_per_kg}\n")
    assert parse_rules(text).categories["paper"].points_per_tonne == paper_points_per_kg * 1000
    return text


def paper(passbook: str, grams: int, points: int, version: str = VERSION) -> dict[str, Any]:
    return {
        "kind": Kind.DEPOSIT,
        "passbook_id": passbook,
        "category": "paper",
        "grams": grams,
        "points": points,
        "co2e_g": RULES.categories["paper"].co2e_for(grams),
        "rules_version": version,
    }


def accepted(store: CentralStore, k: Kiosk, payload: bytes) -> int:
    result = ingest(store, k.topic, payload, NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    return result.stored


# --- which rules versions central knows -------------------------------------------------


def test_the_shipped_default_is_known_for_every_village_without_being_set(
    store: CentralStore,
) -> None:
    store.create_village("V2")
    with store.read() as conn:
        assert conn.execute(select(db.village_rules)).all() == []  # no operator set any
    for village in ("V1", "V2"):
        assert known_rules(store, village, [VERSION, "never-set"]) == {VERSION: RULES}


def test_entries_priced_by_rules_since_replaced_still_sync(store: CentralStore, k1: Kiosk) -> None:
    """A kiosk offline while its village moved to new rules still prices with the old
    ones; central re-prices those entries by the version they name, not the newest."""
    store.set_rules("V1", rules_text("village-a", 9), now_ms=NOW)
    k1.apply(build_state(store, "K1", NOW))
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    assert k1.ledger.deposit(li, "paper", 2000).points == 18  # 9 points/kg
    store.set_rules("V1", rules_text("village-b", 12), now_ms=NOW)
    sync(store, k1)
    assert reports.statement(store, li)[-1].balance == 18
    # Priced by village-a's 9/kg, not the default's 8 nor village-b's 12.
    for points in (16, 24):
        forged = forged_batch(k1, paper(li, 2000, points, "village-a"))
        assert_rejected(store, ingest(store, k1.topic, forged, NOW), "rules village-a give 18")


def test_an_unknown_version_is_refused_until_the_operator_adds_it(
    store: CentralStore, k1: Kiosk
) -> None:
    """A technician installed a rules file on the kiosk by hand: central cannot check its
    prices until it knows the file, and then the kiosk's resend goes through."""
    text = rules_text("by-hand-1", 9)
    k1.ledger.install_rules(parse_rules(text))
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    k1.ledger.deposit(li, "paper", 2000)
    result = ingest(store, k1.topic, k1.batch(), NOW)
    assert_rejected(store, result, "rules version 'by-hand-1' is unknown to central")
    assert store.count_entries() == 0
    assert remember_rules(store, "V1", text, now_ms=NOW)
    assert not remember_rules(store, "V1", text, now_ms=NOW)
    assert build_state(store, "K1", NOW).rules_text is None  # known, not put in force
    assert accepted(store, k1, k1.batch()) == 2


def test_a_rules_version_keeps_its_text_for_good(store: CentralStore) -> None:
    a, b = rules_text("village-a", 9), rules_text("village-b", 12)
    assert store.set_rules("V1", a, now_ms=NOW)
    assert store.set_rules("V1", b, now_ms=NOW)
    with pytest.raises(CentralError, match="'village-a' was already used for 'V1'"):
        store.set_rules("V1", rules_text("village-a", 10), now_ms=NOW)
    with pytest.raises(CentralError, match="is the shipped default's"):
        store.set_rules("V1", RULES.text.replace("cooldown_seconds = 20", "cooldown_seconds = 25"))
    with pytest.raises(CentralError, match="already used"):
        remember_rules(store, "V1", rules_text("village-b", 11))
    assert store.set_rules("V1", a, now_ms=NOW)  # going back to a known version is fine
    with store.read() as conn:
        assert conn.scalar(select(db.village_rules.c.text)) == a


def test_upgrading_keeps_the_rules_in_force_as_a_known_version(central_url: str) -> None:
    text = rules_text("village-a", 9)
    with CentralStore.open(central_url, now_ms=NOW) as st:
        st.create_village("V1")
        st.set_rules("V1", text)
        with st.engine.begin() as conn:  # as if step 2 had never run: only the current rules
            db.rules_versions.drop(conn)
            conn.execute(delete(db.schema_migrations).where(db.schema_migrations.c.version == 2))
    with CentralStore.open(central_url, now_ms=NOW) as st:
        with st.read() as conn:
            rows = conn.execute(select(db.rules_versions)).all()
        assert [(r.village_id, r.version, r.added_ms) for r in rows] == [("V1", "village-a", 0)]
        assert set(known_rules(st, "V1", ["village-a"])) == {"village-a"}


# --- one entry at a time ----------------------------------------------------------------


def row(kind: str, **fields: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "device_id": "K1", "seq": 7, "entry_id": "e", "kind": kind, "wall_ms": 0,
        "clock_ok": True, "boot_id": "b", "mono_ms": 0, "passbook_id": None,
        "category": None, "grams": None, "points": 0, "co2e_g": 0, "item_id": None,
        "qty": None, "ref_seq": None, "staff_id": None, "reason": None,
        "rules_version": None, "flags": "", "data": {}, "ref_device": None,
    }  # fmt: skip
    values.update(fields)
    return tuple(values[f] for f in ROW_FIELDS)


STAFF = {"staff_id": "S1", "reason": "because"}
ROWS: list[tuple[tuple[Any, ...], str]] = [
    (row("mint", passbook_id="P", points=100), "unknown kind 'mint'"),
    (row("enrol", passbook_id="P", staff_id="S1", data={"village": "V1"}),
     "enrol entries need data.personal"),
    (row("enrol", passbook_id="P", staff_id="S1", data={"village": "V1", "personal": "Li"}),
     "data.personal is not a commitment"),
    (row("enrol", passbook_id="P", staff_id="S1",
         data={"village": "V1", "personal": "a" * 64, "household_name": "Li"}),
     "an enrolment with a commitment carries no household name"),
    (row("enrol", passbook_id="P", staff_id="S1",
         data={"village": "V1", "household_name": "Li", "replaces": "P"}),
     "an enrolment of 'P' cannot replace that passbook"),
    (row("villager_status", passbook_id="P", points=5, data={"status": "active"}, **STAFF),
     "villager_status entries carry no points, got 5"),
    (row("restock", item_id="rice", qty=0, staff_id="S1"), "a restock adds stock, got qty 0"),
    (row("restock", item_id="rice", qty=-5, staff_id="S1"), "a restock adds stock, got qty -5"),
    (row("adjust_stock", item_id="rice", qty=0, **STAFF), "changes stock, got qty 0"),
    (row("award", passbook_id="P", points=0, rules_version=VERSION, **STAFF),
     "an award is 1 to 500 points"),
    (row("award", passbook_id="P", points=10, **STAFF), "award entries need rules_version"),
    (row("redeem", passbook_id="P", item_id="rice", qty=1, points=-50, staff_id="S1",
         rules_version=VERSION), "takes points and stock, got points -50 and qty 1"),
    (row("redeem", passbook_id="P", item_id="rice", qty=-1, points=-50, staff_id="S1",
         rules_version="other"), "rules version 'other' is unknown to central"),
    (row("deposit", passbook_id="P", category="paper", grams=2000, points=16, co2e_g=7826,
         item_id="rice", rules_version=VERSION), "deposit entries carry no item_id"),
    (row("deposit", passbook_id="P", category="paper", grams=199, points=1, co2e_g=778,
         rules_version=VERSION), "too_light: 199 g is below the minimum of 200 g"),
    (row("deposit", passbook_id="P", category="paper", grams=2000, points=16, co2e_g=7827,
         rules_version=VERSION), "7827 g CO2e for 2000 g of paper"),
    (row("reversal", **STAFF), "reversal entries need ref_seq"),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "reason"), ROWS)
def test_an_entry_that_is_not_what_its_kind_makes_is_refused(
    entry: tuple[Any, ...], reason: str
) -> None:
    with pytest.raises(ProtocolError, match=r"^entry seq 7: ") as caught:
        check_row(entry, {VERSION: RULES}, "V1")
    assert caught.value.code == "rejected"
    assert reason in str(caught.value)


def test_every_entry_a_real_kiosk_writes_passes(tmp_path: Path) -> None:
    k = new_kiosk(tmp_path, "K1")
    ids = populate(k)
    k.ledger.adjust_stock("rice", -2, staff_id="S1", reason="two bags torn")
    k.ledger.replace_passbook(ids["wang"], staff_id="S1")  # an enrol with data.replaces
    assert {e.kind for e, _ in k.rows()} == set(Kind)
    for e, _ in k.rows():
        values = tuple(e.kind.value if f == "kind" else getattr(e, f) for f in ROW_FIELDS)
        check_row(values, {VERSION: RULES}, "V1")
    k.ledger.close()


# --- against what came before -----------------------------------------------------------


def test_a_reversal_in_an_overlapping_batch_finds_its_stored_target(
    store: CentralStore, k1: Kiosk
) -> None:
    populate(k1)  # seq 12 reverses seq 7
    assert accepted(store, k1, k1.batch(1, 8)) == 8
    assert accepted(store, k1, k1.batch(5)) == 5


def test_two_reversals_of_one_entry_in_one_batch(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    sync(store, k1)
    target = k1.ledger.entry(5)  # Li's paper, not reversed yet
    undo = {
        "kind": Kind.REVERSAL, "passbook_id": target.passbook_id, "category": "paper",
        "grams": -2500, "points": -20, "co2e_g": -target.co2e_g, "ref_seq": 5,
        "staff_id": "S1", "reason": "twice", "rules_version": VERSION,
    }  # fmt: skip
    result = ingest(store, k1.topic, forged_batch(k1, undo, undo), NOW)
    assert_rejected(store, result, "entry seq 15: entry 5 was already reversed by entry 14")
    assert accepted(store, k1, forged_batch(k1, undo)) == 1  # once is a correction


def test_a_reversal_of_a_later_entry_is_refused(store: CentralStore, k1: Kiosk) -> None:
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    sync(store, k1)
    undo = {
        "kind": Kind.REVERSAL, "passbook_id": li, "category": "paper", "grams": -2000,
        "points": -16, "co2e_g": -7826, "ref_seq": 3, "staff_id": "S1", "reason": "early",
        "rules_version": VERSION,
    }  # fmt: skip
    payload = forged_batch(k1, undo, paper(li, 2000, 16))  # seq 2 reverses seq 3
    assert_rejected(store, ingest(store, k1.topic, payload, NOW), "reverses entry 3, which does")


def test_stock_counts_the_entries_before_it_in_the_batch(store: CentralStore, k1: Kiosk) -> None:
    ids = populate(k1)  # rice: 10 restocked, 1 redeemed
    sync(store, k1)
    li = ids["li"]  # 30 points left

    def rice(qty: int) -> dict[str, Any]:
        return {"kind": Kind.REDEEM, "passbook_id": li, "item_id": "rice", "qty": -qty,
                "points": -qty, "staff_id": "S1", "rules_version": VERSION}  # fmt: skip

    result = ingest(store, k1.topic, forged_batch(k1, rice(5), rice(5)), NOW)
    assert_rejected(
        store, result, "entry seq 15: takes 5 of 'rice' from stock, but this kiosk had only 4"
    )
    restock = {"kind": Kind.RESTOCK, "item_id": "rice", "qty": 1, "staff_id": "S1"}
    assert accepted(store, k1, forged_batch(k1, restock, rice(10))) == 2


def test_stock_is_each_kiosks_own(store: CentralStore, k1: Kiosk, tmp_path: Path) -> None:
    ids = populate(k1)  # K1 has rice; K2 has none
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    k2.apply(build_state(store, "K2", NOW))
    forged = {"kind": Kind.REDEEM, "passbook_id": ids["li"], "item_id": "rice", "qty": -1,
              "points": -10, "staff_id": "S1", "rules_version": VERSION}  # fmt: skip
    result = ingest(store, k2.topic, forged_batch(k2, forged), NOW)
    assert_rejected(store, result, "takes 1 of 'rice' from stock, but this kiosk had only 0")
    k2.ledger.close()


def test_points_known_from_another_kiosk_may_be_spent_and_an_overdraft_is_flagged(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    """K2 spends points Li earned at K1 (central's snapshot told it), after K1 already
    spent most of them offline: accepted, and the overdraft flagged (docs/design.md §3). Points
    Li never had anywhere K2 could know of are refused."""
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    k1.ledger.deposit(li, "aluminium", 1000)  # 60 points
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    k2.apply(build_state(store, "K2", NOW))  # Li: 60
    for k in (k1, k2):
        k.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=50, staff_id="S1")
        k.ledger.restock("rice", 5, staff_id="S1")
    k1.ledger.redeem(li, [("rice", 1)], staff_id="S1")
    sync(store, k1)  # central: Li has 10
    k2.ledger.redeem(li, [("rice", 1)], staff_id="S1")  # K2 still believes 60
    too_much = {"kind": Kind.REDEEM, "passbook_id": li, "item_id": "rice", "qty": -1,
                "points": -11, "staff_id": "S1", "rules_version": VERSION}  # fmt: skip
    result = ingest(store, k2.topic, forged_batch(k2, too_much), NOW)
    assert_rejected(store, result, f"redeems 11 points of {li!r}, more than it ever had")
    assert result.ack is not None and result.ack.reason.endswith("(10)")  # 60 at K1, 50 here
    sync(store, k2)
    (found,) = reports.overdrafts(store, "V1")
    assert (found.passbook_id, found.lowest, found.device_id) == (li, -40, "K2")
    k2.ledger.close()
