"""The staff desk: who is signed in at the kiosk, and what they are doing.

Pure like `edge.kiosk.session`: the daemon checks cards and PINs against the ledger
and calls these functions with the outcome. A staff member signs in with their
card, then their PIN; they are signed out by hand, by the kiosk's timeout, or
when the PIN is locked. While staff are signed in, a scanned passbook selects
the villager for the task at hand (redeem, award, statement) instead of
starting a deposit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

TASKS = (
    "menu",
    "redeem",
    "enrol",
    "award",
    "reverse",
    "restock",
    "report",
    "replace",
    "reprint",
)
# Tasks that need a villager: a passbook scanned during them selects one. Replacing a
# lost card is not one (the card is lost): staff pick the passbook from a list.
VILLAGER_TASKS = ("redeem", "award", "reprint")


@dataclass(frozen=True)
class Desk:
    pending_staff: str | None = None  # card scanned, PIN not yet given
    staff_id: str | None = None  # signed in
    staff_name: str = ""
    role: str = ""
    task: str = "menu"
    passbook_id: str | None = None  # the villager the task is for
    message: str = ""  # the last outcome's code: ok, bad_pin, out_of_stock …
    last_ms: int = 0

    @property
    def active(self) -> bool:
        return self.pending_staff is not None or self.staff_id is not None


def card_scanned(d: Desk, staff_id: str, now_ms: int) -> Desk:
    """A staff card: ask for that person's PIN (whoever was signed in is signed out)."""
    return Desk(pending_staff=staff_id, last_ms=now_ms)


def signed_in(d: Desk, staff_id: str, name: str, role: str, now_ms: int) -> Desk:
    return Desk(staff_id=staff_id, staff_name=name, role=role, last_ms=now_ms, message="ok")


def pin_refused(d: Desk, code: str, now_ms: int) -> Desk:
    if code in ("staff_locked", "unknown_staff", "staff_inactive"):
        return Desk(message=code, last_ms=now_ms)  # nothing more to try on this card
    return replace(d, message=code, last_ms=now_ms)


def choose_task(d: Desk, task: str, now_ms: int) -> Desk:
    if d.staff_id is None:
        return d
    if task not in TASKS:
        raise ValueError(f"unknown staff task {task!r}")
    return replace(d, task=task, passbook_id=None, message="", last_ms=now_ms)


def villager_scanned(d: Desk, passbook_id: str, now_ms: int) -> Desk:
    if d.staff_id is None or d.task not in VILLAGER_TASKS:
        return d
    return replace(d, passbook_id=passbook_id, message="", last_ms=now_ms)


def outcome(d: Desk, code: str, now_ms: int) -> Desk:
    return replace(d, message=code, last_ms=now_ms)


def sign_out(d: Desk) -> Desk:
    return Desk()


NOTICE_MS = 8_000  # how long "signed out" / "locked" stays once nobody is signed in


def tick(d: Desk, now_ms: int, timeout_ms: int) -> Desk:
    """Sign out a desk left alone for `timeout_ms`: a kiosk stays in a public place.
    A notice left after signing out (timeout, locked) clears after `NOTICE_MS`."""
    if d.active and now_ms - d.last_ms >= timeout_ms:
        return Desk(message="timeout", last_ms=now_ms)
    if not d.active and d.message and now_ms - d.last_ms >= NOTICE_MS:
        return Desk(last_ms=d.last_ms)
    return d
