"""A receipt as a list of blocks, and the ESC/POS bytes that print it (python-escpos).

Two ways of printing Chinese (`[hardware.printer] chinese`, docs/hardware-printer.md):

- ``gb18030`` (the default): the printer's own Chinese font. ``FS &`` switches the
  printer to Chinese character mode and the text follows as GB18030 bytes (ASCII is
  one byte, a hanzi two). Every ESC/POS printer sold in mainland China has such a
  font; a receipt is about 1 kB and prints at once even at 9600 baud. The QR code is
  the printer's own (``GS ( k``).
- ``image``: every line drawn with Noto Sans CJK on the kiosk and sent as a raster
  image (``GS v 0``), the QR code too. Any ESC/POS printer prints it (one without a
  Chinese font, one whose QR command is missing), at about 20–40 kB per receipt:
  use it over USB, not over a slow serial line.

Either way the job starts with ``ESC @`` (initialise) and ends with a feed and a
partial cut (``GS V 1``). Widths are in printer dots at 203 dpi (8 dots per mm):
384 on 58 mm paper, 576 on 80 mm.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from escpos.constants import QR_ECLEVEL_M
from escpos.printer import Dummy
from PIL import Image, ImageDraw, ImageFont

from hardware.printer.errors import BadSetting

ChineseMode = Literal["gb18030", "image"]
CHINESE_MODES: tuple[ChineseMode, ...] = ("gb18030", "image")
WIDTHS_MM = (58, 80)
FS_CHINESE_ON = b"\x1c&"  # FS &: Chinese character mode (GB2312/GBK/GB18030 font)
FS_CHINESE_OFF = b"\x1c."
FONT_PX = 24  # the printers' font A is 12 × 24 dots (a hanzi 24 × 24): the image matches it
LINE_PX = 30


@dataclass(frozen=True)
class Text:
    text: str
    align: Literal["left", "center", "right"] = "left"
    bold: bool = False
    big: bool = False  # double width and height


@dataclass(frozen=True)
class Row:
    """A label on the left and its value on the right, on one line when they fit."""

    label: str
    value: str
    bold: bool = False


@dataclass(frozen=True)
class Rule:
    """A dashed line across the paper."""


@dataclass(frozen=True)
class Qr:
    data: str


Block = Text | Row | Rule | Qr


@dataclass(frozen=True)
class Paper:
    width_mm: int = 58

    def __post_init__(self) -> None:
        if self.width_mm not in WIDTHS_MM:
            raise BadSetting(f"paper width must be 58 or 80 mm, got {self.width_mm}")

    @property
    def dots(self) -> int:
        return 384 if self.width_mm == 58 else 576

    @property
    def columns(self) -> int:
        """Characters of font A (12 dots) per line; a hanzi takes two."""
        return self.dots // 12

    @property
    def qr_module(self) -> int:
        """QR module size in dots: a statement link (version 6–7) comes out 30–40 mm wide,
        what a cheap phone's camera reads at arm's length."""
        return 6 if self.width_mm == 58 else 8


def cells(text: str) -> int:
    """Columns `text` takes in font A: wide (hanzi, full-width) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def row_lines(row: Row, columns: int) -> list[tuple[str, str]]:
    """`row` as (text, align) lines: one line when label and value fit, else two."""
    gap = columns - cells(row.label) - cells(row.value)
    if gap >= 1:
        return [(row.label + " " * gap + row.value, "left")]
    return [(row.label, "left"), (row.value, "right")]


def render(blocks: Sequence[Block], paper: Paper, chinese: ChineseMode = "gb18030") -> bytes:
    """The ESC/POS bytes of a receipt, from ``ESC @`` to its cut."""
    if chinese not in CHINESE_MODES:
        raise BadSetting(f"chinese must be one of {', '.join(CHINESE_MODES)}, got {chinese!r}")
    p = Dummy()
    # python-escpos checks an image against the profile's paper width (and prints a
    # warning to stdout when the profile has none): give it this paper's.
    p.profile.profile_data["media"]["width"]["pixels"] = paper.dots
    p.hw("INIT")
    if chinese == "image":
        p.image(draw(blocks, paper), impl="bitImageRaster", fragment_height=960)
    else:
        _render_text(p, blocks, paper)
    p.cut(mode="PART")
    out: bytes = p.output
    return out


def _render_text(p: Dummy, blocks: Sequence[Block], paper: Paper) -> None:
    p._raw(FS_CHINESE_ON)
    for b in blocks:
        if isinstance(b, Text):
            p.set(align=b.align, bold=b.bold, double_width=b.big, double_height=b.big)
            if not b.big:
                p.set(normal_textsize=True)
            p._raw(_gb(b.text) + b"\n")
        elif isinstance(b, Row):
            p.set(bold=b.bold, normal_textsize=True)
            for text, align in row_lines(b, paper.columns):
                p.set(align=align)
                p._raw(_gb(text) + b"\n")
        elif isinstance(b, Rule):
            p.set(align="left", bold=False, normal_textsize=True)
            p._raw(b"-" * paper.columns + b"\n")
        else:
            p.set(align="center")
            p.qr(b.data, native=True, size=paper.qr_module, ec=QR_ECLEVEL_M)
            p._raw(b"\n")
    p.set(align="left", bold=False, normal_textsize=True)
    p._raw(FS_CHINESE_OFF)


def _gb(text: str) -> bytes:
    # GB18030 encodes every Unicode character: nothing is ever replaced by "?".
    return text.encode("gb18030")


# --- the image path -------------------------------------------------------------------------


def _font(size: int, bold: bool) -> ImageFont.FreeTypeFont:
    from greenpass.fonts import find_cjk_fonts  # noqa: PLC0415 - only the image path needs it

    face = find_cjk_fonts()["B" if bold else ""]
    return ImageFont.truetype(str(face.path), size=size, index=face.index)


def draw(blocks: Sequence[Block], paper: Paper) -> Image.Image:
    """The whole receipt as one black-and-white image `paper.dots` wide."""
    import segno  # noqa: PLC0415

    w = paper.dots
    parts: list[Image.Image] = []
    for b in blocks:
        if isinstance(b, Qr):
            qr = segno.make(b.data, error="m", micro=False)
            side = (len(qr.matrix) + 4) * paper.qr_module
            img = Image.new("1", (w, side + 8), 1)
            sym = _qr_image(qr.matrix, paper.qr_module)
            img.paste(sym, ((w - sym.width) // 2, 4))
            parts.append(img)
            continue
        if isinstance(b, Text):
            parts.append(_text_line(b.text, b.align, b.bold, b.big, w))
        elif isinstance(b, Row):
            if len(row_lines(b, paper.columns)) == 1:  # label left, value right, one line
                line = _text_line(b.label, "left", b.bold, False, w)
                _put(line, b.value, "right", _font(FONT_PX, b.bold))
                parts.append(line)
            else:
                parts.append(_text_line(b.label, "left", b.bold, False, w))
                parts.append(_text_line(b.value, "right", b.bold, False, w))
        else:
            rule = Image.new("1", (w, LINE_PX // 2), 1)
            ImageDraw.Draw(rule).line((0, LINE_PX // 4, w, LINE_PX // 4), fill=0, width=2)
            parts.append(rule)
    height = sum(p.height for p in parts)
    out = Image.new("1", (w, max(1, height)), 1)
    y = 0
    for part in parts:
        out.paste(part, (0, y))
        y += part.height
    return out


def _text_line(text: str, align: str, bold: bool, big: bool, width: int) -> Image.Image:
    img = Image.new("1", (width, LINE_PX * (2 if big else 1)), 1)
    _put(img, text, align, _font(FONT_PX * (2 if big else 1), bold))
    return img


def _put(img: Image.Image, text: str, align: str, font: ImageFont.FreeTypeFont) -> None:
    d = ImageDraw.Draw(img)
    text_w = int(d.textlength(text, font=font))
    x = {"left": 0, "center": (img.width - text_w) // 2, "right": img.width - text_w}[align]
    d.text((max(0, x), 1), text, font=font, fill=0)


def _qr_image(matrix: Sequence[Sequence[int]], module: int) -> Image.Image:
    n = len(matrix)
    quiet = 2
    img = Image.new("1", ((n + 2 * quiet) * module,) * 2, 1)
    d = ImageDraw.Draw(img)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                x, y = (c + quiet) * module, (r + quiet) * module
                d.rectangle((x, y, x + module - 1, y + module - 1), fill=0)
    return img
