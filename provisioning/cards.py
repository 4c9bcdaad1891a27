"""Printable A4 sheets of signed passbook and staff cards, for the village office.

Who gets a card comes from the kiosk's ledger (its active villagers or staff, in
passbook or staff id order) or from a CSV file; each card's QR text is signed by
the village office's issuer key (`edge.kiosk.cards.make_card`), and the sheet is drawn
as vector PDF: ten credit-card-sized cards (85.6 × 54 mm, ISO/IEC 7810 ID-1) per
A4 page, 2 across and 5 down, with cut marks in the margins.

Given central's public address (`--statement-url`), each passbook card gets a statement
slip beside it, in the same grid (five cards and five slips a page): a QR code of the
passbook's statement link signed with the same issuer key (`greenpass.statement_link`,
kind ``i``, signer = the key id), under a blue band "手机查积分 statement on your phone"
and the words "not the passbook", so nobody holds it to the kiosk. A family member
scans it to see the household's points on a phone; revoking the passbook ends it.

The PDF is written with fpdf2 because it embeds the Noto Sans CJK font the kiosk
already uses (a CFF-outline OpenType collection) as a subset, so the household
names render the same in every viewer and at every print shop; reportlab embeds
only TrueType outlines. See docs/cards.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import segno
from fpdf import FPDF

from edge.kiosk.cards import CardKind, make_card
from edge.ledger.ledger import Ledger
from greenpass import statement_link
from greenpass.errors import ConfigError, LedgerError, Refused
from greenpass.files import write_private
from greenpass.fonts import FontFace, find_cjk_fonts
from greenpass.pdf_qr import draw_qr
from sync.keys import Ed25519PrivateKey, public_bytes

# --- the layout, in millimetres, origin at the top left (fpdf's) -----------------------

PAGE_W, PAGE_H = 210.0, 297.0  # A4
CARD_W, CARD_H = 85.6, 54.0  # ISO/IEC 7810 ID-1, a bank card
COLS, ROWS = 2, 5
PER_PAGE = COLS * ROWS
MARGIN_X = (PAGE_W - COLS * CARD_W) / 2  # 19.4
MARGIN_Y = (PAGE_H - ROWS * CARD_H) / 2  # 13.5
QR_SIZE = 32.0  # the symbol without its quiet zone: ≥ 25 mm for a cheap camera
QUIET_MODULES = 4  # the quiet zone QR requires, kept white inside the card
TEXT_X = 40.0  # the text column, right of the QR code
TEXT_W = CARD_W - TEXT_X - 2.0
MARK_GAP, MARK_LEN = 1.5, 6.5  # cut marks start this far outside the grid
MIN_PT = 6.0  # the smallest text printed
TWO_LINES_MAX_PT = 11.0  # two lines bigger than this would reach the band above
PT = 25.4 / 72  # mm per point

GREEN = (27, 122, 58)
STAFF_RED = (178, 34, 34)
PHONE_BLUE = (21, 86, 176)  # the statement slip: not the green of a passbook card
GREY = (110, 110, 110)
OUTLINE = (200, 200, 200)

TITLE = "绿色存折 Green Passbook"
SLIP_BAND = "手机查积分 statement on your phone"
STAFF_BAND = "工作人员 STAFF"


@dataclass(frozen=True)
class Holder:
    """Someone a card is printed for: a passbook (household) or a staff member."""

    holder_id: str  # passbook id or staff id
    name: str  # household name or staff name, as printed
    where: str  # for error messages: "ledger" or "people.csv:4"


@dataclass(frozen=True)
class PrintedCard:
    kind: CardKind
    holder: Holder
    payload: str  # the signed QR text
    statement: str | None = None  # the passbook's statement link (printed on a slip beside)
    statement_until: str = ""  # its last valid day, YYYY-MM-DD


@dataclass(frozen=True)
class StatementSlips:
    """Central's public address, and how many days the slips' links work."""

    base_url: str
    days: int = 1830  # five years: a card is kept for years; revoking the passbook ends it


# --- whom to print for ----------------------------------------------------------------


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting 'V-2' before 'V-10' (auto passbook ids are zero-padded anyway)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p)


def ledger_holders(ledger: Ledger, *, staff: bool) -> list[Holder]:
    """The ledger's active villagers of its village (or active staff), in id order."""
    if staff:
        holders = [Holder(m.staff_id, m.name, "ledger") for m in ledger.staff() if m.active]
    else:
        holders = [Holder(v.passbook_id, v.household_name, "ledger") for v in ledger.villagers()]
    return sorted(holders, key=lambda h: _natural(h.holder_id))


def csv_holders(path: Path, *, staff: bool) -> list[Holder]:
    """Rows of a CSV file with a header: passbook_id,household_name (staff: staff_id,name).

    UTF-8 (with or without a BOM) or, failing that, GB18030 — what a spreadsheet
    saves on a Chinese Windows. Other columns are ignored; rows keep file order.
    """
    id_col, name_col = ("staff_id", "name") if staff else ("passbook_id", "household_name")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the CSV file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: neither UTF-8 nor GB18030 text") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip() for f in reader.fieldnames or []]
    if id_col not in fields or name_col not in fields:
        raise ConfigError(
            f"{path}: the first line must name the columns {id_col},{name_col} (found {fields})"
        )
    reader.fieldnames = fields
    holders: list[Holder] = []
    seen: set[str] = set()
    for row in reader:
        where = f"{path}:{reader.line_num}"
        holder_id = (row.get(id_col) or "").strip()
        name = (row.get(name_col) or "").strip()
        if not holder_id and not name:
            continue  # a blank line
        if holder_id in seen:
            raise ConfigError(f"{where}: {id_col} {holder_id!r} appears twice")
        if not name or len(name) > 64 or not name.isprintable():
            raise ConfigError(f"{where}: {name_col} must be 1 to 64 printable characters")
        seen.add(holder_id)
        holders.append(Holder(holder_id, name, where))
    return holders


def select(holders: Sequence[Holder], start: int, count: int | None, *, what: str) -> list[Holder]:
    """`count` holders (default: all the rest) from the `start`-th (1-based) on.

    `what` names the list in errors, e.g. "active villagers in kiosk.db".
    """
    if start < 1:
        raise ConfigError(f"--from counts from 1, got {start}")
    if count is not None and count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    if not holders:
        raise ConfigError(f"no {what}: nothing to print")
    if start > len(holders):
        raise ConfigError(f"--from {start} is past the end: there are {len(holders)} {what}")
    end = len(holders) if count is None else start - 1 + count
    if end > len(holders):
        raise ConfigError(
            f"--from {start} --count {count} goes past the end: there are {len(holders)} {what}"
        )
    return list(holders[start - 1 : end])


def sign_cards(
    holders: Iterable[Holder],
    kind: CardKind,
    village: str,
    *,
    key_id: str,
    key: Ed25519PrivateKey,
    slips: StatementSlips | None = None,
    today: int | None = None,
) -> list[PrintedCard]:
    """The signed cards; with `slips`, each passbook's statement link too, valid
    `slips.days` from `today` (a day number; default: today)."""
    cards = []
    for h in holders:
        try:
            payload = make_card(kind, village, h.holder_id, key_id=key_id, key=key)
        except Refused as exc:
            raise ConfigError(f"{h.where}: {exc}") from exc
        url, until = None, ""
        if slips is not None and kind == "passbook":
            day = statement_link.day_of(int(time.time() * 1000)) if today is None else today
            day += slips.days
            try:
                link = statement_link.sign(key, "i", key_id, h.holder_id, day)
            except ValueError as exc:
                raise ConfigError(f"{h.where}: {h.holder_id}: {exc}") from exc
            url = link.url(slips.base_url)
            until = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
        cards.append(PrintedCard(kind, h, payload, url, until))
    return cards


def check_issuer(ledger: Ledger, key_id: str, key: Ed25519PrivateKey) -> str | None:
    """Refuse a key id the ledger's kiosk knows for another key (its cards would read as
    forged); return a warning when the kiosk does not know the key id yet."""
    known = ledger.issuer_keys()
    if key_id in known:
        if known[key_id] != public_bytes(key):
            raise LedgerError(
                f"key id {key_id!r} belongs to another key in this ledger's trusted issuers: "
                "cards signed with this key would be refused as forged"
            )
        return None
    if key_id == ledger.device_id:
        return None  # a kiosk trusts its own device key for the cards it prints
    return (
        f"this ledger's kiosk does not trust key id {key_id!r} yet: it refuses these cards "
        "(unknown_issuer) until central lists the key (`greenpass central issuer-key`) "
        "and the kiosk has synced"
    )


# --- the sheet ------------------------------------------------------------------------


def card_origin(slot: int) -> tuple[float, float]:
    """Top-left corner (mm) of the card in `slot` (0..9) of a page, row by row."""
    row, col = divmod(slot % PER_PAGE, COLS)
    return MARGIN_X + col * CARD_W, MARGIN_Y + row * CARD_H


class _Sheet:
    def __init__(self, fonts: dict[str, FontFace], footer: str) -> None:
        self.pdf = FPDF(orientation="portrait", unit="mm", format="A4")
        self.pdf.set_auto_page_break(auto=False)
        self.pdf.set_margins(0, 0, 0)
        self.footer = footer
        for style, face in fonts.items():
            self.pdf.add_font(
                "cjk", style=style, fname=face.path, collection_font_number=face.index
            )
        self.pdf.set_font("cjk", size=10)

    def check_glyphs(self, cards: Sequence[PrintedCard]) -> None:
        """Refuse a name the font cannot draw (a rare character): it would print blank."""
        for style in ("", "B"):
            self.pdf.set_font("cjk", style=style, size=10)
            cmap = self.pdf.current_font.cmap  # type: ignore[union-attr]
            for card in cards:
                missing = sorted({c for c in card.holder.name if ord(c) not in cmap})
                if missing:
                    raise ConfigError(
                        f"{card.holder.where}: {card.holder.holder_id}: the font has no glyph "
                        f"for {''.join(missing)!r} in {card.holder.name!r}"
                    )

    def text(self, x: float, y: float, s: str, size: float, *, bold: bool = False) -> None:
        self.pdf.set_font("cjk", style="B" if bold else "", size=size)
        self.pdf.text(x, y, s)

    def fitted(
        self,
        x: float,
        y: float,
        s: str,
        width: float,
        size: float,
        *,
        bold: bool = False,
        two_lines: bool = False,
    ) -> None:
        """`s` at `size` pt with its baseline at `y`, smaller if wider than `width`; below
        MIN_PT, on two lines (the second at `y`) when allowed, cut with "…" at the last."""
        pdf = self.pdf
        pdf.set_font("cjk", style="B" if bold else "", size=size)
        w = pdf.get_string_width(s)
        if w <= width:
            pdf.text(x, y, s)
            return
        one_line = size * width / w * 0.99  # a hair of room for rounding
        if one_line >= MIN_PT or not two_lines:
            pdf.set_font_size(max(MIN_PT, one_line))
            pdf.text(x, y, self._cut(s, width))
            return
        cut = (
            len(s) // 2
            if " " not in s
            else min((i for i, ch in enumerate(s) if ch == " "), key=lambda i: abs(i - len(s) / 2))
        )
        first, second = s[:cut].rstrip(), s[cut:].lstrip()
        widest = max(pdf.get_string_width(first), pdf.get_string_width(second))
        size = max(MIN_PT, min(size, TWO_LINES_MAX_PT, size * width / widest * 0.99))
        pdf.set_font_size(size)
        pdf.text(x, y - size * PT * 1.2, self._cut(first, width))
        pdf.text(x, y, self._cut(second, width))

    def _cut(self, s: str, width: float) -> str:
        while len(s) > 1 and self.pdf.get_string_width(s) > width:
            s = s[:-2] + "…"
        return s

    def page(self, number: int, pages: int) -> None:
        pdf = self.pdf
        pdf.add_page()
        pdf.set_draw_color(0, 0, 0)
        pdf.set_line_width(0.2)
        top, bottom = MARGIN_Y, MARGIN_Y + ROWS * CARD_H
        left, right = MARGIN_X, MARGIN_X + COLS * CARD_W
        for c in range(COLS + 1):
            x = left + c * CARD_W
            pdf.line(x, top - MARK_GAP, x, top - MARK_GAP - MARK_LEN)
            pdf.line(x, bottom + MARK_GAP, x, bottom + MARK_GAP + MARK_LEN)
        for r in range(ROWS + 1):
            y = top + r * CARD_H
            pdf.line(left - MARK_GAP, y, left - MARK_GAP - MARK_LEN, y)
            pdf.line(right + MARK_GAP, y, right + MARK_GAP + MARK_LEN, y)
        pdf.set_text_color(*GREY)
        self.fitted(left + 3, top - 3.5, f"{self.footer} · {number}/{pages}", CARD_W - 6, 7)

    def qr(self, x: float, y: float, matrix: Sequence[Sequence[int]]) -> None:
        draw_qr(self.pdf, x, y, QR_SIZE, matrix)

    def card(self, slot: int, card: PrintedCard, village_name: str) -> None:
        pdf = self.pdf
        x0, y0 = card_origin(slot)
        staff = card.kind == "staff"
        pdf.set_draw_color(*OUTLINE)
        pdf.set_line_width(0.1)
        pdf.rect(x0, y0, CARD_W, CARD_H)
        # Bands stay 2 mm inside the cut line, so a crooked cut leaves no stripe of colour.
        pdf.set_fill_color(*(STAFF_RED if staff else GREEN))
        pdf.rect(x0 + 2, y0 + 2, CARD_W - 4, 8.5, style="F")
        pdf.set_text_color(255, 255, 255)
        self.text(x0 + 4, y0 + 8.0, TITLE, 11, bold=True)

        # The QR code with its quiet zone, centred in the space under the title band.
        # Error level M (15 %) fits a card's line in a version 8 symbol: 0.65 mm modules.
        matrix = segno.make(card.payload, error="m", micro=False).matrix
        quiet = QR_SIZE / len(matrix) * QUIET_MODULES
        box = QR_SIZE + 2 * quiet
        bx, by = x0 + 1.0, y0 + 10.5 + (CARD_H - 10.5 - box) / 2
        self.qr(bx + quiet, by + quiet, matrix)

        tx = x0 + TEXT_X
        h = card.holder
        pdf.set_text_color(0, 0, 0)
        self.fitted(tx, y0 + 19.5, h.name, TEXT_W, 15 if staff else 16, bold=True, two_lines=True)
        pdf.set_text_color(*GREY)
        self.text(tx, y0 + 25.5, "工号 Staff ID" if staff else "存折号 Passbook No.", 7)
        pdf.set_text_color(0, 0, 0)
        self.fitted(tx, y0 + 32.5, h.holder_id, TEXT_W, 17, bold=True, two_lines=True)
        pdf.set_text_color(*GREY)
        self.text(tx, y0 + 38.5, "村 Village", 7)
        pdf.set_text_color(0, 0, 0)
        self.fitted(tx, y0 + 43.0, village_name, TEXT_W, 10)
        if staff:
            pdf.set_fill_color(*STAFF_RED)
            pdf.rect(tx, y0 + 44.5, TEXT_W, 7.5, style="F")
            pdf.set_text_color(255, 255, 255)
            pdf.set_font("cjk", style="B", size=12)
            w = pdf.get_string_width(STAFF_BAND)
            pdf.text(tx + (TEXT_W - w) / 2, y0 + 50.0, STAFF_BAND)


def draw_slip(sheet: _Sheet, slot: int, card: PrintedCard) -> None:
    """The statement slip of `card` in `slot`: a phone's QR, plainly not the passbook."""
    assert card.statement is not None
    pdf = sheet.pdf
    x0, y0 = card_origin(slot)
    pdf.set_draw_color(*OUTLINE)
    pdf.set_line_width(0.1)
    pdf.rect(x0, y0, CARD_W, CARD_H)
    pdf.set_fill_color(*PHONE_BLUE)
    pdf.rect(x0 + 2, y0 + 2, CARD_W - 4, 8.5, style="F")
    pdf.set_text_color(255, 255, 255)
    sheet.fitted(x0 + 4, y0 + 8.0, SLIP_BAND, CARD_W - 8, 11, bold=True)
    matrix = segno.make(card.statement, error="m", micro=False).matrix
    quiet = QR_SIZE / len(matrix) * QUIET_MODULES
    box = QR_SIZE + 2 * quiet
    bx, by = x0 + 1.0, y0 + 10.5 + (CARD_H - 10.5 - box) / 2
    sheet.qr(bx + quiet, by + quiet, matrix)
    tx = x0 + TEXT_X
    pdf.set_text_color(0, 0, 0)
    sheet.fitted(tx, y0 + 17.5, card.holder.name, TEXT_W, 13, bold=True)
    sheet.fitted(tx, y0 + 23.0, card.holder.holder_id, TEXT_W, 10)
    lines = (
        ("用手机扫码，看积分和记录", 8.5, True),
        ("Scan with a phone: points, history", 6.5, False),
        ("这不是存折，回收机不认", 8.5, True),
        ("Not the passbook: not for the kiosk", 6.5, False),
    )
    y = y0 + 29.5
    for text, size, bold in lines:
        pdf.set_text_color(*((0, 0, 0) if bold else GREY))
        sheet.fitted(tx, y, text, TEXT_W, size, bold=bold)
        y += 4.6 if bold else 5.2
    pdf.set_text_color(*GREY)
    sheet.fitted(tx, y0 + 50.5, f"有效至 valid until {card.statement_until}", TEXT_W, 6.5)


def render_sheet(
    cards: Sequence[PrintedCard],
    *,
    village_name: str,
    footer: str,
    fonts: dict[str, FontFace] | None = None,
) -> bytes:
    """The PDF of `cards`, ten per A4 page, in order; `footer` is printed above each grid."""
    if not cards:
        raise ConfigError("no cards to print")
    sheet = _Sheet(fonts or find_cjk_fonts(), footer)
    sheet.check_glyphs(cards)
    sheet.pdf.set_title(f"{TITLE} — {footer}")
    sheet.pdf.set_creator("greenpass cards")
    # With statement slips each row holds a card and, beside it, its slip.
    per_page = cards_per_page(cards)
    step = PER_PAGE // per_page
    pages = -(-len(cards) // per_page)
    for i, card in enumerate(cards):
        if i % per_page == 0:
            sheet.page(i // per_page + 1, pages)
        slot = (i % per_page) * step
        sheet.card(slot, card, village_name)
        if card.statement is not None:
            draw_slip(sheet, slot + 1, card)
    return bytes(sheet.pdf.output())


def cards_per_page(cards: Sequence[PrintedCard]) -> int:
    return ROWS if any(c.statement for c in cards) else PER_PAGE


def write_sheet(path: Path, data: bytes) -> None:
    """Write a sheet (mode 0600, whole or not at all): a failed run leaves no half sheet
    behind, and a sheet of cards is as sensitive as the cards."""
    try:
        write_private(path, data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the sheet ({exc.strerror})") from exc
