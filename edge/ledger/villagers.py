"""Villager households: enrolment, status, and replacing a lost card (`Ledger`'s staff
actions).

All are entries, so central learns them like any other (a status change is an
addition to the spec's entry kinds: docs/ledger.md). The `villagers` table beside
the entries is kept in step in the same transaction; central's pushed state may
add the village's other households to it (`edge.ledger.central_state`).

**Replacing a lost card** is two entries in one transaction: an `enrol` of a new
passbook for the same household whose `data.replaces` names the old one, then a
`villager_status` revoking the old one ("replaced by NEW"). The old card is refused
here at once; `passbook_links` (old → new) makes the new passbook's balance include
the old one's (`queries.balance`). Central links the two when it ingests the enrol
(`central.kiosk_replacements`), so its later snapshots fold the old balance under the
new id, and every other kiosk refuses the old card with the state after that.
"""

from __future__ import annotations

import sqlite3

from edge.ledger import accounts
from edge.ledger import queries as q
from edge.ledger.appender import Appender
from edge.ledger.store import Store
from greenpass.errors import Refused
from greenpass.record.entries import Entry, Kind
from greenpass.record.ids import check_id
from greenpass.record.personal import PERSONAL_KEY, commitment, household_fields, new_salt

STATUSES = ("active", "inactive", "revoked")


def check_name(household_name: str) -> str:
    name = household_name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise Refused("bad_name", "the household name must be 1 to 64 printable characters")
    return name


def enrol(
    store: Store,
    appender: Appender,
    village: str,
    household_name: str,
    *,
    staff_id: str,
    passbook_id: str | None,
) -> Entry:
    name = check_name(household_name)
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        return _enrol(conn, appender, village, name, staff_id, passbook_id, {})


def _enrol(
    conn: sqlite3.Connection,
    appender: Appender,
    village: str,
    name: str,
    staff_id: str,
    passbook_id: str | None,
    extra: dict[str, str],
) -> Entry:
    """Append the `enrol` entry and the `villagers` row, inside the caller's transaction."""
    if passbook_id is None:
        n = conn.execute("SELECT count(*) FROM entries WHERE kind = 'enrol'").fetchone()
        passbook_id = f"{appender.device_id}-{n[0] + 1:05d}"
    check_id("passbook_id", passbook_id, code="bad_passbook_id")
    if q.villager(conn, passbook_id) is not None:
        raise Refused("passbook_exists", f"passbook {passbook_id!r} is already enrolled")
    now = appender.now()
    # The chain holds a commitment to the name, never the name (greenpass.record.personal): the
    # name and its salt stay in `villagers`, where they can be corrected and erased.
    salt = new_salt()
    entry = appender.append(
        conn,
        Kind.ENROL,
        now,
        passbook_id=passbook_id,
        staff_id=staff_id,
        data={PERSONAL_KEY: commitment(household_fields(name), salt), "village": village, **extra},
    )
    conn.execute(
        "INSERT INTO villagers (passbook_id, household_name, village, status, enrolled_seq, "
        "updated_ms, salt) VALUES (?, ?, ?, 'active', ?, ?, ?)",
        (passbook_id, name, village, entry.seq, now[0], salt),
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
        if status != "revoked" and (new := accounts.replaced_by(conn, passbook_id)) is not None:
            raise Refused(
                "already_replaced",
                f"passbook {passbook_id!r} was replaced by {new!r}; its card stays refused",
                replaced_by=new,
            )
        return _set_status(conn, appender, passbook_id, status, staff_id, reason)


def _set_status(
    conn: sqlite3.Connection,
    appender: Appender,
    passbook_id: str,
    status: str,
    staff_id: str,
    reason: str,
) -> Entry:
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


def replace(
    store: Store,
    appender: Appender,
    village: str,
    old: str,
    *,
    staff_id: str,
    new_passbook_id: str | None,
) -> tuple[Entry, Entry]:
    """Replace the lost card `old`: (the new passbook's `enrol`, the old one's revocation).

    Refused: `unknown_passbook`; `already_replaced` (here: `replaced_by` names the new
    one); `revoked_passbook` (revoked here or by central: this kiosk cannot tell whether
    central has already replaced it, and a second new card would split the household's
    points, so it is replaced at central); `foreign_village`; `no_household` (central
    sent the passbook without its household's name); `same_passbook` or
    `passbook_exists` for a `new_passbook_id` that cannot be the new one.
    """
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        v = q.villager(conn, old)
        if v is None:
            raise Refused("unknown_passbook", f"no villager with passbook {old!r}")
        if (done := accounts.replaced_by(conn, old)) is not None:
            raise Refused(
                "already_replaced",
                f"passbook {old!r} was already replaced by {done!r}",
                replaced_by=done,
            )
        if v.status == "revoked":
            raise Refused(
                "revoked_passbook",
                f"passbook {old!r} is revoked: it may already have been replaced at central; "
                "replace it there (greenpass central passbook replace)",
            )
        if v.village != village:
            raise Refused(
                "foreign_village",
                f"passbook {old!r} belongs to village {v.village!r}, this kiosk is {village!r}",
            )
        if not v.household_name.strip():
            raise Refused(
                "no_household",
                f"passbook {old!r}: this kiosk does not know its household's name",
            )
        if new_passbook_id == old:
            raise Refused("same_passbook", f"passbook {old!r} cannot replace itself")
        name = check_name(v.household_name)
        enrolled = _enrol(
            conn, appender, village, name, staff_id, new_passbook_id, {"replaces": old}
        )
        new = enrolled.passbook_id
        assert new is not None  # never equal to `old`: `_enrol` refuses an enrolled id
        revoked = _set_status(conn, appender, old, "revoked", staff_id, f"replaced by {new}")
        conn.execute("INSERT INTO passbook_links VALUES (?, ?, ?)", (old, new, enrolled.seq))
    return enrolled, revoked
