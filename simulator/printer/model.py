"""What an ESC/POS thermal printer does with the bytes it is sent: the simulated
printer's paper. It understands the commands `hardware.printer.document` sends and
skips the rest by their length, like a printer ignoring what it does not support:

    ESC @  initialise        ESC ! / GS !  size, bold   ESC E  bold     ESC a  align
    ESC d  feed              FS & / FS .   Chinese mode on / off (text is GB18030)
    GS v 0 raster image      GS ( k        QR code (model, size, level, store, print)
    GS V   cut: the receipt is finished and becomes one image
    DLE EOT n                real-time status: answered through `answer`

Text is drawn with Noto Sans CJK at the printer's font size (12 × 24 dots a character,
24 × 24 a hanzi), so a PNG of a receipt looks like the paper. Outside Chinese mode
the bytes are read as code page 437, as a printer with its factory settings would: a
GB18030 receipt sent without ``FS &`` comes out as mojibake here too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

FONT_PX = 24
LINE_PX = 30


@dataclass
class PrinterState:
    """The printer's sensors, set by the simulator's controls."""

    paper: str = "ok"  # ok / low / out
    cover_open: bool = False
    cutter_jammed: bool = False

    def status_byte(self, n: int) -> int:
        b = 0x12
        if n == 2:
            b |= 0x20 if self.paper == "out" else 0
            b |= 0x04 if self.cover_open else 0
            b |= 0x40 if self.cutter_jammed else 0
        elif n == 3:
            b |= 0x08 if self.cutter_jammed else 0
        elif n == 4:
            b |= 0x60 if self.paper == "out" else 0x0C if self.paper == "low" else 0
        return b


@dataclass
class _Style:
    align: int = 0
    bold: bool = False
    wide: bool = False
    tall: bool = False
    chinese: bool = False


@dataclass
class Paper:
    """The receipt being printed: rows of pixels, until the cut."""

    width: int
    rows: list[Image.Image] = field(default_factory=list)

    def add(self, img: Image.Image) -> None:
        self.rows.append(img)

    def image(self) -> Image.Image:
        h = sum(r.height for r in self.rows)
        out = Image.new("L", (self.width, max(1, h)), 255)
        y = 0
        for r in self.rows:
            out.paste(r.convert("L"), (0, y))
            y += r.height
        return out


class EscPosModel:
    """Feed it bytes; it calls `on_receipt(image)` at each cut and `answer(byte)` for each
    status query. `printing` False (no paper, cover open) drops what would be printed."""

    def __init__(
        self,
        width_dots: int,
        state: PrinterState,
        on_receipt: Callable[[Image.Image], None],
        answer: Callable[[bytes], None],
    ) -> None:
        self.width = width_dots
        self.state = state
        self.on_receipt = on_receipt
        self.answer = answer
        self.buf = bytearray()
        self.text = bytearray()
        self.style = _Style()
        self.paper = Paper(width_dots)
        self.qr_data = b""
        self.qr_module = 3
        self._fonts: dict[tuple[bool, int], ImageFont.FreeTypeFont] = {}
        self.lines: list[str] = []  # each text line as the printer read it (for tests)
        self.qr_codes: list[str] = []  # each QR code it printed

    @property
    def printing(self) -> bool:
        s = self.state
        return s.paper != "out" and not s.cover_open and not s.cutter_jammed

    def feed(self, data: bytes) -> None:
        self.buf += data
        while self.buf:
            used = self._step()
            if used == 0:
                return  # an incomplete command: wait for its rest
            del self.buf[:used]

    # --- parsing ------------------------------------------------------------------------

    def _step(self) -> int:
        b = self.buf
        c = b[0]
        if c == 0x0A:
            self._line()
            return 1
        if c == 0x10:  # DLE EOT n
            if len(b) < 3:
                return 0
            if b[1] == 0x04:
                self.answer(bytes((self.state.status_byte(b[2]),)))
            return 3
        if c == 0x1B:
            return self._esc()
        if c == 0x1D:
            return self._gs()
        if c == 0x1C:
            if len(b) < 2:
                return 0
            if b[1] in (0x26, 0x2E):
                self._flush_text()
                self.style.chinese = b[1] == 0x26
                return 2
            return 3 if b[1] in (0x21, 0x2D) else 2
        if c >= 0x20:
            self.text.append(c)
        return 1

    def _esc(self) -> int:
        b = self.buf
        if len(b) < 2:
            return 0
        op = b[1]
        if op == 0x40:  # @
            self._flush_text()
            self.style = _Style()
            return 2
        if op in (0x32,):  # 2: default line spacing
            return 2
        if len(b) < 3:
            return 0
        n = b[2]
        if op == 0x21:  # !
            self._flush_text()
            self.style.bold, self.style.tall, self.style.wide = (
                bool(n & 0x08),
                bool(n & 0x10),
                bool(n & 0x20),
            )
        elif op == 0x45:  # E
            self._flush_text()
            self.style.bold = bool(n & 1)
        elif op == 0x61:  # a
            self._flush_text()
            self.style.align = n % 48 if n >= 48 else n
        elif op == 0x64:  # d: feed n lines
            self._line()
            for _ in range(max(0, n - 1)):
                self._blank(LINE_PX)
        return 3

    def _gs(self) -> int:
        b = self.buf
        if len(b) < 2:
            return 0
        op = b[1]
        if op == 0x21:  # !
            if len(b) < 3:
                return 0
            self._flush_text()
            self.style.wide, self.style.tall = bool(b[2] & 0xF0), bool(b[2] & 0x0F)
            return 3
        if op == 0x56:  # V: cut
            if len(b) < 3:
                return 0
            used = 4 if b[2] in (65, 66) else 3
            if len(b) < used:
                return 0
            self._cut()
            return used
        if op == 0x76:  # v 0: raster image
            if len(b) < 8:
                return 0
            wb, h = b[4] | b[5] << 8, b[6] | b[7] << 8
            if len(b) < 8 + wb * h:
                return 0
            self._raster(bytes(b[8 : 8 + wb * h]), wb, h)
            return 8 + wb * h
        if op == 0x28:  # ( k / ( L: a length-prefixed function
            if len(b) < 5:
                return 0
            size = b[3] | b[4] << 8
            if len(b) < 5 + size:
                return 0
            if b[2] == 0x6B:
                self._qr(bytes(b[5 : 5 + size]))
            return 5 + size
        return 3 if len(b) >= 3 else 0

    # --- drawing ------------------------------------------------------------------------

    def _font(self, bold: bool, size: int) -> ImageFont.FreeTypeFont:
        key = (bold, size)
        if key not in self._fonts:
            from greenpass.fonts import find_cjk_fonts  # noqa: PLC0415

            face = find_cjk_fonts()["B" if bold else ""]
            self._fonts[key] = ImageFont.truetype(str(face.path), size=size, index=face.index)
        return self._fonts[key]

    def _flush_text(self) -> None:
        if self.text:
            self._line()

    def _line(self) -> None:
        raw, self.text = bytes(self.text), bytearray()
        s = self.style
        h = LINE_PX * (2 if s.tall else 1)
        if not raw:
            self._blank(h)
            return
        text = raw.decode("gb18030" if s.chinese else "cp437", errors="replace")
        if self.printing:
            self.lines.append(text)
        font = self._font(s.bold, FONT_PX * (2 if s.tall else 1))
        img = Image.new("1", (self.width, h), 1)
        d = ImageDraw.Draw(img)
        # A printer's font is fixed-width: 12 dots a cell, a hanzi two cells (doubled
        # when wide), so columns line up as on paper.
        cell = 12 * (2 if s.wide else 1)
        widths = [2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text]
        w = sum(widths) * cell
        x = max(0, (0, (self.width - w) // 2, self.width - w)[min(s.align, 2)])
        for ch, n in zip(text, widths, strict=True):
            d.text((x, 1), ch, font=font, fill=0)
            x += n * cell
        self._add(img)

    def _blank(self, h: int) -> None:
        self._add(Image.new("1", (self.width, h), 1))

    def _add(self, img: Image.Image) -> None:
        if self.printing:
            self.paper.add(img)

    def _raster(self, data: bytes, width_bytes: int, height: int) -> None:
        self._flush_text()
        img = Image.frombytes("1", (width_bytes * 8, height), bytes(~x & 0xFF for x in data))
        row = Image.new("1", (self.width, height), 1)
        row.paste(img.crop((0, 0, min(self.width, img.width), height)), (0, 0))
        self._add(row)

    def _qr(self, body: bytes) -> None:
        if len(body) < 2 or body[0] != 0x31:  # cn 49: QR code
            return
        fn = body[1]
        if fn == 67 and len(body) > 2:  # module size
            self.qr_module = body[2]
        elif fn == 80:  # store: m '0' then the data
            self.qr_data = body[3:]
        elif fn == 81 and self.qr_data:  # print what was stored
            import segno  # noqa: PLC0415

            self._flush_text()
            data = self.qr_data.decode("utf-8")
            if self.printing:
                self.qr_codes.append(data)
            matrix = segno.make(data, error="m", micro=False).matrix
            m, n = self.qr_module, len(matrix)
            sym = Image.new("1", ((n + 4) * m, (n + 4) * m), 1)
            d = ImageDraw.Draw(sym)
            for r, line in enumerate(matrix):
                for c, dark in enumerate(line):
                    if dark:
                        d.rectangle(((c + 2) * m, (r + 2) * m, (c + 3) * m - 1, (r + 3) * m - 1), 0)
            row = Image.new("1", (self.width, sym.height), 1)
            x = (0, (self.width - sym.width) // 2, self.width - sym.width)[min(self.style.align, 2)]
            row.paste(sym, (max(0, x), 0))
            self._add(row)

    def _cut(self) -> None:
        self._flush_text()
        paper, self.paper = self.paper, Paper(self.width)
        if paper.rows and self.printing:
            self.on_receipt(paper.image())
