"""Households' names over a real Mosquitto (issue 21): the uplink holds them back until
central's acks say it takes them, then sends them beside the entries (the first
enrolment's by resending an entry central already holds); an erasure at central
reaches the kiosk with the next state and leaves no name in either database."""

from __future__ import annotations

from pathlib import Path

from central import passbooks, personal
from greenpass.errors import CentralError
from tests.sync.harness import World, wait_for

NAME = "Zhang household"


def name_at_central(world: World, passbook: str) -> str:
    try:
        return passbooks.household(world.store, passbook)
    except CentralError:  # its enrolment has not come yet
        return ""


def row(world: World, passbook: str) -> tuple[str, bytes | None]:
    k = world.kiosks[0]
    found = k.ledger.store.conn.execute(
        "SELECT household_name, salt FROM villagers WHERE passbook_id = ?", (passbook,)
    ).fetchone()
    return str(found[0]), None if found[1] is None else bytes(found[1])


def test_names_reach_central_beside_the_entries_and_an_erasure_comes_back(
    world: World, central_url: str
) -> None:
    world.start_central()
    k = world.kiosks[0] if world.kiosks else world.kiosk("K1")
    zhang = k.ledger.enrol(NAME, staff_id="S1").passbook_id
    assert zhang is not None
    k.clock.advance(60_000)
    k.ledger.deposit(zhang, "paper", 2000)
    uplink = k.start(world)
    wait_for("the backlog at central", k.synced)
    # The first batch went before the kiosk knew central takes personal records; the
    # acks said so, and the record followed on its own.
    wait_for("the name at central", lambda: name_at_central(world, zhang) == NAME)
    assert uplink.personal.outbox.central_accepts()
    # Central commits before it acks: the kiosk marks the record confirmed a moment later.
    wait_for("the record confirmed", lambda: uplink.personal.outbox.synced_seq() >= 1)
    # A later enrolment's record goes in the same batch as its entry.
    li = k.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    wait_for("Li's name", lambda: name_at_central(world, li) == "Li household")

    personal.erase(world.store, zhang, actor="op", now_ms=k.clock.wall_ms())
    # The kiosk says in its status that it understands erasures; the next state (the
    # erasure touched the village) blanks the name and drops the salt.
    wait_for("the erasure at the kiosk", lambda: row(world, zhang) == ("", None), timeout=30)
    assert row(world, li)[0] == "Li household"  # only that household
    assert k.ledger.verify().ok
    k.stop()
    k.ledger.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert NAME.encode() not in k.path.read_bytes()
    if central_url.startswith("sqlite"):
        for store in [world.store, *world.stores]:
            store.engine.dispose()
        assert NAME.encode() not in Path(central_url.removeprefix("sqlite:///")).read_bytes()
