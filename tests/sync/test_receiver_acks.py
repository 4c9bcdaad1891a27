"""A central worker acknowledges a batch to the broker (PUBACK) only once it has
handled it. A worker killed with batches taken but not yet stored leaves them with
the broker, which hands them to the worker started again in its place (same client
id, its persistent session) at once, not a minute later through each kiosk's resend.

Found by the reconnect storm with a worker SIGKILLed (`python -m bench.sync_storm
--workers 2 --kill-worker 0.3`): paho acknowledged every message on receipt, the
killed worker's queue of received batches was gone from the broker, and a third of
the thousand kiosks waited for their ack timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from devkit.mqtt_broker import Broker
from greenpass.errors import StorageError
from sync import protocol as p
from sync.receiver import Outgoing, Receiver
from sync.transport import BrokerConfig
from tests.sync.harness import wait_for

# A worker stuck in its first batch (a slow database, say) until it is killed.
STUCK_WORKER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from sync.receiver import Receiver
    from sync.transport import BrokerConfig

    def on_batch(topic, payload):
        print("took", payload.decode(), flush=True)
        threading.Event().wait()

    def on_connect():
        print("subscribed", flush=True)
        return []

    cfg = BrokerConfig(sys.argv[1], "central", "central-pw", "gp-central-1", Path(sys.argv[2]))
    Receiver(cfg, on_batch, lambda t, b: None, on_connect=on_connect).run()
    """
)


def restarted(broker: Broker, fail_on: bytes = b"") -> tuple[Receiver, list[bytes]]:
    """A worker with central's client id (its persistent session), started; what it is
    handed goes in the list, and the batch `fail_on` fails as a lost database would."""
    got: list[bytes] = []

    def on_batch(_topic: str, payload: bytes) -> list[Outgoing]:
        got.append(payload)
        if payload == fail_on:
            raise StorageError("central database: connection refused")
        return []

    receiver = Receiver(
        BrokerConfig(broker.url, "central", "central-pw", "gp-central-1", broker.ca_cert),
        on_batch,
        lambda _t, _b: None,
    )
    receiver.start()
    wait_for("the worker subscribed", receiver.connected.is_set)
    return receiver, got


def test_a_killed_worker_leaves_the_batches_it_had_not_handled_with_the_broker(
    broker: Broker, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    stuck = subprocess.Popen(
        [sys.executable, "-c", STUCK_WORKER, broker.url, str(broker.ca_cert)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    receiver: Receiver | None = None
    try:
        assert stuck.stdout is not None
        assert stuck.stdout.readline().strip() == "subscribed"
        kiosk = broker.client("K1", "k1-pw")
        for n in (b"1", b"2", b"3"):
            kiosk.publish_wait(p.topic("K1", p.BATCH), n)
        assert stuck.stdout.readline().strip() == "took 1"
        # 2 and 3 reach the stuck worker's queue too (a storm fills it); give them time.
        time.sleep(0.5)
        os.kill(stuck.pid, signal.SIGKILL)
        stuck.wait(10)

        receiver, got = restarted(broker)
        wait_for("the three batches handed to the worker started again", lambda: len(got) >= 3)
        assert got == [b"1", b"2", b"3"]
        receiver.stop()  # cleanly: what it handled it acknowledged
        receiver = None

        # Handled is acknowledged, also when the database failed (the kiosk resends
        # on its own; an unacknowledged message would hold one of the broker's
        # in-flight places and come back at every reconnection).
        receiver, again = restarted(broker, fail_on=b"4")
        kiosk.publish_wait(p.topic("K1", p.BATCH), b"4")
        kiosk.publish_wait(p.topic("K1", p.BATCH), b"5")
        wait_for("4 and 5 handled", lambda: again == [b"4", b"5"])
        receiver.stop()
        receiver, after = restarted(broker)
        time.sleep(1.0)
        assert after == [], "a handled batch came again: it was never acknowledged"
        kiosk.close()
    finally:
        if receiver is not None:
            receiver.stop()
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait(10)


def busy_receiver(broker: Broker, delay_s: float) -> tuple[Receiver, list[float], list[float]]:
    """A worker that takes 30 ms per batch; when it handled each batch and ran each tick."""
    handled: list[float] = []
    ticked: list[float] = []

    def on_batch(_topic: str, _payload: bytes) -> list[Outgoing]:
        time.sleep(0.03)
        handled.append(time.monotonic())
        return []

    def tick() -> list[Outgoing]:
        ticked.append(time.monotonic())
        return []

    receiver = Receiver(
        BrokerConfig(broker.url, "central", "central-pw", "gp-central-1", broker.ca_cert),
        on_batch, lambda _t, _b: None, tick=tick, tick_s=0.05, busy_tick_delay_s=delay_s,
    )  # fmt: skip
    receiver.start()
    wait_for("the worker subscribed", receiver.connected.is_set)
    return receiver, handled, ticked


def test_ticks_wait_while_batches_keep_coming_but_not_for_ever(broker: Broker) -> None:
    """State pushes (the tick) come after acks: while batches wait in the worker's inbox
    no tick runs, up to `busy_tick_delay_s`; then one does even under load."""
    kiosk = broker.client("K1", "k1-pw", client_id="gp-K1")
    for delay_s, expect_ticks_while_busy in ((30.0, False), (0.3, True)):
        receiver, handled, ticked = busy_receiver(broker, delay_s)
        try:
            wait_for("a first tick", lambda: bool(ticked))  # noqa: B023 - waited here
            for n in range(60):  # 1.8 s of work
                kiosk.publish(p.topic("K1", p.BATCH), f"b{n}".encode(), qos=1)
            wait_for("every batch handled", lambda: len(handled) == 60, timeout=30)  # noqa: B023
            busy = [t for t in ticked if handled[1] < t < handled[-2]]
            assert bool(busy) is expect_ticks_while_busy, (delay_s, busy)
            # Idle again: the ticks come back at their pace.
            after = len(ticked)
            wait_for("ticks once idle", lambda: len(ticked) >= after + 3)  # noqa: B023
        finally:
            receiver.stop()
