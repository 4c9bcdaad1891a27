"""Central's receiver outlives a database that fails when it connects (found by the
fault soak, tests/soak): the broker came back while PostgreSQL was away, the state
push on connect raised `StorageError`, and the receiver's thread ended, leaving a
process that looked alive but took nothing off the broker."""

from __future__ import annotations

from pathlib import Path

from devkit.mqtt_broker import Broker
from greenpass.errors import StorageError
from sync import protocol as p
from sync.receiver import Outgoing, Receiver
from sync.transport import Backoff, BrokerConfig
from tests.sync.harness import wait_for


def test_a_database_error_on_connect_leaves_the_receiver_taking_batches(
    broker: Broker, tmp_path: Path
) -> None:
    batches: list[bytes] = []

    def on_connect() -> list[Outgoing]:
        raise StorageError("central database: reading devices failed: connection refused")

    def on_batch(_topic: str, payload: bytes) -> list[Outgoing]:
        batches.append(payload)
        return []

    receiver = Receiver(
        BrokerConfig(broker.url, "central", "central-pw", "gp-central-1", broker.ca_cert),
        on_batch,
        lambda _t, _b: None,
        on_connect=on_connect,
        tick_s=0.05,
        backoff=Backoff(0.05, 0.2),
    )
    receiver.start()
    try:
        wait_for("connected", receiver.connected.is_set)
        # Subscribed before `connected` is set: the batch goes to this receiver.
        broker.client("K1", "k1-pw").publish_wait(p.topic("K1", p.BATCH), b"batch")
        wait_for("the batch handled", lambda: batches == [b"batch"])
        assert receiver.connected.is_set() and receiver.connects == 1
    finally:
        receiver.stop()
