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
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial

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
# Prepared batches waiting together, handled at once (one transaction: `central.ingest`),
# in order; the messages to publish for all of them. Given only what `Prepare` returned.
HandlePrepared = Callable[[list[Tick]], list[Outgoing]]

# While messages keep arriving, the tick (central's state pushes, mostly) waits for a
# moment without one, but at most this long: acks first. In a reconnect storm every
# batch changes its village, and pushing each village at each of its changes took a
# third of the receiver's time (py-spy); pushed later, one state carries many
# batches' changes. A kiosk learns another kiosk's deposits that much later at most.
BUSY_TICK_DELAY_S = 10.0
# Batches prepared ahead of the one being handled: enough to keep both stages busy,
# few enough that a worker killed holds little it prepared for nothing.
_AHEAD = 7
# Prepared batches handled at once (`on_prepared`): those waiting, up to this many.
_GROUP_MAX = 8
_STAGE_JOIN_S = 10.0
# Statuses waiting for the side stage: a reconnect storm's thousand kiosks each send
# one as they connect; past this the receiver waits (the broker holds the rest).
_SIDE_QUEUE = 10_000
_SIDE_POLL_S = 0.02  # a tick overdue while batches wait: how often to look again


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
        on_prepared: HandlePrepared | None = None,
        side_stage: bool = False,
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
        # With it, the prepared batches waiting when one is taken are handled with it,
        # at once: central stores them in one transaction (one commit, not one each).
        self.on_prepared = on_prepared
        # With it, statuses and the tick run on a thread of their own (`_SideStage`), not
        # between batches: the tick builds state pushes (log proofs for every kiosk of a
        # village), and a status is a few statements. In a storm with one worker they
        # took a third of the receiver's time (py-spy), every batch waiting behind them.
        self.side_stage = side_stage
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
        with ExitStack() as stages:
            get: Callable[[float], tuple[Message, Tick | None]]
            busy: Callable[[], bool]
            if self.prepare_batch is None:
                get, busy = lambda s: (t.inbox.get(timeout=s), None), lambda: not t.inbox.empty()
            else:
                stage = _PrepareStage(t.inbox, self.prepare_batch, self.tick_s)
                stage.start()
                stages.callback(stage.stop)
                get, busy = stage.get, stage.busy
            side = None
            if self.side_stage:
                side = _SideStage(
                    t, self.on_status, self.tick, self._guard,
                    self.tick_s, busy, self.busy_tick_delay_s,
                )  # fmt: skip
                side.start()
                stages.callback(side.stop)
            self._take(t, get, busy, side)

    def _take(
        self,
        t: Transport,
        get: Callable[[float], tuple[Message, Tick | None]],
        busy: Callable[[], bool],
        side: _SideStage | None,
    ) -> None:
        """The handling stage: messages from `get`, each with its prepared handler (None
        without a `_PrepareStage`), and the tick between them while not `busy` (on the
        `side` stage instead, when there is one)."""
        tick = self.tick if side is None else None
        next_tick = time.monotonic() + self.tick_s
        pending: tuple[Message, Tick | None] | None = None  # taken, not of the group before
        while not self.stop_event.is_set():
            t.check_connected()
            if side is not None:
                side.check_alive()
            item, pending = pending, None
            if item is None:
                try:
                    item = get(self.tick_s)
                except queue.Empty:
                    item = None
            if item is not None:
                group, taken, pending = self._group(item, get, side)
                try:
                    if len(group) == 1:
                        self._handle(t, group[0][0], group[0][1], side)
                    else:
                        assert self.on_prepared is not None
                        handlers = [h for _, h in group if h is not None]
                        self._send(t, self._guard(partial(self.on_prepared, handlers)))
                        self.handled += len(group)
                finally:
                    # Also after a failure: a batch central could not store now is
                    # resent by its kiosk, and an unacknowledged message holds one of
                    # the broker's few in-flight places for this connection.
                    for msg in taken:
                        t.ack(msg)
            now = time.monotonic()
            idle = not busy() or now >= next_tick + self.busy_tick_delay_s
            if tick is not None and now >= next_tick and idle:
                self._send(t, self._guard(tick))
                next_tick = time.monotonic() + self.tick_s

    def _group(
        self,
        first: tuple[Message, Tick | None],
        get: Callable[[float], tuple[Message, Tick | None]],
        side: _SideStage | None,
    ) -> tuple[
        list[tuple[Message, Tick | None]], list[Message], tuple[Message, Tick | None] | None
    ]:
        """`first`, and with `on_prepared` the prepared batches waiting after it; every
        message taken, to acknowledge in order once the group is handled (statuses
        among them go to the `side` stage meanwhile); and the message taken that ends
        the group (handled next), if any."""
        group, taken = [first], [first[0]]
        if self.on_prepared is None or not _prepared_batch(first):
            return group, taken, None
        while len(group) < _GROUP_MAX:
            try:
                item = get(0)
            except queue.Empty:
                break
            if side is not None and _status(item[0]):
                side.put(item[0], self.stop_event)
                taken.append(item[0])
            elif _prepared_batch(item):
                group.append(item)
                taken.append(item[0])
            else:
                return group, taken, item
        return group, taken, None

    def _handle(
        self,
        t: Transport,
        msg: Message,
        prepared: Tick | None = None,
        side: _SideStage | None = None,
    ) -> None:
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
        elif _status(msg) and side is not None:
            # Acknowledged to the broker once handed over: a status lost to a crash is
            # replaced by the kiosk's next one.
            side.put(msg, self.stop_event)
        elif _status(msg):

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


def _status(msg: Message) -> bool:
    return msg.topic.endswith("/" + p.STATUS)


def _prepared_batch(item: tuple[Message, Tick | None]) -> bool:
    msg, handler = item
    return handler is not None and msg.topic.endswith("/" + p.BATCH) and not msg.retain


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


class _SideStage:
    """Statuses and the tick of one connection, on a thread of their own
    (`Receiver(side_stage=True)`), publishing on the same transport (paho's publish is
    thread-safe: its network thread and the receiver's already share the client)."""

    def __init__(
        self,
        t: Transport,
        on_status: Callable[[str, bytes], None],
        tick: Tick | None,
        guard: Callable[[Callable[[], list[Outgoing] | None]], list[Outgoing]],
        tick_s: float,
        busy: Callable[[], bool],
        busy_tick_delay_s: float,
    ) -> None:
        """The tick every `tick_s`, as on the receiver's thread: while batches wait
        (`busy`) at most every `busy_tick_delay_s`. It no longer holds them back, but it
        still takes the processor and the database from them: a state then carries
        many batches' changes."""
        self.t = t
        self.on_status = on_status
        self.tick = tick
        self.guard = guard
        self.tick_s = tick_s
        self._busy = busy
        self._busy_delay_s = busy_tick_delay_s
        self.inbox: queue.Queue[Message] = queue.Queue(maxsize=_SIDE_QUEUE)
        self.closing = threading.Event()  # handle the statuses queued, then end
        self.done = threading.Event()  # end now
        self.thread = threading.Thread(target=self._run, name="central-side", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        # The statuses queued were acknowledged to the broker: handled before the stage
        # ends (a kiosk's last one, saying it goes offline, has no successor). Bounded,
        # like the prepare stage's: a database that does not answer costs them.
        self.closing.set()
        self.thread.join(_STAGE_JOIN_S)
        self.done.set()
        if self.thread.is_alive():
            log.warning(
                "central: the side stage is still busy; leaving it behind with %d statuses",
                self.inbox.qsize(),
            )

    def check_alive(self) -> None:
        if not self.thread.is_alive():
            # Cannot happen (`_run` lets nothing out); if it did, no state would be
            # pushed again: connect again instead, which starts a new one.
            raise TransportError("central's side stage ended; connecting again")

    def put(self, msg: Message, stop: threading.Event) -> None:
        while not stop.is_set() and not self.closing.is_set():
            try:
                self.inbox.put(msg, timeout=self.tick_s)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        next_tick = time.monotonic() + self.tick_s
        while not self.done.is_set():
            try:
                now = time.monotonic()
                idle = not self._busy() or now >= next_tick + self._busy_delay_s
                closing = self.closing.is_set()
                if self.tick is not None and now >= next_tick and idle and not closing:
                    try:
                        Receiver._send(self.t, self.guard(self.tick))
                    finally:  # also after a failure: tried again a tick later
                        next_tick = time.monotonic() + self.tick_s
                # Overdue while batches wait: look again for a moment without one soon.
                wait_s = next_tick - time.monotonic() if self.tick is not None else self.tick_s
                try:
                    msg = self.inbox.get(timeout=wait_s if wait_s > 0 else _SIDE_POLL_S)
                except queue.Empty:
                    if closing:
                        return
                    continue
                self.guard(partial(self.on_status, msg.topic, msg.payload))
            except TransportError as exc:
                # The connection is gone: the receiver's thread sees it too, and the
                # next connection's pushes (every state, on connecting) replace these.
                log.info("central: side stage: %s", exc)
            except Exception:  # a bug in a handler: logged, and the next one is handled
                log.exception("central: the side stage's handler failed")
