"""The central server process: ingest batches, ack after commit, push state down.

Batches come from `sync.receiver.Receiver` (MQTT), or on a RabbitMQ cluster from
`central.amqp_receiver.AmqpReceiver` (quorum queues over AMQP). Each goes through
`central.ingest` — verify, store idempotently, commit — and only then is its ack
published. A village whose ledger changed gets fresh `down/state` messages for
every kiosk in it, debounced (a backlog of a hundred batches from one kiosk
makes one state push, not a hundred), and again for every device when central
connects to the broker (retained, so a kiosk that comes online later gets it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from central import log_proofs, pushes, reservations, sequencer, tlog
from central.amqp_receiver import AmqpConfig, AmqpReceiver
from central.db import storage_error
from central.ingest import Ingest, IngestResult, Prepared
from central.sequencer import Sequencer
from central.state import build_village_states
from central.store import CentralStore
from greenpass.errors import StorageError
from sync import protocol as p
from sync import reserve_wire
from sync.keys import Ed25519PrivateKey
from sync.receiver import Outgoing, Receiver
from sync.transport import BrokerConfig

log = logging.getLogger(__name__)

POLL_CHANGES_S = 2.0


class CentralService:
    def __init__(
        self,
        store: CentralStore,
        broker: BrokerConfig,
        key: Ed25519PrivateKey,
        *,
        debounce_s: float = 1.0,
        min_interval_s: float = 5.0,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        log: tlog.LogSettings | None = tlog.LogSettings(),  # noqa: B008 - frozen
        log_process_url: str | None = None,
        amqp: AmqpConfig | None = None,
    ) -> None:
        self.store = store
        self.ingest = Ingest(store)  # keeps each device as last read, for the next batch
        self.key = key
        self.log = log  # None: this worker keeps no log (`--no-log`, for benchmarks)
        self._log_stop = threading.Event()
        self._log_thread: threading.Thread | None = None
        # The database's URL: the sequencer then runs in a child process on it
        # (`central.sequencer`, what `greenpass central` does), else in a thread here.
        self._sequencer = (
            Sequencer(log_process_url, key, log) if log is not None and log_process_url else None
        )
        self.debounce_s = debounce_s
        self.min_interval_s = min_interval_s
        self._last_push: dict[str, float] = {}  # village → monotonic time of last push
        self.now_ms = now_ms
        self._dirty: dict[str, float] = {}  # village → monotonic time of first change
        # Villages ingest stored entries for (village, monotonic time), in `_dirty` at
        # the next tick: ingest runs on another thread than statuses and the tick
        # (`Receiver(side_stage=True)`), which own the push bookkeeping below, under
        # `_push_lock`.
        self._stored: deque[tuple[str, float]] = deque()
        self._push_lock = threading.RLock()
        # device → its village: a kiosk whose own entries are in a newer checkpoint than
        # it holds (log_proofs.wants_proofs) gets its state alone, at the next tick.
        self._proofs_due: dict[str, str] = {}
        self._pushed: set[str] = set()  # devices this process has pushed a state to
        self._features: dict[str, frozenset[str]] = {}  # what each kiosk says it takes
        self._changes: dict[str, int] = {}  # village → changed_ms last seen
        self._next_poll = 0.0
        # Every village's state is due (central connected to the broker, but reading
        # the database failed): the next tick that can read it pushes them all.
        self._all_due = False
        # Villages due that need no claim (`central.pushes`): pushed for a kiosk, not a
        # change, or a change this worker claimed already whose push failed.
        self._unclaimed: set[str] = set()
        # With `amqp` the batches come from a RabbitMQ cluster's queues, not MQTT.
        self.receiver: Receiver | AmqpReceiver = (
            Receiver(
                broker,
                self.on_batch,
                self.on_status,
                tick=self.on_tick,
                on_connect=self.all_states,
                on_reserve=self.on_reserve,
                prepare_batch=self.prepare_batch,
                on_prepared=self.on_prepared,
                side_stage=True,
            )
            if amqp is None
            else AmqpReceiver(
                amqp,
                self.on_batch,
                self.on_status,
                on_reserve=self.on_reserve,
                tick=self.on_tick,
                on_connect=self.all_states,
            )
        )

    def start(self) -> None:
        self.receiver.start()
        self._start_log()

    def _start_log(self) -> None:
        if self._sequencer is not None:
            self._sequencer.start()
        elif self.log is not None and self._log_thread is None:
            self._log_stop.clear()
            self._log_thread = threading.Thread(
                target=self._log_loop, name="central-log", daemon=True
            )
            self._log_thread.start()

    def stop(self) -> None:
        self._log_stop.set()
        self.receiver.stop()
        if self._sequencer is not None:
            self._sequencer.stop()
        if self._log_thread is not None:
            self._log_thread.join(30)
            self._log_thread = None

    def run(self) -> None:
        self._start_log()
        try:
            self.receiver.run()
        finally:
            self._log_stop.set()
            if self._sequencer is not None:
                self._sequencer.stop()

    def _log_loop(self) -> None:
        """The log's sequencer, in a thread of its own: ingest (the receiver's thread)
        never waits for it, and it follows ingest about a second behind (central.tlog)."""
        assert self.log is not None
        sequencer.loop(self.store, self.key, self.log, self.now_ms, self._log_stop)

    # --- handlers: batches on the receiver's thread, statuses and the tick on its side
    # stage (`Receiver(side_stage=True)`), both on the AMQP worker's one thread -----------

    def on_batch(self, topic: str, payload: bytes) -> list[Outgoing]:
        return self._handled(self.ingest.batch(topic, payload, self.now_ms()))

    def prepare_batch(self, topic: str, payload: bytes) -> Callable[[], list[Outgoing]]:
        """`on_batch` in two stages (`Receiver.prepare_batch`): the checks now, on the
        receiver's first stage; the transaction when the returned handler runs, or
        with the batches waiting with it (`on_prepared`)."""
        return _ReadyBatch(self, topic, payload, self.ingest.prepare(topic, payload))

    def on_prepared(self, handlers: list[Callable[[], list[Outgoing]]]) -> list[Outgoing]:
        """Prepared batches waiting together (`Receiver.on_prepared`), in order: those
        `Ingest.batches` can, in one transaction. Their acks go out together once all
        are handled; once the database fails, the batches not yet stored get none
        (their kiosks resend), those stored before keep theirs."""
        items = [h.item for h in handlers if isinstance(h, _ReadyBatch)]
        if len(items) < len(handlers):  # not all made here: each on its own
            return [o for h in handlers for o in h()]
        out: list[Outgoing] = []
        try:
            for result in self.ingest.batches(items, self.now_ms()):
                out.extend(self._handled(result))
        except StorageError as exc:
            log.error("central: database unavailable, not acknowledging: %s", exc)
        return out

    def _handled(self, result: IngestResult) -> list[Outgoing]:
        out = []
        if result.ack is not None and result.device_id is not None:
            out.append(Outgoing(p.topic(result.device_id, p.ACK), p.encode_ack(result.ack)))
        if result.stored and result.village_id is not None:
            self._stored.append((result.village_id, time.monotonic()))
        return out

    def on_reserve(self, topic: str, payload: bytes) -> list[Outgoing]:
        """A kiosk asks to reverse another kiosk's entry (`central.reservations`)."""
        device_id = p.device_of(topic, reserve_wire.REQUEST)
        if device_id is None:
            return []
        try:
            reply = reservations.reserve(self.store.engine, device_id, payload, self.now_ms())
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"reserving a reversal for {device_id}") from exc
        return [Outgoing(p.topic(device_id, reserve_wire.REPLY), reserve_wire.encode(reply))]

    def on_status(self, topic: str, payload: bytes) -> None:
        with self._push_lock:
            self._on_status(topic, payload)

    def _on_status(self, topic: str, payload: bytes) -> None:
        served = False  # this kiosk has had a state from here, for what it takes now

        def proofs_due(conn: Connection, status: p.Status) -> bool:
            nonlocal served
            device_id = status.device_id  # the topic's, keep_status checked
            features = frozenset(status.features)
            changed = self._features.get(device_id, features) != features
            served = device_id in self._pushed and not changed
            return (
                served
                and p.FEATURE_LOG_PROOFS in features
                and log_proofs.wants_proofs_in(conn, device_id, status)
            )

        kept = self.store.keep_status(topic, payload, self.now_ms(), proofs_due)
        if kept is None:
            return
        device_id = kept.status.device_id
        self._features[device_id] = frozenset(kept.status.features)  # once kept
        if not served:
            # A kiosk enrolled since this process pushed states (or one it has not
            # served yet), or one whose new software takes more of the state (item
            # pictures): give it its state now rather than at the next change.
            self._dirty.setdefault(kept.village_id, 0.0)
            self._unclaimed.add(kept.village_id)  # for this kiosk, not a change
        elif kept.then:
            self._proofs_due[device_id] = kept.village_id

    def _poll_changes(self) -> None:
        """Villages changed by someone else: another central worker's ingest, or an
        operator's catalogue, rules or issuer-key change through the store."""
        for village, changed in self.store.village_changes().items():
            if self._changes.setdefault(village, changed) != changed:
                self._changes[village] = changed
                self._dirty.setdefault(village, time.monotonic())

    def on_tick(self) -> list[Outgoing]:
        with self._push_lock:
            while self._stored:
                village, at = self._stored.popleft()
                self._dirty.setdefault(village, at)
            return self._on_tick()

    def _on_tick(self) -> list[Outgoing]:
        now = time.monotonic()
        if self._all_due:
            for village in self._active_villages():
                self._dirty[village] = 0.0
                self._unclaimed.add(village)
                self._last_push.pop(village, None)
            self._all_due = False
        if now >= self._next_poll:
            self._poll_changes()
            self._next_poll = now + POLL_CHANGES_S
        # A change is pushed `debounce_s` after it happened, but a village is pushed at
        # most every `min_interval_s`: during a reconnect storm each village changes
        # with every batch, and ingest must keep the processor, not state pushes.
        due = [
            v
            for v, since in self._dirty.items()
            if now - since >= self.debounce_s
            and now - self._last_push.get(v, -1e9) >= self.min_interval_s
        ]
        out: list[Outgoing] = []
        for village in due:
            since = self._dirty.pop(village)
            self._last_push[village] = now  # also after a failure: tried again in a while
            mine = False  # this worker is to push it: claimed now, or needing no claim
            try:
                if village in self._unclaimed:
                    self._unclaimed.discard(village)
                elif not pushes.claim(self.store, village):
                    continue  # another worker pushes this change
                mine = True
                seen: list[int] = []
                out.extend(self.village_states(village, seen=seen))
                if seen and pushes.changed_ms(self.store, village) > seen[0]:
                    # Changed while built: another worker may publish that change
                    # before this older state. Push again, to be the last one.
                    self._dirty.setdefault(village, now)
                    self._unclaimed.add(village)
            except StorageError as exc:
                # Still due: dropped here, the village's kiosks would wait for its
                # next change (maybe days) for the balances this push carries. A
                # claim this worker made is its own: the next try needs none.
                self._dirty[village] = since
                if mine:
                    self._unclaimed.add(village)
                log.error("central: state push for %s postponed: %s", village, exc)
        for device, village in list(self._proofs_due.items()):
            if village in self._dirty:
                del self._proofs_due[device]  # its village's push is coming: it is in it
            elif now - self._last_push.get(village, -1e9) >= self.min_interval_s:
                self._last_push[village] = now
                try:
                    out.extend(self.village_states(village, only=device))
                except StorageError as exc:
                    # Kept due; and the states built above are still sent.
                    log.error("central: state push to %s postponed: %s", device, exc)
                    continue
                del self._proofs_due[device]
        return out

    def village_states(
        self, village_id: str, *, only: str | None = None, seen: list[int] | None = None
    ) -> list[Outgoing]:
        out = []
        for body in build_village_states(
            self.store, village_id, self.now_ms(), only=only, seen=seen
        ):
            self._pushed.add(body.device_id)
            out.append(
                Outgoing(
                    p.topic(body.device_id, p.STATE),
                    p.encode_state(body, self.key),
                    retain=True,
                )
            )
        return out

    def all_states(self) -> list[Outgoing]:
        """Every device's state (on each connection to the broker, which may have lost
        the retained ones). If the database cannot be read now, the ticks push them
        once it can, and the `StorageError` is raised for the receiver to log."""
        with self._push_lock:
            return self._all_states()

    def _all_states(self) -> list[Outgoing]:
        try:
            out: list[Outgoing] = []
            for village in self._active_villages():
                out.extend(self.village_states(village))
            return out
        except StorageError:
            self._all_due = True
            raise

    def _active_villages(self) -> list[str]:
        active = [d for d in self.store.devices() if d.status == "active"]
        # Read anyway: the first batch of each kiosk then needs no read of its own (a
        # reconnect storm right after central started made a thousand of them).
        self.ingest.remember(active)
        return sorted({d.village_id for d in active})


@dataclass(frozen=True)
class _ReadyBatch:
    """A batch as `CentralService.prepare_batch` made it: run alone, or with others by
    `on_prepared`."""

    service: CentralService
    topic: str
    payload: bytes
    ready: Prepared | None

    @property
    def item(self) -> tuple[str, bytes, Prepared | None]:
        return self.topic, self.payload, self.ready

    def __call__(self) -> list[Outgoing]:
        service = self.service
        return service._handled(
            service.ingest.batch(self.topic, self.payload, service.now_ms(), self.ready)
        )
