"""Central on a RabbitMQ cluster: batches, statuses and reversal reservations from
quorum queues over AMQP.

Kiosks publish over MQTT 3.1.1 to any node; RabbitMQ routes `gp/v1/dev/D/up/batch`
(routing key `gp.v1.dev.D.up.batch` on `amq.topic`) into the quorum queue
`gp.central.batches` (statuses into `gp.central.status`, requests to reverse another
kiosk's entry into `gp.central.reserve`), replicated on three nodes. Every central
worker consumes the queues at once: RabbitMQ hands each
message to one of them — the competing consumers that MQTT 3.1.1, which has no
`$share`, cannot express. A message is acknowledged to RabbitMQ only after the
handler returned (its database commit done, its kiosk ack published), so a worker
killed mid-batch leaves it to another worker; ingest is idempotent, the kiosk gets
a duplicate `ok` at most.

Acks and states go back on `amq.topic`, where the MQTT plugin routes them into the
kiosk's session queue. They cannot be retained (RabbitMQ 3.10 keeps retained MQTT
messages per node, and AMQP cannot set them): a kiosk's persistent session queue
holds what it missed, and central pushes a state to any kiosk whose status shows
it has not had one from this worker (`CentralService.on_status`).

Same handler contract as `sync.receiver.Receiver`, which it replaces when
`greenpass central --amqp URL` is given.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pika.exceptions

from central.rabbit import (
    BATCH_KEY,
    BATCH_QUEUE,
    EXCHANGE,
    RESERVE_KEY,
    RESERVE_QUEUE,
    STATUS_KEY,
    STATUS_QUEUE,
)
from greenpass.errors import ConfigError, StorageError
from sync.receiver import BUSY_TICK_DELAY_S, Handler, Outgoing, Tick
from sync.transport import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AmqpConfig:
    urls: tuple[str, ...]  # one per node: amqp[s]://central:PASSWORD@HOST:PORT/%2F
    ca_cert: Path | None = None  # for amqps://; None: the system's trust store
    prefetch: int = 64  # unacknowledged messages a worker holds: the pipeline depth

    def __post_init__(self) -> None:
        if not self.urls:
            raise ConfigError("--amqp: give at least one amqp://USER:PASSWORD@HOST:PORT URL")
        for url in self.urls:
            if not url.startswith(("amqp://", "amqps://")):
                raise ConfigError(f"--amqp {url!r}: use amqp:// or amqps://")


def _params(url: str, ca_cert: Path | None) -> Any:
    params = pika.URLParameters(url)
    if url.startswith("amqps://"):
        ctx = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
        params.ssl_options = pika.SSLOptions(ctx)
    params.heartbeat = 30
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    return params


class AmqpReceiver:
    def __init__(
        self,
        cfg: AmqpConfig,
        on_batch: Handler,
        on_status: Callable[[str, bytes], None],
        *,
        on_reserve: Handler | None = None,
        tick: Tick | None = None,
        on_connect: Tick | None = None,
        tick_s: float = 0.25,
        busy_tick_delay_s: float = BUSY_TICK_DELAY_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.cfg = cfg
        self.on_batch = on_batch
        self.on_status = on_status
        self.on_reserve = on_reserve
        self.tick = tick
        self.on_connect = on_connect
        self.tick_s = tick_s
        self.busy_tick_delay_s = busy_tick_delay_s
        self.backoff = backoff or Backoff(base_s=0.5, cap_s=15)
        self.stop_event = threading.Event()
        self.connected = threading.Event()
        self.handled = 0
        self.connects = 0
        self._thread: threading.Thread | None = None
        self._next_url = 0
        self._next_tick = 0.0  # time.monotonic() of the next tick, set per session

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="central-amqp", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        """Connect to the nodes in turn; consume until the connection or `stop` ends."""
        while not self.stop_event.is_set():
            url = self.cfg.urls[self._next_url % len(self.cfg.urls)]
            self._next_url += 1
            conn: Any = None
            try:
                conn = pika.BlockingConnection(_params(url, self.cfg.ca_cert))
                self._session(conn)
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("central amqp: %s: %s", _where(url), exc or type(exc).__name__)
            finally:
                self.connected.clear()
                if conn is not None and conn.is_open:
                    # The node may be gone: then there is nothing to close politely.
                    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                        conn.close()
            self.stop_event.wait(self.backoff.next_delay())

    def _session(self, conn: Any) -> None:
        ch = conn.channel()
        declare_queues(ch)
        ch.basic_qos(prefetch_count=self.cfg.prefetch)
        ch.basic_consume(BATCH_QUEUE, lambda c, m, p, b: self._batch(c, m, b))
        ch.basic_consume(STATUS_QUEUE, lambda c, m, p, b: self._status(c, m, b))
        if self.on_reserve is not None:
            ch.basic_consume(RESERVE_QUEUE, lambda c, m, p, b: self._reserve(c, m, b))
        self.connects += 1
        self.backoff.reset()
        self.connected.set()
        if self.on_connect is not None:
            self._send(ch, self._guard(self.on_connect))
        self._next_tick = time.monotonic() + self.tick_s
        while not self.stop_event.is_set():
            before = self.handled
            conn.process_data_events(time_limit=self.tick_s)
            # As `sync.receiver` does: while batches wait, the pushes wait (up to
            # `busy_tick_delay_s`), acks first. More than one batch in a slice means
            # they were queueing, one alone only that they keep coming.
            self._tick_if_due(ch, busy=self.handled - before > 1)

    def _tick_if_due(self, ch: Any, *, busy: bool) -> None:
        now = time.monotonic()
        if self.tick is None or now < self._next_tick:
            return
        if busy and now < self._next_tick + self.busy_tick_delay_s:
            return
        self._send(ch, self._guard(self.tick))
        self._next_tick = time.monotonic() + self.tick_s

    def _deliver(self, ch: Any, method: Any, fn: Callable[[], list[Outgoing] | None]) -> bool:
        """Handle one message (`fn`), publish what it returns, then acknowledge it:
        False, and neither, once stopped. Under a steady flow pika dispatches message
        after message without returning to `_session`'s loop (each ack reads in what
        came meanwhile), so both the stop and a tick overdue past the cap are seen
        here; the messages not yet handled go back to the queue unacknowledged."""
        if self.stop_event.is_set():
            ch.stop_consuming()
            return False
        self._send(ch, self._guard(fn))
        # After the commit and the kiosk's ack: a worker lost before this line leaves
        # the message to another (ingest stores a batch once, a reservation is the same
        # answer again; the kiosk may get two `ok`s).
        ch.basic_ack(method.delivery_tag)
        self._tick_if_due(ch, busy=True)
        return True

    def _batch(self, ch: Any, method: Any, body: bytes) -> None:
        topic = method.routing_key.replace(".", "/")
        if self._deliver(ch, method, lambda: self.on_batch(topic, body)):
            self.handled += 1

    def _reserve(self, ch: Any, method: Any, body: bytes) -> None:
        topic, handler = method.routing_key.replace(".", "/"), self.on_reserve
        assert handler is not None  # consumed only with one
        self._deliver(ch, method, lambda: handler(topic, body))

    def _status(self, ch: Any, method: Any, body: bytes) -> None:
        topic = method.routing_key.replace(".", "/")
        self._deliver(ch, method, lambda: self.on_status(topic, body))

    def _guard(self, fn: Callable[[], list[Outgoing] | None]) -> list[Outgoing]:
        try:
            return fn() or []
        except StorageError as exc:
            # No kiosk ack: the kiosk resends after its ack timeout (the queue's copy is
            # acknowledged all the same: redelivering it now would fail the same way).
            log.error("central: database unavailable, not acknowledging: %s", exc)
            return []

    @staticmethod
    def _send(ch: Any, out: Sequence[Outgoing]) -> None:
        # Persistent, so the MQTT plugin delivers it at QoS 1. (No `x-mqtt-publish-qos`
        # header: pika sends an int as `signedint`, and 3.10's plugin crashes the
        # kiosk's connection on anything but a byte there.)
        props = pika.BasicProperties(delivery_mode=2)
        for o in out:
            ch.basic_publish(EXCHANGE, o.topic.replace("/", "."), o.payload, props)


def declare_queues(ch: Any) -> None:
    """Central's quorum queues and their bindings, declared by every worker at every
    connection (idempotent): a queue made while only one node was up would have one
    replica for ever (quorum membership is fixed when a queue is declared), so they
    are not in the definitions file a node loads at boot."""
    pairs = ((BATCH_QUEUE, BATCH_KEY), (STATUS_QUEUE, STATUS_KEY), (RESERVE_QUEUE, RESERVE_KEY))
    for queue, key in pairs:
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(queue, EXCHANGE, routing_key=key)


def _where(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
