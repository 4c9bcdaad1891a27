"""The kiosk's uplink: sends the ledger home and applies what central sends down.

Store and forward (docs/design.md §5): unsynced entries are `seq > acked_seq` in the
ledger itself. The uplink sends contiguous batches from `next_seq`, keeps at
most `window` batches in flight, and moves `acked_seq` only on an `ok` ack.
`gap` restarts from central's `expected_seq`; a missing ack (lost message,
broker restart, central down) restarts from `acked_seq + 1` after
`ack_timeout_s`, doubled after each wait with no ack up to four times it
(`sync.transport.AckWait`: a storm is not made longer by its own resends).
Central keys entries on `(device, seq)`, so a resend is never counted twice. A
kill at any moment loses nothing: the state that matters is in the ledger file,
and the rest is rebuilt from it at start.

Every ack is judged against the ledger first (`sync.acks`). One that cannot be
read or is impossible (beyond the head, backwards, for another device …) is
refused: nothing is marked, it becomes a *sync fault* (a code and a message in
the status, the kiosk page and `doctor`), logged once, and the uplink pauses
(jittered, growing) and then asks central again from its own `acked_seq`: that
is the one point it knows central confirmed after a commit, and a resend from
there is harmless. With nothing left to send it resends its last acked entry,
which central re-acks as a duplicate. The fault stands until central's next
sane `ok`. The thread runs under a `Supervisor`: a crash is a fault too, and
the uplink is restarted; `failed` says when it gave up.

Each state from central is first cross-checked against central's transparency log
(`sync.log_check`); what the check holds goes into the status (`log_size`, `log_seq`,
`log_fault`), at once when it changes.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.ledger.central_state import CentralState, ItemRecord, VillagerRecord
from edge.ledger.ledger import Ledger
from greenpass import __version__
from greenpass.errors import BadAck, GreenPassError, TransportError
from greenpass.record.targets import OtherEntry
from sync import protocol as p
from sync import reserve_wire
from sync.acks import judge_ack, refusal_fault
from sync.faults import Faults
from sync.head_signing import HeadSigning
from sync.keys import Ed25519PrivateKey, Ed25519PublicKey
from sync.log_check import LogChecker
from sync.personal_sender import PersonalSender
from sync.reserver import Reserver
from sync.supervisor import RestartPolicy, Supervisor
from sync.transport import AckWait, Backoff, BrokerConfig, Message, Transport, keep_connected

log = logging.getLogger(__name__)


@dataclass
class UplinkStats:
    batches_sent: int = 0
    acks: int = 0
    gaps: int = 0
    timeouts: int = 0
    rejected: int = 0
    bad_acks: int = 0  # refused as impossible or unreadable (each a sync fault)
    late_acks: int = 0  # overtaken by a newer answer: ignored
    crashes: int = 0  # of the uplink thread, each followed by a restart
    states_applied: int = 0
    connects: int = 0  # connections made (accepted and subscribed): outages + 1
    new_sessions: int = 0  # … on which the broker had no session for us (nothing queued)
    last_error: str = ""
    health: dict[str, str] = field(default_factory=dict)


def to_central_state(body: p.StateBody) -> CentralState:
    return CentralState(
        version=body.version,
        included_seq=body.included_seq,
        balances=body.balances,
        villagers=[
            VillagerRecord(v.passbook_id, v.household_name, v.village, v.status)
            for v in body.villagers
        ],
        catalogue=None
        if body.catalogue is None
        else [
            ItemRecord(i.item_id, i.name_zh, i.name_en, i.points_price, i.active, i.picture)
            for i in body.catalogue
        ],
        rules_text=body.rules_text,
        issuer_keys=body.issuer_keys,
        revoked=body.revoked,
        erased=body.erased,
        reversed_elsewhere=body.reversed_elsewhere,
    )


class Uplink:
    """Runs in its own thread with its OWN `Ledger` on the kiosk's file (one SQLite
    connection per thread; WAL lets the kiosk write while the uplink reads)."""

    def __init__(
        self,
        ledger: Ledger,
        key: Ed25519PrivateKey,
        broker: BrokerConfig,
        *,
        central_key: Ed25519PublicKey,
        window: int = 2,
        max_entries: int = p.MAX_ENTRIES,
        ack_timeout_s: float = 20.0,
        poll_s: float = 0.5,
        status_every_s: float = 60.0,
        reject_pause_s: float = 60.0,
        backoff: Backoff | None = None,
        fault_backoff: Backoff | None = None,
        restart: RestartPolicy | None = None,
        health: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.ledger = ledger
        self.device_id = ledger.device_id
        self.key = key
        self.broker = broker
        self.central_key = central_key
        self.window = window
        self.max_entries = max_entries
        self.ack_timeout_s = ack_timeout_s
        self.poll_s = poll_s
        self.status_every_s = status_every_s
        self.reject_pause_s = reject_pause_s
        self.backoff = backoff or Backoff()
        # Pauses after a refused ack, growing while they repeat: central is not asked
        # again at once by every kiosk it confuses, nor the village link filled.
        self.fault_backoff = fault_backoff or Backoff(2.0, 300.0)
        self.restart = restart
        self.health = health
        self.stats = UplinkStats()
        self.stop_event = threading.Event()
        self._supervisor: Supervisor | None = None
        self._transport: Transport | None = None  # the live connection (`online`)
        self.faults = Faults(self.device_id, ledger.clock.wall_ms)
        self.log_check = LogChecker(ledger, central_key)
        self._fresh: set[int] = set()  # first seqs sent since acked_seq last moved
        self.personal = PersonalSender(ledger.store, self.device_id, key)
        self.heads = HeadSigning(ledger.store)
        self.reserver = Reserver(ledger.store, self.device_id, lambda: self._transport)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Connected to the broker now: the kiosk's status strip and LEDs show it."""
        t = self._transport
        return t is not None and t.connected

    @property
    def sync_fault(self) -> p.SyncFault | None:
        """Why sync is stuck, until central's next sane `ok`; None when it is not."""
        return self.faults.current

    @property
    def failed(self) -> str | None:
        """Why the uplink thread is gone for good (the kiosk then exits); None otherwise."""
        return None if self._supervisor is None else self._supervisor.failed

    @property
    def other_reversals(self) -> bool:
        """Central takes reversals of other kiosks' entries (`sync.reserver`)."""
        return self.reserver.enabled()

    def reserve_reversal(
        self, target_device: str, target_seq: int, staff_id: str, *, peek: bool = False
    ) -> OtherEntry:
        """Ask central, now, to reserve another kiosk's entry for this kiosk to reverse
        (`peek`: only whether it would, and the entry); `Refused` (``needs_network``
        among others) if it is not."""
        return self.reserver.reserve(target_device, target_seq, staff_id, peek=peek)

    def start(self) -> None:
        """Run the uplink in its own thread, restarted after a crash (`Supervisor`)."""
        self._supervisor = Supervisor(
            self.run,
            name=f"uplink-{self.device_id}",
            stop=self.stop_event,
            policy=self.restart,
            on_crash=self._crashed,
            on_give_up=self._gave_up,
        )
        self._supervisor.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout_s)

    def run(self) -> None:
        """Connect, sync, reconnect with backoff — until `stop_event` is set."""
        keep_connected(
            lambda: Transport(
                self.broker,
                will=(p.topic(self.device_id, p.STATUS), self._status_payload(online=False)),
            ),
            self._session,
            subscriptions=(
                p.topic(self.device_id, p.ACK),
                p.topic(self.device_id, p.STATE),
                p.topic(self.device_id, reserve_wire.REPLY),
            ),
            backoff=self.backoff,
            stop=self.stop_event,
            name=f"uplink {self.device_id}",
            on_connected=self._connected,
            on_error=self._failed,
            on_closing=self._closing,
        )

    def _connected(self, t: Transport) -> None:
        self.stats.connects += 1
        if not t.session_present:
            self.stats.new_sessions += 1

    def _failed(self, exc: TransportError) -> None:
        self.stats.last_error = str(exc)

    def _closing(self, t: Transport) -> None:
        if self.stop_event.is_set() and t.connected:
            self._publish_status(t, online=False)

    def _crashed(self, exc: Exception, in_a_row: int) -> None:
        self.stats.crashes += 1
        self._set_fault(
            "uplink_crashed",
            f"the sync thread crashed ({type(exc).__name__}: {exc}) and was restarted "
            f"({in_a_row} in a row)",
        )

    def _gave_up(self, exc: Exception, in_a_row: int) -> None:
        self._set_fault(
            "uplink_dead",
            f"the sync thread crashed {in_a_row} times in a row ({type(exc).__name__}: "
            f"{exc}); the kiosk exits so that systemd restarts it",
        )

    # --- one connected session ----------------------------------------------------------

    def _session(self, t: Transport) -> None:
        """Send from `acked_seq + 1` with an empty window, whatever the last connection
        had in flight: after an outage nothing says which batches reached central or
        which acks are still to come (a crashed broker may have lost either). Central
        re-acks what it already holds, and never stores it twice."""
        self._transport = t
        self._publish_status(t, online=True)
        outbox = self.ledger.outbox
        next_seq = outbox.acked_seq() + 1
        inflight: deque[tuple[int, int, float]] = deque()  # first, last, sent at (monotonic)
        paused_until = 0.0
        last_status = time.monotonic()
        ack_wait = AckWait(self.ack_timeout_s)
        while not self.stop_event.is_set():
            t.check_connected()
            now = time.monotonic()
            if inflight and now - inflight[0][2] > ack_wait.current_s:
                self.stats.timeouts += 1
                ack_wait.timed_out()
                inflight.clear()
                next_seq = outbox.acked_seq() + 1
            while len(inflight) < self.window and now >= paused_until:
                sent = self._send(t, next_seq)
                if sent is None:
                    break
                inflight.append((next_seq, sent, now))
                next_seq = sent + 1
            if (
                not inflight
                and now >= paused_until
                and (self.faults.current is not None or self.personal.due(outbox.acked_seq()))
            ):
                # Nothing left to send, but central must say whether the link works, or
                # must still get personal records of enrolments it already holds:
                # resend the last acked entry, which it re-acks as a duplicate.
                acked = outbox.acked_seq()
                if acked > 0 and self._send(t, acked, limit=1) is not None:
                    inflight.append((acked, acked, now))
            try:
                msg = t.inbox.get(timeout=self.poll_s)
            except queue.Empty:
                msg = None
            if msg is not None:
                if msg.topic.endswith(p.ACK):
                    ack_wait.acked()  # central answers: back to the short wait
                    restart, pause_s = self._on_ack(msg, inflight)
                    if restart is not None:
                        next_seq = max(restart, outbox.acked_seq() + 1)
                    if pause_s > 0:
                        paused_until = time.monotonic() + pause_s
                elif msg.topic.endswith(p.STATE):
                    self._on_state(msg)
                elif msg.topic.endswith(reserve_wire.REPLY):
                    self.reserver.on_reply(msg.payload)
            due = self.faults.take_due()
            due = self.log_check.take_due() or due
            if due or time.monotonic() - last_status >= self.status_every_s:
                self._publish_status(t, online=True)
                last_status = time.monotonic()

    def _send(self, t: Transport, first: int, limit: int | None = None) -> int | None:
        outbox = self.ledger.outbox
        # Field values, not Entry objects: building those was a third of this path.
        rows = outbox.read_fields(first - 1, limit or self.max_entries)
        if not rows:
            return None
        prev_h = outbox.hash_at(first - 1)
        if prev_h is None:  # cannot happen while seqs are gapless; refuse to guess
            raise TransportError(f"ledger has no entry {first - 1} to chain from")
        now_ms, signed = self.ledger.clock.wall_ms(), self.heads.enabled()
        payload, n = p.encode_rows(self.device_id, rows, prev_h, self.key, now_ms, sign_head=signed)
        payload, n = self.personal.encode(rows, n, payload, prev_h, now_ms, sign_head=signed)
        last: int = rows[n - 1][0][1]
        t.publish_nowait(p.topic(self.device_id, p.BATCH), payload)
        self.stats.batches_sent += 1
        if len(self._fresh) < 10_000:  # bounded: past it, a backwards gap passes as late
            self._fresh.add(first)
        return last

    def _on_ack(
        self, msg: Message, inflight: deque[tuple[int, int, float]]
    ) -> tuple[int | None, float]:
        """Where sending must restart (None: carry on), and how long to pause first."""
        outbox = self.ledger.outbox
        acked = outbox.acked_seq()
        try:
            judged = judge_ack(
                msg.payload,
                device_id=self.device_id,
                acked_seq=acked,
                head_seq=self.ledger.head()[0],
                fresh=self._fresh,
            )
        except BadAck as exc:
            # Refused: nothing is marked. Pause, then ask central again from the one
            # point it is known to have confirmed (resending is harmless, central is
            # idempotent); a one-off bad ack is then answered by a sane one.
            self.stats.bad_acks += 1
            self._set_fault(exc.code, str(exc))
            inflight.clear()
            return acked + 1, self.fault_backoff.next_delay()
        ack = judged.ack
        self.stats.acks += 1
        self.personal.on_ack(ack)
        self.heads.on_ack(ack)
        self.reserver.on_ack(ack)
        if judged.late:
            self.stats.late_acks += 1
            log.debug("uplink %s: a late %s ack ignored", self.device_id, ack.status)
            if ack.status == "gap":  # what it refused may be in flight: resend it
                inflight.clear()
                return acked + 1, 0.0
            return None, 0.0
        if ack.status == "ok":
            if outbox.mark_acked(ack.acked_seq, self.ledger.clock.wall_ms()):
                self._fresh.clear()
            while inflight and inflight[0][1] <= ack.acked_seq:
                inflight.popleft()
            self._clear_fault()
            return None, 0.0
        inflight.clear()
        if ack.status == "gap":
            self.stats.gaps += 1
            return ack.expected_seq, 0.0
        # bad_chain / bad_signature / rejected: resending at once would fail the same
        # way; say why in the status and try again after a pause (an operator may fix
        # central: re-enrol the key, un-revoke the device).
        self.stats.rejected += 1
        refused = refusal_fault(ack)
        self._set_fault(refused.code, str(refused))
        return ack.expected_seq, self.reject_pause_s

    def _set_fault(self, code: str, message: str) -> None:
        self.stats.last_error = message  # what centrals that predate `sync_fault` show
        self.faults.set(code, message)

    def _clear_fault(self) -> None:
        self.stats.last_error = ""
        self.fault_backoff.reset()
        self.faults.clear()

    def _on_state(self, msg: Message) -> None:
        try:
            body = p.decode_state(msg.payload, self.central_key, self.device_id)
            # Central's log is judged first; a failure is a log fault, not a refusal: the
            # state is still applied (sync.log_check says why).
            self.log_check.check(body)
            if self.ledger.apply_state(to_central_state(body)):
                self.stats.states_applied += 1
        except GreenPassError as exc:
            self.stats.last_error = f"state from central not applied: {exc}"
            log.error("uplink %s: %s", self.device_id, self.stats.last_error)

    # --- status -------------------------------------------------------------------------

    def _status_payload(self, *, online: bool) -> bytes:
        b = self.ledger.outbox.backlog()
        try:
            disk = shutil.disk_usage(Path(self.ledger.store.path).parent)
            free: int | None = disk.free
            total: int | None = disk.total
        except OSError:
            free = total = None
        health = self.health() if self.health is not None else {}
        log_size, log_seq, log_fault = self.log_check.status()
        return p.encode_status(
            p.Status(
                device_id=self.device_id,
                online=online,
                ts_ms=self.ledger.clock.wall_ms(),
                version=__version__,
                backlog=b.depth,
                oldest_unsynced_ms=b.oldest_unsynced_ms,
                acked_seq=b.acked_seq,
                head_seq=b.head_seq,
                free_disk_bytes=free,
                disk_bytes=total,
                scale=health.get("scale", "unknown"),
                scanner=health.get("scanner", "unknown"),
                last_error=self.stats.last_error,
                sync_fault=self.faults.current,
                features=list(p.FEATURES),
                log_size=log_size,
                log_seq=log_seq,
                log_fault=log_fault,
                clock_ok=self.ledger.clock.clock_ok(),
                printer=health.get("printer"),
            )
        )

    def _publish_status(self, t: Transport, *, online: bool) -> None:
        try:
            t.publish(
                p.topic(self.device_id, p.STATUS),
                self._status_payload(online=online),
                retain=True,
                timeout_s=5,
            )
        except TransportError as exc:
            log.warning("uplink %s: status not published: %s", self.device_id, exc)
