"""Sync protocol v1 (docs/design.md §5): topics and the messages on them.

Pure: no network, no database. Both ends import it, so it is the contract:

    gp/v1/dev/<D>/up/batch    kiosk → central   signed compact batch (`sync.batch`)
    gp/v1/dev/<D>/down/ack    central → kiosk   `Ack`, small JSON (readable with
                                                `mosquitto_sub`)
    gp/v1/dev/<D>/down/state  central → kiosk   `StateBody`, MessagePack, signed by
                                                central, retained
    gp/v1/dev/<D>/status      kiosk → central   `Status`, JSON, retained; also the
                                                kiosk's last will
    gp/v1/dev/<D>/up/reverse  kiosk → central   `ReserveRequest`, JSON: reserve
                                                another kiosk's entry to reverse it
    gp/v1/dev/<D>/down/reverse central → kiosk  `ReserveReply`, JSON (`sync.reserve_wire`)

Batches and states travel in the signed envelope of `sync.envelope`. This module
holds the topics, acks, statuses and states, and re-exports the batch, envelope
and log-check (`sync.log_wire`) names, so `protocol.X` names any part of the
protocol.
"""

from __future__ import annotations

import msgspec

from greenpass.errors import ProtocolError
from sync.batch import (
    MAX_BATCH_BYTES,
    MAX_ENTRIES,
    MAX_PERSONAL,
    ROW_FIELDS,
    Batch,
    BatchBody,
    WireEntry,
    WirePersonal,
    decode_batch,
    encode_batch,
    encode_rows,
)
from sync.envelope import (
    COMPRESS_ABOVE,
    DECODE_ERRORS,
    MAX_BODY,
    MAX_PAYLOAD,
    VERSION,
    Envelope,
    check_signature,
    inflate,
    open_envelope,
    pack,
    seal,
)
from sync.keys import Ed25519PrivateKey, Ed25519PublicKey
from sync.log_wire import LOG_FAULTS, STICKY_LOG_FAULTS, LogFault, StateLog, WireRun

__all__ = [  # batches and envelopes too, so `protocol.X` stays the one name for each
    "ACCEPT_HEADS",
    "ACCEPT_PERSONAL",
    "ACCEPT_REF_DEVICE",
    "ACK",
    "ACK_STATUSES",
    "BATCH",
    "CENTRAL_SIGNER",
    "COMPRESS_ABOVE",
    "FEATURES",
    "FEATURE_ERASURES",
    "FEATURE_ITEM_PICTURES",
    "FEATURE_LOG_PROOFS",
    "FEATURE_REVERSED_ELSEWHERE",
    "LOG_FAULTS",
    "MAX_BATCH_BYTES",
    "MAX_BODY",
    "MAX_ENTRIES",
    "MAX_PAYLOAD",
    "MAX_PERSONAL",
    "MAX_STATE_BODY",
    "MAX_STATE_PAYLOAD",
    "ROW_FIELDS",
    "SHARED_BATCH_SUBSCRIPTION",
    "STATE",
    "STATUS",
    "STICKY_LOG_FAULTS",
    "SYNC_FAULTS",
    "TOPIC_ROOT",
    "VERSION",
    "Ack",
    "Batch",
    "BatchBody",
    "Envelope",
    "LogFault",
    "StateBody",
    "StateLog",
    "Status",
    "SyncFault",
    "WireEntry",
    "WireItem",
    "WirePersonal",
    "WireRun",
    "WireVillager",
    "check_signature",
    "decode_ack",
    "decode_batch",
    "decode_state",
    "decode_status",
    "device_client_id",
    "device_of",
    "encode_ack",
    "encode_batch",
    "encode_rows",
    "encode_state",
    "encode_status",
    "open_envelope",
    "parse_ack",
    "seal",
    "topic",
]

TOPIC_ROOT = "gp/v1/dev"
BATCH = "up/batch"
STATUS = "status"
ACK = "down/ack"
STATE = "down/state"
CENTRAL_SIGNER = "central"
SHARED_BATCH_SUBSCRIPTION = f"$share/central/{TOPIC_ROOT}/+/{BATCH}"

MAX_STATE_PAYLOAD = 8 * 1024 * 1024  # a village's state (thousands of villagers)
MAX_STATE_BODY = 64 * 1024 * 1024  # … once inflated


def topic(device_id: str, leaf: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/{leaf}"


def device_client_id(device_id: str) -> str:
    """The one MQTT client id the broker lets device `device_id` use (docs/broker.md)."""
    return f"gp-{device_id}"


def device_of(topic_name: str, leaf: str) -> str | None:
    """The device id in `gp/v1/dev/<D>/<leaf>`, or None if the topic is not that shape."""
    prefix, suffix = f"{TOPIC_ROOT}/", f"/{leaf}"
    if not (topic_name.startswith(prefix) and topic_name.endswith(suffix)):
        return None
    device = topic_name[len(prefix) : -len(suffix)]
    return device if device and "/" not in device else None


# --- acks, status, state ----------------------------------------------------------------


class Ack(msgspec.Struct, kw_only=True):
    """Central's reply to a batch. `acked_seq`: everything up to it is committed
    centrally. `expected_seq`: where the kiosk must (re)start sending."""

    v: int = VERSION
    device_id: str
    status: str  # ok / gap / bad_chain / bad_signature / rejected
    acked_seq: int
    expected_seq: int
    first_seq: int = 0
    last_seq: int = 0
    reason: str = ""
    # What this central takes in a batch beyond its first version (`ACCEPT_PERSONAL`,
    # `ACCEPT_HEADS`).
    # Kiosks from before it ignore the field (an ack is not forbid_unknown_fields).
    accepts: list[str] = []


# Personal records beside the entries (sync.batch.WirePersonal, BatchBody.personal).
ACCEPT_PERSONAL = "personal_v1"
# The signed head of a batch's last entry (BatchBody.head_sig, greenpass.heads).
ACCEPT_HEADS = "heads_v1"
# Reversals of another kiosk's entry (Entry.ref_device, BatchBody.ref_devices), and the
# reservations that come before them on `up/reverse` (sync.reserve_wire).
ACCEPT_REF_DEVICE = "ref_device_v1"

ACK_STATUSES = frozenset({"ok", "gap", "bad_chain", "bad_signature", "rejected"})
MAX_ACK_PAYLOAD = 16 * 1024  # an ack is a few hundred bytes; more is not one

# Why a kiosk's sync is stuck: the `code` of `SyncFault` (docs/sync.md explains each).
SYNC_FAULTS = {
    "ack_malformed": "central's ack could not be read",
    "ack_wrong_device": "an ack for another device came on this kiosk's topic",
    "ack_unknown_status": "central's ack has a status this software does not know",
    "ack_beyond_head": "central acknowledged entries this ledger does not hold",
    "ack_backwards": "central claims less than it had already confirmed",
    "ack_bad_expected": "central asks for a seq this ledger cannot send",
    "batch_bad_chain": "central refused a batch: it does not continue central's chain",
    "batch_bad_signature": "central refused a batch: its signature does not verify",
    "batch_rejected": "central refused a batch (device unknown or revoked, bad schema)",
    "uplink_crashed": "the sync thread crashed and was restarted",
    "uplink_dead": "the sync thread kept crashing; the kiosk exits to be restarted",
}


class SyncFault(msgspec.Struct, kw_only=True, frozen=True):
    """Why this kiosk's sync is not making progress, in its status: `code` is one of
    `SYNC_FAULTS` (stable, for machines), `message` says it for a person, `since_ms`
    is the kiosk's wall clock when it began. Gone (None) once central's next sane
    `ok` ack shows the link works again."""

    code: str
    message: str = ""
    since_ms: int = 0


class Status(msgspec.Struct, kw_only=True):
    """A kiosk's retained status (and, with online=False, its last will)."""

    v: int = VERSION
    device_id: str
    online: bool
    ts_ms: int = 0
    version: str = ""
    backlog: int = 0
    oldest_unsynced_ms: int | None = None
    acked_seq: int = 0
    head_seq: int = 0
    free_disk_bytes: int | None = None
    scale: str = "unknown"
    scanner: str = "unknown"
    last_error: str = ""
    # Optional, so the payload stays compatible: kiosks from before it send none, and a
    # central that does not know it skips it (msgspec ignores unknown fields).
    sync_fault: SyncFault | None = None
    disk_bytes: int | None = None  # the data disk's size, so central can alert on a percent
    # What this kiosk's software takes in central's state beyond version 1's fields
    # (`FEATURES`): central sends an addition only to kiosks that name it here.
    features: list[str] = []
    # The cross-check of central's log (sync.log_check): the size of the checkpoint this
    # kiosk accepted last, how far its own entries are proven in it (1 … log_seq), and
    # why it distrusts the log, if it does. Central builds the next state's proofs from
    # the first two.
    log_size: int = 0
    log_seq: int = 0
    log_fault: LogFault | None = None
    # Whether the kiosk's clock is synchronised (NTP): the kiosk's page shows it to staff
    # only, so the technician learns it here. None: a kiosk from before it.
    clock_ok: bool | None = None
    # The receipt printer (edge.kiosk.receipt_printing): off, ok, paper_low, paper_out, jammed,
    # timeout, offline, unknown. None: a kiosk from before receipts.
    printer: str | None = None


# Item pictures in the state's catalogue (WireItem's sixth field): a kiosk from before
# them decodes an item as exactly five fields and would refuse the whole state.
FEATURE_ITEM_PICTURES = "item_pictures"
# Households erased at central (StateBody.erased): the kiosk drops their names and the
# salts of its own enrolments (greenpass.record.personal). Older kiosks refuse the unknown key.
FEATURE_ERASURES = "erasures"
# Proofs of central's transparency log (StateBody.log, sync.log_wire): older kiosks
# refuse the unknown key.
FEATURE_LOG_PROOFS = "log_proofs"
# This kiosk's entries another kiosk holds central's reservation to reverse
# (StateBody.reversed_elsewhere, central.reservations): older kiosks refuse the key.
FEATURE_REVERSED_ELSEWHERE = "reversed_elsewhere"
FEATURES = (FEATURE_ITEM_PICTURES, FEATURE_ERASURES, FEATURE_LOG_PROOFS, FEATURE_REVERSED_ELSEWHERE)


class WireVillager(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    passbook_id: str
    household_name: str
    village: str
    status: str


class _WireItemV1(msgspec.Struct, array_like=True):
    """An item as kiosks from before item pictures decode it: exactly five elements
    (their WireItem forbids more). msgspec writes an array-like struct's trailing
    defaults too, so a WireItem without a picture is re-cast as this to be encoded."""

    item_id: str
    name_zh: str
    name_en: str
    points_price: int
    active: bool


class WireItem(_WireItemV1, forbid_unknown_fields=True):
    # A JPEG thumbnail (at most 96×96, central.catalogue_file), sent only to kiosks that
    # name FEATURE_ITEM_PICTURES. Decoding takes five elements or six.
    picture: bytes | None = None


class StateBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    v: int = VERSION
    village: str
    device_id: str
    version: int
    included_seq: int
    issued_ms: int
    balances: dict[str, int]
    villagers: list[WireVillager]
    catalogue: list[WireItem] | None = None
    rules_text: str | None = None
    issuer_keys: dict[str, bytes] = {}
    revoked: list[str] = []
    # Passbooks whose household's personal data central erased: sent only to kiosks
    # that name FEATURE_ERASURES (omitted when empty, so other kiosks never see the key).
    erased: list[str] = []
    # Central's newest checkpoint and proofs for this kiosk to check it by: sent only to
    # kiosks that name FEATURE_LOG_PROOFS (omitted when None).
    log: StateLog | None = None
    # This kiosk's own entries (seq → the kiosk) that another kiosk reserved at central
    # to reverse: sent only to kiosks that name FEATURE_REVERSED_ELSEWHERE.
    reversed_elsewhere: dict[int, str] = {}


_json = msgspec.json.Encoder()
_ack_decoder = msgspec.json.Decoder(Ack)
_status_decoder = msgspec.json.Decoder(Status)
_state_decoder = msgspec.msgpack.Decoder(StateBody)


def encode_ack(ack: Ack) -> bytes:
    return _json.encode(ack)


def parse_ack(payload: bytes) -> Ack:
    """An ack's fields, checked against the schema only: the kiosk judges the rest
    against its ledger (`sync.acks`), so that each way an ack can be wrong gets its
    own sync fault code."""
    if len(payload) > MAX_ACK_PAYLOAD:
        raise ProtocolError("rejected", f"malformed ack: {len(payload)} bytes")
    try:
        return _ack_decoder.decode(payload)
    except DECODE_ERRORS as exc:
        raise ProtocolError("rejected", f"malformed ack: {exc}") from exc


def decode_ack(payload: bytes) -> Ack:
    ack = parse_ack(payload)
    if ack.status not in ACK_STATUSES:
        raise ProtocolError("rejected", f"unknown ack status {ack.status!r}")
    return ack


def encode_status(status: Status) -> bytes:
    return _json.encode(status)


def decode_status(payload: bytes) -> Status:
    try:
        return _status_decoder.decode(payload)
    except DECODE_ERRORS as exc:
        raise ProtocolError("rejected", f"malformed status: {exc}") from exc


def encode_state(state: StateBody, key: Ed25519PrivateKey) -> bytes:
    if state.catalogue and all(i.picture is None for i in state.catalogue):
        v1 = [_WireItemV1(*msgspec.structs.astuple(i)[:5]) for i in state.catalogue]
        state = msgspec.structs.replace(state, catalogue=v1)
    return seal("state", CENTRAL_SIGNER, pack.encode(state), key)


def decode_state(payload: bytes, central_key: Ed25519PublicKey, device_id: str) -> StateBody:
    """A state from central, checked: signed by central, for this device."""
    env = open_envelope(payload, "state", max_payload=MAX_STATE_PAYLOAD)
    if env.signer != CENTRAL_SIGNER:
        raise ProtocolError("rejected", f"state signed by {env.signer!r}, not central")
    check_signature(env, central_key)
    raw = inflate(env, MAX_STATE_BODY, "state")
    try:
        state = _state_decoder.decode(raw)
    except DECODE_ERRORS as exc:
        raise ProtocolError("rejected", f"malformed state: {exc}") from exc
    if state.device_id != device_id:
        raise ProtocolError("rejected", f"state is for {state.device_id!r}, not {device_id!r}")
    return state
