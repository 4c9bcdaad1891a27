"""The admin and enrolment API's request and response bodies (pydantic models).

They are the OpenAPI document's schemas, so a field's `description` is user-facing
documentation. Requests (`…In`) refuse unknown fields; ids must match the patterns
below, as they are also MQTT topic levels and file names. Responses (`…Out`) are
built from the store's records, most with `of(...)`.
"""

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from central import reports
from central.store import Device
from greenpass.errors import ProtocolError
from greenpass.record.entries import Kind
from greenpass.record.ids import DEVICE_ID_RE, ID_RE
from sync import protocol
from sync.keys import public_key

ID_PATTERN = ID_RE.pattern
DEVICE_ID_PATTERN = DEVICE_ID_RE.pattern
DEAD_LETTER_HEAD = 64  # bytes of a refused payload shown (hex), enough to recognise it


class Problem(BaseModel):
    detail: str = Field(description="One line saying what was wrong")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LogFaultOut(BaseModel):
    """Why a kiosk distrusts central's transparency log (docs/trust.md)."""

    code: str = Field(description="log_bad_checkpoint / log_not_extended / log_entry_changed …")
    message: str = Field(description="For a person; names the device and the seq")
    seq: int = Field(description="The kiosk's entry concerned; 0: the checkpoint itself")
    size: int = Field(description="The size of the checkpoint concerned")
    since_ms: int = Field(description="Kiosk's wall clock when it found it")


class Health(BaseModel):
    """What the kiosk last said about itself (its retained MQTT status)."""

    reported_ms: int = Field(description="Kiosk's wall clock when it sent the status")
    software_version: str
    head_seq: int = Field(description="Newest entry in the kiosk's ledger")
    scale: str = Field(description="ok / error / disconnected / unknown …")
    scanner: str
    free_disk_bytes: int | None
    disk_bytes: int | None = Field(
        description="Size of the kiosk's data disk; None: its software does not report it"
    )
    last_error: str
    log_size: int = Field(
        0, description="Size of central's log checkpoint the kiosk accepted last (0: none)"
    )
    log_seq: int = Field(0, description="The kiosk's entries up to this seq are proven in it")
    log_fault: LogFaultOut | None = Field(
        None, description="Set when the kiosk's check of central's log failed"
    )
    clock_ok: bool | None = Field(
        None, description="False: the kiosk's clock is not synchronised; None: not reported"
    )
    printer: str | None = Field(
        None,
        description="The receipt printer: off, ok, paper_low, paper_out, jammed, …; "
        "None: not reported",
    )


class DeviceOut(BaseModel):
    device_id: str
    village_id: str
    status: Literal["active", "revoked"]
    enrolled_ms: int
    revoked_ms: int | None
    acked_seq: int = Field(description="Every entry up to this seq is stored centrally")
    last_seen_ms: int | None = Field(description="Central's time of the last status received")
    online: bool | None = Field(description="None: no status received yet")
    backlog: int | None = Field(description="Entries the kiosk has not had acked")
    oldest_unsynced_ms: int | None = Field(description="Wall clock of its oldest unsynced entry")
    health: Health | None

    @classmethod
    def of(cls, d: Device) -> Self:
        status: protocol.Status | None = None
        if d.status_json is not None:
            try:
                status = protocol.decode_status(d.status_json.encode())
            except ProtocolError:
                status = None  # stored by an older version: show the device without it
        return cls(
            device_id=d.device_id,
            village_id=d.village_id,
            status="revoked" if d.status == "revoked" else "active",
            enrolled_ms=d.enrolled_ms,
            revoked_ms=d.revoked_ms,
            acked_seq=d.acked_seq,
            last_seen_ms=d.last_seen_ms,
            online=None if status is None else status.online,
            backlog=None if status is None else status.backlog,
            oldest_unsynced_ms=None if status is None else status.oldest_unsynced_ms,
            health=None
            if status is None
            else Health(
                reported_ms=status.ts_ms,
                software_version=status.version,
                head_seq=status.head_seq,
                scale=status.scale,
                scanner=status.scanner,
                free_disk_bytes=status.free_disk_bytes,
                disk_bytes=status.disk_bytes,
                last_error=status.last_error,
                log_size=status.log_size,
                log_seq=status.log_seq,
                log_fault=None
                if status.log_fault is None
                else LogFaultOut(
                    code=status.log_fault.code,
                    message=status.log_fault.message,
                    seq=status.log_fault.seq,
                    size=status.log_fault.size,
                    since_ms=status.log_fault.since_ms,
                ),
                clock_ok=status.clock_ok,
                printer=status.printer,
            ),
        )


class EnrolTokenIn(_In):
    device_id: str = Field(pattern=DEVICE_ID_PATTERN, description="The kiosk's device id")
    village_id: str = Field(pattern=ID_PATTERN, description="The village it will serve")
    ttl_hours: int = Field(24, ge=1, le=24 * 30, description="Validity in hours")

    @field_validator("ttl_hours", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # pydantic's lax mode reads JSON `true` as 1; 238.0 is a valid JSON integer.
        if isinstance(value, bool):
            raise ValueError("ttl_hours must be a whole number of hours")
        return value


class EnrolTokenOut(BaseModel):
    token: str = Field(description="Give it to the technician; shown only once")
    device_id: str
    village_id: str
    expires_ms: int


class EnrolIn(_In):
    token: str = Field(min_length=1, max_length=256, description="The one-time token")
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    public_key: str = Field(
        pattern="^[0-9a-fA-F]{64}$",
        description="The kiosk's raw 32-byte Ed25519 public key, hex",
    )

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, value: str) -> str:
        public_key(bytes.fromhex(value))  # ValueError (a 422) if not a usable key
        return value.lower()

    def public_key_bytes(self) -> bytes:
        return bytes.fromhex(self.public_key)


class EnrolOut(BaseModel):
    device_id: str
    village_id: str
    mqtt_username: str = Field(description="Equals the device id")
    mqtt_password: str = Field(description="Shown only once; central keeps a hash")
    broker_url: str = Field(description="mqtts://host:port")
    ca_cert_pem: str = Field(description="The CA the broker's TLS certificate chains to")
    central_public_key: str = Field(description="Central's Ed25519 key (hex) for the state")
    mqtt_version: str = Field(
        "5", description='MQTT to speak to the broker: "5", or "3.1.1" on a RabbitMQ cluster'
    )


class VillageTotalsOut(BaseModel):
    village_id: str
    grams_by_category: dict[str, int] = Field(description="Net grams deposited per category")
    deposits: int = Field(description="Deposits, less reversed ones")
    points_issued: int = Field(description="For deposits and awards, net of reversals")
    points_redeemed: int = Field(description="Spent on goods and services, net of reversals")
    co2e_g: int = Field(description="Grams of CO2e avoided by the deposits")


class DoubleReversalOut(BaseModel):
    passbook_id: str
    device_id: str = Field(description="Kiosk of the entry reversed twice")
    seq: int
    points: int = Field(description="The entry's points, taken a second time")
    reversals: list[str] = Field(description="The two reversals, as DEVICE#SEQ")
    wall_ms: int = Field(description="When the later reversal was made")

    @classmethod
    def of(cls, d: reports.DoubleReversal) -> Self:
        return cls(
            passbook_id=d.passbook_id, device_id=d.device_id, seq=d.seq, points=d.points,
            reversals=[f"{dev}#{seq}" for dev, seq in d.reversals], wall_ms=d.wall_ms,
        )  # fmt: skip


class OverdraftOut(BaseModel):
    passbook_id: str
    lowest_balance: int = Field(description="The lowest balance reached (negative)")
    device_id: str = Field(description="Kiosk of the entry that first went below zero")
    seq: int
    wall_ms: int

    @classmethod
    def of(cls, o: reports.Overdraft) -> Self:
        return cls(
            passbook_id=o.passbook_id,
            lowest_balance=o.lowest,
            device_id=o.device_id,
            seq=o.seq,
            wall_ms=o.wall_ms,
        )


class StatementLineOut(BaseModel):
    device_id: str
    seq: int
    entry_id: str
    kind: Kind
    wall_ms: int
    clock_ok: bool = Field(description="The kiosk's clock was synchronised")
    category: str | None
    grams: int | None
    points: int = Field(description="Signed: negative for redemptions")
    co2e_g: int
    item_id: str | None
    qty: int | None
    ref_seq: int | None = Field(description="For a reversal: the seq it cancels")
    ref_device: str | None = Field(
        default=None,
        description="For a reversal of another kiosk's entry: that kiosk (null: its own)",
    )
    staff_id: str | None
    reason: str | None
    balance: int = Field(description="The passbook's balance after this entry")


class StatementOut(BaseModel):
    passbook_id: str
    balance: int
    lines: list[StatementLineOut]

    @classmethod
    def of(cls, passbook_id: str, lines: list[reports.StatementLine]) -> Self:
        out = [
            StatementLineOut(
                device_id=x.entry.device_id,
                seq=x.entry.seq,
                entry_id=x.entry.entry_id,
                kind=x.entry.kind,
                wall_ms=x.entry.wall_ms,
                clock_ok=x.entry.clock_ok,
                category=x.entry.category,
                grams=x.entry.grams,
                points=x.entry.points,
                co2e_g=x.entry.co2e_g,
                item_id=x.entry.item_id,
                qty=x.entry.qty,
                ref_seq=x.entry.ref_seq,
                ref_device=x.entry.ref_device,
                staff_id=x.entry.staff_id,
                reason=x.entry.reason,
                balance=x.balance,
            )
            for x in lines
        ]
        return cls(passbook_id=passbook_id, balance=out[-1].balance if out else 0, lines=out)


class DeadLetterOut(BaseModel):
    id: int
    received_ms: int
    topic: str
    claimed_device: str | None
    status: str = Field(description="The ack status sent: bad_signature, bad_chain, rejected …")
    reason: str
    size: int = Field(description="Bytes received")
    payload_head_hex: str = Field(description=f"The first {DEAD_LETTER_HEAD} bytes, hex")

    @classmethod
    def of(cls, d: reports.DeadLetter) -> Self:
        return cls(
            id=d.id,
            received_ms=d.received_ms,
            topic=d.topic,
            claimed_device=d.claimed_device,
            status=d.status,
            reason=d.reason,
            size=d.size,
            payload_head_hex=d.payload[:DEAD_LETTER_HEAD].hex(),
        )
