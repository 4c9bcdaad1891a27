"""Reads and checks the ledger runs inside its transactions.

Each function takes the open connection, so a check and the write it guards see
the same data (the ledger holds `BEGIN IMMEDIATE` around both).
"""

from __future__ import annotations

import re
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge.entries import REVERSIBLE, Entry, Kind
from edge.rules import Category, Rules
from edge.staff import ROLES, PinPolicy, StaffMember, check_pin_format, hash_pin, pin_matches
from edge.store import Store
from greenpass.errors import Refused

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A device id is also its MQTT username and a topic level: no dots (central and the
# broker's password file refuse them), and never the central service's name.
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
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


# --- argument checks -------------------------------------------------------------------


def check_device_id(value: str) -> str:
    if not isinstance(value, str) or not DEVICE_ID_RE.match(value) or value == "central":
        raise Refused(
            "bad_id",
            f"device id {value!r} must be 1-64 letters, digits, '_' or '-' (not 'central')",
        )
    return value


def check_id(what: str, value: str, *, code: str = "bad_id") -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise Refused(code, f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return value


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


def villager(conn: sqlite3.Connection, passbook_id: str) -> Villager | None:
    row = conn.execute(
        "SELECT passbook_id, household_name, village, status FROM villagers WHERE passbook_id = ?",
        (passbook_id,),
    ).fetchone()
    return Villager(*row) if row else None


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
        "SELECT item_id, name_zh, name_en, points_price, active FROM catalogue WHERE item_id = ?",
        (item_id,),
    ).fetchone()
    if row is None:
        return None
    return Item(row[0], row[1], row[2], row[3], bool(row[4]), stock(conn, item_id))


def catalogue(conn: sqlite3.Connection) -> list[Item]:
    ids = [r[0] for r in conn.execute("SELECT item_id FROM catalogue ORDER BY item_id")]
    return [i for i in (item(conn, x) for x in ids) if i is not None]


def balance(conn: sqlite3.Connection, passbook_id: str) -> int:
    """Central's snapshot for the passbook plus this kiosk's entries after it (DESIGN §3)."""
    row = conn.execute(
        "SELECT coalesce((SELECT points FROM snapshot_balances WHERE passbook_id = ?1), 0) "
        "+ coalesce((SELECT sum(points) FROM entries WHERE passbook_id = ?1 AND seq > "
        "coalesce((SELECT included_seq FROM snapshot WHERE id = 1), 0)), 0)",
        (passbook_id,),
    ).fetchone()
    return int(row[0])


# --- deposit rules ---------------------------------------------------------------------


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


def deposit_checks(
    conn: sqlite3.Connection,
    rules: Rules,
    cat: Category,
    passbook_id: str,
    grams: int,
    now: tuple[int, bool, int],
    boot_id: str,
) -> list[str]:
    """Cooldown and daily cap (refused), then review flags (returned). Two queries, not
    four: the deposit path is timed against a raw insert (bench/ledger_commit.py)."""
    wall_ms = now[0]
    recent = conn.execute(
        "SELECT grams, wall_ms, boot_id, mono_ms FROM entries WHERE passbook_id = ? AND "
        "kind = 'deposit' AND category = ? ORDER BY seq DESC LIMIT 20",
        (passbook_id, cat.key),
    ).fetchall()
    if recent and rules.cooldown_seconds > 0:
        _, last_wall, last_boot, last_mono = recent[0]
        # Within one boot the monotonic clock is right even when the wall clock jumped.
        elapsed = now[2] - last_mono if last_boot == boot_id else wall_ms - last_wall
        wait_ms = rules.cooldown_seconds * 1000 - elapsed
        if wait_ms > 0:
            raise Refused(
                "cooldown",
                f"another {cat.key} deposit so soon: wait {(wait_ms + 999) // 1000} s",
            )
    day_start = day_start_ms(rules, wall_ms)
    burst_since = wall_ms - rules.review.burst_minutes * 60_000
    today, burst = conn.execute(
        "SELECT coalesce(sum(CASE WHEN category = ?2 AND wall_ms >= ?3 AND seq NOT IN "
        "(SELECT ref_seq FROM entries WHERE passbook_id = ?1 AND kind = 'reversal') "
        "THEN grams END), 0), count(CASE WHEN wall_ms >= ?4 THEN 1 END) "
        "FROM entries WHERE passbook_id = ?1 AND kind = 'deposit' AND wall_ms >= min(?3, ?4)",
        (passbook_id, cat.key, day_start, burst_since),
    ).fetchone()
    if today + grams > cat.daily_cap_grams:
        left = max(0, cat.daily_cap_grams - today)
        raise Refused(
            "daily_cap",
            f"daily limit for {cat.name_en} is {cat.daily_cap_grams} g; "
            f"{today} g today, {left} g left",
        )
    # Unusual but allowed deposits are flagged for staff review (DESIGN §3).
    flags = []
    history = [r[0] for r in recent]
    review = rules.review
    if len(history) >= review.heavy_min_history and grams > review.heavy_factor * (
        statistics.median(history)
    ):
        flags.append("heavy")
    if burst + 1 >= review.burst_count:
        flags.append("burst")
    return flags


def check_reversible(conn: sqlite3.Connection, target: Entry) -> None:
    if target.kind not in REVERSIBLE:
        raise Refused("not_reversible", f"a {target.kind} entry cannot be reversed")
    done = conn.execute(
        "SELECT seq FROM entries WHERE kind = ? AND ref_seq = ?", (Kind.REVERSAL.value, target.seq)
    ).fetchone()
    if done is not None:
        raise Refused(
            "already_reversed", f"entry {target.seq} was already reversed by entry {done[0]}"
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
    raise Refused("bad_pin", f"wrong PIN; {left} tries left before a lockout")
