"""Kiosks' signed chain heads, kept by central as proof of the entries' origin (migration 8).

A batch may carry its kiosk's signature over its last entry's place in the chain
(`greenpass.heads`): ingest verifies it with the device's key and, in the batch's
transaction, keeps it here. The chain hash it signs commits to every entry of the
device up to that seq, so one row proves the device wrote all of them, to anyone who
has the device's public key and central's copy of the entries (evidence packs read
these rows). The batches themselves cannot be kept for that: their signed bodies carry
households' names (docs/privacy.md). A row holds no name and nothing an erasure must
reach; the hash it signs is the stored entry's `h`, so it is not repeated here.

A head verifies with the key the device had when it was received, kept beside it:
after a re-enrolment with a new key (audited as `device.re_enrol` with both keys'
fingerprints) the older rows still name the old one, and an evidence pack lists both.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    text,
)

from central import db

device_heads = Table(
    "device_heads",
    db.metadata,
    Column("device_id", String(64), ForeignKey("devices.device_id"), nullable=False),
    Column("seq", BigInteger, nullable=False),  # the head's entry: its `h` is the one signed
    Column("sig", LargeBinary(64), nullable=False),  # Ed25519, greenpass.heads.head_message
    Column("public_key", LargeBinary(32), nullable=False),  # the device's when it was kept
    Column("received_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("device_id", "seq", name="device_heads_pk"),
)


def migrate_v8(conn: Connection) -> None:
    device_heads.create(conn, checkfirst=False)


# A resent batch brings the same head again (the kiosk resends after a lost ack, or its
# last entry to bring personal records): the first one kept stands. The same text on
# SQLite and PostgreSQL; built once, like ingest's other statements.
_KEEP = text(
    "INSERT INTO device_heads (device_id, seq, sig, public_key, received_ms) "
    "VALUES (:device_id, :seq, :sig, :public_key, :received_ms) "
    "ON CONFLICT (device_id, seq) DO NOTHING"
)


def keep(
    conn: Connection, device_id: str, seq: int, sig: bytes, public_key: bytes, now_ms: int
) -> None:
    """Keep the head of `device_id` at `seq`, verified by the caller against the device's
    `public_key` and the stored entry's hash, unless one is already kept there."""
    values = {"device_id": device_id, "seq": seq, "sig": sig, "public_key": public_key}
    conn.execute(_KEEP, {**values, "received_ms": now_ms})
