"""`sync.transport` against a real Mosquitto: one `Transport` is one connection and
never comes back by itself once lost; `keep_connected` makes the next one, once per
outage, and subscribes again each time (a session the broker kept may have lost
its shared subscriptions)."""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devkit.mqtt_broker import Broker
from greenpass.errors import ConfigError, TransportError
from simulator.netproxy import NetProxy
from sync import protocol as p
from sync.transport import AckWait, Backoff, BrokerConfig, Message, Transport, keep_connected
from tests.sync.harness import wait_for

PAHO_RECONNECT_S = 1.0  # paho's own reconnect delay, were it allowed to reconnect


def config(broker: Broker, user: str, password: str, *, url: str | None = None) -> BrokerConfig:
    return BrokerConfig(
        url=url or broker.url,
        username=user,
        password=password,
        client_id=f"gp-{user}",
        ca_cert=broker.ca_cert,
    )


def forget_everything(broker: Broker) -> None:
    """SIGKILL the broker and drop its saved state: it comes back with no sessions."""
    broker.kill()
    for saved in broker.files.data_dir.iterdir():
        saved.unlink()
    broker.start()


@pytest.fixture
def transport(broker: Broker) -> Iterator[Transport]:
    t = Transport(config(broker, "K1", "k1-pw"))
    t.connect()
    yield t
    t.close()


def test_a_lost_connection_stays_lost(broker: Broker, transport: Transport) -> None:
    assert transport.connected
    broker.restart()
    time.sleep(PAHO_RECONNECT_S + 0.5)  # the broker has been back for a while
    assert not transport.connected
    with pytest.raises(TransportError, match="lost"):
        transport.check_connected()
    with pytest.raises(TransportError):
        transport.publish(p.topic("K1", p.STATUS), b"{}", timeout_s=1)
    started = time.monotonic()
    transport.close()
    assert time.monotonic() - started < 0.5  # no reconnect sleep to wait out


def test_session_present_says_whether_the_broker_kept_our_session(broker: Broker) -> None:
    cfg = config(broker, "K1", "k1-pw")

    def connect() -> bool:
        t = Transport(cfg)
        t.connect()
        t.close()
        return t.session_present

    assert not connect()  # first time: nothing to keep
    assert connect()  # a 7-day session expiry: kept between connections
    broker.restart()  # SIGTERM: Mosquitto saves its sessions first
    assert connect()
    forget_everything(broker)
    assert not connect()


def test_publish_stops_waiting_when_the_connection_is_lost(broker: Broker) -> None:
    with NetProxy("127.0.0.1", broker.port) as proxy:
        t = Transport(config(broker, "K1", "k1-pw", url=f"mqtts://127.0.0.1:{proxy.port}"))
        t.connect()
        try:
            proxy.stall()  # no PUBACK can come back
            failed: queue.Queue[BaseException | None] = queue.Queue()

            def publish() -> None:
                try:
                    t.publish(p.topic("K1", p.STATUS), b"{}", timeout_s=30)
                    failed.put(None)
                except TransportError as exc:
                    failed.put(exc)

            threading.Thread(target=publish, daemon=True).start()
            time.sleep(0.3)
            proxy.cut()
            started = time.monotonic()
            assert isinstance(failed.get(timeout=5), TransportError)
            assert time.monotonic() - started < 2  # not the 30 s PUBACK timeout
        finally:
            t.close()


class Loop:
    """`keep_connected` on a thread, as central's receiver runs it, recording what
    each session received."""

    def __init__(self, cfg: BrokerConfig, subscriptions: tuple[str, ...]) -> None:
        self.stop = threading.Event()
        self.connects = 0
        self.sessions_present: list[bool] = []
        self.errors: list[str] = []
        self.received: queue.Queue[Message] = queue.Queue()
        self._thread = threading.Thread(
            target=keep_connected,
            args=(lambda: Transport(cfg), self.session),
            kwargs={
                "subscriptions": subscriptions,
                "backoff": Backoff(0.05, 0.5),
                "stop": self.stop,
                "name": "test loop",
                "on_connected": self.connected,
                "on_error": lambda exc: self.errors.append(str(exc)),
            },
            daemon=True,
        )
        self._thread.start()

    def connected(self, t: Transport) -> None:
        self.connects += 1
        self.sessions_present.append(t.session_present)

    def session(self, t: Transport) -> None:
        while not self.stop.is_set():
            t.check_connected()
            with contextlib.suppress(queue.Empty):
                self.received.put(t.inbox.get(timeout=0.05))

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)


def test_keep_connected_reconnects_once_per_outage_and_subscribes_again(
    broker: Broker, tmp_path: Path
) -> None:
    loop = Loop(config(broker, "central", "central-pw"), (p.SHARED_BATCH_SUBSCRIPTION,))
    kiosk_topic = p.topic("K1", p.BATCH)
    try:
        wait_for("connected", lambda: loop.connects == 1)
        outages: list[Callable[[], None]] = [broker.restart, lambda: forget_everything(broker)]
        for n, outage in enumerate(outages, start=2):
            outage()
            wait_for(f"connection {n}", lambda n=n: loop.connects == n)  # type: ignore[misc]
            sender = broker.client("K1", "k1-pw")
            sender.publish_wait(kiosk_topic, f"after outage {n - 1}".encode())
            msg = loop.received.get(timeout=5)
            assert (msg.topic, msg.payload) == (kiosk_topic, f"after outage {n - 1}".encode())
            sender.close()
        # The restart kept the session, yet only subscribing again brought central's
        # shared subscription back; the forgetful broker had no session at all.
        assert loop.sessions_present == [False, True, False]
        assert loop.connects == len(outages) + 1
        assert len(loop.errors) >= len(outages)  # each outage was seen, and said why
    finally:
        loop.close()


def test_mqtt_311_keeps_the_session_and_gets_what_was_queued(broker: Broker) -> None:
    """The kiosk's transport on MQTT 3.1.1 (a RabbitMQ cluster's protocol; docs/scale.md),
    here against Mosquitto, which speaks both: the same topics, a persistent session."""
    cfg = dataclasses.replace(config(broker, "K1", "k1-pw"), mqtt_version="3.1.1")
    t = Transport(cfg)
    t.connect()
    assert not t.session_present
    t.subscribe(p.topic("K1", p.ACK))
    with pytest.raises(TransportError, match="refused subscription"):
        t.subscribe(p.topic("K2", p.ACK))  # SUBACK 0x80 on 3.1.1
    t.close()
    central = broker.client("central", "central-pw")
    assert not central.publish_wait(p.topic("K1", p.ACK), b"queued").is_failure
    t = Transport(cfg)
    t.connect()
    try:
        assert t.session_present  # clean_session=false: kept, with what came meanwhile
        assert t.inbox.get(timeout=5).payload == b"queued"
        t.publish(p.topic("K1", p.STATUS), b"{}")
    finally:
        t.close()


def test_an_unknown_mqtt_version_is_refused(broker: Broker) -> None:
    with pytest.raises(ConfigError, match="mqtt_version '4'"):
        Transport(dataclasses.replace(config(broker, "K1", "k1-pw"), mqtt_version="4"))


def test_the_wait_for_an_ack_grows_while_none_comes_and_resets_on_one() -> None:
    """A kiosk resending every 20 s through a reconnect storm queued its resends behind
    the batches they repeated: the wait doubles, to four times the setting at most."""
    wait = AckWait(20.0)
    seen = [wait.current_s]
    for _ in range(4):
        wait.timed_out()
        seen.append(wait.current_s)
    assert seen == [20.0, 40.0, 80.0, 80.0, 80.0]
    wait.acked()
    assert wait.current_s == 20.0
