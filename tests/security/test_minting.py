"""Issue 11, "central accepts any well-signed entry", reproduced end to end.

A stolen or modified kiosk signs whatever it writes with its real, enrolled key, and
chains it correctly. Each batch here is exactly that, and each must be refused as
`rejected`, dead-lettered with the reason, with nothing of it stored and the village's
totals and every balance as they were (docs/design.md §6: central trusts no kiosk's arithmetic).
Every case runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from central import reports
from central.ingest import ingest
from central.store import CentralStore
from devkit.mqtt_broker import Broker
from greenpass.record.entries import Entry, Kind
from greenpass.record.rules import default_rules
from tests.central.conftest import (  # noqa: F401 - fixtures: SQLite and PostgreSQL
    NOW,
    SQLITE_ONLY,
    Kiosk,
    central_url,
    k1,
    populate,
    store,
)
from tests.central.forge import (
    assert_rejected,
    forged_batch,
    sync,
    village_view,
    with_kind_code,
    write_forged,
)
from tests.sync.conftest import broker  # noqa: F401 - fixture: a real Mosquitto
from tests.sync.harness import World, wait_for

# SQLite only: forged batches; tests/central/test_recheck.py runs the same re-checks'
# queries on both.
pytestmark = SQLITE_ONLY

RULES = default_rules()
VERSION = RULES.version
PAPER = RULES.categories["paper"]  # 8 points/kg, 3.913 kg CO2e/kg, 200 g to 50 kg


@dataclass
class Synced:
    """K1 after a legitimate day, all of it stored at central."""

    store: CentralStore
    k: Kiosk
    ids: dict[str, str]

    def first(self, **match: Any) -> Entry:
        return next(
            e for e, _ in self.k.rows() if all(getattr(e, f) == v for f, v in match.items())
        )


@pytest.fixture
def day(store: CentralStore, k1: Kiosk) -> Synced:  # noqa: F811 - the imported fixtures
    ids = populate(k1)  # Li: paper, aluminium, a rice; Wang: cardboard (reversed), award
    sync(store, k1)
    return Synced(store, k1, ids)


def paper(passbook: str, weight: int, **override: Any) -> dict[str, Any]:
    """A paper deposit of `weight` g as a kiosk would write it, then `override`."""
    fields: dict[str, Any] = {
        "kind": Kind.DEPOSIT,
        "passbook_id": passbook,
        "category": "paper",
        "grams": weight,
        "points": PAPER.points_for(weight),
        "co2e_g": PAPER.co2e_for(weight),
        "rules_version": VERSION,
    }
    return fields | override


def reversal_of(target: Entry, **override: Any) -> dict[str, Any]:
    """An exact reversal of `target`, as the kiosk writes it, then `override`."""

    def neg(v: int | None) -> int | None:
        return None if v is None else -v

    fields: dict[str, Any] = {
        "kind": Kind.REVERSAL,
        "passbook_id": target.passbook_id,
        "category": target.category,
        "grams": neg(target.grams),
        "points": -target.points,
        "co2e_g": -target.co2e_g,
        "item_id": target.item_id,
        "qty": neg(target.qty),
        "ref_seq": target.seq,
        "staff_id": "S1",
        "reason": "forged",
        "rules_version": target.rules_version,
    }
    return fields | override


def _rice(d: Synced, qty: int, points: int) -> dict[str, Any]:
    return {
        "kind": Kind.REDEEM,
        "passbook_id": d.ids["li"],
        "item_id": "rice",
        "qty": -qty,
        "points": -points,
        "staff_id": "S1",
        "rules_version": VERSION,
    }


# name → (the forged entry, given the synced day; what the refusal must say)
FORGERIES: dict[str, tuple[Callable[[Synced], dict[str, Any]], str]] = {
    # The finding itself: negative grams and points, priced consistently or not.
    "negative deposit": (
        lambda d: paper(d.ids["li"], -5000, points=-50, co2e_g=-19565),
        "too_light: -5000 g is below the minimum",
    ),
    "points inflated": (
        lambda d: paper(d.ids["li"], 2000, points=1600),
        f"1600 points for 2000 g of paper, but rules {VERSION} give 16",
    ),
    "co2e inflated": (
        lambda d: paper(d.ids["li"], 2000, co2e_g=782_600),
        f"782600 g CO2e for 2000 g of paper, but rules {VERSION} give 7826",
    ),
    "grams over the category's maximum": (
        lambda d: paper(d.ids["li"], PAPER.max_grams + 1),
        "too_heavy",
    ),
    "unknown category": (
        lambda d: paper(d.ids["li"], 2000, category="gold"),
        "unknown_category",
    ),
    "unknown rules version": (
        lambda d: paper(d.ids["li"], 2000, rules_version="generous-1"),
        "rules version 'generous-1' is unknown to central",
    ),
    "deposit without a rules version": (
        lambda d: paper(d.ids["li"], 2000, rules_version=None),
        "deposit entries need rules_version",
    ),
    "deposit without grams": (
        lambda d: paper(d.ids["li"], 2000, grams=None),
        "deposit entries need grams",
    ),
    "deposit without a passbook": (
        lambda d: paper(d.ids["li"], 2000, passbook_id=None),
        "deposit entries need passbook_id",
    ),
    "points on an enrolment": (
        lambda d: {
            "kind": Kind.ENROL,
            "passbook_id": "K1-00099",
            "points": 10_000,
            "staff_id": "S1",
            "data": {"household_name": "Nobody", "village": "V1"},
        },
        "enrol entries carry no points, got 10000",
    ),
    "points on a restock": (
        lambda d: {
            "kind": Kind.RESTOCK,
            "passbook_id": d.ids["li"],
            "item_id": "rice",
            "qty": 1,
            "points": 10_000,
            "staff_id": "S1",
        },
        "restock entries carry no passbook_id",
    ),
    "award above the limit": (
        lambda d: {
            "kind": Kind.AWARD,
            "passbook_id": d.ids["li"],
            "points": RULES.max_award_points + 1,
            "staff_id": "S1",
            "reason": "forged",
            "rules_version": VERSION,
        },
        f"an award is 1 to {RULES.max_award_points} points",
    ),
    "redemption that gives points": (
        lambda d: _rice(d, qty=1, points=-500),
        "a redemption takes points and stock, got points 500",
    ),
    "redemption of more stock than exists": (
        lambda d: _rice(d, qty=20, points=30),  # Li has 30 points; K1 has 9 rice
        "takes 20 of 'rice' from stock, but this kiosk had only 9",
    ),
    "redemption of more points than the passbook had": (
        lambda d: _rice(d, qty=1, points=1000),
        "redeems 1000 points",
    ),
    "reversal of a nonexistent entry": (
        lambda d: reversal_of(d.first(kind=Kind.DEPOSIT), ref_seq=999),
        "reverses entry 999, which does not exist",
    ),
    "reversal of an entry already reversed": (
        lambda d: reversal_of(d.first(kind=Kind.DEPOSIT, category="cardboard")),
        "was already reversed by entry",
    ),
    "reversal that credits instead of cancelling": (
        lambda d: reversal_of(d.first(kind=Kind.DEPOSIT, category="paper"), points=500),
        "must have points -20, got 500",
    ),
    "reversal of an enrolment": (
        lambda d: reversal_of(d.first(kind=Kind.ENROL)),
        "(enrol), which cannot be reversed",
    ),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forged_entry_is_refused_and_changes_nothing(day: Synced, name: str) -> None:
    st = day.store
    make, reason = FORGERIES[name]
    before = village_view(st)
    balance_li = reports.statement(st, day.ids["li"])[-1].balance
    result = ingest(st, day.k.topic, forged_batch(day.k, make(day)), NOW + 1)
    assert_rejected(st, result, reason)
    assert village_view(st) == before
    assert reports.statement(st, day.ids["li"])[-1].balance == balance_li


def test_the_forgery_hides_in_a_batch_of_honest_entries(day: Synced) -> None:
    """Honest entries around the forged one are refused with it: a batch is all or
    nothing, so the kiosk cannot get the rest stored and drop the bad one."""
    st = day.store
    li, wang = day.ids["li"], day.ids["wang"]
    before = village_view(st)
    payload = forged_batch(day.k, paper(wang, 1000), paper(li, 5000, points=-50), paper(wang, 3000))
    result = ingest(st, day.k.topic, payload, NOW + 1)
    assert_rejected(st, result, "-50 points for 5000 g of paper")
    assert result.ack is not None
    assert (result.ack.first_seq, result.ack.last_seq) == (day.k.head_seq + 1, day.k.head_seq + 3)
    assert result.ack.reason.startswith(f"entry seq {day.k.head_seq + 2}: ")
    assert village_view(st) == before


def test_an_honest_entry_built_the_same_way_is_accepted(day: Synced) -> None:
    """The control: the forging helper makes batches central takes, so each refusal
    above is about what the entry means, not how it was chained or signed."""
    st = day.store
    totals = reports.village_totals(st, "V1")
    result = ingest(st, day.k.topic, forged_batch(day.k, paper(day.ids["li"], 2000)), NOW + 1)
    assert result.ack is not None and (result.ack.status, result.stored) == ("ok", 1)
    after = reports.village_totals(st, "V1")
    assert after["points_issued"] == totals["points_issued"] + 16
    assert after["co2e_g"] == totals["co2e_g"] + 7826


def test_an_unknown_kind_is_refused(day: Synced) -> None:
    st = day.store
    before = village_view(st)
    honest = forged_batch(day.k, paper(day.ids["li"], 2000))
    payload = with_kind_code(day.k, honest, 0, len(Kind))  # one past the last kind
    assert_rejected(st, ingest(st, day.k.topic, payload, NOW + 1), "index is out of range")
    assert village_view(st) == before


# --- through the real broker and the real uplink ---------------------------------------


@pytest.fixture
def world(tmp_path: Path, broker: Broker, central_url: str) -> Iterator[World]:  # noqa: F811
    w = World(tmp_path, broker, central_url)
    yield w
    w.close()


def test_a_modified_kiosk_cannot_mint_over_mqtt(world: World) -> None:
    """The kiosk's own ledger holds a deposit its rules never priced (written by a
    modified kiosk); its real uplink sends it over the real broker to a real central
    worker, which refuses it and says why. The kiosk keeps it unsynced."""
    k = world.kiosk("KM")
    li = k.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    k.ledger.deposit(li, "paper", 2500)
    world.start_central()
    up = k.start(world, ack_timeout_s=2.0)
    wait_for("the honest entries synced", k.synced)
    honest = k.ledger.head()[0]
    totals = reports.village_totals(world.store, "V1")
    forged = paper(li, -5000, points=-50, co2e_g=-19565)
    del forged["kind"]
    write_forged(k, Kind.DEPOSIT, **forged)
    wait_for("central refused the forged deposit", lambda: up.stats.rejected > 0)
    assert "too_light" in up.stats.last_error
    assert k.ledger.outbox.acked_seq() == honest
    assert world.store.count_entries("KM") == honest
    assert reports.village_totals(world.store, "V1") == totals
    assert reports.statement(world.store, li)[-1].balance == PAPER.points_for(2500)
    (letter, *_) = reports.dead_letters(world.store, 10)
    assert (letter.status, letter.claimed_device) == ("rejected", "KM")
    assert "too_light" in letter.reason
