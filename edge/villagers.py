"""Villager households: enrolment and status (`Ledger`'s staff actions).

Both are entries, so central learns them like any other (a status change is an
addition to the spec's entry kinds: docs/ledger.md). The `villagers` table beside
the entries is kept in step in the same transaction; central's pushed state may
add the village's other households to it (`edge.central_state`).
"""

from __future__ import annotations

from edge import queries as q
from edge.appender import Appender
from edge.entries import Entry, Kind
from edge.store import Store
from greenpass.errors import Refused

STATUSES = ("active", "inactive", "revoked")


def enrol(
    store: Store,
    appender: Appender,
    village: str,
    household_name: str,
    *,
    staff_id: str,
    passbook_id: str | None,
) -> Entry:
    name = household_name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise Refused("bad_name", "the household name must be 1 to 64 printable characters")
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        if passbook_id is None:
            n = conn.execute("SELECT count(*) FROM entries WHERE kind = 'enrol'").fetchone()
            passbook_id = f"{appender.device_id}-{n[0] + 1:05d}"
        q.check_id("passbook_id", passbook_id, code="bad_passbook_id")
        if q.villager(conn, passbook_id) is not None:
            raise Refused("passbook_exists", f"passbook {passbook_id!r} is already enrolled")
        now = appender.now()
        entry = appender.append(
            conn,
            Kind.ENROL,
            now,
            passbook_id=passbook_id,
            staff_id=staff_id,
            data={"household_name": name, "village": village},
        )
        conn.execute(
            "INSERT INTO villagers VALUES (?, ?, ?, 'active', ?, ?)",
            (passbook_id, name, village, entry.seq, now[0]),
        )
    return entry


def set_status(
    store: Store, appender: Appender, passbook_id: str, status: str, *, staff_id: str, reason: str
) -> Entry:
    if status not in STATUSES:
        raise Refused("bad_status", f"status is one of {', '.join(STATUSES)}")
    reason = q.check_reason(reason)
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        if q.villager(conn, passbook_id) is None:
            raise Refused("unknown_passbook", f"no villager with passbook {passbook_id!r}")
        now = appender.now()
        entry = appender.append(
            conn,
            Kind.VILLAGER_STATUS,
            now,
            passbook_id=passbook_id,
            staff_id=staff_id,
            reason=reason,
            data={"status": status},
        )
        conn.execute(
            "UPDATE villagers SET status = ?, updated_ms = ? WHERE passbook_id = ?",
            (status, now[0], passbook_id),
        )
    return entry
