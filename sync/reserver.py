"""The kiosk's half of reserving another kiosk's entry for a reversal (`sync.reserve_wire`).

Staff at kiosk B name kiosk A's entry; the kiosk's thread calls `reserve`, which
publishes a request on B's `up/reverse` over the uplink's live connection and waits
a few seconds for central's reply on `down/reverse` (the uplink's thread hands it to
`on_reply`). No connection, or no reply in time, is a refusal that says the kiosk
needs the network: nothing is written without central's answer.

Offered only while central's acks name `ACCEPT_REF_DEVICE` (`enabled`), kept in the
ledger's `meta` like the other accept flags, so a restarted kiosk knows at once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from edge.ledger.store import Store
from greenpass.errors import GreenPassError, ProtocolError, Refused
from greenpass.record.targets import OtherEntry
from sync import protocol as p
from sync import reserve_wire as rw
from sync.transport import Transport

_ACCEPTS = "central_accepts_ref_device"
REPLY_TIMEOUT_S = 5.0


class Reserver:
    def __init__(
        self, store: Store, device_id: str, transport: Callable[[], Transport | None]
    ) -> None:
        self.store = store
        self.device_id = device_id
        self._transport = transport  # the uplink's live connection, None when offline
        self._on: bool | None = None
        self.enabled()  # read now, on the thread that builds the uplink: later ones only ask
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[rw.ReserveReply]]] = {}

    # --- what central takes --------------------------------------------------------------

    def enabled(self) -> bool:
        """Central takes reversals of another kiosk's entries (its acks say so)."""
        if self._on is None:
            row = self.store.conn.execute(
                "SELECT value FROM meta WHERE key = ?", (_ACCEPTS,)
            ).fetchone()
            self._on = row is not None and row[0] == "1"
        return self._on

    def on_ack(self, ack: p.Ack) -> None:
        on = p.ACCEPT_REF_DEVICE in ack.accepts
        if (on or ack.status in ("ok", "rejected")) and self.enabled() != on:
            with self.store.write() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (_ACCEPTS, "1" if on else "0"),
                )
            self._on = on

    # --- one request ---------------------------------------------------------------------

    def reserve(
        self,
        target_device: str,
        target_seq: int,
        staff_id: str,
        timeout_s: float = REPLY_TIMEOUT_S,
        *,
        peek: bool = False,
    ) -> OtherEntry:
        """Central's reservation of (target_device, target_seq) for this kiosk, or `Refused`
        (``needs_network`` when central cannot be asked or does not answer in time).
        `peek`: the same answer, but central reserves nothing."""
        if not self.enabled():
            raise Refused(
                "needs_network",
                "central has not said it takes reversals of other kiosks' entries "
                "(it may be older software, or this kiosk has not synced with it yet)",
            )
        t = self._transport()
        if t is None or not t.connected:
            raise Refused("needs_network", "reversing another kiosk's entry needs the network")
        request_id = str(uuid.uuid4())
        done = threading.Event()
        box: list[rw.ReserveReply] = []
        with self._lock:
            self._waiting[request_id] = (done, box)
        try:
            req = rw.ReserveRequest(
                device_id=self.device_id, request_id=request_id, target_device=target_device,
                target_seq=target_seq, staff_id=staff_id, peek=peek,
            )  # fmt: skip
            try:
                t.publish_nowait(p.topic(self.device_id, rw.REQUEST), rw.encode(req))
            except GreenPassError as exc:
                raise Refused("needs_network", f"central could not be asked: {exc}") from exc
            if not done.wait(timeout_s):
                raise Refused("needs_network", f"central did not answer within {timeout_s:g} s")
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)
        reply = box[0]
        if reply.status != "reserved" or reply.target is None:
            details = {"by": reply.by_device} if reply.by_device else {}
            raise Refused(reply.code or "refused", reply.reason or "central refused", **details)
        target = reply.target.other_entry()
        if (target.device_id, target.seq) != (target_device, target_seq):
            raise Refused("refused", "central answered for another entry")
        return target

    def on_reply(self, payload: bytes) -> None:
        """A reply on `down/reverse` (the uplink's thread): wake its request, if it waits."""
        try:
            reply = rw.decode_reply(payload)
        except ProtocolError:
            return
        if reply.device_id != self.device_id:
            return
        with self._lock:
            waiting = self._waiting.get(reply.request_id)
        if waiting is not None:
            done, box = waiting
            box.append(reply)
            done.set()
