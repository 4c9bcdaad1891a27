"""What a touch on the screen asks of the kiosk: the villager's and the staff's actions.

Each action runs inside the daemon's event task (`Kiosk.act`), in order with
scans and scale readings, and does its ledger work on the ledger's thread.
Refusals raise `Refused` with the ledger's code; the UI shows it in plain words.
Every staff action passes the signed-in staff id to the ledger, which records
it on the entry (the audit trail).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from edge.kiosk import desk as dk
from edge.kiosk import session as ss
from edge.kiosk.cards import make_card
from edge.kiosk.daemon import Kiosk
from edge.kiosk.view import mask_name, villager_info
from greenpass.errors import Refused

LANGUAGES = ("zh", "en")


async def choose_category(k: Kiosk, key: str) -> None:
    async def run() -> None:
        ledger = k.require_ledger()
        cat = await k.in_db(lambda: ledger.rules.category(key))
        if cat is None:
            raise Refused("unknown_category", f"no waste category {key!r}")
        await k.step(ss.CategoryChosen(key, cat.min_grams))

    await k.act(run)


async def cancel(k: Kiosk) -> None:
    """The big "back" / "done" button (and the physical button)."""

    async def run() -> None:
        if k.desk.active:  # as the physical button: staff leaving sign out
            k.desk = dk.sign_out(k.desk)
            k.desk_villager = None
            return
        await k.step(ss.Cancel())

    await k.act(run)


async def set_language(k: Kiosk, lang: str) -> None:
    if lang not in LANGUAGES:
        raise Refused("bad_language", f"language must be one of {', '.join(LANGUAGES)}")

    async def run() -> None:
        k.language = "en" if lang == "en" else "zh"

    await k.act(run)


# --- staff ----------------------------------------------------------------------------------


def require_staff(k: Kiosk) -> str:
    if k.desk.staff_id is None:
        raise Refused("not_signed_in", "scan a staff card and enter the PIN first")
    return k.desk.staff_id


def _villager(k: Kiosk) -> str:
    if k.desk.passbook_id is None:
        raise Refused("no_villager", "scan the villager's passbook first")
    return k.desk.passbook_id


async def staff_pin(k: Kiosk, pin: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        staff_id = k.desk.pending_staff
        if staff_id is None:
            raise Refused("no_staff_card", "scan a staff card first")
        now = k.clock.mono_ms()
        try:
            member = await k.in_db(k.require_ledger().authenticate, staff_id, pin)
        except Refused as exc:
            k.desk = dk.pin_refused(k.desk, exc.code, now)
            k.beep("error")
            raise
        k.desk = dk.signed_in(k.desk, member.staff_id, member.name, member.role, now)
        k.beep("ok")
        return {"staff": member.staff_id, "name": member.name, "role": member.role}

    return await k.act(run)


async def staff_task(k: Kiosk, task: str) -> None:
    async def run() -> None:
        require_staff(k)
        if task not in dk.TASKS:
            raise Refused("bad_task", f"unknown task {task!r}")
        k.desk = dk.choose_task(k.desk, task, k.clock.mono_ms())
        k.desk_villager = None

    await k.act(run)


async def sign_out(k: Kiosk) -> None:
    async def run() -> None:
        k.desk = dk.sign_out(k.desk)
        k.desk_villager = None

    await k.act(run)


async def _staff_write(k: Kiosk, fn: Any, *args: Any, **kw: Any) -> Any:
    """A staff ledger write: its outcome is shown on the desk and beeped."""
    now = k.clock.mono_ms()
    try:
        result = await k.in_db(fn, *args, **kw)
    except Refused as exc:
        k.desk = dk.outcome(k.desk, exc.code, now)
        k.beep("error")
        raise
    k.desk = dk.outcome(k.desk, "ok", now)
    if k.desk.passbook_id is not None:
        k.desk_villager = await k.in_db(villager_info, k.require_ledger(), k.desk.passbook_id)
    k.beep("ok")
    return result


async def redeem(k: Kiosk, cart: Sequence[tuple[str, int]]) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        staff, passbook = require_staff(k), _villager(k)
        entries = await _staff_write(
            k, k.require_ledger().redeem, passbook, list(cart), staff_id=staff
        )
        spent = -sum(e.points for e in entries)
        balance = k.desk_villager["balance"] if k.desk_villager else None
        # Committed: the villager's receipt, printed beside (edge.kiosk.receipt_printing).
        k.receipts.after_commit(passbook, [e.seq for e in entries])
        return {"seqs": [e.seq for e in entries], "points": spent, "balance": balance}

    return await k.act(run)


async def reprint(k: Kiosk) -> dict[str, Any]:
    """Print the scanned villager's last receipt again (paper ran out, the printer was
    unplugged, the villager lost it). Staff wait for the answer: printed, or why not."""

    async def run() -> str:
        require_staff(k)
        return _villager(k)

    passbook = await k.act(run)
    # Printed outside the event task: the screen and the scale go on meanwhile; the
    # outcome is shown through it again (in order with a sign-out or a timeout).
    code = "ok"
    try:
        return await k.receipts.reprint(passbook)
    except Refused as exc:
        code = exc.code
        raise
    finally:

        async def show() -> None:
            if k.desk.staff_id is not None:
                k.desk = dk.outcome(k.desk, code, k.clock.mono_ms())
            k.beep("ok" if code == "ok" else "error")

        await k.act(show)


async def award(k: Kiosk, points: int, reason: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        staff, passbook = require_staff(k), _villager(k)
        e = await _staff_write(
            k, k.require_ledger().award, passbook, points, staff_id=staff, reason=reason
        )
        return {"seq": e.seq, "points": e.points}

    return await k.act(run)


async def enrol(k: Kiosk, household: str) -> dict[str, Any]:
    """Enrol a household; the answer carries the new passbook card's QR text to print."""

    async def run() -> dict[str, Any]:
        staff = require_staff(k)
        e = await _staff_write(k, k.require_ledger().enrol, household, staff_id=staff)
        assert e.passbook_id is not None
        card = _card(k, e.passbook_id)
        return {"seq": e.seq, "passbook": e.passbook_id, "household": household, "card": card}

    return await k.act(run)


def _card(k: Kiosk, passbook_id: str) -> str | None:
    """The QR text of a new passbook card signed by this kiosk (None without a key)."""
    key = k.device_key
    if key is None:
        return None
    ledger = k.require_ledger()
    return make_card("passbook", ledger.village, passbook_id, key_id=ledger.device_id, key=key)


def find_passbooks(k: Kiosk, query: str) -> list[dict[str, Any]]:
    """The village's passbooks whose id or household name holds `query`, names masked,
    for staff picking a lost card (ledger thread)."""
    ledger = k.require_ledger()
    return [
        {
            "passbook": f.villager.passbook_id,
            "name": mask_name(f.villager.household_name),
            "status": f.villager.status,
            "replaced_by": f.replaced_by,
            "balance": ledger.balance(f.villager.passbook_id),
        }
        for f in ledger.find_villagers(query[:64])
    ]


async def replace(k: Kiosk, old: str) -> dict[str, Any]:
    """Replace the lost card `old`; the answer carries the new passbook card's QR text to
    print, the household's masked name (its full name only for the printed card) and the
    balance the new passbook carries."""

    async def run() -> dict[str, Any]:
        staff = require_staff(k)
        ledger = k.require_ledger()
        enrolled, _ = await _staff_write(k, ledger.replace_passbook, old, staff_id=staff)
        new = enrolled.passbook_id
        assert new is not None
        made = await k.in_db(ledger.villager, new)
        name = "" if made is None else made.household_name
        balance = await k.in_db(ledger.balance, new)
        return {
            "seq": enrolled.seq,
            "old": old,
            "passbook": new,
            "household": mask_name(name),
            "card_name": name,
            "balance": balance,
            "card": _card(k, new),
        }

    return await k.act(run)


async def reverse(k: Kiosk, seq: int, reason: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        staff = require_staff(k)
        e = await _staff_write(k, k.require_ledger().reverse, seq, staff_id=staff, reason=reason)
        return {"seq": e.seq, "reverses": seq, "points": e.points}

    return await k.act(run)


async def restock(k: Kiosk, item_id: str, qty: int) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        staff = require_staff(k)
        e = await _staff_write(k, k.require_ledger().restock, item_id, qty, staff_id=staff)
        stock = await k.in_db(k.require_ledger().stock, item_id)
        return {"seq": e.seq, "item": item_id, "stock": stock}

    return await k.act(run)


def catalogue(k: Kiosk) -> list[dict[str, Any]]:
    """The goods and services on offer (ledger thread)."""
    return [
        {
            "id": i.item_id,
            "name_zh": i.name_zh,
            "name_en": i.name_en,
            "points": i.points_price,
            "stock": i.stock,
            "picture": None
            if i.picture_tag is None
            else f"/api/catalogue/{quote(i.item_id, safe='')}/picture?v={i.picture_tag}",
        }
        for i in k.require_ledger().catalogue()
        if i.active
    ]


def item_picture(k: Kiosk, item_id: str) -> bytes | None:
    """An item's JPEG thumbnail (ledger thread); None if it has none."""
    return k.require_ledger().item_picture(item_id)


def recent_entries(k: Kiosk, limit: int = 20) -> list[dict[str, Any]]:
    """The latest entries, for staff choosing one to reverse (ledger thread); `name` is
    the household's, masked, so that staff confirm whose entry they undo."""
    rows = k.require_ledger().store.query(
        "SELECT e.seq, e.kind, e.passbook_id, e.category, e.grams, e.points, e.item_id, e.qty, "
        "e.staff_id, e.wall_ms, coalesce(r.seq, x.by_device) AS reversed_by, "
        "v.household_name FROM entries e "
        "LEFT JOIN entries r ON r.kind = 'reversal' AND r.ref_seq = e.seq "
        "AND r.ref_device IS NULL "
        "LEFT JOIN reversed_elsewhere x ON x.seq = e.seq "
        "LEFT JOIN villagers v ON v.passbook_id = e.passbook_id "
        "WHERE e.kind IN ('deposit', 'redeem', 'award', 'restock', 'adjust_stock') "
        "ORDER BY e.seq DESC LIMIT ?",
        (max(1, min(limit, 200)),),
    )
    out = []
    for r in rows:
        entry = dict(r)
        entry["name"] = mask_name(entry.pop("household_name") or "")
        out.append(entry)
    return out
