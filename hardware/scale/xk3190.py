"""Yaohua XK3190-A9 (and A9+, many OEM platform scales) continuous output, binary frames.

Per the XK3190-A9 manual (serial output, "continuous mode", tF = 0), 12 bytes
per frame, the displayed weight (gross or net):

    byte  0      STX 0x02
          1      sign '+' or '-'
          2-7    weight, 6 ASCII digits, most significant first, no point
          8      decimal places, ASCII '0'..'4' (digits right of the point)
          9      XH: high nibble of the check, as ASCII
          10     XL: low nibble of the check, as ASCII
          11     ETX 0x03

    check = XOR of bytes 1..8; each nibble n is sent as n + 0x30 when n <= 9,
            else n + 0x37 (i.e. '0'..'9', 'A'..'F')
    example: +001250 with 3 places (1.250 kg): 02 2B 30 30 31 32 35 30 33 31 45 03  ("1E")

The frame has no unit, no stable flag and no overload flag: the unit is the
indicator's setting (pass `unit=`, default kg), stability is decided only
from the samples, and overload only by `capacity_grams` (set it to the
platform's capacity). Frames with a good check but impossible fields (a
decimal-places digit above 4, non-digits) are counted as unknown.
"""

from __future__ import annotations

from hardware.scale.base import FrameCounters, ScaleStatus
from hardware.scale.driver import ScaleOptions, SerialScale
from hardware.scale.errors import BadSetting
from hardware.scale.frames import Frame, Tally, Verdict, WeightFrame
from hardware.scale.serial_port import SerialLink
from hardware.scale.units import GRAMS_PER_UNIT, to_grams

BAUDRATE = 9600
STX, ETX = 0x02, 0x03
FRAME_LENGTH = 12


def check_chars(body: bytes) -> bytes:
    """XH XL for `body` (bytes 1..8 of a frame)."""
    check = 0
    for byte in body:
        check ^= byte
    return bytes(n + (0x30 if n <= 9 else 0x37) for n in (check >> 4, check & 0x0F))


class Xk3190Parser:
    """Incremental parser: resynchronises on STX; never raises."""

    def __init__(self, unit: str = "kg") -> None:
        if unit.lower() not in GRAMS_PER_UNIT:
            raise BadSetting(f"unit {unit!r} is not one of {sorted(GRAMS_PER_UNIT)}")
        self.unit = unit.lower()
        self._buf = bytearray()
        self._tally = Tally()
        self._after_torn = False  # the rest of a torn frame is not counted again as garbage

    @property
    def counters(self) -> FrameCounters:
        return self._tally.snapshot()

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf
        buf += data
        while buf:
            start = buf.find(STX)
            if start != 0:
                self._junk()
                if start < 0:
                    buf.clear()
                    break
                del buf[:start]
            restart = buf.find(STX, 1, FRAME_LENGTH)
            if restart > 0:  # a new frame began before this one could end
                self._torn()
                del buf[:restart]
                continue
            if len(buf) < FRAME_LENGTH:
                break
            judged = self._judge(bytes(buf[:FRAME_LENGTH]))
            if isinstance(judged, WeightFrame):
                self._tally.ok += 1
                out.append(judged)
                del buf[:FRAME_LENGTH]
            elif judged is Verdict.TORN:
                self._torn()
                del buf[:1]
            else:
                self._tally.count(judged)
                del buf[:FRAME_LENGTH]
            self._after_torn = judged is Verdict.TORN
        return out

    def _junk(self) -> None:
        if not self._after_torn:
            self._tally.count(Verdict.GARBAGE)
        self._after_torn = False

    def _torn(self) -> None:
        self._tally.count(Verdict.TORN)
        self._after_torn = True

    def _judge(self, frame: bytes) -> WeightFrame | Verdict:
        if frame[11] != ETX or frame[9:11] != check_chars(frame[1:9]):
            return Verdict.TORN
        sign, digits, places = frame[1:2], frame[2:8], frame[8:9]
        if sign not in (b"+", b"-") or not digits.isdigit() or places not in b"01234":
            return Verdict.UNKNOWN
        text = digits.decode("ascii")
        number = f"{sign.decode('ascii')}{text[: 6 - int(places)] or '0'}.{text[6 - int(places) :]}"
        grams = to_grams(number, self.unit)
        if grams is None:  # unreachable after the checks above; keeps the parser total
            return Verdict.UNKNOWN
        return WeightFrame(grams, ScaleStatus.OK, None)


class Xk3190Scale(SerialScale):
    """An XK3190-A9 indicator in continuous mode. Takes no commands."""

    protocol = "xk3190"

    def __init__(
        self, link: SerialLink, options: ScaleOptions | None = None, *, unit: str = "kg"
    ) -> None:
        self._unit = unit
        super().__init__(link, options)

    def make_parser(self) -> Xk3190Parser:
        return Xk3190Parser(self._unit)
