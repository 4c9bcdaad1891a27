"""The rows one batch adds at central, inside ingest's transaction (`central.ingest`):
its entries, inserted as fast as each database takes them, and the `villagers` kept
from its enrol and villager_status entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import msgspec
import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    LargeBinary,
    String,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from central import db
from central.db import Device
from central.ingest_checks import DATA
from greenpass.record.entries import Entry, Kind
from sync import protocol

_data_json = msgspec.json.Encoder(order="sorted")


# Column order of the INSERT and the COPY: an entry's row as `protocol.Batch` holds it,
# then what central adds. Checked against the table at import.
ENTRY_COLUMNS = (*protocol.ROW_FIELDS, "h", "village_id", "received_ms")
if tuple(c.name for c in db.entries.columns) != ENTRY_COLUMNS:  # pragma: no cover
    raise RuntimeError("central.db.entries and ingest.ENTRY_COLUMNS disagree")
_ROWS_PER_STATEMENT = 1000  # 24,000 parameters, under SQLite's limit of 32,766


@lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    one = "(" + ", ".join(["?"] * len(ENTRY_COLUMNS)) + ")"
    return f"INSERT INTO entries ({', '.join(ENTRY_COLUMNS)}) VALUES " + ", ".join([one] * rows)


def _copy_type(column: Any) -> str:
    t = column.type
    if isinstance(t, BigInteger):
        return "int8"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, LargeBinary):
        return "bytea"
    if isinstance(t, String):  # Text too
        return "text"
    raise TypeError(f"entries.{column.name}: no COPY type for {t!r}")  # pragma: no cover


_COPY_SQL = f"COPY entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = [_copy_type(c) for c in db.entries.columns]


def _data_text(data: dict[str, str]) -> str:
    return _data_json.encode(data).decode() if data else "{}"


def insert_entries(
    conn: Connection,
    rows: Sequence[tuple[Any, ...]],
    hashes: Sequence[bytes],
    village_id: str,
    now_ms: int,
) -> None:
    """Insert a batch's new entries (`protocol.Batch.rows` and their hashes): the hot
    path of a sync storm, so values go to the driver as they are, not through Core.

    SQLite: one multi-row INSERT per 1,000 rows (half the time of a row-by-row
    executemany). PostgreSQL: binary COPY on the connection's psycopg handle, in the
    same transaction, about four times less work for both ends than the pipelined
    executemany (psycopg formats a COPY row in C; an INSERT's parameters in Python).
    It is the one place central leaves SQLAlchemy: Core has no COPY, and this is the
    only statement whose cost grows with the backlog. A psycopg error is turned into
    SQLAlchemy's (IntegrityError, DataError, …), so the caller treats it as it treats
    an INSERT's."""
    if conn.dialect.name == "postgresql":
        _copy_entries(conn, rows, hashes, village_id, now_ms)
        return
    n_data = DATA
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        flat: list[Any] = []
        for row, h in zip(chunk, hashes[start : start + _ROWS_PER_STATEMENT], strict=True):
            flat += row[:n_data]
            flat += (_data_text(row[n_data]), row[n_data + 1], h, village_id, now_ms)
        conn.exec_driver_sql(_insert_sql(len(chunk)), tuple(flat))


def _copy_entries(
    conn: Connection,
    rows: Sequence[tuple[Any, ...]],
    hashes: Sequence[bytes],
    village_id: str,
    now_ms: int,
) -> None:
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    n_data = DATA
    try:
        with raw.cursor() as cur, cur.copy(_COPY_SQL) as copy:
            copy.set_types(COPY_TYPES)
            for row, h in zip(rows, hashes, strict=True):
                copy.write_row(
                    (*row[:n_data], _data_text(row[n_data]), row[n_data + 1], h, village_id, now_ms)
                )
    except psycopg.Error as exc:
        raise DBAPIError.instance(
            _COPY_SQL, None, exc, psycopg.Error, dialect=conn.dialect
        ) from exc


_VILLAGER_UPDATED = ("household_name", "status", "updated_ms", "source_device", "source_seq")


def apply_villagers(conn: Connection, dev: Device, changes: list[Entry]) -> None:
    """Keep `villagers` current from enrol and villager_status entries.

    The first enrolment of a passbook wins (kiosks refuse a second one locally; across
    kiosks it is a clash for the operator, not something to overwrite). A status change
    wins when it is at least as recent by wall clock as the one stored, so a kiosk that
    syncs late cannot undo a newer change made elsewhere. A status change that arrives
    before the enrolment (another kiosk still offline) creates the row without a name;
    the enrolment fills it in later.
    """
    if not changes:
        return
    ids = sorted({x.passbook_id for x in changes if x.passbook_id})
    rows: dict[str, dict[str, Any]] = {
        r.passbook_id: dict(r._mapping) for r in conn.execute(_VILLAGERS_IN, {"b_ids": ids})
    }
    existing, changed = set(rows), set()
    for x in changes:
        pid = x.passbook_id
        assert pid is not None  # check_entries refused it otherwise
        cur = rows.get(pid)
        source = {"updated_ms": x.wall_ms, "source_device": dev.device_id, "source_seq": x.seq}
        if x.kind is Kind.ENROL:
            name = x.data.get("household_name", "")
            if cur is None:
                rows[pid] = _villager(pid, dev.village_id, name, "active", source)
            elif cur["household_name"] == "" and cur["village_id"] == dev.village_id:
                cur["household_name"] = name
            else:
                continue
        elif cur is None:
            rows[pid] = _villager(pid, dev.village_id, "", x.data["status"], source)
        elif cur["village_id"] == dev.village_id and x.wall_ms >= cur["updated_ms"]:
            cur.update(status=x.data["status"], **source)
        else:
            continue
        changed.add(pid)
    fresh = [rows[p] for p in sorted(changed - existing)]
    if fresh:
        conn.execute(_VILLAGER_INSERT, fresh)
    updated = [
        {"b_pid": pid, **{f"b_{k}": rows[pid][k] for k in _VILLAGER_UPDATED}}
        for pid in sorted(changed & existing)
    ]
    if updated:
        conn.execute(_VILLAGER_UPDATE, updated)


# Built once: a reconnect storm's batches each carry an enrolment, and there this and
# `personal.record_commitments` took a quarter of the receiver's time (py-spy), much of
# it building their statements.
_v = db.villagers
_VILLAGERS_IN = select(_v).where(_v.c.passbook_id.in_(bindparam("b_ids", expanding=True)))
_VILLAGER_INSERT = insert(_v)
_VILLAGER_UPDATE = (
    update(_v)
    .where(_v.c.passbook_id == bindparam("b_pid"))
    .values({k: bindparam(f"b_{k}") for k in _VILLAGER_UPDATED})
)


def _villager(
    pid: str, village: str, name: str, status: str, source: dict[str, Any]
) -> dict[str, Any]:
    return {
        "passbook_id": pid,
        "village_id": village,
        "household_name": name,
        "status": status,
        **source,
    }
