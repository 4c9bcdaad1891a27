"""Reserving another kiosk's entry at central before reversing it (docs/design.md §3, §5).

    gp/v1/dev/<B>/up/reverse    kiosk B → central   `ReserveRequest`, JSON
    gp/v1/dev/<B>/down/reverse  central → kiosk B   `ReserveReply`, JSON

Kiosk B cannot see kiosk A's entries offline, and two kiosks must never both reverse
one entry, so B asks central first, online, on its own topics (the broker lets each
kiosk publish and read only its own). Central checks the target (same village, a kind
one kiosk may reverse of another's, not reversed or reserved by anyone else), records
the reservation for B in the transaction that checks it, and answers with the fields
B's reversal must negate. A repeated request of B for the same target gets the same
answer; another kiosk's is refused. Offered only by a central whose acks name
`ACCEPT_REF_DEVICE`. Small JSON, readable with `mosquitto_sub`, like acks; not signed:
the broker already binds the topic to the device's login, and what B then writes is
checked again when its batch arrives (`central.recheck_state`).
"""

from __future__ import annotations

import msgspec

from greenpass.errors import ProtocolError
from greenpass.record.entries import Kind
from greenpass.record.targets import OtherEntry
from sync.envelope import DECODE_ERRORS, VERSION

REQUEST = "up/reverse"
REPLY = "down/reverse"
MAX_PAYLOAD = 4 * 1024  # a request or reply is a few hundred bytes; more is not one

# Why central refused (ReserveReply.code); docs/staff.md says each in staff's words.
REFUSALS = {
    "not_found": "central holds no such entry (not synced yet, or a wrong id)",
    "other_village": "the entry belongs to another village",
    "not_reversible": "that kind of entry cannot be reversed at another kiosk",
    "already_reversed": "the entry was already reversed",
    "own_entry": "the entry is this kiosk's own: reverse it from the recent list",
    "unknown_device": "central does not know this kiosk, or it is revoked",
    "bad_request": "the request could not be read",
}


class ReserveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    v: int = VERSION
    device_id: str  # the asking kiosk: must be the topic's
    request_id: str  # echoed in the reply, so a late reply to an old request is ignored
    target_device: str
    target_seq: int
    staff_id: str
    # Only look: the same checks and answer, but nothing is reserved. The staff screen
    # looks first and reserves when staff confirm, so a cancelled confirmation leaves
    # no reservation behind to block the entry's own kiosk.
    peek: bool = False


class WireTarget(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`greenpass.record.targets.OtherEntry` on the wire."""

    device_id: str
    seq: int
    kind: str
    passbook_id: str | None
    category: str | None
    grams: int | None
    points: int
    co2e_g: int
    item_id: str | None
    qty: int | None
    rules_version: str | None
    wall_ms: int

    def other_entry(self) -> OtherEntry:
        return OtherEntry(
            self.device_id, self.seq, Kind(self.kind), self.passbook_id, self.category,
            self.grams, self.points, self.co2e_g, self.item_id, self.qty,
            self.rules_version, self.wall_ms,
        )  # fmt: skip


class ReserveReply(msgspec.Struct, kw_only=True):
    v: int = VERSION
    device_id: str
    request_id: str
    status: str  # reserved / refused
    code: str = ""  # for a refusal: one of REFUSALS
    reason: str = ""
    # For a refusal of a target reversed already: who has it (device and its reversal's
    # seq, 0 while only reserved), so staff can be told where.
    by_device: str = ""
    target: WireTarget | None = None


_json = msgspec.json.Encoder()
_request = msgspec.json.Decoder(ReserveRequest)
_reply = msgspec.json.Decoder(ReserveReply)


def encode(message: ReserveRequest | ReserveReply) -> bytes:
    return _json.encode(message)


def decode_request(payload: bytes) -> ReserveRequest:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError("rejected", f"a reserve request of {len(payload)} bytes")
    try:
        req = _request.decode(payload)
    except DECODE_ERRORS as exc:
        raise ProtocolError("rejected", f"malformed reserve request: {exc}") from exc
    if req.target_seq < 1 or not req.target_device or not req.request_id:
        raise ProtocolError("rejected", "a reserve request needs a target and a request id")
    return req


def decode_reply(payload: bytes) -> ReserveReply:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError("rejected", f"a reserve reply of {len(payload)} bytes")
    try:
        reply = _reply.decode(payload)
    except DECODE_ERRORS as exc:
        raise ProtocolError("rejected", f"malformed reserve reply: {exc}") from exc
    if reply.status not in ("reserved", "refused") or (
        reply.status == "reserved" and reply.target is None
    ):
        raise ProtocolError("rejected", f"reserve reply with status {reply.status!r}")
    return reply
