"""`CentralStore`: villages, devices and their enrolment, catalogue, rules, issuer keys.

The batch ingest (`central.ingest`), the state a kiosk receives (`central.state`) and
the reports (`central.reports`) work on the same store. Every method that depends on
time takes `now_ms`, so tests and replays run on fixed clocks.

Enrolment (docs/design.md §6): the operator creates a one-time token for a device id; the
device generates its key pair and presents the token with its public key; central
records the key and returns a fresh MQTT password once. Only the token's SHA-256 and
the password's Mosquitto hash are stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.exc import SQLAlchemyError

from central import audit, db, migrations, rules_versions
from central.broker import mosquitto_password_hash
from central.db import Device, device_from_row, storage_error
from central.dynsec import DeviceLogin, is_reserved
from greenpass.errors import CentralError, ConfigError, ProtocolError, StorageError
from greenpass.record.entries import GENESIS_H
from greenpass.record.rules import parse_rules
from sync import protocol
from sync.keys import public_key

# The MQTT username is the device id, and the broker refuses a username that does not
# start with a letter or digit, so that is required here too (at enrolment, not later
# when the password file is written).
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Village and item ids are kiosk ids (greenpass.record.ids.ID_RE).
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_STATUS_BYTES = 16 * 1024

_status_json = msgspec.json.Encoder()

__all__ = [
    "DEVICE_ID_RE",
    "ID_RE",
    "CentralStore",
    "Device",
    "Enrolment",
    "device_from_row",
    "storage_error",
    "token_hash",
]


@dataclass(frozen=True)
class Enrolment:
    """What central hands a device once: keep the password, it is not stored in clear."""

    device_id: str
    village_id: str
    mqtt_username: str
    mqtt_password: str
    enrolled_ms: int
    re_enrolled: bool  # True when an active device replaced its key and password


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_fingerprint(public_key_raw: bytes) -> str:
    """A device key for people and the audit: the first 16 hex digits of its SHA-256
    (a public key is no secret, but 64 hex digits help nobody compare two)."""
    return hashlib.sha256(public_key_raw).hexdigest()[:16]


def _check_id(what: str, value: str, pattern: re.Pattern[str] = ID_RE) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise CentralError(f"{what} {value!r} is not a valid id")
    return value


class CentralStore:
    """Central's database behind typed methods. Thread-safe: each call takes its own
    pooled connection and transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = db.is_postgres(engine)

    @classmethod
    def open(cls, url: str | Path, *, now_ms: int = 0) -> CentralStore:
        """Open (and create or migrate) the database at `url`; `now_ms` stamps migrations."""
        engine = db.open_engine(url)
        try:
            migrations.migrate(engine, now_ms)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> CentralStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- transactions -------------------------------------------------------------------

    @contextmanager
    def write(self, doing: str = "a write") -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite), committed on exit."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise storage_error(exc, doing) from exc

    @contextmanager
    def read(self, doing: str = "a read", *, snapshot: bool = False) -> Iterator[Connection]:
        """One read transaction. `snapshot`: every statement sees the same committed
        state (SQLite's WAL read transaction does; PostgreSQL needs REPEATABLE READ)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{db.READ_ONLY: True})
                if snapshot and self.postgres:
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise storage_error(exc, doing) from exc

    # --- villages, catalogue, rules, issuer keys ----------------------------------------

    def create_village(self, village_id: str) -> bool:
        """Create a village; False if it exists already."""
        _check_id("village id", village_id)
        with self.write("creating a village") as conn:
            if conn.scalar(select(db.villages.c.village_id).where(_village(village_id))):
                return False
            conn.execute(insert(db.villages).values(village_id=village_id))
            return True

    def villages(self) -> list[str]:
        with self.read() as conn:
            return list(conn.scalars(select(db.villages.c.village_id).order_by("village_id")))

    def village_changes(self) -> dict[str, int]:
        """Each village's `changed_ms`: bumped by every write that alters its state."""
        with self.read() as conn:
            rows = conn.execute(select(db.villages.c.village_id, db.villages.c.changed_ms))
            return {v: int(c) for v, c in rows}

    def _require_village(self, conn: Connection, village_id: str) -> None:
        if conn.scalar(select(db.villages.c.village_id).where(_village(village_id))) is None:
            raise CentralError(f"no village {village_id!r}: create it first")

    def _touch_village(self, conn: Connection, village_id: str, now_ms: int) -> None:
        conn.execute(update(db.villages).where(_village(village_id)).values(changed_ms=now_ms))

    def put_item(
        self,
        village_id: str,
        item_id: str,
        *,
        name_zh: str,
        name_en: str,
        points_price: int,
        active: bool = True,
        now_ms: int = 0,
    ) -> None:
        """Add or change a catalogue item of a village (pushed to its kiosks in the state)."""
        _check_id("item id", item_id)
        if isinstance(points_price, bool) or not isinstance(points_price, int) or points_price <= 0:
            raise CentralError(f"a price is a positive number of points, got {points_price!r}")
        if not name_zh.strip() or not name_en.strip():
            raise CentralError("an item needs a Chinese and an English name")
        values = {
            "name_zh": name_zh.strip(),
            "name_en": name_en.strip(),
            "points_price": points_price,
            "active": active,
        }
        t = db.catalogue
        with self.write("saving a catalogue item") as conn:
            self._require_village(conn, village_id)
            where = (t.c.village_id == village_id) & (t.c.item_id == item_id)
            if conn.execute(update(t).where(where).values(**values)).rowcount == 0:
                conn.execute(insert(t).values(village_id=village_id, item_id=item_id, **values))
            self._touch_village(conn, village_id, now_ms)

    def set_rules(self, village_id: str, text: str, *, now_ms: int = 0) -> bool:
        """Make `text` the village's rules; False if they are already in force. A reused
        version with other text is refused: entries name their rules by version."""
        rules = parse_rules(text, f"<rules for {village_id}>")
        if rules.village not in ("*", village_id):
            raise ConfigError(
                f"rules {rules.version!r} are for village {rules.village!r}, not {village_id!r}"
            )
        t = db.village_rules
        with self.write("saving village rules") as conn:
            self._require_village(conn, village_id)
            row = conn.execute(
                select(t.c.version, t.c.text).where(t.c.village_id == village_id)
            ).first()
            if row is not None and row.version == rules.version:
                if row.text != text:
                    raise CentralError(
                        f"rules version {rules.version!r} is already in force for "
                        f"{village_id!r} with different text; give the new file a new version"
                    )
                return False
            # Kept for good, so entries priced with it still sync after newer rules.
            rules_versions.record(conn, village_id, rules, now_ms)
            if row is None:
                conn.execute(
                    insert(t).values(village_id=village_id, version=rules.version, text=text)
                )
            else:
                conn.execute(
                    update(t)
                    .where(t.c.village_id == village_id)
                    .values(version=rules.version, text=text)
                )
            self._touch_village(conn, village_id, now_ms)
            return True

    def add_issuer_key(
        self, key_id: str, village_id: str, public_key_raw: bytes, *, now_ms: int = 0
    ) -> bool:
        """Trust `public_key_raw` to sign the village's passbook cards; False if known."""
        _check_id("key id", key_id)
        try:
            public_key(public_key_raw)
        except ValueError as exc:
            raise CentralError(f"issuer key {key_id!r}: {exc}") from exc
        t = db.issuer_keys
        with self.write("saving an issuer key") as conn:
            self._require_village(conn, village_id)
            row = conn.execute(
                select(t.c.village_id, t.c.public_key).where(t.c.key_id == key_id)
            ).first()
            if row is not None:
                if row.village_id != village_id or bytes(row.public_key) != public_key_raw:
                    raise CentralError(f"issuer key id {key_id!r} is already used for another key")
                return False
            conn.execute(
                insert(t).values(key_id=key_id, village_id=village_id, public_key=public_key_raw)
            )
            self._touch_village(conn, village_id, now_ms)
            return True

    # --- enrolment ----------------------------------------------------------------------

    def create_enrol_token(
        self, device_id: str, village_id: str, now_ms: int, ttl_s: int = 86_400, *, actor: str
    ) -> str:
        """A one-time enrolment token for `device_id` in `village_id`, valid `ttl_s`.
        Audited as issued by `actor`, with its expiry but never the token itself."""
        if is_reserved(device_id):
            raise CentralError(f"device id {device_id!r} is reserved for the central service")
        _check_id("device id", device_id, DEVICE_ID_RE)
        if ttl_s <= 0:
            raise CentralError("a token's lifetime must be positive")
        token = secrets.token_urlsafe(24)
        while token.startswith("-"):
            # Typed after `--token`, a leading '-' reads as an option (argparse refuses it).
            token = secrets.token_urlsafe(24)
        with self.write("creating an enrolment token") as conn:
            self._require_village(conn, village_id)
            dev = self._device(conn, device_id)
            if dev is not None and dev.status == "revoked":
                raise CentralError(f"device {device_id!r} is revoked; enrol it under a new id")
            if dev is not None and dev.village_id != village_id:
                raise CentralError(
                    f"device {device_id!r} belongs to village {dev.village_id!r}, "
                    f"not {village_id!r}"
                )
            conn.execute(
                insert(db.enrol_tokens).values(
                    token_hash=token_hash(token),
                    device_id=device_id,
                    village_id=village_id,
                    created_ms=now_ms,
                    expires_ms=now_ms + ttl_s * 1000,
                )
            )
            audit.record(
                conn, actor=actor, action="device.enrol_token", target=device_id,
                village_id=village_id, now_ms=now_ms,
                after={"expires_ms": now_ms + ttl_s * 1000},
            )  # fmt: skip
        return token

    def enrol(
        self,
        token: str,
        device_id: str,
        public_key_raw: bytes,
        now_ms: int,
        *,
        mqtt_password: Callable[[str, bytes], str] | None = None,
    ) -> Enrolment:
        """Record a device's public key against a valid token; returns its MQTT password.

        A refusal names no device but the one asked for: a token presented with
        another device id is "unknown", so a token alone does not tell whose it is,
        nor does trying device ids with it tell which one it was for.
        """
        try:
            public_key(public_key_raw)
        except ValueError as exc:
            raise CentralError(f"enrolment refused: {exc}") from exc
        # A read first: a wrong, used or expired token is refused without taking the
        # write lock, so a flood of bad attempts does not queue in front of ingest's
        # writes (SQLite has one writer at a time).
        with self.read("checking an enrolment token") as conn:
            self._enrolment_check(conn, token, device_id, now_ms)
        # Derived from central's broker secret when it has one (`central.dynsec`), so
        # central can give the broker this login again at any time; random otherwise.
        if mqtt_password is not None:
            password = mqtt_password(device_id, public_key_raw)
        else:
            password = secrets.token_urlsafe(24)
        pw_hash = mosquitto_password_hash(password)
        t, d = db.enrol_tokens, db.devices
        try:
            with self.write("enrolling a device") as conn:
                # Again under the write lock: the token may have been spent meanwhile.
                tok, dev = self._enrolment_check(conn, token, device_id, now_ms)
                # Conditional: of two concurrent enrolments with one token, only the
                # first UPDATE matches; the other waits for its commit and finds 0 rows.
                used = conn.execute(
                    update(t)
                    .where((t.c.token_hash == tok.token_hash) & t.c.used_ms.is_(None))
                    .values(used_ms=now_ms)
                )
                if used.rowcount != 1:
                    raise CentralError("enrolment refused: the token has already been used")
                keys = {
                    "public_key": public_key_raw,
                    "mqtt_password_hash": pw_hash,
                    "enrolled_ms": now_ms,
                }
                if dev is None:
                    conn.execute(
                        insert(d).values(
                            device_id=device_id,
                            village_id=tok.village_id,
                            status="active",
                            last_h=GENESIS_H,
                            **keys,
                        )
                    )
                else:
                    # Same device id, same ledger: its acked_seq and chain continue.
                    conn.execute(update(d).where(d.c.device_id == device_id).values(**keys))
                # The device vouches for itself with the token; the MQTT password and
                # the token stay out of the audit, the key's fingerprint says which key.
                audit.record(
                    conn, actor=f"device:{device_id}",
                    action="device.enrol" if dev is None else "device.re_enrol",
                    target=device_id, village_id=tok.village_id, now_ms=now_ms,
                    before=None if dev is None else {"key": key_fingerprint(dev.public_key)},
                    after={"key": key_fingerprint(public_key_raw)},
                )  # fmt: skip
        except StorageError as exc:
            if isinstance(exc.__cause__, DBIntegrityError):
                raise CentralError(
                    f"enrolment refused: device {device_id!r} was enrolled at the same time; "
                    "retry with a new token"
                ) from exc
            raise
        return Enrolment(
            device_id=device_id,
            village_id=tok.village_id,
            mqtt_username=device_id,
            mqtt_password=password,
            enrolled_ms=now_ms,
            re_enrolled=dev is not None,
        )

    def _enrolment_check(
        self, conn: Connection, token: str, device_id: str, now_ms: int
    ) -> tuple[Any, Device | None]:
        """The token's row and the device (None if new), or the refusal."""
        t = db.enrol_tokens
        tok = conn.execute(
            select(t).where((t.c.token_hash == token_hash(token)) & (t.c.device_id == device_id))
        ).first()
        if tok is None:
            raise CentralError(
                "enrolment refused: the token is unknown, or was issued for another device id"
            )
        if tok.used_ms is not None:
            raise CentralError("enrolment refused: the token has already been used")
        if tok.expires_ms <= now_ms:
            raise CentralError("enrolment refused: the token has expired")
        dev = self._device(conn, device_id)
        if dev is not None and dev.status == "revoked":
            raise CentralError(f"enrolment refused: device {device_id!r} is revoked")
        if dev is not None and dev.village_id != tok.village_id:
            # Possible only for two tokens issued before the device first enrolled.
            raise CentralError(
                f"enrolment refused: device {device_id!r} is enrolled in another village"
            )
        return tok, dev

    def revoke_device(self, device_id: str, now_ms: int, *, actor: str) -> bool:
        """Refuse the device from now on (batches, status, enrolment); False if already
        (and then nothing is audited: nothing changed)."""
        d = db.devices
        with self.write("revoking a device") as conn:
            dev = self._device(conn, device_id)
            if dev is None:
                raise CentralError(f"no device {device_id!r}")
            if dev.status == "revoked":
                return False
            conn.execute(
                update(d)
                .where(d.c.device_id == device_id)
                .values(status="revoked", revoked_ms=now_ms)
            )
            audit.record(
                conn, actor=actor, action="device.revoke", target=device_id,
                village_id=dev.village_id, now_ms=now_ms,
                before={"status": dev.status}, after={"status": "revoked"},
            )  # fmt: skip
            return True

    def _device(self, conn: Connection, device_id: str) -> Device | None:
        row = conn.execute(select(db.devices).where(db.devices.c.device_id == device_id)).first()
        return None if row is None else device_from_row(row)

    def device(self, device_id: str) -> Device | None:
        with self.read("reading a device") as conn:
            return self._device(conn, device_id)

    def devices(self, village_id: str | None = None) -> list[Device]:
        q = select(db.devices).order_by(db.devices.c.device_id)
        if village_id is not None:
            q = q.where(db.devices.c.village_id == village_id)
        with self.read("listing devices") as conn:
            return [device_from_row(r) for r in conn.execute(q)]

    def broker_logins(self) -> list[DeviceLogin]:
        """What the broker must know of every active device (password not in clear)."""
        d = db.devices
        with self.read("listing the broker's logins") as conn:
            rows = conn.execute(
                select(d.c.device_id, d.c.public_key, d.c.mqtt_password_hash)
                .where(d.c.status == "active")
                .order_by(d.c.device_id)
            ).all()
        return [DeviceLogin(r.device_id, bytes(r.public_key), r.mqtt_password_hash) for r in rows]

    # --- status -------------------------------------------------------------------------

    def prune_dead_letters(self, received_before_ms: int) -> int:
        """Delete dead letters received before `received_before_ms`; how many went.

        They are evidence for an operator (what a kiosk sent and why it was refused),
        not ledger: nothing in them was ever counted, so old ones can go.
        """
        with self.write("pruning dead letters") as conn:
            result = conn.execute(
                delete(db.dead_letters).where(db.dead_letters.c.received_ms < received_before_ms)
            )
            return int(result.rowcount or 0)

    def record_status(self, topic: str, payload: bytes, now_ms: int) -> protocol.Status | None:
        """Keep an active device's retained status and return it; None (ignored) for
        anything else."""
        device_id = protocol.device_of(topic, protocol.STATUS)
        if device_id is None or len(payload) > MAX_STATUS_BYTES:
            return None
        try:
            status = protocol.decode_status(payload)
        except ProtocolError:
            return None
        if status.device_id != device_id:
            return None
        d = db.devices
        with self.write("recording a device status") as conn:
            done = conn.execute(
                update(d)
                .where((d.c.device_id == device_id) & (d.c.status == "active"))
                .values(status_json=_status_json.encode(status).decode(), last_seen_ms=now_ms)
            )
            return status if done.rowcount == 1 else None

    # --- counts (for health pages and tests) --------------------------------------------

    def count_entries(self, device_id: str | None = None) -> int:
        q = select(func.count()).select_from(db.entries)
        if device_id is not None:
            q = q.where(db.entries.c.device_id == device_id)
        with self.read("counting entries") as conn:
            return int(conn.scalar(q) or 0)


def _village(village_id: str) -> Any:
    return db.villages.c.village_id == village_id
