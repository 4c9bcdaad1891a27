"""Reads and checks the ledger runs inside its transactions.

Each function takes the open connection, so a check and the write it guards see
the same data (the ledger holds `BEGIN IMMEDIATE` around both).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge.ledger.accounts import ACCOUNT_CTE
from edge.ledger.rows import SELECT_ENTRY, entry_from_row
from edge.ledger.staff import ROLES, PinPolicy, StaffMember, check_pin_format, hash_pin, pin_matches
from edge.ledger.store import Store
from greenpass.errors import Refused
from greenpass.record.entries import REVERSIBLE, Entry, Kind
from greenpass.record.ids import check_id
from greenpass.record.rules import Rules

MAX_REASON = 200


@dataclass(frozen=True)
class Villager:
    passbook_id: str
    household_name: str
    village: str
    status: str


@dataclass(frozen=True)
class Item:
    item_id: str
    name_zh: str
    name_en: str
    points_price: int
    active: bool
    stock: int
    # A short digest of the item's picture (None: it has none), so the page's picture
    # URL changes with the picture and a browser cache never shows a stale one.
    picture_tag: str | None = None


# --- argument checks -------------------------------------------------------------------


def check_reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise Refused("reason_required", "a reason is required")
    if len(text) > MAX_REASON or not text.isprintable():
        raise Refused("bad_reason", f"a reason is at most {MAX_REASON} printable characters")
    return text


def check_qty(qty: int) -> int:
    if isinstance(qty, bool) or not isinstance(qty, int) or not 0 < qty <= 100_000:
        raise Refused("bad_quantity", f"a quantity is a whole number from 1 to 100000, got {qty!r}")
    return qty


def check_cart(items: Sequence[tuple[str, int]]) -> dict[str, int]:
    if not items:
        raise Refused("empty_cart", "nothing to redeem")
    cart: dict[str, int] = {}
    for item_id, qty in items:
        check_qty(qty)
        cart[item_id] = check_qty(cart.get(item_id, 0) + qty)
    return cart


# --- state reads -----------------------------------------------------------------------


def entry(conn: sqlite3.Connection, seq: int) -> Entry:
    row = conn.execute(f"{SELECT_ENTRY} WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        raise Refused("unknown_entry", f"no entry with seq {seq!r}")
    return entry_from_row(row)[0]


def villager(conn: sqlite3.Connection, passbook_id: str) -> Villager | None:
    row = conn.execute(
        "SELECT passbook_id, household_name, village, status FROM villagers WHERE passbook_id = ?",
        (passbook_id,),
    ).fetchone()
    return Villager(*row) if row else None


@dataclass(frozen=True)
class Found:
    """A passbook found by `find_villagers`: the villager, and the card that replaced it
    at this kiosk (None if none did)."""

    villager: Villager
    replaced_by: str | None


def find_villagers(
    conn: sqlite3.Connection, village: str, query: str, limit: int = 30
) -> list[Found]:
    """The village's passbooks whose id or household name holds `query` (all of them for
    an empty query), revoked ones last, then by passbook id; at most `limit`."""
    rows = conn.execute(
        "SELECT v.passbook_id, v.household_name, v.village, v.status, l.new_passbook_id "
        "FROM villagers v LEFT JOIN passbook_links l ON l.old_passbook_id = v.passbook_id "
        "WHERE v.village = ?1 AND (?2 = '' OR instr(lower(v.passbook_id), lower(?2)) > 0 "
        "OR instr(v.household_name, ?2) > 0) "
        "ORDER BY v.status = 'revoked', v.passbook_id LIMIT ?3",
        (village, query.strip(), max(1, limit)),
    ).fetchall()
    return [Found(Villager(*r[:4]), r[4]) for r in rows]


def villagers(conn: sqlite3.Connection, village: str, status: str) -> list[Villager]:
    rows = conn.execute(
        "SELECT passbook_id, household_name, village, status FROM villagers "
        "WHERE village = ? AND status = ? ORDER BY passbook_id",
        (village, status),
    ).fetchall()
    return [Villager(*r) for r in rows]


def staff_members(conn: sqlite3.Connection) -> list[StaffMember]:
    rows = conn.execute("SELECT staff_id, name, role, active FROM staff ORDER BY staff_id")
    return [StaffMember(r[0], r[1], r[2], bool(r[3])) for r in rows]


def staff_member(conn: sqlite3.Connection, staff_id: str) -> StaffMember | None:
    row = conn.execute(
        "SELECT staff_id, name, role, active FROM staff WHERE staff_id = ?", (staff_id,)
    ).fetchone()
    return StaffMember(row[0], row[1], row[2], bool(row[3])) if row else None


def stock(conn: sqlite3.Connection, item_id: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(qty), 0) FROM entries WHERE item_id = ?", (item_id,)
    ).fetchone()
    return int(row[0])


def item(conn: sqlite3.Connection, item_id: str) -> Item | None:
    row = conn.execute(
        "SELECT item_id, name_zh, name_en, points_price, active, picture FROM catalogue "
        "WHERE item_id = ?",
        (item_id,),
    ).fetchone()
    if row is None:
        return None
    tag = None if row[5] is None else hashlib.sha256(row[5]).hexdigest()[:12]
    return Item(row[0], row[1], row[2], row[3], bool(row[4]), stock(conn, item_id), tag)


def item_picture(conn: sqlite3.Connection, item_id: str) -> bytes | None:
    """The item's JPEG thumbnail, as central sent it; None if it has none."""
    row = conn.execute("SELECT picture FROM catalogue WHERE item_id = ?", (item_id,)).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def catalogue(conn: sqlite3.Connection) -> list[Item]:
    ids = [r[0] for r in conn.execute("SELECT item_id FROM catalogue ORDER BY item_id")]
    return [i for i in (item(conn, x) for x in ids) if i is not None]


_BALANCE_SQL = (
    ACCOUNT_CTE + "SELECT coalesce((SELECT sum(points) FROM snapshot_balances "
    "WHERE passbook_id IN account), 0) "
    "+ coalesce((SELECT sum(points) FROM entries WHERE passbook_id IN account AND seq > "
    "coalesce((SELECT included_seq FROM snapshot WHERE id = 1), 0)), 0)"
)


def balance(conn: sqlite3.Connection, passbook_id: str) -> int:
    """Central's snapshot plus this kiosk's entries after it (docs/design.md §3), for the
    passbook's account: a card replaced here counts under the card that replaced it,
    as central counts it (`central.passbooks.fold_balances`), and has none of its own
    (`edge.ledger.accounts`).

    Before central has the replacement its snapshot still holds the old card's points
    under the old id, and they are added here; once it has, the snapshot holds the
    whole account under the new id and nothing under the old, and the sum is the same.
    """
    return int(conn.execute(_BALANCE_SQL, (passbook_id,)).fetchone()[0])


# --- who may act (checked inside the write transaction) --------------------------------


def require_staff(conn: sqlite3.Connection, staff_id: str, *roles: str) -> StaffMember:
    member = staff_member(conn, staff_id)
    if member is None:
        raise Refused("unknown_staff", f"no staff member {staff_id!r}")
    if not member.active:
        raise Refused("staff_inactive", f"staff member {staff_id!r} is deactivated")
    if roles and member.role not in roles:
        raise Refused("not_allowed", f"{member.role} {staff_id!r} may not do this")
    return member


def check_villager(
    passbook_id: str, status: str | None, village: str | None, kiosk_village: str
) -> None:
    """May this passbook earn or spend here? `status` is None for an unknown passbook."""
    if status is None:
        raise Refused("unknown_passbook", f"no villager with passbook {passbook_id!r}")
    # Revocation first: central may list a lost card it knows no village for.
    if status == "revoked":
        raise Refused("revoked_passbook", f"passbook {passbook_id!r} has been revoked")
    if village != kiosk_village:
        raise Refused(
            "foreign_village",
            f"passbook {passbook_id!r} belongs to village "
            f"{village!r}, this kiosk is {kiosk_village!r}",
        )
    if status != "active":
        raise Refused("inactive_villager", f"villager {passbook_id!r} is {status}")


def require_villager(conn: sqlite3.Connection, passbook_id: str, kiosk_village: str) -> None:
    row = conn.execute(
        "SELECT status, village FROM villagers WHERE passbook_id = ?", (passbook_id,)
    ).fetchone()
    status, village = row if row else (None, None)
    check_villager(passbook_id, status, village, kiosk_village)


# --- today -----------------------------------------------------------------------------


_day_cache: dict[str, tuple[int, int]] = {}  # time zone → [midnight, next midnight) in ms


def day_start_ms(rules: Rules, wall_ms: int) -> int:
    """Local midnight before `wall_ms` in the rules' time zone (cached for the day)."""
    start, end = _day_cache.get(rules.timezone, (0, 0))
    if start <= wall_ms < end:
        return start
    local = datetime.fromtimestamp(wall_ms / 1000, rules.tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    start = int(midnight.timestamp() * 1000)
    following = (midnight + timedelta(days=1)).replace(tzinfo=rules.tz)
    end = int(following.timestamp() * 1000)
    _day_cache[rules.timezone] = (start, end)
    return start


@dataclass(frozen=True)
class DepositLine:
    """One deposit as the villager's screen lists it."""

    seq: int
    category: str
    grams: int
    points: int
    co2e_g: int
    wall_ms: int
    flags: str


@dataclass(frozen=True)
class CategoryTotal:
    category: str
    deposits: int
    grams: int
    points: int
    co2e_g: int


@dataclass(frozen=True)
class DayReport:
    """Today at this kiosk, for staff. Entries that stand: a reversal and the entry it
    cancels both drop out (so a reversal today of yesterday's entry is not in it)."""

    day_start_ms: int
    categories: list[CategoryTotal]  # deposits per waste category, by key
    points_in: int  # earned: deposits and awards
    points_out: int  # spent: redemptions (a positive number)
    co2e_g: int
    stock: list[Item]  # every catalogue item, with its stock now
    entries: int  # every standing entry of the day but reversals (enrolments and restocks too)


# This kiosk's own entries a reversal here cancelled (`ref_device` NULL); a reversal of
# another kiosk's entry cancels nothing in this ledger.
_STANDING = (
    "seq NOT IN (SELECT ref_seq FROM entries WHERE kind = 'reversal' AND ref_device IS NULL)"
)


def today_deposits(conn: sqlite3.Connection, passbook_id: str, day_start: int) -> list[DepositLine]:
    """A passbook's deposits since `day_start` that were not reversed, newest first."""
    rows = conn.execute(
        "SELECT seq, category, grams, points, co2e_g, wall_ms, flags FROM entries "
        "WHERE passbook_id = ?1 AND kind = 'deposit' AND wall_ms >= ?2 AND seq NOT IN "
        "(SELECT ref_seq FROM entries WHERE passbook_id = ?1 AND kind = 'reversal' "
        "AND ref_device IS NULL) "
        "ORDER BY seq DESC",
        (passbook_id, day_start),
    ).fetchall()
    return [DepositLine(*r) for r in rows]


def day_report(conn: sqlite3.Connection, day_start: int) -> DayReport:
    """Totals of the entries since `day_start` that stand (see `DayReport`)."""
    categories = [
        CategoryTotal(*r)
        for r in conn.execute(
            "SELECT category, count(*), sum(grams), sum(points), sum(co2e_g) FROM entries "
            f"WHERE kind = 'deposit' AND wall_ms >= ? AND {_STANDING} "
            "GROUP BY category ORDER BY category",
            (day_start,),
        )
    ]
    points_in, points_out, co2e_g, entries = conn.execute(
        "SELECT coalesce(sum(max(points, 0)), 0), coalesce(-sum(min(points, 0)), 0), "
        "coalesce(sum(co2e_g), 0), count(*) FROM entries "
        f"WHERE kind != 'reversal' AND wall_ms >= ? AND {_STANDING}",
        (day_start,),
    ).fetchone()
    return DayReport(day_start, categories, points_in, points_out, co2e_g, catalogue(conn), entries)


def check_reversible(conn: sqlite3.Connection, target: Entry) -> None:
    if target.kind not in REVERSIBLE:
        raise Refused("not_reversible", f"a {target.kind} entry cannot be reversed")
    done = conn.execute(
        "SELECT seq FROM entries WHERE kind = ? AND ref_seq = ? AND ref_device IS NULL",
        (Kind.REVERSAL.value, target.seq),
    ).fetchone()
    if done is not None:
        raise Refused(
            "already_reversed", f"entry {target.seq} was already reversed by entry {done[0]}"
        )
    elsewhere = conn.execute(
        "SELECT by_device FROM reversed_elsewhere WHERE seq = ?", (target.seq,)
    ).fetchone()
    if elsewhere is not None:
        raise Refused(
            "already_reversed",
            f"entry {target.seq} is reversed at kiosk {elsewhere[0]}",
            by=str(elsewhere[0]),
        )


# --- staff -----------------------------------------------------------------------------


def add_staff(
    store: Store, staff_id: str, *, name: str, role: str, pin: str, by_staff_id: str | None
) -> StaffMember:
    check_id("staff_id", staff_id, code="bad_staff_id")
    if role not in ROLES:
        raise Refused("bad_role", f"role is one of {', '.join(ROLES)}")
    if not name.strip():
        raise Refused("bad_name", "a staff member needs a name")
    check_pin_format(pin)
    pin_hash = hash_pin(pin)  # slow: done before the write lock is taken
    with store.write() as conn:
        anyone = conn.execute("SELECT count(*) FROM staff").fetchone()[0]
        if anyone:
            admin = staff_member(conn, by_staff_id) if by_staff_id else None
            if admin is None or not admin.active or admin.role != "admin":
                raise Refused("not_allowed", "only an admin may add staff")
        if staff_member(conn, staff_id) is not None:
            raise Refused("staff_exists", f"staff member {staff_id!r} already exists")
        conn.execute(
            "INSERT INTO staff(staff_id, name, role, pin_hash) VALUES (?, ?, ?, ?)",
            (staff_id, name.strip(), role, pin_hash),
        )
    return StaffMember(staff_id, name.strip(), role, True)


def authenticate(
    store: Store, policy: PinPolicy, now_ms: int, staff_id: str, pin: str
) -> StaffMember:
    rows = store.query(
        "SELECT name, role, active, pin_hash, locked_until_ms FROM staff WHERE staff_id = ?",
        (staff_id,),
    )
    if not rows:
        raise Refused("unknown_staff", f"no staff member {staff_id!r}")
    member = StaffMember(staff_id, rows[0]["name"], rows[0]["role"], bool(rows[0]["active"]))
    if not member.active:
        raise Refused("staff_inactive", f"staff member {staff_id!r} is deactivated")
    locked_until = rows[0]["locked_until_ms"]
    if now_ms < locked_until:
        minutes = (locked_until - now_ms + 59_999) // 60_000
        raise Refused("staff_locked", f"too many wrong PINs: locked for {minutes} more min")
    ok = pin_matches(pin, rows[0]["pin_hash"])
    with store.write() as conn:
        if ok:
            conn.execute(
                "UPDATE staff SET failed_attempts = 0, locked_until_ms = 0 WHERE staff_id = ?",
                (staff_id,),
            )
            return member
        failed = conn.execute(
            "UPDATE staff SET failed_attempts = failed_attempts + 1 "
            "WHERE staff_id = ? RETURNING failed_attempts",
            (staff_id,),
        ).fetchone()[0]
        left = policy.max_attempts - failed
        if left <= 0:
            conn.execute(
                "UPDATE staff SET failed_attempts = 0, locked_until_ms = ? WHERE staff_id = ?",
                (now_ms + policy.lockout_ms, staff_id),
            )
    if left <= 0:
        raise Refused(
            "staff_locked", f"too many wrong PINs: locked for {policy.lockout_ms // 60_000} min"
        )
    raise Refused("bad_pin", f"wrong PIN; {left} tries left before a lockout", tries_left=left)
