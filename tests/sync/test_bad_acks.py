"""Impossible acks, published onto a kiosk's `down/ack` topic as a confused central
would: the uplink refuses each one, keeps running, marks nothing synced and reports
a sync fault in its status; once central answers sanely it syncs again and the
fault clears.

Real parts throughout: the kiosk's ledger is a SQLite file, its uplink talks to the
Mosquitto the `broker` fixture runs with the production config, central is
`CentralService` on a SQLite file, and the forged acks come from a paho client
logged in as central (`StatusWatch`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devkit.mqtt_broker import Broker
from sync.transport import Backoff
from sync.uplink import Uplink
from tests.sync.harness import Kiosk, World, wait_for
from tests.sync.status_watch import StatusWatch, fault_is, forged_ack

D = "KA"


@pytest.fixture
def world(tmp_path: Path, broker: Broker) -> Iterator[World]:
    w = World(tmp_path, broker, str(tmp_path / "central.db"))
    yield w
    w.close()


def deposits(k: Kiosk, passbook: str, n: int) -> None:
    for i in range(n):
        k.clock.advance(11 * 60_000)
        k.ledger.deposit(passbook, "paper", 900 + i)


def synced_then_central_down(world: World) -> tuple[Kiosk, Uplink, int]:
    """A kiosk that synced, then took 3 deposits central has not seen (central is
    down): its acked seq, and a backlog whose first batch went out after central's
    last `ok`."""
    k = world.kiosk(D)
    wang = k.ledger.enrol("Wang household", staff_id="S1").passbook_id or ""
    deposits(k, wang, 4)
    central = world.start_central()
    up = k.start(world, ack_timeout_s=1.0, fault_backoff=Backoff(0.2, 0.5))
    wait_for("synced", k.synced)
    central.stop()
    acked = k.ledger.outbox.acked_seq()
    sent = up.stats.batches_sent
    deposits(k, wang, 3)
    wait_for("the backlog sent", lambda: up.stats.batches_sent > sent)
    return k, up, acked


# name → (the forged ack from the kiosk's acked seq and head, the fault it must raise)
NOT_AN_ACK = b'{"device_id":"KA","status":"ok","acked_seq":"x"}'
FORGED: dict[str, tuple[Callable[[int, int], bytes], str]] = {
    "not JSON": (lambda a, h: b"{not json", "ack_malformed"),
    "not an ack": (lambda a, h: NOT_AN_ACK, "ack_malformed"),
    "for another device": (
        lambda a, h: forged_ack("KB", "ok", h, first_seq=a + 1, last_seq=h),
        "ack_wrong_device",
    ),
    "ok beyond the head": (
        lambda a, h: forged_ack(D, "ok", h + 1, first_seq=a + 1, last_seq=h + 1),
        "ack_beyond_head",
    ),
    "ok going backwards": (lambda a, h: forged_ack(D, "ok", a - 2), "ack_backwards"),
    "gap for what central confirmed": (
        lambda a, h: forged_ack(D, "gap", a - 3, first_seq=a + 1, last_seq=h),
        "ack_backwards",
    ),
    "gap beyond the head": (
        lambda a, h: forged_ack(D, "gap", a, expected_seq=h + 50, first_seq=a + 1, last_seq=h),
        "ack_bad_expected",
    ),
    "gap for seq 0": (lambda a, h: forged_ack(D, "gap", 0, expected_seq=0), "ack_bad_expected"),
    "unknown status": (lambda a, h: forged_ack(D, "maybe", h), "ack_unknown_status"),
}


@pytest.mark.parametrize("name", list(FORGED))
def test_a_bad_ack_is_refused_and_reported_until_central_answers(world: World, name: str) -> None:
    build, code = FORGED[name]
    k, up, acked = synced_then_central_down(world)
    head = k.ledger.head()[0]
    watch = StatusWatch(world.broker, D)
    watch.forge(build(acked, head))
    status = watch.wait(f"{code} in the kiosk's status", fault_is(code))
    assert status.sync_fault is not None and status.sync_fault.message
    assert status.online and (status.acked_seq, status.head_seq) == (acked, head)
    assert status.last_error == status.sync_fault.message  # what older centrals show
    assert k.ledger.outbox.acked_seq() == acked  # nothing marked synced
    assert up.sync_fault is not None and up.sync_fault.code == code
    assert up.stats.bad_acks == 1 and up.failed is None and up.stats.crashes == 0
    # Still running: after its pause it asks central again, from its own acked point.
    sent = up.stats.batches_sent
    wait_for("the uplink asks central again", lambda: up.stats.batches_sent > sent)
    assert k.ledger.outbox.acked_seq() == acked and up.online
    world.start_central()
    wait_for("synced again", k.synced)
    watch.wait("the fault cleared", fault_is(None))
    assert up.sync_fault is None and up.stats.last_error == ""
    assert world.store.count_entries(D) == head  # nothing stored twice


def test_the_same_bad_ack_again_is_logged_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    k, up, acked = synced_then_central_down(world)
    head = k.ledger.head()[0]
    watch = StatusWatch(world.broker, D)
    caplog.set_level(logging.INFO, logger="sync")
    for _ in range(5):
        watch.forge(forged_ack(D, "ok", head + 1, first_seq=acked + 1, last_seq=head + 1))
    wait_for("five refused", lambda: up.stats.bad_acks == 5)
    faults = [r for r in caplog.records if "sync fault ack_beyond_head" in r.getMessage()]
    assert [r.levelno for r in faults] == [logging.ERROR]
    assert k.ledger.outbox.acked_seq() == acked
    world.start_central()
    wait_for("synced again", k.synced)
    wait_for("cleared", lambda: up.sync_fault is None)
    assert any("ack_beyond_head cleared" in r.getMessage() for r in caplog.records)


class Widest(random.Random):
    """Full-jitter backoff that always waits its whole cap (a pause the test can see)."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_a_synced_kiosk_asks_central_again_by_resending_its_last_entry(world: World) -> None:
    """Nothing left to send: after the pause the uplink resends its last acked entry,
    central re-acks it as a duplicate, and the fault clears. Central stores the
    kiosk's status with the fault in between."""
    k = world.kiosk(D)
    wang = k.ledger.enrol("Wang household", staff_id="S1").passbook_id or ""
    deposits(k, wang, 3)
    world.start_central()
    # The fault stands for the whole pause: long enough that central has stored it
    # before the resend clears it, even on a loaded machine (1.5 s was not).
    up = k.start(world, fault_backoff=Backoff(4.0, 4.0, rng=Widest()))
    wait_for("synced", k.synced)
    head = k.ledger.head()[0]
    watch = StatusWatch(world.broker, D)
    sent = up.stats.batches_sent
    watch.forge(forged_ack(D, "ok", head + 1, first_seq=head + 1, last_seq=head + 1))

    def stored() -> str:
        device = world.store.device(D)
        return (device.status_json if device is not None else None) or ""

    watch.wait("the fault in the status", fault_is("ack_beyond_head"))
    wait_for("central stored the fault", lambda: '"code":"ack_beyond_head"' in stored())
    watch.wait("the fault cleared", fault_is(None))
    assert up.stats.batches_sent == sent + 1  # one entry, sent again
    assert k.ledger.outbox.acked_seq() == head
    wait_for("central stored the clear status", lambda: '"sync_fault":null' in stored())
    assert world.store.count_entries(D) == head
