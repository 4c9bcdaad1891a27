"""One MQTT connection (v5, or 3.1.1 for a clustered broker). paho-mqtt's callbacks
and return codes stay in here.

The owner (kiosk uplink, central receiver) sees three things: `connect()` that
returns or raises `TransportError`, `publish()` that returns once the broker has
the message (PUBACK) or raises, and incoming messages on a queue.

A `Transport` is one connection: when it is lost, `connected` goes false and
stays false. paho's own reconnecting is off: it would reconnect behind the
owner's back a second later, with its own fixed delays, and never resubscribe.
Reconnecting is `keep_connected`, the loop both ends run: a new `Transport` per
attempt, `Backoff` between attempts (capped, fully jittered exponential delays,
so a thousand kiosks coming back after a village power cut spread themselves
out), and the subscriptions made again on every connection.

`BrokerConfig.mqtt_version` picks the protocol: "5" (Mosquitto, the default) or
"3.1.1" (RabbitMQ's MQTT plugin speaks only that; docs/scale.md). The kiosk's
topics, payloads and acks are the same on both. 3.1.1 has no session expiry (the
broker keeps a persistent session until it is deleted), no reason codes on a PUBACK,
and a denied subscription is answered with SUBACK 0x80 or by closing the connection
(RabbitMQ): either ends `subscribe` with a `TransportError`.
"""

from __future__ import annotations

import logging
import queue
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from greenpass.errors import ConfigError, TransportError

log = logging.getLogger(__name__)

_LOSS_CHECK_S = 0.1  # how often a wait for the broker also checks the connection
MQTT_VERSIONS = ("5", "3.1.1")


@dataclass(frozen=True)
class BrokerConfig:
    url: str  # mqtts://host:port (mqtt:// only when `insecure` says so)
    username: str
    password: str
    client_id: str
    ca_cert: Path | None = None  # None: the system's trust store
    insecure: bool = False  # allow plain mqtt:// (tests of the refusal, local debugging)
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86_400  # queued acks survive a week offline
    clean_start: bool = False
    mqtt_version: str = "5"  # or "3.1.1" (MQTT_VERSIONS)

    @property
    def v5(self) -> bool:
        return self.mqtt_version == "5"

    def host_port(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtts", "mqtt") or not parts.hostname:
            raise ConfigError(f"broker url {self.url!r}: use mqtts://HOST:PORT")
        tls = parts.scheme == "mqtts"
        if not tls and not self.insecure:
            raise ConfigError(f"broker url {self.url!r}: plain MQTT is refused; use mqtts://")
        return parts.hostname, parts.port or (8883 if tls else 1883), tls


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    mid: int = 0  # for `Transport.ack` (a transport with manual acks)
    qos: int = 0


class Backoff:
    """Full-jitter exponential backoff: uniform(0, min(cap, base · 2^attempt))."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 60.0, rng: random.Random | None = None):
        self.base_s, self.cap_s, self.attempt = base_s, cap_s, 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = self._rng.uniform(0, min(self.cap_s, self.base_s * 2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return delay

    def reset(self) -> None:
        self.attempt = 0


def new_client(
    cfg: BrokerConfig, *, will: tuple[str, bytes] | None = None, manual_ack: bool = False
) -> mqtt.Client:
    """The paho client of one connection as a kiosk or central makes it (protocol,
    session, TLS, limits), with no callbacks set: `Transport`, and the reconnect storm's
    simulated kiosks (bench.storm_kiosks), which must speak exactly what a kiosk does."""
    _, _, tls = cfg.host_port()
    if cfg.mqtt_version not in MQTT_VERSIONS:
        raise ConfigError(f"mqtt_version {cfg.mqtt_version!r}: use one of {MQTT_VERSIONS}")
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id,
        protocol=mqtt.MQTTv5 if cfg.v5 else mqtt.MQTTv311,
        # 3.1.1 sets it here, v5 at each connect (`clean_start`).
        clean_session=None if cfg.v5 else cfg.clean_start,
        # One connection per Transport: a lost one ends paho's network thread, and
        # `keep_connected` makes the next, where it is counted, backed off and
        # resubscribed. (With paho's default the thread would reconnect after 1 s
        # on its own; `close()` would also wait up to 1 s for its sleep to end.)
        reconnect_on_failure=False,
        manual_ack=manual_ack,
    )
    c.username_pw_set(cfg.username, cfg.password)
    if tls:
        ctx = ssl.create_default_context(
            cafile=str(cfg.ca_cert) if cfg.ca_cert is not None else None
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        c.tls_set_context(ctx)
    if will is not None:
        c.will_set(will[0], will[1], qos=1, retain=True)
    c.max_inflight_messages_set(32)
    c.max_queued_messages_set(0)
    return c


def connect_args(cfg: BrokerConfig) -> dict[str, Any]:
    """Keyword arguments of paho's `connect` for `cfg` (keepalive; on v5 the clean
    start flag and the session expiry that keeps queued acks while a kiosk is away)."""
    if not cfg.v5:
        return {"keepalive": cfg.keepalive_s}
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = cfg.session_expiry_s
    return {"keepalive": cfg.keepalive_s, "clean_start": cfg.clean_start, "properties": props}


def no_delay(client: mqtt.Client) -> None:
    """Send each packet at once on a connected client's socket."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        # Batches and acks are small and each waits on the other: without this,
        # Nagle plus the peer's delayed ACK hold every ack for tens of ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class AckWait:
    """How long a kiosk waits for central's ack before it resends: `base_s` at first,
    doubled after each wait that ended with no ack, up to `GROWTH` times `base_s`, and
    `base_s` again once an ack comes. In a reconnect storm central reaches the last
    kiosks' batches after minutes; with a fixed wait every kiosk resent every 20 s, and
    the resends queued behind the batches they repeated, lengthening the storm
    (`python -m bench.sync_storm --kiosks 10000`)."""

    GROWTH = 4

    def __init__(self, base_s: float) -> None:
        self.base_s = self.current_s = base_s

    def timed_out(self) -> None:
        self.current_s = min(self.current_s * 2, self.base_s * self.GROWTH)

    def acked(self) -> None:
        self.current_s = self.base_s


class Transport:
    """A paho client for one broker, owned by one thread of the caller."""

    def __init__(
        self,
        cfg: BrokerConfig,
        *,
        will: tuple[str, bytes] | None = None,
        inbox: queue.Queue[Message] | None = None,
        manual_ack: bool = False,
    ) -> None:
        """`manual_ack`: a message received is acknowledged to the broker (PUBACK) only
        by `ack`, once the owner has handled it. Until then the broker holds it for
        this client's session and sends it again if the process dies."""
        self.cfg = cfg
        self.host, self.port, _ = cfg.host_port()
        self.inbox: queue.Queue[Message] = inbox if inbox is not None else queue.Queue()
        self._connected = threading.Event()
        self._result: ReasonCode | None = None
        self._done = threading.Event()
        self.session_present = False  # from the CONNACK: the broker kept our session
        c = new_client(cfg, will=will, manual_ack=manual_ack)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._client = c

    # paho callbacks (its network thread) -------------------------------------------------

    def _on_connect(
        self, _c: Any, _u: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, _p: Any
    ) -> None:
        self._result = reason
        if not reason.is_failure:
            self.session_present = flags.session_present
            self._connected.set()
        self._done.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._connected.clear()
        self._result = self._result or reason
        self._done.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(
            Message(msg.topic, bytes(msg.payload), bool(msg.retain), int(msg.mid), int(msg.qos))
        )

    # the owner's side ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True from the accepted CONNACK until the connection is lost or closed;
        never true again after that."""
        return self._connected.is_set()

    def check_connected(self) -> None:
        """Raise `TransportError` once the connection is gone (sessions poll this)."""
        if not self._connected.is_set():
            raise TransportError(f"connection to the broker {self.cfg.url} lost")

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect once (no retries: that is `keep_connected`). Afterwards
        `session_present` says whether the broker still had this client's session
        (its subscriptions and the messages queued while we were away)."""
        self._done.clear()
        self._result = None
        try:
            self._client.connect(self.host, self.port, **connect_args(self.cfg))
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot reach broker {self.cfg.url}: {exc}") from exc
        no_delay(self._client)
        self._client.loop_start()
        if not self._done.wait(timeout_s) or not self.connected:
            reason = self._result
            self.close()
            if reason is None:
                raise TransportError(f"broker {self.cfg.url} did not answer within {timeout_s} s")
            raise TransportError(f"broker {self.cfg.url} refused {self.cfg.username!r}: {reason}")

    def subscribe(self, *topics: str, timeout_s: float = 10.0) -> None:
        done = threading.Event()
        granted: list[ReasonCode] = []

        def on_subscribe(_c: Any, _u: Any, _m: Any, codes: list[ReasonCode], _p: Any) -> None:
            granted.extend(codes)
            done.set()

        self._client.on_subscribe = on_subscribe
        if self.cfg.v5:
            rc, _ = self._client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        else:
            rc, _ = self._client.subscribe([(t, 1) for t in topics])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"subscribe failed: {mqtt.error_string(rc)}")
        deadline = time.monotonic() + timeout_s
        while not done.wait(_LOSS_CHECK_S):
            self.check_connected()
            if time.monotonic() >= deadline:
                raise TransportError("broker did not confirm the subscription")
        refused = [str(c) for c in granted if c.is_failure]
        if refused:
            raise TransportError(f"broker refused subscription to {topics}: {refused}")

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout_s: float = 10.0
    ) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        deadline = time.monotonic() + timeout_s
        try:
            while not info.is_published():
                # A lost connection ends the wait at once: no PUBACK can come on it.
                self.check_connected()
                if time.monotonic() >= deadline:
                    raise TransportError(f"no PUBACK for {topic} within {timeout_s} s")
                info.wait_for_publish(_LOSS_CHECK_S)
        except (RuntimeError, ValueError) as exc:
            raise TransportError(f"publish to {topic} failed: {exc}") from exc

    def publish_nowait(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue a QoS 1 publish without waiting (the application ack is the truth)."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def ack(self, msg: Message) -> None:
        """Acknowledge a message handled (a transport made with `manual_ack`). On a
        connection since lost it is not sent: the broker sends the message again."""
        self._client.ack(msg.mid, msg.qos)

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
            self._connected.clear()


def keep_connected(
    new_transport: Callable[[], Transport],
    session: Callable[[Transport], None],
    *,
    subscriptions: Sequence[str],
    backoff: Backoff,
    stop: threading.Event,
    name: str,
    on_connected: Callable[[Transport], None] | None = None,
    on_error: Callable[[TransportError], None] | None = None,
    on_closing: Callable[[Transport], None] | None = None,
) -> None:
    """Connect, subscribe, run `session`; after any outage back off and do it again,
    until `stop` is set. The connect loop of the kiosk uplink and central receiver.

    `session(t)` runs while `t` is connected and raises `TransportError` (as
    `t.check_connected()` does) once it is not; it may also return, when `stop` is
    set. Each connection is a new `Transport` from `new_transport()`, which never
    reconnects by itself, so every outage ends `session` and is seen here.

    The subscriptions are made on every connection, whatever the CONNACK's
    `session_present` says. A session the broker lost (expired, or a crash before it
    was saved) has none; and a session it says it kept may not have them either:
    Mosquitto 2.0 restores a persistent session after a restart without its shared
    subscriptions (`$share/...`, central's), so central would receive nothing.
    Subscribing again to the same filters replaces them (a kiosk gets the retained
    state once more, and ignores it when it is not newer).
    `on_connected(t)` runs once subscribed, before `session` (`t.session_present`
    tells whether messages queued while away will come); `on_error` gets each
    failure (also logged as a warning); `on_closing(t)` runs before each close,
    connected or not.
    """
    while not stop.is_set():
        t = new_transport()
        try:
            t.connect()
            if not t.session_present:
                log.info("%s: the broker had no session for us; subscribing afresh", name)
            t.subscribe(*subscriptions)
            backoff.reset()
            if on_connected is not None:
                on_connected(t)
            session(t)
        except TransportError as exc:
            log.warning("%s: %s", name, exc)
            if on_error is not None:
                on_error(exc)
        finally:
            try:
                if on_closing is not None:
                    on_closing(t)
            finally:
                t.close()
        stop.wait(backoff.next_delay())
