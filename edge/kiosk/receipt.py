"""What a villager's receipt says (issue 16; docs/villager.md): read from the ledger after
the commit, never from what the screen was told, so a receipt shows only what is kept.

    绿色存折 Green Passbook
    dongcun · 回收点 K0001
    2026-03-02 14:05  (时间未校准 clock not set)
    存折 Passbook      K0001-00042
    纸板 cardboard          3.25 kg
    积分 Points                 +32
    余额 Balance                412
    减排 CO2e               1.9 kg
    编号 Entry 17 · 0190c6…
    [QR: the statement on a phone]
    手机扫码查积分 Scan for your points

A redemption lists each item and its points instead of the weight and CO2e. The QR is
a statement link signed with this kiosk's device key (`greenpass.statement_link`, kind
``d``), valid `[kiosk] statement_days`; without `[kiosk] statement_url` (or without a
device key) the receipt has no QR, and `greenpass doctor` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.ledger.ledger import Ledger
from greenpass import statement_link
from greenpass.record.entries import Entry, Kind
from hardware.printer.document import Block, Qr, Row, Rule, Text

RECEIPT_KINDS = (Kind.DEPOSIT, Kind.REDEEM)
# A kiosk whose clock was never set (no RTC, no network since the power cut) may believe
# it is 1970: its links would expire at once. No link is dated before this day (2026-01-01).
EARLIEST_DAY = 20_454


@dataclass(frozen=True)
class ReceiptLine:
    name_zh: str
    name_en: str
    grams: int | None  # a deposit's weight
    qty: int | None  # a redemption's quantity
    points: int


@dataclass(frozen=True)
class Receipt:
    """One receipt: a deposit, or one redemption's items (consecutive entries)."""

    kind: str  # deposit / redeem
    village: str
    device_id: str
    passbook_id: str
    seqs: tuple[int, ...]
    entry_id: str  # the first entry's id
    wall_ms: int
    clock_ok: bool
    timezone: str
    lines: tuple[ReceiptLine, ...]
    points: int
    co2e_g: int
    balance: int  # after these entries

    @property
    def seq(self) -> int:
        return self.seqs[0]


def receipt_of(ledger: Ledger, passbook_id: str, seqs: list[int]) -> Receipt:
    """The receipt of the committed entries `seqs` of `passbook_id` (ledger thread)."""
    lines = {line.entry.seq: line for line in ledger.statement(passbook_id)}
    picked = [lines[s] for s in seqs]
    entries = [line.entry for line in picked]
    first = entries[0]
    out = []
    for e in entries:
        if e.kind == Kind.DEPOSIT:
            cat = ledger.rules.category(e.category or "")
            zh, en = (cat.name_zh, cat.name_en) if cat else (e.category or "", e.category or "")
            out.append(ReceiptLine(zh, en, e.grams, None, e.points))
        else:
            item = ledger.item(e.item_id or "")
            zh, en = (item.name_zh, item.name_en) if item else (e.item_id or "", "")
            out.append(ReceiptLine(zh, en, None, -(e.qty or 0), e.points))
    return Receipt(
        kind=str(first.kind),
        village=ledger.village,
        device_id=ledger.device_id,
        passbook_id=passbook_id,
        seqs=tuple(seqs),
        entry_id=first.entry_id,
        wall_ms=first.wall_ms,
        clock_ok=all(e.clock_ok for e in entries),
        timezone=ledger.rules.timezone,
        lines=tuple(out),
        points=sum(e.points for e in entries),
        co2e_g=sum(e.co2e_g for e in entries),
        balance=picked[-1].balance,
    )


def last_receipt(ledger: Ledger, passbook_id: str) -> Receipt | None:
    """The passbook's latest deposit or redemption at this kiosk, as its receipt (ledger
    thread): what staff reprint. A redemption's items are its run of redeem entries
    written together (one transaction: same time, same staff member)."""
    entries = [line.entry for line in ledger.statement(passbook_id)]
    last: Entry | None = None
    for e in reversed(entries):
        if e.kind in RECEIPT_KINDS and e.passbook_id == passbook_id:
            last = e
            break
    if last is None:
        return None
    seqs = [last.seq]
    if last.kind == Kind.REDEEM:
        by_seq = {e.seq: e for e in entries}
        while (p := by_seq.get(seqs[0] - 1)) is not None and (
            p.kind == Kind.REDEEM and p.wall_ms == last.wall_ms and p.staff_id == last.staff_id
        ):
            seqs.insert(0, p.seq)
    return receipt_of(ledger, passbook_id, seqs)


def statement_url(
    base: str,
    key: Ed25519PrivateKey | None,
    device_id: str,
    passbook_id: str,
    *,
    now_ms: int,
    days: int,
) -> str | None:
    """The receipt's QR: `passbook_id`'s statement link signed by this kiosk, or None
    without central's address or a device key. Signed offline: no network needed."""
    if not base or key is None:
        return None
    day = max(statement_link.day_of(now_ms), EARLIEST_DAY) + days
    return statement_link.sign(key, "d", device_id, passbook_id, day).url(base)


def _kg(grams: int) -> str:
    return f"{grams // 1000}.{grams % 1000:03d}".rstrip("0").rstrip(".") + " kg"


def _co2(grams: int) -> str:
    """CO2e avoided, as the screen says it ("减少 11.2 kg"): the label already says less."""
    g = max(0, grams)
    return f"{g // 1000}.{(g % 1000) // 100} kg" if g >= 1000 else f"{g} g"


def blocks(r: Receipt, url: str | None, *, reprint: bool = False) -> list[Block]:
    """The receipt as printer blocks (`hardware.printer.document`)."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    when = datetime.fromtimestamp(r.wall_ms / 1000, ZoneInfo(r.timezone))
    out: list[Block] = [
        Text("绿色存折 Green Passbook", align="center", bold=True),
        Text(f"{r.village} · 回收点 {r.device_id}", align="center"),
    ]
    if reprint:
        out.append(Text("补打 REPRINT", align="center", bold=True))
    out.append(Text(f"{when:%Y-%m-%d %H:%M}", align="center"))
    if not r.clock_ok:
        # The kiosk's clock was not synchronised when it wrote the entry: the time may be
        # wrong (the ledger says so too), the points are not.
        out.append(Text("时间未校准 clock not set", align="center"))
    out += [Rule(), Row("存折 Passbook", r.passbook_id)]
    for line in r.lines:
        if line.grams is not None:
            out.append(Row(f"{line.name_zh} {line.name_en}".strip(), _kg(line.grams)))
        else:
            out.append(Row(f"{line.name_zh} ×{line.qty}", f"{line.points:+d}"))
    out.append(Row("积分 Points", f"{r.points:+d}", bold=True))
    out.append(Row("余额 Balance", str(r.balance), bold=True))
    if r.kind == Kind.DEPOSIT:
        out.append(Row("减排 CO2e", _co2(r.co2e_g)))
    out.append(Row("编号 Entry", f"{r.device_id}-{r.seq}"))
    # The entry id without its dashes: 32 characters, one line of 58 mm paper.
    out.append(Text(r.entry_id.replace("-", ""), align="left"))
    out.append(Rule())
    if url is not None:
        out.append(Qr(url))
        out.append(Text("手机扫码查积分", align="center", bold=True))
        out.append(Text("Scan for your points", align="center"))
    return out
