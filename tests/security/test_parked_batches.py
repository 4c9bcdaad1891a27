"""A device parks data on the broker as a retained `up/batch` (the only uplink topic it
may publish): central ignores it at every (re)subscription, and the device's real
batches still sync. The broker keeps at most that one message per device."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from central import reports
from devkit.mqtt_broker import Broker
from tests.sync.harness import World, wait_for


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path / "broker", [("central", "central-pw")]) as running:
        yield running


@pytest.fixture
def world(tmp_path: Path, broker: Broker) -> Iterator[World]:
    w = World(tmp_path, broker, f"sqlite:///{tmp_path / 'central.db'}")
    yield w
    w.close()


def test_a_retained_batch_is_ignored_and_real_batches_still_sync(
    world: World, broker: Broker
) -> None:
    k = world.kiosk("KA")
    parker = broker.client("KA", k.password, client_id="gp-KA")
    junk = b"\x00" * 200_000
    assert not parker.publish_wait("gp/v1/dev/KA/up/batch", junk, retain=True).is_failure
    parker.close()
    central = world.start_central()
    wait_for("the retained batch seen and ignored", lambda: central.receiver.retained_batches == 1)
    assert reports.dead_letters(world.store) == [], "a parked message was taken for a batch"
    passbook = k.ledger.enrol("Zhao household", staff_id="S1").passbook_id or ""
    k.ledger.deposit(passbook, "paper", 1200)
    k.start(world)
    wait_for("the real batches acked", k.synced)
    assert world.store.count_entries("KA") == k.ledger.head()[0]
