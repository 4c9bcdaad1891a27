"""Central's database: one SQLAlchemy Core schema for SQLite (one site) and PostgreSQL.

`central.engines.open_engine` turns a URL or a plain file path into an engine with
the settings the ingest relies on; `central.migrations.migrate` creates the schema through numbered
migrations recorded in `schema_migrations` (steps 1 to 4 are here, beside the tables
they make), so reopening is a no-op and a later version only adds steps.

Writers serialise on the device row (`SELECT … FOR UPDATE` on PostgreSQL, `BEGIN
IMMEDIATE` on SQLite); readers that must see one snapshot ask for REPEATABLE READ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ColumnElement,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    Text,
    case,
    insert,
    literal,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from greenpass.errors import StorageError
from greenpass.record.entries import GENESIS_H, Kind

metadata = MetaData()

# ids are bounded like the kiosk's (64 characters); hashes and keys are raw bytes.
_ID = 64

villages = Table(
    "villages",
    metadata,
    Column("village_id", String(_ID), primary_key=True),
    Column("state_version", BigInteger, nullable=False, server_default="0"),
    Column("changed_ms", BigInteger, nullable=False, server_default="0"),
)


def village_changed(now_ms: Any) -> ColumnElement[int]:
    """The new `changed_ms` of a write that changes a village's state: `now_ms`, or one
    past the last change when that is not earlier, so that each change has a value of
    its own (two in one millisecond, a worker whose clock is behind): a worker then
    never takes a new change for one it pushed already (`central.pushes`)."""
    c = villages.c.changed_ms
    return case((c >= now_ms, c + 1), else_=now_ms)


devices = Table(
    "devices",
    metadata,
    Column("device_id", String(_ID), primary_key=True),
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("mqtt_password_hash", Text, nullable=False),
    Column("enrolled_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
    Column("acked_seq", BigInteger, nullable=False, server_default="0"),
    Column("last_h", LargeBinary(32), nullable=False, default=GENESIS_H),
    Column("last_seen_ms", BigInteger),
    Column("status_json", Text),
    CheckConstraint("status IN ('active', 'revoked')", name="devices_status"),
)

enrol_tokens = Table(
    "enrol_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 hex: the token is never kept
    Column("device_id", String(_ID), nullable=False),
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger),
)


def _entries(md: MetaData, *, ref_device: bool) -> Table:
    """The entries table: as migration 1 made it (`ref_device=False`), and as migration
    11 left it, with `ref_device` (a reversal of another kiosk's entry,
    `central.reservations`). Its columns are `protocol.ROW_FIELDS` in order, then what
    central adds (`central.ingest_rows` checks that at import)."""
    extra = [Column("ref_device", String(_ID))] if ref_device else []
    return Table(
        "entries",
        md,
        # Text, not VARCHAR(n): what a signed batch may carry is checked at ingest, and a
        # length limit that only PostgreSQL enforces would make the dialects disagree.
        Column("device_id", String(_ID), ForeignKey("devices.device_id"), nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("entry_id", String(36), nullable=False, unique=True),
        Column("kind", String(16), nullable=False),
        Column("wall_ms", BigInteger, nullable=False),
        Column("clock_ok", Boolean(create_constraint=False), nullable=False),
        Column("boot_id", Text, nullable=False),
        Column("mono_ms", BigInteger, nullable=False),
        Column("passbook_id", Text),
        Column("category", Text),
        Column("grams", BigInteger),
        Column("points", BigInteger, nullable=False),
        Column("co2e_g", BigInteger, nullable=False),
        Column("item_id", Text),
        Column("qty", BigInteger),
        Column("ref_seq", BigInteger),
        Column("staff_id", Text),
        Column("reason", Text),
        Column("rules_version", Text),
        Column("flags", Text, nullable=False),
        Column("data", Text, nullable=False),  # JSON object of strings
        *extra,
        Column("h", LargeBinary(32), nullable=False),
        Column("village_id", Text, nullable=False),
        Column("received_ms", BigInteger, nullable=False),
        PrimaryKeyConstraint("device_id", "seq", name="entries_pk"),
        CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in Kind) + ")", name="entries_kind"),
        # By village only: a village's new rows go at the end of its range. Keyed by
        # (village_id, passbook_id), each row went beside its passbook's, a random leaf
        # page per row: over half of SQLite's insert time and most of the WAL a batch
        # wrote. Every query that used it is by village ("WHERE village_id = ?", grouped).
        Index("entries_village", "village_id"),
    )


entries = _entries(metadata, ref_device=True)

villagers = Table(
    "villagers",
    metadata,
    Column("passbook_id", Text, primary_key=True),
    Column("village_id", Text, nullable=False),
    Column("household_name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("source_device", String(_ID), nullable=False),
    Column("source_seq", BigInteger, nullable=False),
    Index("villagers_village", "village_id"),
)

catalogue = Table(
    "catalogue",
    metadata,
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("item_id", String(_ID), nullable=False),
    Column("name_zh", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("points_price", BigInteger, nullable=False),
    Column("active", Boolean(create_constraint=False), nullable=False),
    PrimaryKeyConstraint("village_id", "item_id", name="catalogue_pk"),
)

village_rules = Table(
    "village_rules",
    metadata,
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), primary_key=True),
    Column("version", String(_ID), nullable=False),
    Column("text", Text, nullable=False),
)

# Every rules version a village has had, kept for good: a kiosk that was offline when
# its village moved to new rules still syncs entries priced with the old ones, and
# central re-prices each entry by the version it names (central.recheck).
rules_versions = Table(
    "rules_versions",
    metadata,
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("version", String(_ID), nullable=False),
    Column("text", Text, nullable=False),
    Column("added_ms", BigInteger, nullable=False),  # 0: in force before history was kept
    PrimaryKeyConstraint("village_id", "version", name="rules_versions_pk"),
)

issuer_keys = Table(
    "issuer_keys",
    metadata,
    Column("key_id", String(_ID), primary_key=True),
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    # SQLite autoincrements only an INTEGER PRIMARY KEY, PostgreSQL gets a BIGINT identity.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("received_ms", BigInteger, nullable=False),
    Column("topic", Text, nullable=False),
    Column("claimed_device", Text),  # from the topic: not trusted, not bounded
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),  # at most the first MAX_PAYLOAD bytes
    Column("size", BigInteger, nullable=False),  # the size as received
)

schema_migrations = Table(
    "schema_migrations",
    MetaData(),  # kept apart: it is created before, and outside of, the numbered steps
    Column("version", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("applied_ms", BigInteger, nullable=False),
)

_V1_TABLES = [
    villages,
    devices,
    enrol_tokens,
    villagers,
    catalogue,
    village_rules,
    issuer_keys,
    dead_letters,
]


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=_V1_TABLES, checkfirst=False)
    shape = MetaData()
    villages.to_metadata(shape)  # only for the foreign keys; they exist already
    devices.to_metadata(shape)
    _entries(shape, ref_device=False).create(conn, checkfirst=False)


def _v2(conn: Connection) -> None:
    rules_versions.create(conn, checkfirst=False)
    # The version in force now is the one history must start with.
    r = village_rules
    conn.execute(
        insert(rules_versions).from_select(
            ["village_id", "version", "text", "added_ms"],
            select(r.c.village_id, r.c.version, r.c.text, literal(0, BigInteger)),
        )
    )


# --- the operator's console (migration 3) -----------------------------------------------

# What an operator says about a village beyond its id; `catalogue_version` counts the
# catalogue's changes, so two operators editing it at once are told (409), not merged.
village_profiles = Table(
    "village_profiles",
    metadata,
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), primary_key=True),
    Column("name_zh", Text, nullable=False, server_default=""),
    Column("name_en", Text, nullable=False, server_default=""),
    Column("timezone", String(_ID), nullable=False, server_default="Asia/Shanghai"),
    Column("catalogue_version", BigInteger, nullable=False, server_default="0"),
)

# A catalogue item's picture: a small JPEG thumbnail made at central (pushed in the state).
item_pictures = Table(
    "item_pictures",
    metadata,
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("item_id", String(_ID), nullable=False),
    Column("jpeg", LargeBinary, nullable=False),
    PrimaryKeyConstraint("village_id", "item_id", name="item_pictures_pk"),
)

# Revocations decided at central: they hold whatever a kiosk's entries say, until an
# operator reinstates the passbook (`lifted_ms`). Kiosk revocations stay in `villagers`.
passbook_revocations = Table(
    "passbook_revocations",
    metadata,
    Column("passbook_id", Text, primary_key=True),
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("revoked_ms", BigInteger, nullable=False),
    Column("revoked_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("lifted_ms", BigInteger),
    Column("lifted_by", Text),
)

# A lost card replaced by a new passbook for the same household: `old` is revoked, its
# balance and history count for `new` (central.passbooks).
passbook_links = Table(
    "passbook_links",
    metadata,
    Column("old_passbook_id", Text, primary_key=True),
    Column("new_passbook_id", Text, nullable=False, unique=True),
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("replaced_ms", BigInteger, nullable=False),
    Column("replaced_by", Text, nullable=False),
    Index("passbook_links_village", "village_id"),
)

# Every operator change: who, when, what, and the value before and after (JSON text).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(_ID), nullable=False),
    Column("village_id", String(_ID)),
    Column("target", Text, nullable=False),
    Column("before_json", Text),
    Column("after_json", Text),
    Index("audit_log_village", "village_id", "id"),
)


def _v3(conn: Connection) -> None:
    tables = [village_profiles, item_pictures, passbook_revocations, passbook_links, audit_log]
    metadata.create_all(conn, tables=tables, checkfirst=False)


# --- operator accounts (migration 4) ----------------------------------------------------


# Who may use the console and the API (central.accounts): a county account sees every
# village, a village account only `village_id`. Passwords as scrypt strings, never clear;
# `failed_logins` and `locked_until_ms` survive a restart, so a lockout cannot be reset by
# restarting central.
def _accounts(md: MetaData, *, buyers: bool) -> Table:
    """The accounts table: as migration 4 made it (`buyers=False`), and as migration 10
    left it, with buyer logins (`central.registry_roles`)."""
    roles = "'county', 'village', 'buyer'" if buyers else "'county', 'village'"
    scope = (
        "(role = 'county' AND village_id IS NULL AND registry_account IS NULL) OR "
        "(role = 'village' AND village_id IS NOT NULL AND registry_account IS NULL) OR "
        "(role = 'buyer' AND village_id IS NULL AND registry_account IS NOT NULL)"
        if buyers
        else "(role = 'county' AND village_id IS NULL) OR "
        "(role = 'village' AND village_id IS NOT NULL)"
    )
    extra = [Column("registry_account", String(_ID))] if buyers else []
    return Table(
        "accounts",
        md,
        Column("name", String(_ID), primary_key=True),
        Column("role", String(16), nullable=False),
        Column("village_id", String(_ID), ForeignKey("villages.village_id")),
        Column("password_hash", Text, nullable=False),
        Column("active", Boolean(create_constraint=False), nullable=False),
        Column("created_ms", BigInteger, nullable=False),
        Column("disabled_ms", BigInteger),
        Column("failed_logins", Integer, nullable=False, server_default="0"),
        Column("locked_until_ms", BigInteger),
        *extra,
        CheckConstraint(f"role IN ({roles})", name="accounts_role"),
        CheckConstraint(scope, name="accounts_scope"),
    )


# A buyer's `registry_account` is the enterprise's account in the reduction registry
# (migration 10); its foreign key is in the database, not here, because the registry's
# tables are made after this one.
accounts = _accounts(metadata, buyers=True)

# API tokens for scripts, and console sessions: only their SHA-256 is kept (they are
# 192 random bits, so a fast hash is enough, as for enrolment tokens).
account_tokens = Table(
    "account_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account", String(_ID), ForeignKey("accounts.name"), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_used_ms", BigInteger),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("account", String(_ID), ForeignKey("accounts.name"), nullable=False),
    Column("csrf", String(64), nullable=False),  # the forms' token, bound to this session
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index("console_sessions_account", "account"),
)


def _v4(conn: Connection) -> None:
    shape = MetaData()
    villages.to_metadata(shape)  # only for its foreign key; it exists already
    _accounts(shape, buyers=False).create(conn, checkfirst=False)
    metadata.create_all(conn, tables=[account_tokens, console_sessions], checkfirst=False)


# The steps that make this module's tables; `central.migrations` numbers them with the
# later ones. Never edit a released step: append the next one there.
STEPS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "central tables", _v1),
    (2, "rules versions", _v2),
    (3, "operator console", _v3),
    (4, "operator accounts", _v4),
]


# --- rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    device_id: str
    village_id: str
    public_key: bytes
    status: str  # active / revoked
    mqtt_password_hash: str
    enrolled_ms: int
    revoked_ms: int | None
    acked_seq: int
    last_h: bytes
    last_seen_ms: int | None
    status_json: str | None  # the kiosk's last retained status message


def device_from_row(row: Row[Any]) -> Device:
    m = row._mapping
    return Device(
        device_id=m["device_id"],
        village_id=m["village_id"],
        public_key=bytes(m["public_key"]),
        status=m["status"],
        mqtt_password_hash=m["mqtt_password_hash"],
        enrolled_ms=int(m["enrolled_ms"]),
        revoked_ms=None if m["revoked_ms"] is None else int(m["revoked_ms"]),
        acked_seq=int(m["acked_seq"]),
        last_h=bytes(m["last_h"]),
        last_seen_ms=None if m["last_seen_ms"] is None else int(m["last_seen_ms"]),
        status_json=m["status_json"],
    )


def storage_error(exc: SQLAlchemyError, doing: str) -> StorageError:
    """One line a technician can act on; the driver's text says what failed."""
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return StorageError(f"central database: {doing} failed: {first[0] if first else exc!r}")
