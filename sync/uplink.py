"""The kiosk's uplink: sends the ledger home and applies what central sends down.

Store and forward (DESIGN §5): unsynced entries are `seq > acked_seq` in the
ledger itself. The uplink sends contiguous batches from `next_seq`, keeps at
most `window` batches in flight, and moves `acked_seq` only on an `ok` ack.
`gap` restarts from central's `expected_seq`; a missing ack (lost message,
broker restart, central down) restarts from `acked_seq + 1` after
`ack_timeout_s`. Central keys entries on `(device, seq)`, so a resend is never
counted twice. A kill at any moment loses nothing: the state that matters is in
the ledger file, and the rest is rebuilt from it at start.
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

from edge.central_state import CentralState, ItemRecord, VillagerRecord
from edge.ledger import Ledger
from greenpass import __version__
from greenpass.errors import GreenPassError, ProtocolError, TransportError
from sync import protocol as p
from sync.keys import Ed25519PrivateKey, Ed25519PublicKey
from sync.transport import Backoff, BrokerConfig, Message, Transport, keep_connected

log = logging.getLogger(__name__)


@dataclass
class UplinkStats:
    batches_sent: int = 0
    acks: int = 0
    gaps: int = 0
    timeouts: int = 0
    rejected: int = 0
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
            ItemRecord(i.item_id, i.name_zh, i.name_en, i.points_price, i.active)
            for i in body.catalogue
        ],
        rules_text=body.rules_text,
        issuer_keys=body.issuer_keys,
        revoked=body.revoked,
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
        self.health = health
        self.stats = UplinkStats()
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None  # the live connection (`online`)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Connected to the broker now: the kiosk's status strip and LEDs show it."""
        t = self._transport
        return t is not None and t.connected

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"uplink-{self.device_id}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        """Connect, sync, reconnect with backoff — until `stop_event` is set."""
        keep_connected(
            lambda: Transport(
                self.broker,
                will=(p.topic(self.device_id, p.STATUS), self._status_payload(online=False)),
            ),
            self._session,
            subscriptions=(p.topic(self.device_id, p.ACK), p.topic(self.device_id, p.STATE)),
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
        while not self.stop_event.is_set():
            t.check_connected()
            now = time.monotonic()
            if inflight and now - inflight[0][2] > self.ack_timeout_s:
                self.stats.timeouts += 1
                inflight.clear()
                next_seq = outbox.acked_seq() + 1
            while len(inflight) < self.window and now >= paused_until:
                sent = self._send(t, next_seq)
                if sent is None:
                    break
                inflight.append((next_seq, sent, now))
                next_seq = sent + 1
            try:
                msg = t.inbox.get(timeout=self.poll_s)
            except queue.Empty:
                msg = None
            if msg is not None:
                if msg.topic.endswith(p.ACK):
                    restart, pause = self._on_ack(msg, inflight)
                    if restart is not None:
                        next_seq = max(restart, outbox.acked_seq() + 1)
                    if pause:
                        paused_until = time.monotonic() + self.reject_pause_s
                elif msg.topic.endswith(p.STATE):
                    self._on_state(msg)
            if time.monotonic() - last_status >= self.status_every_s:
                self._publish_status(t, online=True)
                last_status = time.monotonic()

    def _send(self, t: Transport, first: int) -> int | None:
        outbox = self.ledger.outbox
        # Field values, not Entry objects: building those was a third of this path.
        rows = outbox.read_fields(first - 1, self.max_entries)
        if not rows:
            return None
        prev_h = outbox.hash_at(first - 1)
        if prev_h is None:  # cannot happen while seqs are gapless; refuse to guess
            raise TransportError(f"ledger has no entry {first - 1} to chain from")
        payload, n = p.encode_rows(
            self.device_id, rows, prev_h, self.key, self.ledger.clock.wall_ms()
        )
        t.publish_nowait(p.topic(self.device_id, p.BATCH), payload)
        self.stats.batches_sent += 1
        last: int = rows[n - 1][0][1]
        return last

    def _on_ack(
        self, msg: Message, inflight: deque[tuple[int, int, float]]
    ) -> tuple[int | None, bool]:
        """Where sending must restart (None: carry on), and whether to pause first."""
        try:
            ack = p.decode_ack(msg.payload)
        except ProtocolError as exc:
            log.warning("uplink %s: %s", self.device_id, exc)
            return None, False
        self.stats.acks += 1
        if ack.status == "ok":
            self.ledger.outbox.mark_acked(ack.acked_seq, self.ledger.clock.wall_ms())
            while inflight and inflight[0][1] <= ack.acked_seq:
                inflight.popleft()
            self.stats.last_error = ""
            return None, False
        inflight.clear()
        if ack.status == "gap":
            self.stats.gaps += 1
            return ack.expected_seq, False
        # bad_chain / bad_signature / rejected: resending at once would fail the same
        # way; say why in the status and try again after a pause (an operator may fix
        # central: re-enrol the key, un-revoke the device).
        self.stats.rejected += 1
        self.stats.last_error = f"central refused batch {ack.first_seq}..{ack.last_seq}: " + (
            f"{ack.status}: {ack.reason}"
        )
        log.error("uplink %s: %s", self.device_id, self.stats.last_error)
        return ack.expected_seq, True

    def _on_state(self, msg: Message) -> None:
        try:
            body = p.decode_state(msg.payload, self.central_key, self.device_id)
            if self.ledger.apply_state(to_central_state(body)):
                self.stats.states_applied += 1
        except GreenPassError as exc:
            self.stats.last_error = f"state from central not applied: {exc}"
            log.error("uplink %s: %s", self.device_id, self.stats.last_error)

    # --- status -------------------------------------------------------------------------

    def _status_payload(self, *, online: bool) -> bytes:
        b = self.ledger.outbox.backlog()
        try:
            free: int | None = shutil.disk_usage(Path(self.ledger.store.path).parent).free
        except OSError:
            free = None
        health = self.health() if self.health is not None else {}
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
                scale=health.get("scale", "unknown"),
                scanner=health.get("scanner", "unknown"),
                last_error=self.stats.last_error,
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
