"""What the screen shows: the kiosk's state as one JSON-ready dict (the UI's only input).

The page renders whatever `build_view` says and nothing else, so a screen can
never show a "done" the ledger did not commit: the result appears only on
`confirmed`, which the session reaches only through `Committed`. Villager names
are masked (张*, 王*明) because the kiosk stands in a public place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from edge.kiosk.desk import Desk
from edge.kiosk.session import Session
from edge.ledger.ledger import Ledger
from edge.ledger.log_record import current_fault


@dataclass(frozen=True)
class Status:
    """The status strip: None for `online` when this kiosk has no sync configured."""

    online: bool | None = None
    backlog: int = 0
    scale: str = "ok"  # ok / overload / underload / error / disconnected
    scanner: str = "ok"  # ok / disconnected / error
    clock_ok: bool = True
    sync_fault: tuple[str, str] | None = None  # code, message (docs/sync.md)
    log_fault: tuple[str, str] | None = None  # code, message of a failed log check

    def with_(self, **changes: Any) -> Status:
        return replace(self, **changes)


def mask_name(name: str) -> str:
    """Keep the first character (and the last of a longer name), hide the rest."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def villager_info(ledger: Ledger, passbook_id: str) -> dict[str, Any] | None:
    v = ledger.villager(passbook_id)
    if v is None:
        return None
    return {
        "passbook": v.passbook_id,
        "name": mask_name(v.household_name),
        "balance": ledger.balance(passbook_id),
        "today": [asdict(d) for d in ledger.today_deposits(passbook_id)],
    }


def log_fault_of(ledger: Ledger) -> tuple[str, str] | None:
    """The current fault of this kiosk's check of central's log (sync.log_check), as
    the uplink recorded it in the file (call on the ledger's thread)."""
    f = current_fault(ledger.store.conn)
    return None if f is None else (f.code, f.message)


def categories_of(ledger: Ledger) -> list[dict[str, Any]]:
    """The category buttons (call on the ledger's thread: the rules are read from the file)."""
    return [
        {
            "key": c.key,
            "name_zh": c.name_zh,
            "name_en": c.name_en,
            "points_per_kg": c.points_per_tonne / 1000,
            "min_grams": c.min_grams,
        }
        for c in ledger.rules.categories.values()
    ]


@dataclass(frozen=True)
class Snapshot:
    """The kiosk at one moment, as the daemon hands it to `build_view`: the two state
    machines, and what the daemon read from the ledger and the printer for them."""

    session: Session
    desk: Desk
    language: str
    spoken: bool
    device: str  # "" until the ledger is open
    village: str
    categories: list[dict[str, Any]]
    villager: dict[str, Any] | None  # the villager at the scale (`villager_info`)
    desk_villager: dict[str, Any] | None  # the villager a staff task is for
    last_result: dict[str, Any] | None  # what the last commit added to the result screen
    receipt: dict[str, Any] | None  # the newest receipt (`ReceiptPrinting.view`)
    printer: str  # the printer's state (`ReceiptPrinting.state`)
    status: Status


def build_view(k: Snapshot) -> dict[str, Any]:
    s = k.session
    d = k.desk
    if d.pending_staff is not None:
        screen = "staff_pin"
    elif d.staff_id is not None:
        screen = "staff"
    else:
        screen = s.screen.value
    result = None
    if s.result is not None:
        result = {
            "points": s.result.points,
            "co2e_g": s.result.co2e_g,
            "balance": s.result.balance,
            **(k.last_result or {}),
        }
    staff = None
    if d.active or d.message in ("timeout", "staff_locked", "unknown_staff", "staff_inactive"):
        staff = {
            "pending": d.pending_staff,
            "id": d.staff_id,
            "name": d.staff_name,
            "role": d.role,
            "task": d.task,
            "villager": k.desk_villager if d.passbook_id else None,
            "message": d.message,
        }
    st = k.status
    return {
        "screen": screen,
        "lang": k.language,
        "spoken": k.spoken,
        "device": k.device,
        "village": k.village,
        "hint": s.hint,
        "refusal": s.refusal,
        "weight": {"grams": s.grams, "stable": s.stable},
        "category": s.category,
        "categories": k.categories,
        "villager": k.villager if s.passbook_id else None,
        "result": result,
        "staff": staff,
        # The newest receipt: {seq, passbook, state: printing / printed / failed, code}.
        "receipt": k.receipt,
        "status": {
            "online": st.online,
            "backlog": st.backlog,
            "scale": st.scale,
            "scanner": st.scanner,
            # off / ok / paper_low / paper_out / jammed / timeout / offline / unknown
            # (edge.kiosk.receipt_printing): staff screens, `doctor` and the status topic.
            "printer": k.printer,
            # Shown on staff screens only: it changes nothing a villager does.
            "clock_ok": st.clock_ok,
            # For staff and the technician (the strip and the staff menu; `doctor`
            # reads it from /api/view); villager screens are not held up by it.
            "sync_fault": None
            if st.sync_fault is None
            else {"code": st.sync_fault[0], "message": st.sync_fault[1]},
            # Central's log failed this kiosk's check: for staff to report, not a stop.
            "log_fault": None
            if st.log_fault is None
            else {"code": st.log_fault[0], "message": st.log_fault[1]},
        },
    }
