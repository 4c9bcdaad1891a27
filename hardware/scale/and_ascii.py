"""A&D-style continuous ASCII output (A&D balances and indicators, many clones), CR LF.

The scale sends a line whenever it has a new weight (stream mode); no commands
are used. Two layouts, both per A&D's manuals ("A&D standard format"):

    balance     ST,+00123.45  g        header, data (9 chars: sign + 8 incl. the
                                       point), unit (3 chars, right aligned)
    indicator   ST,NT,+0012.34kg       header, GS/NT/TR, data (8 chars), unit (2)

    header  ST stable | US unstable | OL overload (sign '-' in the data: underload;
            the data of an OL line is not a weight, e.g. OL,+1E19  g, and is ignored)
    second  GS gross | NT net (both weights) | TR tare: the tare value, reported
            as an InfoFrame {"tare_grams": ...}, not as a reading
    units   g, kg (also mg, t); others (pcs, %, ct, lb...) are counted as unknown

The stable flag is the header: ST -> True, US -> False. Blanks inside the data
field (some clones pad with them) are accepted.
"""

from __future__ import annotations

import re

from hardware.scale.base import ScaleStatus
from hardware.scale.driver import SerialScale
from hardware.scale.frames import Frame, InfoFrame, LineParser, Verdict, WeightFrame, ascii_text
from hardware.scale.units import to_grams

BAUDRATE = 2400  # A&D's factory default; many are set to 9600 on site

_FRAME = re.compile(r"(ST|US|OL),(?:(GS|NT|TR),)?([+-]?[0-9. E]*?) *([A-Za-z%]*)")
_OTHER = re.compile(r"[A-Z]{2},.*")


class AndParser(LineParser):
    HEADER = re.compile(rb"(?:ST|US|OL),")

    def parse_line(self, line: bytes) -> Frame | Verdict:
        text = ascii_text(line)
        if text is None:
            return Verdict.TORN if self.HEADER.match(line) else Verdict.GARBAGE
        frame = _FRAME.fullmatch(text.strip())
        if frame is None:
            if self.HEADER.match(line):
                return Verdict.TORN
            return Verdict.UNKNOWN if _OTHER.fullmatch(text) else Verdict.GARBAGE
        header, kind, data, unit = frame.groups()
        if header == "OL":
            under = data.strip().startswith("-")
            return WeightFrame(None, ScaleStatus.UNDERLOAD if under else ScaleStatus.OVERLOAD, None)
        if not data.strip().startswith(("+", "-")) or not unit:
            return Verdict.TORN  # every A&D weight carries a sign and a unit
        grams = to_grams(data, unit)
        if grams is None:
            return Verdict.TORN if to_grams(data, "g") is None else Verdict.UNKNOWN
        if kind == "TR":
            return InfoFrame({"tare_grams": str(grams)})
        return WeightFrame(grams, ScaleStatus.OK, header == "ST")


class AndScale(SerialScale):
    """An A&D-style scale in stream mode. Takes no commands: tare/zero/calibrate raise
    `Unsupported` (do them on the scale's own keys)."""

    protocol = "and"

    def make_parser(self) -> AndParser:
        return AndParser()
