"""Two central workers on one database push each change of a village once between
them (`central.pushes`), not once each: found by the reconnect storm's worker table
(`python -m bench.sync_storm --workers 4`), where every worker built every village's
states and each kiosk got a copy from each.

The workers are `CentralService`s never started: the test calls what their receiver
threads would, on both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from central.service import CentralService
from central.store import CentralStore
from sync import protocol as p
from sync.keys import generate_key
from sync.receiver import Outgoing
from sync.transport import BrokerConfig
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk

STATES = {p.topic("K1", p.STATE), p.topic("K2", p.STATE)}


def worker(store: CentralStore, n: int) -> CentralService:
    broker = BrokerConfig("mqtts://127.0.0.1:1", "central", "pw", f"gp-central-{n}")
    return CentralService(
        store, broker, generate_key(), debounce_s=0, min_interval_s=0, now_ms=lambda: NOW
    )


def states(out: list[Outgoing]) -> set[str]:
    return {o.topic for o in out if o.topic.endswith("/" + p.STATE)}


def tick(w: CentralService) -> set[str]:
    """What `w` pushes now: it polls `changed_ms` (not in two seconds), and a change
    found by polling is due from the tick after."""
    w._next_poll = 0.0
    first = w.on_tick()
    pushed = [o.topic for o in first + w.on_tick() if o.topic.endswith("/" + p.STATE)]
    assert len(pushed) == len(set(pushed)), pushed  # one push, not one a tick
    return set(pushed)


@pytest.fixture
def kiosks(store: CentralStore, tmp_path: Path) -> Iterator[dict[str, Kiosk]]:
    made = {d: new_kiosk(tmp_path, d) for d in ("K1", "K2")}
    for k in made.values():
        enrol(store, k)
    yield made
    for k in made.values():
        k.ledger.close()


def change(k: Kiosk, w: CentralService) -> None:
    """A new household enrolled at `k`, its batch ingested by `w`."""
    k.ledger.enrol(f"household {k.ledger.head()[0] + 1}", staff_id="S1")
    out = w.on_batch(k.topic, k.batch())
    assert any(o.topic == p.topic(k.device_id, p.ACK) for o in out)


def test_each_change_is_pushed_by_one_worker_of_two(
    store: CentralStore, kiosks: dict[str, Kiosk]
) -> None:
    one, two = worker(store, 1), worker(store, 2)
    assert states(one.all_states()) == STATES  # both connected to the broker
    assert states(two.all_states()) == STATES
    assert tick(one) == tick(two) == set()  # nothing changed since

    for ingests, first, second in ((one, one, two), (one, two, one), (two, one, two)):
        change(kiosks["K1"], ingests)
        # The worker that ticks first claims the change and pushes it; the other,
        # which learns of it from its own ingest or by polling, does not.
        assert tick(first) == STATES
        assert tick(second) == set()
        assert tick(first) == tick(second) == set()


def test_changes_in_one_millisecond_are_each_pushed(
    store: CentralStore, kiosks: dict[str, Kiosk]
) -> None:
    """The workers' clock stands still: each change still moves `changed_ms` on, so a
    change is never taken for the one before it, already pushed."""
    one, two = worker(store, 1), worker(store, 2)
    one.all_states(), two.all_states()
    for k, w, other in ((kiosks["K1"], one, two), (kiosks["K2"], two, one)):
        before = store.village_changes()["V1"]
        change(k, w)
        assert store.village_changes()["V1"] == max(before + 1, NOW)
        assert tick(w) == STATES
        assert tick(other) == set()


def test_a_kiosk_new_to_a_worker_gets_its_state_from_it_without_a_change(
    store: CentralStore, kiosks: dict[str, Kiosk]
) -> None:
    """A kiosk's first status at a worker that has not pushed to it: that worker pushes
    its village, though the change was claimed (pushed) by the other worker."""
    one, two = worker(store, 1), worker(store, 2)
    one.all_states()
    change(kiosks["K1"], one)
    assert tick(one) == STATES
    status = p.Status(device_id="K2", online=True, ts_ms=NOW, version="0.1.0")
    two.on_status(p.topic("K2", p.STATUS), p.encode_status(status))
    assert tick(two) == STATES


def test_a_worker_whose_state_missed_a_change_pushes_again(
    store: CentralStore, kiosks: dict[str, Kiosk]
) -> None:
    """A change commits while worker one builds its states from an older snapshot; two
    claims and pushes it, maybe before one publishes: the broker would keep one's older
    state as the retained one. So one pushes the village again, without a claim."""
    one, two = worker(store, 1), worker(store, 2)
    one.all_states(), two.all_states()
    build = one.village_states
    raced: list[bool] = []

    def racing(village_id: str, **kw: object) -> list[Outgoing]:
        out = build(village_id, **kw)  # type: ignore[arg-type]
        if not raced:  # committed after the snapshot, before the states are published
            raced.append(True)
            change(kiosks["K2"], two)
        return out

    one.village_states = racing  # type: ignore[method-assign]
    change(kiosks["K1"], one)
    assert states(one.on_tick()) == STATES and raced  # its claimed push
    assert states(one.on_tick()) == STATES  # and again, unclaimed: the last one
    assert tick(two) == STATES  # two claimed the change that raced
    assert tick(one) == tick(two) == set()
