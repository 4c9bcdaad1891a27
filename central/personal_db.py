"""The `personal` table: per passbook, the commitment its enrolment carries, the salt
that opens it, and the erasure (`central.personal` holds what is done with them), and
the reads and writes of it that other modules make inside their own transactions.

Made by migration 6, which also takes the names out of central's copy of the
enrolments written before version 2 (their chained data carried the name).
"""

from __future__ import annotations

import json

import msgspec
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    LargeBinary,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from central import db
from greenpass.record.entries import Kind
from greenpass.record.personal import LEGACY_NAME_KEY

personal = Table(
    "personal",
    db.metadata,
    Column("passbook_id", Text, primary_key=True),
    Column("village_id", String(64), ForeignKey("villages.village_id"), nullable=False),
    Column("commitment", String(64)),  # from the enrolment; None before version 2
    Column("enrolled_by", String(64)),  # the device whose enrolment it is: only it sends the name
    Column("salt", LargeBinary),  # None until a kiosk sent it, and after an erasure
    Column("received_ms", BigInteger),
    Column("erased_ms", BigInteger),
    Column("erased_by", Text),
)

_data_json = msgspec.json.Encoder(order="sorted")  # as ingest writes `entries.data`


def migrate_v6(conn: Connection) -> None:
    personal.create(conn, checkfirst=False)
    e = db.entries
    # Take the names out of central's copy of the enrolments written before version 2.
    rows = conn.execute(
        select(e.c.device_id, e.c.seq, e.c.data).where(
            (e.c.kind == Kind.ENROL.value) & e.c.data.contains(f'"{LEGACY_NAME_KEY}"')
        )
    ).all()
    for device_id, seq, text in rows:
        data = json.loads(text)
        if data.pop(LEGACY_NAME_KEY, None) is not None:
            conn.execute(
                update(e)
                .where((e.c.device_id == device_id) & (e.c.seq == seq))
                .values(data=_data_json.encode(data).decode() if data else "{}")
            )


def erased_in(conn: Connection, passbook_id: str) -> bool:
    """Inside a transaction: was the passbook's household's data erased?"""
    found = conn.scalar(select(personal.c.erased_ms).where(personal.c.passbook_id == passbook_id))
    return found is not None


def mark_erased(conn: Connection, passbook_id: str, village_id: str, why: str, now_ms: int) -> None:
    """A new card of an erased household starts erased (no name will be taken for it)."""
    conn.execute(
        insert(personal).values(
            passbook_id=passbook_id, village_id=village_id, erased_ms=now_ms, erased_by=why
        )
    )
