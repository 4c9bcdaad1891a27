"""Two kiosks, a real Mosquitto with the production config, central on a real
database: offline deposits and redemptions come home, nothing is lost, nothing
counted twice, and balances come back down so kiosk B sees points earned at A."""

from __future__ import annotations

from collections import Counter

from central import reports
from edge.ledger.ledger import Ledger
from tests.sync.harness import T0, Kiosk, World, wait_for


def deposits(k: Kiosk, passbook: str, n: int, category: str = "paper") -> None:
    for i in range(n):
        k.clock.advance(11 * 60_000)
        k.ledger.deposit(passbook, category, 800 + 10 * i)


def central_points(world: World) -> Counter[str]:
    totals: Counter[str] = Counter()
    for line in reports.export_rows(world.store, world.village):
        if line["passbook_id"]:
            totals[str(line["passbook_id"])] += int(line["points"])
    return totals


def kiosk_points(*ledgers: Ledger) -> Counter[str]:
    totals: Counter[str] = Counter()
    for led in ledgers:
        for e, _ in led.iter_entries():
            if e.passbook_id:
                totals[e.passbook_id] += e.points
    return totals


def test_two_kiosks_offline_then_online(world: World) -> None:
    a, b = world.kiosk("KA"), world.kiosk("KB")
    # Offline: each kiosk enrols its own villagers and takes deposits.
    wang = a.ledger.enrol("Wang household", staff_id="S1").passbook_id or ""
    li = b.ledger.enrol("Li household", staff_id="S1").passbook_id or ""
    deposits(a, wang, 30)
    deposits(b, li, 12, "glass")
    b.ledger.put_item("soap", name_zh="肥皂", name_en="Soap", points_price=5, staff_id="S1")
    b.ledger.restock("soap", 10, staff_id="S1")
    b.ledger.redeem(li, [("soap", 1)], staff_id="S1")
    # Online.
    world.start_central()
    a.start(world)
    b.start(world)
    wait_for("both kiosks synced", lambda: a.synced() and b.synced())
    assert world.store.count_entries("KA") == a.ledger.head()[0]
    assert world.store.count_entries("KB") == b.ledger.head()[0]
    assert central_points(world) == kiosk_points(a.ledger, b.ledger)
    # Balances come down: kiosk B learns villager Wang and the points earned at A.
    wait_for("state at B", lambda: b.ledger.villager(wang) is not None)
    wait_for("Wang's balance at B", lambda: b.ledger.balance(wang) == a.ledger.balance(wang))
    earned = a.ledger.balance(wang)
    assert earned > 10
    b.ledger.redeem(wang, [("soap", 2)], staff_id="S1")  # points earned at A, spent at B
    assert b.ledger.balance(wang) == earned - 10
    wait_for("B synced again", b.synced)
    wait_for(
        "A sees the redemption at B",
        lambda: a.ledger.balance(wang) == earned - 10,
    )
    assert central_points(world) == kiosk_points(a.ledger, b.ledger)
    # The central copy of each device's chain verifies.
    for k in (a, b):
        assert world.store.device(k.device_id).acked_seq == k.ledger.head()[0]  # type: ignore[union-attr]


def test_new_entries_flow_while_online_and_status_is_reported(world: World) -> None:
    a = world.kiosk("KA")
    a.clock.ok = False  # no NTP yet: the kiosk's page tells staff only, the status central
    world.start_central()
    up = a.start(world)
    zhao = a.ledger.enrol("Zhao household", staff_id="S1").passbook_id or ""
    for n in range(1, 6):
        deposits(a, zhao, 1)
        wait_for(f"entry {n} acked", a.synced)
    assert up.stats.acks == up.stats.batches_sent >= 5  # sent while online: each acked
    wait_for("status stored", lambda: (world.store.device("KA").status_json or "") != "")  # type: ignore[union-attr]
    status = world.store.device("KA").status_json or ""  # type: ignore[union-attr]
    assert '"online":true' in status and '"clock_ok":false' in status


def test_a_kiosk_restarted_many_times_resends_without_duplicates(world: World) -> None:
    a = world.kiosk("KA")
    world.start_central()
    zhao = a.ledger.enrol("Zhao household", staff_id="S1").passbook_id or ""
    for _ in range(5):
        a.clock.advance(86_400_000)  # a new day: daily caps start again
        deposits(a, zhao, 20, "paper")
        deposits(a, zhao, 20, "cardboard")
        up = a.start(world, max_entries=7, window=3)
        wait_for("some acks", lambda up=up: up.stats.acks > 0)  # type: ignore[misc]
        a.stop()  # mid-backlog
    a.start(world)
    wait_for("all synced", a.synced)
    assert world.store.count_entries("KA") == a.ledger.head()[0] == 201


def test_late_kiosk_and_catalogue_change_get_their_state(world: World) -> None:
    world.start_central()
    late = world.kiosk("KL")  # enrolled after central started and pushed states
    late.start(world)
    wait_for(
        "state for the late kiosk",
        lambda: late.uplink is not None and late.uplink.stats.states_applied > 0,
    )
    world.store.put_item(
        world.village, "rice", name_zh="大米", name_en="Rice", points_price=50, now_ms=T0 + 1
    )
    wait_for("catalogue at the kiosk", lambda: late.ledger.item("rice") is not None, timeout=15)
    item = late.ledger.item("rice")
    assert item is not None and (item.name_zh, item.points_price) == ("大米", 50)
