"""`CentralStore`: villages, devices and their enrolment, catalogue, rules, issuer keys.

The batch ingest (`central.ingest`), the state a kiosk receives (`central.state`) and
the reports (`central.reports`) work on the same store. Every method that depends on
time takes `now_ms`, so tests and replays run on fixed clocks.

Enrolling and revoking devices (docs/design.md §6) are in `central.enrolment`, whose
`DeviceEnrolment` this store derives from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from central import db, engines, migrations, rules_versions
from central.db import Device, device_from_row, storage_error
from central.dynsec import DeviceLogin
from central.enrolment import DeviceEnrolment, check_id
from central.node_cache import NodeCache
from greenpass.errors import CentralError, ConfigError, ProtocolError
from greenpass.record.rules import parse_rules
from sync import protocol
from sync.keys import public_key

MAX_STATUS_BYTES = 16 * 1024

_status_json = msgspec.json.Encoder()
_d = db.devices
# Built once: a reconnect storm brings a status from every kiosk, and building a Core
# statement costs more than running it.
_KEEP_STATUS = (
    update(_d)
    .where((_d.c.device_id == bindparam("b_device")) & (_d.c.status == "active"))
    .values(status_json=bindparam("b_json"), last_seen_ms=bindparam("b_seen"))
    .returning(_d.c.village_id)
)

__all__ = ["CentralStore", "Device", "device_from_row", "storage_error"]


@dataclass(frozen=True)
class KeptStatus:
    status: protocol.Status
    village_id: str
    then: bool  # what keep_status's `then` answered (False without one)


class CentralStore(DeviceEnrolment):
    """Central's database behind typed methods. Thread-safe: each call takes its own
    pooled connection and transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engines.is_postgres(engine)
        # The log's full-subtree hashes that proofs read or made (central.node_cache).
        self.log_nodes = NodeCache()

    @classmethod
    def open(cls, url: str | Path, *, now_ms: int = 0) -> CentralStore:
        """Open (and create or migrate) the database at `url`; `now_ms` stamps migrations."""
        engine = engines.open_engine(url)
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
                conn.execution_options(**{engines.READ_ONLY: True})
                if snapshot and self.postgres:
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise storage_error(exc, doing) from exc

    # --- villages, catalogue, rules, issuer keys ----------------------------------------

    def create_village(self, village_id: str) -> bool:
        """Create a village; False if it exists already."""
        check_id("village id", village_id)
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
        conn.execute(
            update(db.villages)
            .where(_village(village_id))
            .values(changed_ms=db.village_changed(now_ms))
        )

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
        check_id("item id", item_id)
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
        check_id("key id", key_id)
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
        kept = self.keep_status(topic, payload, now_ms)
        return None if kept is None else kept.status

    def keep_status(
        self,
        topic: str,
        payload: bytes,
        now_ms: int,
        then: Callable[[Connection, protocol.Status], bool] | None = None,
    ) -> KeptStatus | None:
        """`record_status`, with the device's village and `then`'s answer from the same
        transaction: a reconnect storm brings a status from every kiosk, and each
        transaction is a pool check-out, a ping and a commit."""
        device_id = protocol.device_of(topic, protocol.STATUS)
        if device_id is None or len(payload) > MAX_STATUS_BYTES:
            return None
        try:
            status = protocol.decode_status(payload)
        except ProtocolError:
            return None
        if status.device_id != device_id:
            return None
        with self.write("recording a device status") as conn:
            village = conn.scalar(
                _KEEP_STATUS,
                {
                    "b_device": device_id,
                    "b_json": _status_json.encode(status).decode(),
                    "b_seen": now_ms,
                },
            )
            if village is None:
                return None
            return KeptStatus(status, str(village), then is not None and then(conn, status))

    # --- counts (for health pages and tests) --------------------------------------------

    def count_entries(self, device_id: str | None = None) -> int:
        q = select(func.count()).select_from(db.entries)
        if device_id is not None:
            q = q.where(db.entries.c.device_id == device_id)
        with self.read("counting entries") as conn:
            return int(conn.scalar(q) or 0)


def _village(village_id: str) -> Any:
    return db.villages.c.village_id == village_id
