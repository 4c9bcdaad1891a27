"""A central worker in two stages (`Receiver(prepare_batch=…)`): each batch is prepared
on a thread of its own (central checks it there) while the batch before is handled
(stored: mostly waiting on the database), in arrival order, a bounded way ahead."""

from __future__ import annotations

import threading
import time

from devkit.mqtt_broker import Broker
from sync import protocol as p
from sync import receiver as receiver_module
from sync.receiver import Outgoing, Receiver
from sync.transport import BrokerConfig, Message, Transport
from tests.sync.harness import wait_for

HANDLE_S = 0.05  # a transaction's wait on the database


def test_the_next_batch_is_prepared_while_one_is_handled_and_each_handled_in_order(
    broker: Broker,
) -> None:
    prepared: list[tuple[bytes, str, int]] = []  # payload, thread, batches then handled
    handled: list[tuple[bytes, str]] = []
    order: list[bytes] = []  # batches and statuses, as handled
    unprepared: list[bytes] = []

    def prepare(_topic: str, payload: bytes) -> receiver_module.Tick:
        prepared.append((payload, threading.current_thread().name, len(handled)))

        def handle() -> list[Outgoing]:
            time.sleep(HANDLE_S)
            handled.append((payload, threading.current_thread().name))
            order.append(payload)
            return [Outgoing(p.topic("K1", p.ACK), b"ack " + payload)]

        return handle

    def on_batch(_topic: str, payload: bytes) -> list[Outgoing]:
        unprepared.append(payload)  # a batch that skipped the first stage
        return []

    receiver = Receiver(
        BrokerConfig(broker.url, "central", "central-pw", "gp-central-1", broker.ca_cert),
        on_batch,
        lambda _t, payload: order.append(payload),
        prepare_batch=prepare,
    )
    kiosk = broker.client("K1", "k1-pw", client_id="gp-K1")
    kiosk.subscribe_wait(p.topic("K1", p.ACK))
    receiver.start()
    try:
        wait_for("the worker subscribed", receiver.connected.is_set)
        sent = [f"b{n}".encode() for n in range(12)]
        for n, payload in enumerate(sent):
            kiosk.publish(p.topic("K1", p.BATCH), payload, qos=1)
            if n == 5:  # a status between batches keeps its place
                kiosk.publish(p.topic("K1", p.STATUS), b"s", qos=1)
        wait_for("every batch handled", lambda: len(handled) == len(sent), timeout=30)
        acks = [kiosk.next_message().payload for _ in sent]
    finally:
        receiver.stop()
        kiosk.close()
    assert [b for b, _ in handled] == sent and [b for b, _, _ in prepared] == sent
    assert acks == [b"ack " + b for b in sent] and unprepared == []
    assert order == [*sent[:6], b"s", *sent[6:]]
    # Two threads, and the first stage ran ahead of the second, but boundedly: at most
    # the batches queued between them, one being handled and the one in its hands.
    assert {t for _, t, _ in prepared} == {"central-prepare"}
    assert {t for _, t in handled} == {"central-receiver"}
    ahead = [n - done for n, (_, _, done) in enumerate(prepared)]
    assert max(ahead) >= 1, "the next batch was never prepared while one was handled"
    assert max(ahead) <= receiver_module._AHEAD + 2, ahead


def test_a_prepare_that_raises_leaves_its_batch_to_the_whole_handler(broker: Broker) -> None:
    """A bug in the first stage must not stall the worker: that batch is handled by
    `on_batch`, whole, and the next ones are prepared as before."""
    handled: list[tuple[str, bytes]] = []

    def prepare(_topic: str, payload: bytes) -> receiver_module.Tick:
        if payload == b"b1":
            raise RuntimeError("a bug")

        def handle() -> list[Outgoing]:
            handled.append(("prepared", payload))
            return []

        return handle

    def on_batch(_topic: str, payload: bytes) -> list[Outgoing]:
        handled.append(("whole", payload))
        return []

    receiver = Receiver(
        BrokerConfig(broker.url, "central", "central-pw", "gp-central-1", broker.ca_cert),
        on_batch, lambda _t, _b: None, prepare_batch=prepare,
    )  # fmt: skip
    kiosk = broker.client("K1", "k1-pw", client_id="gp-K1")
    receiver.start()
    try:
        wait_for("the worker subscribed", receiver.connected.is_set)
        for n in range(3):
            kiosk.publish(p.topic("K1", p.BATCH), f"b{n}".encode(), qos=1)
        wait_for("three batches handled", lambda: len(handled) == 3)
    finally:
        receiver.stop()
        kiosk.close()
    assert handled == [("prepared", b"b0"), ("whole", b"b1"), ("prepared", b"b2")]
    assert receiver.connects == 1  # no reconnection was needed


def test_prepared_batches_waiting_together_are_handled_at_once_in_order(broker: Broker) -> None:
    """With `on_prepared`, the prepared batches waiting when one is taken go to central
    together (one transaction there); a status among them goes to the side stage and
    does not end the group; every ack goes out, in order."""
    first_taken, release = threading.Event(), threading.Event()
    prepared: list[bytes] = []
    handled: list[bytes] = []
    groups: list[list[bytes]] = []
    statuses: list[tuple[bytes, str]] = []

    def prepare(_topic: str, payload: bytes) -> receiver_module.Tick:
        prepared.append(payload)

        def handle() -> list[Outgoing]:
            if payload == b"b0":
                first_taken.set()
                release.wait(10)  # the others queue up meanwhile
            handled.append(payload)
            return [Outgoing(p.topic("K1", p.ACK), b"ack " + payload)]

        handle.payload = payload  # type: ignore[attr-defined]
        return handle

    def on_prepared(handlers: list[receiver_module.Tick]) -> list[Outgoing]:
        groups.append([h.payload for h in handlers])  # type: ignore[attr-defined]
        return [o for h in handlers for o in h()]

    receiver = Receiver(
        BrokerConfig(broker.url, "central", "central-pw", "gp-central-1", broker.ca_cert),
        lambda _t, _b: [],
        lambda _t, payload: statuses.append((payload, threading.current_thread().name)),
        prepare_batch=prepare, on_prepared=on_prepared, side_stage=True,
    )  # fmt: skip
    kiosk = broker.client("K1", "k1-pw", client_id="gp-K1")
    kiosk.subscribe_wait(p.topic("K1", p.ACK))
    receiver.start()
    try:
        wait_for("the worker subscribed", receiver.connected.is_set)
        kiosk.publish(p.topic("K1", p.BATCH), b"b0", qos=1)
        wait_for("b0 taken", first_taken.is_set)
        sent = [f"b{n}".encode() for n in range(1, 6)]
        for n, payload in enumerate(sent):
            kiosk.publish(p.topic("K1", p.BATCH), payload, qos=1)
            if n == 2:
                kiosk.publish(p.topic("K1", p.STATUS), b"s", qos=1)
        # The stage queues each message before it takes the next: once it prepares b5,
        # b1 to b4 and the status wait in its queue.
        wait_for("b5 prepared", lambda: b"b5" in prepared)
        release.set()
        acks = [kiosk.next_message().payload for _ in range(6)]
        wait_for("the status handled", lambda: len(statuses) == 1)
    finally:
        release.set()
        receiver.stop()
        kiosk.close()
    # b0 alone (nothing waited), then at least the four that waited at once, the status
    # not ending the group (b5 with them if it was queued by then, else alone next).
    assert handled == [b"b0", *sent] and groups and groups[0][:4] == sent[:4]
    assert acks == [b"ack b0", *(b"ack " + b for b in sent)]
    assert statuses == [(b"s", "central-side")]
    assert receiver.handled == 6


def test_the_side_stage_ticks_while_a_batch_is_being_stored(broker: Broker) -> None:
    """With `side_stage`, the tick (central's state pushes) runs on a thread of its own:
    a batch waiting on the database does not hold it back, nor it the batch."""
    in_batch, ticked_meanwhile = threading.Event(), threading.Event()
    ticks: list[str] = []

    def on_batch(_topic: str, _payload: bytes) -> list[Outgoing]:
        in_batch.set()
        ticked_meanwhile.wait(10)
        return [Outgoing(p.topic("K1", p.ACK), b"stored")]

    def tick() -> list[Outgoing]:
        ticks.append(threading.current_thread().name)
        if not in_batch.is_set() or ticked_meanwhile.is_set():
            return []
        ticked_meanwhile.set()
        return [Outgoing(p.topic("K1", p.STATE), b"state")]

    receiver = Receiver(
        BrokerConfig(broker.url, "central", "central-pw", "gp-central-1", broker.ca_cert),
        on_batch, lambda _t, _b: None, tick=tick, tick_s=0.05, side_stage=True,
    )  # fmt: skip
    kiosk = broker.client("K1", "k1-pw", client_id="gp-K1")
    kiosk.subscribe_wait(p.topic("K1", "down/#"))
    receiver.start()
    try:
        wait_for("the worker subscribed", receiver.connected.is_set)
        kiosk.publish(p.topic("K1", p.BATCH), b"b0", qos=1)
        wait_for("a tick while the batch was stored", ticked_meanwhile.is_set, timeout=10)
        got = {kiosk.next_message().payload for _ in range(2)}
    finally:
        ticked_meanwhile.set()
        receiver.stop()
        kiosk.close()
    assert got == {b"state", b"stored"}
    assert set(ticks) == {"central-side"}


def test_statuses_handed_to_the_side_stage_are_handled_before_it_stops(broker: Broker) -> None:
    """A status is acknowledged to the broker once handed to the side stage, so a
    connection that ends (or a worker that stops) must not drop those still queued: a
    kiosk's last status, saying it goes offline, has no successor."""
    handled: list[bytes] = []

    def on_status(_topic: str, payload: bytes) -> None:
        time.sleep(0.02)  # a few statements each
        handled.append(payload)

    t = Transport(BrokerConfig(broker.url, "central", "central-pw", "gp-central-1", broker.ca_cert))
    stage = receiver_module._SideStage(
        t, on_status, None, lambda fn: fn() or [], 0.05, lambda: False, 10.0
    )
    stage.start()
    sent = [f"s{n}".encode() for n in range(20)]
    for payload in sent:
        stage.put(Message(p.topic("K1", p.STATUS), payload, False), threading.Event())
    stage.stop()
    assert handled == sent and not stage.thread.is_alive()
