"""A crash in the uplink thread is never silent: the thread is restarted with backoff
and the crash shows as a sync fault; an uplink that keeps crashing gives up and says
so (`failed`), for the kiosk daemon to exit and be restarted by systemd.

The crash is injected through a constructor argument of the uplink: the kiosk's
health callback, which the uplink calls for every status it publishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devkit.mqtt_broker import Broker
from sync.supervisor import RestartPolicy
from tests.sync.harness import Kiosk, World, wait_for
from tests.sync.status_watch import StatusWatch, fault_is

D = "KA"
QUICK = RestartPolicy(base_s=0.05, cap_s=0.1, max_crashes=2)


@pytest.fixture
def world(tmp_path: Path, broker: Broker) -> Iterator[World]:
    w = World(tmp_path, broker, str(tmp_path / "central.db"))
    yield w
    w.close()


def health(break_next: threading.Event, always: bool = False) -> Callable[[], dict[str, str]]:
    """The kiosk's health callback, raising what nobody planned for when told to."""

    def read() -> dict[str, str]:
        if always or break_next.is_set():
            break_next.clear()
            raise RuntimeError("the health callback blew up")
        return {"scale": "ok", "scanner": "ok"}

    return read


def deposits(k: Kiosk, passbook: str, n: int) -> None:
    for i in range(n):
        k.clock.advance(11 * 60_000)
        k.ledger.deposit(passbook, "paper", 900 + i)


def test_a_crashed_uplink_is_restarted_shows_the_crash_and_syncs_on(world: World) -> None:
    k = world.kiosk(D)
    wang = k.ledger.enrol("Wang household", staff_id="S1").passbook_id or ""
    deposits(k, wang, 3)
    world.start_central()
    crash = threading.Event()
    up = k.start(world, health=health(crash), status_every_s=0.2, restart=QUICK)
    wait_for("synced", k.synced)
    watch = StatusWatch(world.broker, D)
    crash.set()  # the next status the uplink publishes raises inside its thread
    wait_for("a crash", lambda: up.stats.crashes == 1)
    status = watch.wait("the crash in the status", fault_is("uplink_crashed"))
    assert status.online and status.sync_fault is not None
    assert "RuntimeError: the health callback blew up" in status.sync_fault.message
    # Restarted: it asks central again (its last entry), central answers, the fault clears.
    watch.wait("the fault cleared", fault_is(None))
    assert up.failed is None and up.sync_fault is None
    deposits(k, wang, 2)
    wait_for("new deposits synced", k.synced)
    assert world.store.count_entries(D) == k.ledger.head()[0]
    assert up.stats.crashes == 1


def test_an_uplink_that_keeps_crashing_gives_up_and_says_so(world: World) -> None:
    k = world.kiosk(D)
    up = k.start(world, health=health(threading.Event(), always=True), restart=QUICK)
    wait_for("given up", lambda: up.failed is not None)
    assert "crashed 3 times in a row" in (up.failed or "")
    assert up.sync_fault is not None and up.sync_fault.code == "uplink_dead"
    assert up.stats.crashes == 2  # restarted twice, then not again
    wait_for("the thread ended", lambda: not up.online)
