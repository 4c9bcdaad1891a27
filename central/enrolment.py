"""Enrolling devices at central (docs/design.md §6): the operator creates a one-time
token for a device id; the device generates its key pair and presents the token with
its public key; central records the key and returns a fresh MQTT password once. Only
the token's SHA-256 and the password's Mosquitto hash are stored. Revoking a device
refuses it from then on.

`DeviceEnrolment` holds these operations; `CentralStore` has them (it derives from
it), so callers keep asking the store: `store.create_enrol_token(…)`, `store.enrol(…)`,
`store.revoke_device(…)`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from central import audit, db
from central.broker import mosquitto_password_hash
from central.db import Device
from central.dynsec import is_reserved
from greenpass.errors import CentralError, StorageError
from greenpass.record.entries import GENESIS_H
from greenpass.record.ids import DEVICE_ID_RE, ID_RE
from sync.keys import public_key


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


def check_id(what: str, value: str, pattern: re.Pattern[str] = ID_RE) -> str:
    """`value` if it is an id as both ends take them (`greenpass.record.ids`): village
    and item ids, and with `DEVICE_ID_RE` device ids (also the MQTT username, so it
    must start with a letter or digit, as the broker requires)."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise CentralError(f"{what} {value!r} is not a valid id")
    return value


class _Store(Protocol):
    """What the enrolment operations use of the store they are part of."""

    def write(self, doing: str = ...) -> AbstractContextManager[Connection]: ...

    def read(
        self, doing: str = ..., *, snapshot: bool = ...
    ) -> AbstractContextManager[Connection]: ...

    def _require_village(self, conn: Connection, village_id: str) -> None: ...

    def _device(self, conn: Connection, device_id: str) -> Device | None: ...

    def _enrolment_check(
        self, conn: Connection, token: str, device_id: str, now_ms: int
    ) -> tuple[Any, Device | None]: ...


class DeviceEnrolment:
    """The enrolment half of `CentralStore`: enrolment tokens, enrolling, revoking."""

    def create_enrol_token(
        self: _Store,
        device_id: str,
        village_id: str,
        now_ms: int,
        ttl_s: int = 86_400,
        *,
        actor: str,
    ) -> str:
        """A one-time enrolment token for `device_id` in `village_id`, valid `ttl_s`.
        Audited as issued by `actor`, with its expiry but never the token itself."""
        if is_reserved(device_id):
            raise CentralError(f"device id {device_id!r} is reserved for the central service")
        check_id("device id", device_id, DEVICE_ID_RE)
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
        self: _Store,
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
        self: _Store, conn: Connection, token: str, device_id: str, now_ms: int
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

    def revoke_device(self: _Store, device_id: str, now_ms: int, *, actor: str) -> bool:
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
