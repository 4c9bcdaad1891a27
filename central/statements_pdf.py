"""Monthly paper statements (issue 16; docs/villager.md): one A5 page per household of
a village, for the village office to print and hand out, written with the card
sheet's PDF stack (fpdf2 and Noto Sans CJK, `provisioning.cards`, `greenpass.pdf_qr`).

A page holds the month's opening balance, its entries, the closing balance, the
month's kilograms and CO2e, and a QR code with a statement link signed by central's
key (`greenpass.statement_link`) that opens the household's statement on a phone.
The household's name is printed (the paper is handed over at the village office),
except for a household whose personal data was erased (`central.personal`).

Who gets a page: every household account (the newest card of each chain of
replacements) of the village that had a card by the month's end and is not revoked.
The month is of local days in the village's time zone (`central.exports.Period`).
The balance column is the opening balance plus the month's entries in the order
shown, so a page adds up even where a kiosk's clock stepped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF
from sqlalchemy import select

from central import db, exports, passbooks, personal_db, statement_view
from central.statement_view import Line, Names, co2, mass, signed
from central.statement_words import kind_word
from central.store import CentralStore
from greenpass import statement_link
from greenpass.errors import ConfigError
from greenpass.fonts import FontFace, find_cjk_fonts
from greenpass.pdf_qr import draw_qr
from sync.keys import Ed25519PrivateKey

LINK_DAYS = 400  # a statement's QR still opens when the next year's statements come
PAGE_W, PAGE_H = 148.0, 210.0  # A5 portrait, mm
MARGIN = 12.0
QR_SIZE = 34.0
ROWS_TOP, ROW_H = 101.0, 4.6  # the entries' table: first baseline, line height
MAX_ROWS = 19  # rows that fit above the footer; more are summed up in one line
GREEN = (27, 122, 58)
GREY = (100, 100, 100)


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        try:
            first = datetime.strptime(text, "%Y-%m").date()
        except ValueError as exc:
            raise ConfigError(f"--month {text!r}: give a month as YYYY-MM") from exc
        return cls(first.year, first.month)

    def period(self, tz: ZoneInfo) -> exports.Period:
        first = date(self.year, self.month, 1)
        following = (first + timedelta(days=31)).replace(day=1)
        return exports.Period(first, following - timedelta(days=1), tz)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Page:
    """One household's month."""

    passbook_id: str
    household: str  # "" when unknown or erased
    opening: int
    closing: int
    lines: list[tuple[Line, int]]  # the month's entries, with the balance after each
    grams: int  # recycled in the month, net of reversals
    co2e_g: int
    url: str  # the statement link in the QR code


@dataclass(frozen=True)
class Written:
    pages: int
    cut: int  # pages whose entries did not all fit (the rest are summed in one line)
    revoked: int  # accounts left out: their passbook is revoked
    expires_day: int
    unprintable: list[str]  # passbooks whose household name the font cannot draw


def _households(store: CentralStore, village_id: str) -> tuple[list[tuple[str, str]], int]:
    """(passbook, name) of each account of the village that is not revoked, by id; and
    how many were left out as revoked. An erased household's name is ""."""
    v, p = db.villagers, personal_db.personal
    with store.read("listing the village's passbooks") as conn:
        rows = conn.execute(
            select(v.c.passbook_id, v.c.household_name, v.c.status).where(
                v.c.village_id == village_id
            )
        ).all()
        replaced = passbooks.links(conn, village_id)
        revoked = passbooks.revoked_at_central(conn, village_id)
        erased = set(
            conn.scalars(
                select(p.c.passbook_id).where(
                    (p.c.village_id == village_id) & p.c.erased_ms.is_not(None)
                )
            )
        )
    out, left_out = [], 0
    for r in sorted(rows, key=lambda r: r.passbook_id):
        if r.passbook_id in replaced:
            continue  # its history is on the page of the card that replaced it
        if r.status == "revoked" or r.passbook_id in revoked:
            left_out += 1
            continue
        out.append((r.passbook_id, "" if r.passbook_id in erased else r.household_name))
    return out, left_out


def pages(
    store: CentralStore,
    village_id: str,
    month: Month,
    key: Ed25519PrivateKey,
    public_url: str,
    *,
    tz: ZoneInfo,
    now_ms: int,
    days: int = LINK_DAYS,
) -> tuple[list[Page], int, int]:
    """Each household's page, the number of revoked accounts left out, and the day the
    pages' links expire."""
    period = month.period(tz)
    start, end = period.start_ms, period.end_ms
    assert start is not None and end is not None
    expires = statement_link.day_of(now_ms) + days
    households, revoked = _households(store, village_id)
    out = []
    for passbook_id, name in households:
        view = statement_view.build(store, passbook_id, village_id, tz)
        if not any(x.wall_ms < end for x in view.lines):
            continue  # no card yet by the month's end
        opening = sum(x.points for x in view.lines if x.wall_ms < start)
        balance, rows = opening, []
        for x in view.lines:
            if period.holds(x.wall_ms):
                balance += x.points
                rows.append((x, balance))
        link = statement_link.sign(key, "c", "", passbook_id, expires)
        out.append(
            Page(
                passbook_id=passbook_id,
                household=name,
                opening=opening,
                closing=balance,
                lines=rows,
                grams=sum(x.grams for x, _ in rows if x.grams is not None),
                co2e_g=sum(x.co2e_g for x, _ in rows),
                url=link.url(public_url),
            )
        )
    return out, revoked, expires


class _Paper:
    """The A5 pages, drawn with fpdf2 in millimetres from the top left."""

    def __init__(self, fonts: dict[str, FontFace]) -> None:
        self.pdf = FPDF(orientation="portrait", unit="mm", format=(PAGE_W, PAGE_H))
        self.pdf.set_auto_page_break(auto=False)
        self.pdf.set_margins(0, 0, 0)
        for style, face in fonts.items():
            self.pdf.add_font(
                "cjk", style=style, fname=face.path, collection_font_number=face.index
            )
        self.pdf.set_font("cjk", size=10)
        self.cmap: set[int] = set(self.pdf.current_font.cmap)  # type: ignore[union-attr]
        self.unprintable: list[str] = []  # passbooks whose name the font cannot draw

    def text(self, x: float, y: float, s: str, size: float, *, bold: bool = False) -> None:
        self.pdf.set_font("cjk", style="B" if bold else "", size=size)
        self.pdf.text(x, y, s)

    def right(self, x: float, y: float, s: str, size: float, *, bold: bool = False) -> None:
        """`s` ending at `x`."""
        self.pdf.set_font("cjk", style="B" if bold else "", size=size)
        self.pdf.text(x - self.pdf.get_string_width(s), y, s)

    def fit(self, s: str, width: float, size: float) -> str:
        self.pdf.set_font("cjk", size=size)
        while len(s) > 1 and self.pdf.get_string_width(s) > width:
            s = s[:-2] + "…"
        return s

    def drawable(self, s: str) -> bool:
        """Whether the font has every character (a rare one would print blank)."""
        return all(ord(c) in self.cmap for c in s)

    def page(self, p: Page, village: Names, month: Month, expires_day: int, printed: str) -> None:
        pdf, left, right = self.pdf, MARGIN, PAGE_W - MARGIN
        pdf.add_page()
        pdf.set_text_color(*GREEN)
        self.text(left, 18, "绿色存折 月度对账单", 16, bold=True)
        pdf.set_text_color(0, 0, 0)
        self.text(left, 24.5, f"Green Passbook monthly statement · {month}", 9)
        name = village[0] if village[0] == village[1] else f"{village[0]}  {village[1]}"
        self.text(left, 34, self.fit(name, 84, 11), 11)
        self.text(left, 41, f"存折号 Passbook  {p.passbook_id}", 10)
        if p.household and self.drawable(p.household):
            self.text(left, 49, self.fit(p.household, 84, 14), 14, bold=True)
        elif p.household:
            self.unprintable.append(p.passbook_id)
        draw_qr(pdf, right - QR_SIZE, 28, QR_SIZE, list(segno.make(p.url, error="m").matrix))
        until = (date(1970, 1, 1) + timedelta(days=expires_day)).isoformat()
        self.right(right, 66.5, "手机扫码看最新记录 Scan for the latest", 6.5)
        self.right(right, 69.5, f"有效至 valid until {until}", 6.5)
        boxes = (
            ("上月结余 Opening", f"{p.opening} 分"),
            ("本月结余 Closing", f"{p.closing} 分"),
            ("本月回收 Recycled", mass(p.grams, "zh-CN")),
            # Noto Sans CJK has no subscript two.
            ("减少排放 CO2 saved", co2(p.co2e_g).replace("₂", "2")),
        )
        width = (right - left) / 4
        for n, (label, value) in enumerate(boxes):
            x = left + n * width
            pdf.set_draw_color(*GREEN)
            pdf.rect(x + 0.5, 75, width - 1, 15)
            self.text(x + 2, 80, label, 6.5)
            self.text(x + 2, 87.5, self.fit(value, width - 4, 11), 11, bold=True)
        self._table(p, left, right)
        pdf.set_text_color(*GREY)
        self.text(
            left, PAGE_H - 9, "有疑问请到村委会询问。Questions? Ask at the village office.", 7
        )
        self.right(right, PAGE_H - 9, f"打印 printed {printed}", 7)
        pdf.set_text_color(0, 0, 0)

    def _table(self, p: Page, left: float, right: float) -> None:
        cols = (("日期 Date", left), ("回收机 Kiosk", left + 22), ("内容 What", left + 42))
        for label, cx in cols:
            self.text(cx, ROWS_TOP - 5, label, 7, bold=True)
        self.right(right - 26, ROWS_TOP - 5, "积分 Points", 7, bold=True)
        self.right(right, ROWS_TOP - 5, "余额 Balance", 7, bold=True)
        self.pdf.set_draw_color(*GREY)
        self.pdf.line(left, ROWS_TOP - 3.5, right, ROWS_TOP - 3.5)
        shown = p.lines if len(p.lines) <= MAX_ROWS else p.lines[: MAX_ROWS - 1]
        y = ROWS_TOP
        if not p.lines:
            self.text(left, y, "本月没有记录 No entries this month", 8.5)
        for x, balance in shown:
            when = x.local.strftime("%m-%d %H:%M") if x.local else "—"
            what = kind_word(x.kind, "zh-CN") + (f" {x.what[0]}" if x.what[0] else "")
            if x.qty is not None:
                what += f" ×{x.qty}"
            if x.grams is not None:
                what += f" {mass(x.grams, 'zh-CN')}"
            self.text(left, y, when, 8.5)
            self.text(cols[1][1], y, self.fit(x.device_id, 19, 8.5), 8.5)
            self.text(cols[2][1], y, self.fit(what, right - 26 - 14 - cols[2][1], 8.5), 8.5)
            self.right(right - 26, y, signed(x.points), 8.5)
            self.right(right, y, str(balance), 8.5)
            y += ROW_H
        if len(shown) < len(p.lines):
            rest = p.lines[len(shown) :]
            points = sum(x.points for x, _ in rest)
            self.text(left, y, f"另有 {len(rest)} 条未列出，共 {signed(points)} 分", 8.5)
            self.text(
                left,
                y + ROW_H,
                f"and {len(rest)} more not listed, {signed(points)} points in all",
                7,
            )


def write(
    store: CentralStore,
    village_id: str,
    month: Month,
    key: Ed25519PrivateKey,
    public_url: str,
    *,
    tz: ZoneInfo,
    now_ms: int,
    days: int = LINK_DAYS,
) -> tuple[bytes, Written]:
    """The village's statements for `month` as one PDF, and what it holds."""
    found, revoked, expires = pages(
        store, village_id, month, key, public_url, tz=tz, now_ms=now_ms, days=days
    )
    village = statement_view.village_names(store, village_id)
    paper = _Paper(find_cjk_fonts())
    printed = exports.Period(None, None, tz).local(now_ms)
    for p in found:
        paper.page(p, village, month, expires, printed.date().isoformat() if printed else "")
    if not found:
        paper.pdf.add_page()  # a PDF needs a page: say why it is empty
        paper.text(MARGIN, 20, f"{village[0]} {month}: 没有需要对账的存折 no passbooks", 10)
    cut = sum(1 for p in found if len(p.lines) > MAX_ROWS)
    written = Written(len(found), cut, revoked, expires, paper.unprintable)
    return bytes(paper.pdf.output()), written
