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
from sync.transport import BrokerConfig
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
