"""Central's MQTT side: take batches and statuses off the broker, hand them to a
handler, publish the acks and states it returns.

Several central processes may run this against one broker: batches arrive on
the MQTT v5 shared subscription, so each is delivered to one of them. MQTT 3.1.1
has no shared subscriptions: there central subscribes to the plain topics, and only
one worker may run (a RabbitMQ cluster's workers use `central.amqp_receiver`). The ack
is published only after the handler returns, and the handler returns only after
its database commit — the kiosk's `ok` means "stored centrally".
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from greenpass.errors import StorageError, TransportError
from sync import protocol as p
from sync import reserve_wire
from sync.transport import Backoff, BrokerConfig, Message, Transport, keep_connected

log = logging.getLogger(__name__)

STATUS_SUBSCRIPTION = f"$share/central/{p.TOPIC_ROOT}/+/{p.STATUS}"
RESERVE_SUBSCRIPTION = f"$share/central/{p.TOPIC_ROOT}/+/{reserve_wire.REQUEST}"
V311_SUBSCRIPTIONS = (
    f"{p.TOPIC_ROOT}/+/{p.BATCH}",
    f"{p.TOPIC_ROOT}/+/{p.STATUS}",
    f"{p.TOPIC_ROOT}/+/{reserve_wire.REQUEST}",
)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


# (topic, payload) → messages to publish (acks, states). Raises StorageError when the
# database is unavailable: then the kiosk gets no application ack and resends later.
Handler = Callable[[str, bytes], list[Outgoing]]
Tick = Callable[[], list[Outgoing]]
# (topic, payload) of a batch → the handler with its checks done: run on a thread of
# its own ahead of the handling thread, which meanwhile waits on the database for the
# batch before (see `Receiver`). It should not raise (if it does, the batch is handled
# by `on_batch`, whole) and should not write: it may read (central reads rules
# versions it has not seen yet).
Prepare = Callable[[str, bytes], Tick]

# While messages keep arriving, the tick (central's state pushes, mostly) waits for a
# moment without one, but at most this long: acks first. In a reconnect storm every
# batch changes its village, and pushing each village at each of its changes took a
# third of the receiver's time (py-spy); pushed later, one state carries many
# batches' changes. A kiosk learns another kiosk's deposits that much later at most.
BUSY_TICK_DELAY_S = 10.0
# Batches prepared ahead of the one being handled: enough to keep both stages busy,
# few enough that a worker killed holds little it prepared for nothing.
_AHEAD = 2
_STAGE_JOIN_S = 10.0


class Receiver:
    def __init__(
        self,
        broker: BrokerConfig,
        on_batch: Handler,
        on_status: Callable[[str, bytes], None],
        *,
        tick: Tick | None = None,
        on_connect: Tick | None = None,
        on_reserve: Handler | None = None,
        prepare_batch: Prepare | None = None,
        tick_s: float = 0.25,
        busy_tick_delay_s: float = BUSY_TICK_DELAY_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.broker = broker
        self.on_batch = on_batch
        # With it, batches are handled in two stages: `prepare_batch` on a thread of its
        # own (decoding, signature and entry checks: CPU), the handler it returns on
        # this receiver's thread (the transaction: mostly waiting on the database), so
        # the next batch is checked while this one is stored. In a drain the receiver
        # waited on PostgreSQL for 60 % of its time and checked for 20 % (py-spy).
        self.prepare_batch = prepare_batch
        self.on_status = on_status
        self.tick = tick
        self.on_connect = on_connect
        # Requests to reserve another kiosk's entry for a reversal (sync.reserve_wire).
        self.on_reserve = on_reserve
        self.tick_s = tick_s
        self.busy_tick_delay_s = busy_tick_delay_s
        self.backoff = backoff or Backoff(base_s=0.5, cap_s=15)
        self.stop_event = threading.Event()
        self.connected = threading.Event()
        self.handled = 0
        self.connects = 0  # connections made (accepted and subscribed): outages + 1
        self.retained_batches = 0  # ignored: see `_handle`
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="central-receiver", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        keep_connected(
            # PUBACK once handled, not on receipt: a worker killed mid-storm leaves the
            # batches it took but had not stored with the broker, which sends them
            # again when it is back (its persistent session), instead of each kiosk
            # waiting a minute to resend.
            lambda: Transport(self.broker, manual_ack=True),
            self._loop,
            subscriptions=(p.SHARED_BATCH_SUBSCRIPTION, STATUS_SUBSCRIPTION, RESERVE_SUBSCRIPTION)
            if self.broker.v5
            else V311_SUBSCRIPTIONS,
            backoff=self.backoff,
            stop=self.stop_event,
            name="central receiver",
            on_connected=self._connected,
            on_closing=lambda _t: self.connected.clear(),
        )

    def _connected(self, t: Transport) -> None:
        self.connects += 1
        self.connected.set()
        if self.on_connect is not None:
            # Guarded like every handler: a broker that comes back while the database
            # is away must not end this thread (the process would live on, deaf).
            self._send(t, self._guard(self.on_connect))

    def _loop(self, t: Transport) -> None:
        if self.prepare_batch is None:
            self._take(t, lambda s: (t.inbox.get(timeout=s), None), lambda: not t.inbox.empty())
            return
        stage = _PrepareStage(t.inbox, self.prepare_batch, self.tick_s)
        stage.start()
        try:
            self._take(t, stage.get, stage.busy)
        finally:
            stage.stop()

    def _take(
        self,
        t: Transport,
        get: Callable[[float], tuple[Message, Tick | None]],
        busy: Callable[[], bool],
    ) -> None:
        """The handling stage: messages from `get`, each with its prepared handler (None
        without a `_PrepareStage`), and the tick between them while not `busy`."""
        next_tick = time.monotonic() + self.tick_s
        while not self.stop_event.is_set():
            t.check_connected()
            try:
                item = get(self.tick_s)
            except queue.Empty:
                item = None
            if item is not None:
                msg, handler = item
                try:
                    self._handle(t, msg, handler)
                finally:
                    # Also after a failure: a batch central could not store now is
                    # resent by its kiosk, and an unacknowledged message holds one of
                    # the broker's few in-flight places for this connection.
                    t.ack(msg)
            now = time.monotonic()
            idle = not busy() or now >= next_tick + self.busy_tick_delay_s
            if self.tick is not None and now >= next_tick and idle:
                self._send(t, self._guard(self.tick))
                next_tick = time.monotonic() + self.tick_s

    def _handle(self, t: Transport, msg: Message, prepared: Tick | None = None) -> None:
        if msg.topic.endswith("/" + p.BATCH) and msg.retain:
            # A kiosk never retains a batch: a retained one is a device parking data
            # on the broker, handed to every worker at each (re)subscription. Its
            # kiosk resends whatever central has not acked, so nothing is lost.
            self.retained_batches += 1
            if self.retained_batches == 1 or self.retained_batches % 1000 == 0:
                log.warning("central: ignoring a retained batch on %s", msg.topic)
            return
        if msg.topic.endswith("/" + p.BATCH):
            out = self._guard(prepared or (lambda: self.on_batch(msg.topic, msg.payload)))
            self._send(t, out)
            self.handled += 1
        elif msg.topic.endswith("/" + reserve_wire.REQUEST) and self.on_reserve is not None:
            if not msg.retain:  # a retained request is stale by the time anyone reads it
                on_reserve = self.on_reserve
                self._send(t, self._guard(lambda: on_reserve(msg.topic, msg.payload)))
        elif msg.topic.endswith("/" + p.STATUS):

            def status() -> list[Outgoing]:
                self.on_status(msg.topic, msg.payload)
                return []

            self._guard(status)

    def _guard(self, fn: Callable[[], list[Outgoing] | None]) -> list[Outgoing]:
        try:
            return fn() or []
        except StorageError as exc:
            # No application ack: the kiosk keeps the entries and resends after its
            # ack timeout (the broker still gets its PUBACK).
            log.error("central: database unavailable, not acknowledging: %s", exc)
            return []

    @staticmethod
    def _send(t: Transport, out: list[Outgoing]) -> None:
        for o in out:
            t.publish_nowait(o.topic, o.payload, retain=o.retain)


class _PrepareStage:
    """The first stage of one connection's handling (`Receiver.prepare_batch`): takes the
    transport's inbox in arrival order and passes each message on, a batch with its
    prepared handler, through a queue of `_AHEAD`."""

    def __init__(self, inbox: queue.Queue[Message], prepare: Prepare, poll_s: float) -> None:
        self.inbox = inbox
        self.prepare = prepare
        self.poll_s = poll_s
        self.ready: queue.Queue[tuple[Message, Tick | None]] = queue.Queue(maxsize=_AHEAD)
        self.done = threading.Event()
        self.holding = False  # a message taken from the inbox and not yet in `ready`
        self.thread = threading.Thread(target=self._run, name="central-prepare", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        # Bounded: a prepare may be reading rules from a database that does not answer;
        # the thread is a daemon, and what it holds was never acknowledged to the broker.
        self.thread.join(_STAGE_JOIN_S)
        if self.thread.is_alive():
            log.warning("central: the prepare stage is still busy; leaving it behind")

    def busy(self) -> bool:
        """Messages wait for the handling stage (the tick waits while they do)."""
        return self.holding or not self.ready.empty() or not self.inbox.empty()

    def get(self, timeout_s: float) -> tuple[Message, Tick | None]:
        if not self.thread.is_alive():
            # Cannot happen (`_run` lets nothing out); if it did, a silent stall of
            # every later batch would be the worst outcome: connect again instead.
            raise TransportError("central's prepare stage ended; connecting again")
        return self.ready.get(timeout=timeout_s)

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                msg = self.inbox.get(timeout=self.poll_s)
            except queue.Empty:
                continue
            self.holding = True
            handler = None
            if msg.topic.endswith("/" + p.BATCH) and not msg.retain:
                try:
                    handler = self.prepare(msg.topic, msg.payload)
                except Exception:  # a bug in prepare: handle it whole, unprepared
                    log.exception("central: preparing a batch on %s failed", msg.topic)
            while not self.done.is_set():
                try:
                    self.ready.put((msg, handler), timeout=self.poll_s)
                    break
                except queue.Full:
                    continue
            self.holding = False
