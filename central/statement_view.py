"""What a villager's statement shows, on the phone (`central.api_statement`) and on
paper (`central.statements_pdf`): a passbook's account as `reports.statement` gives it
(the cards it replaced included), in words a villager reads, in both languages.

Only what a villager needs and no one else should see beyond it: no household name
(a receipt's QR may be read by anyone holding the paper; docs/privacy.md), no staff
ids, no reasons staff typed. Points, grams and grams CO2e stay integers; kilograms are
formatted for reading only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from central import db, exports, log_proofs, reports
from central.store import CentralStore
from greenpass.record.entries import Kind

# The entries a household's history shows: what moved points, and the card's opening.
# A status change (`villager_status`) is for staff: a revoked card never gets here.
SHOWN = (Kind.ENROL, Kind.DEPOSIT, Kind.AWARD, Kind.REDEEM, Kind.REVERSAL)
Names = tuple[str, str]  # (Chinese, English)


@dataclass(frozen=True)
class Line:
    """One entry of the household's history."""

    wall_ms: int
    local: datetime | None  # in the village's time zone; None for an impossible clock
    clock_ok: bool  # False: the kiosk's clock was not synchronised (the time may be off)
    device_id: str
    seq: int
    kind: str
    what: Names  # the category's or the item's name; ("", "") for neither
    qty: int | None  # items redeemed
    grams: int | None
    points: int
    balance: int  # the account's balance after it
    co2e_g: int
    verified: bool  # in central's latest signed log checkpoint


@dataclass(frozen=True)
class Statement:
    passbook_id: str
    village_id: str
    village: Names
    balance: int
    lines: list[Line]  # oldest first, every shown entry of the account
    kg_by_category: list[tuple[Names, int]]  # (names, grams), net of reversals, nonzero
    co2e_g: int  # the displayed CO2e the kiosks show, summed (net of reversals)
    checkpoint_size: int  # 0: the log has no checkpoint yet

    def newest(self, limit: int) -> list[Line]:
        return list(reversed(self.lines[-limit:])) if limit > 0 else []


def village_names(store: CentralStore, village_id: str) -> Names:
    """The village's Chinese and English names (its id where it has none)."""
    p = db.village_profiles
    with store.read("reading the village's names") as conn:
        row = conn.execute(
            select(p.c.name_zh, p.c.name_en).where(p.c.village_id == village_id)
        ).first()
    zh, en = (row.name_zh, row.name_en) if row is not None else ("", "")
    return (zh or en or village_id, en or zh or village_id)


def _item_names(store: CentralStore, village_id: str) -> dict[str, Names]:
    c = db.catalogue
    with store.read("reading the catalogue's names") as conn:
        rows = conn.execute(
            select(c.c.item_id, c.c.name_zh, c.c.name_en).where(c.c.village_id == village_id)
        ).all()
    return {r.item_id: (r.name_zh, r.name_en) for r in rows}


def _logged(store: CentralStore, device_ids: Iterable[str]) -> tuple[int, dict[str, int]]:
    """The latest checkpoint's size and, per device, the last seq it includes."""
    with store.read("reading the log's checkpoint", snapshot=True) as conn:
        newest = log_proofs.newest_checkpoint(conn)
        if newest is None:
            return 0, {}
        return newest.size, {
            d: log_proofs.logged_upto(conn, d, newest.size) for d in sorted(set(device_ids))
        }


def build(store: CentralStore, passbook_id: str, village_id: str, tz: ZoneInfo) -> Statement:
    """The statement of `passbook_id`'s account (of `village_id`, in its time zone `tz`)."""
    found = reports.statement(store, passbook_id)
    names = exports.CategoryNames(store, village_id)
    names.learn(x.entry.rules_version for x in found)
    items = _item_names(store, village_id)
    size, upto = _logged(store, (x.entry.device_id for x in found))
    clock = exports.Period(None, None, tz)
    lines: list[Line] = []
    grams: dict[str, int] = defaultdict(int)
    co2e = 0
    for line in found:
        x = line.entry
        co2e += x.co2e_g
        if x.category is not None and x.grams is not None:
            grams[x.category] += x.grams
        if x.kind not in SHOWN:
            continue
        if x.category is not None:
            what = names(x.category, x.rules_version)
        elif x.item_id is not None:
            what = items.get(x.item_id, (x.item_id, x.item_id))
        else:
            what = ("", "")
        lines.append(
            Line(
                wall_ms=x.wall_ms, local=clock.local(x.wall_ms), clock_ok=x.clock_ok,
                device_id=x.device_id, seq=x.seq, kind=x.kind, what=what,
                qty=None if x.qty is None else abs(x.qty), grams=x.grams, points=x.points,
                balance=line.balance, co2e_g=x.co2e_g,
                verified=x.seq <= upto.get(x.device_id, 0),
            )
        )  # fmt: skip
    return Statement(
        passbook_id=passbook_id,
        village_id=village_id,
        village=village_names(store, village_id),
        balance=found[-1].balance if found else 0,
        lines=lines,
        kg_by_category=[(names(k), g) for k, g in sorted(grams.items()) if g],
        co2e_g=co2e,
        checkpoint_size=size,
    )


def _tenths(value: int, unit: int) -> tuple[str, int, int]:
    """`value` rounded half up to a whole number of `unit`s: (sign, whole, remainder)."""
    n = (abs(value) * 2 + unit) // (unit * 2)
    return ("-" if value < 0 and n else ""), *divmod(n, 1000 // unit)


def mass(grams: int, lang: str) -> str:
    """As the kiosk shows a weight (GP.mass): "850 克", "3.25 公斤", "3 kg"."""
    if abs(grams) < 1000:
        return f"{grams} 克" if lang == "zh-CN" else f"{grams} g"
    sign, whole, cents = _tenths(grams, 10)
    text = f"{sign}{whole}.{cents:02d}".rstrip("0").rstrip(".")
    return f"{text} 公斤" if lang == "zh-CN" else f"{text} kg"


def co2(grams: int) -> str:
    """As the kiosk shows CO2e (GP.co2): "850 g CO₂", "19.8 kg CO₂"."""
    if abs(grams) < 1000:
        return f"{grams} g CO₂"
    sign, whole, tenths = _tenths(grams, 100)
    return f"{sign}{whole}.{tenths} kg CO₂"


def signed(points: int) -> str:
    return f"+{points}" if points > 0 else str(points)
