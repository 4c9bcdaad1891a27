"""CAS indicators' "CAS 22 bytes" continuous format (CI-100/200/400/600 series, NT-200...).

Layout, per the CAS manuals' "Serial data format / 22 Bytes for CAS":

    byte   0-1  header     ST stable | US unstable | OL overload
           2    ','
           3-4  GS gross | NT net
           5    ','
           6    device id  one byte, ASCII: '0' + id (id 1 -> 0x31, id 13 -> 0x3D)
           7    lamp byte  bit7 1, bit6 STABLE, bit5 (0 or 1 by model), bit4 hold,
                           bit3 printer, bit2 gross, bit1 tare, bit0 zero point
           8    ','
           9-16 data       8 ASCII chars, e.g. 13.5 kg -> "000013.5"; sign '-' first
                           when negative; leading blanks accepted
           17   ' '
           18-19 unit      "kg" (also " t", " g")
           20-21 CR LF

Note the ',' after the lamp byte: the manuals' 22 bytes need it (without it
the frame would be 21 bytes), so a shorter summary "ST,GS, id lamp data kg"
is missing it. The stable flag is the lamp byte's bit 6, as the brief asks (the ST/US header
normally agrees). OL lines carry no usable weight. Because the lamp byte is
binary, a line is judged by its exact length and positions, never decoded as text.
"""

from __future__ import annotations

import re

from hardware.scale.base import ScaleStatus
from hardware.scale.driver import SerialScale
from hardware.scale.frames import Frame, LineParser, Verdict, WeightFrame
from hardware.scale.units import to_grams

BAUDRATE = 9600
LINE_LENGTH = 20  # the 22 bytes without CR LF
LAMP_STABLE = 0x40

_HEAD = re.compile(rb"(ST|US|OL),(GS|NT),")
_DATA = re.compile(rb"[-+ 0-9.]{8}")


class CasParser(LineParser):
    HEADER = re.compile(rb"(?:ST|US|OL),(?:GS|NT),")

    def parse_line(self, line: bytes) -> Frame | Verdict:
        head = _HEAD.match(line)
        if head is None:
            return Verdict.GARBAGE
        if len(line) != LINE_LENGTH or line[8:9] != b"," or line[17:18] != b" ":
            return Verdict.TORN
        stable = bool(line[7] & LAMP_STABLE)
        if head.group(1) == b"OL":  # the data of an OL line is not a weight
            return WeightFrame(None, ScaleStatus.OVERLOAD, stable)
        data, unit = line[9:17], line[18:20]
        if _DATA.fullmatch(data) is None or not unit.strip().isalpha():
            return Verdict.TORN
        grams = to_grams(data.decode("ascii"), unit.decode("ascii"))
        if grams is None:
            # digits fine but a unit we cannot convert (lb) -> unknown; else cut
            return (
                Verdict.UNKNOWN if to_grams(data.decode("ascii"), "g") is not None else Verdict.TORN
            )
        return WeightFrame(grams, ScaleStatus.OK, stable)


class CasScale(SerialScale):
    """A CAS indicator sending 22-byte frames. Takes no commands (tare/zero/calibrate
    raise `Unsupported`)."""

    protocol = "cas"

    def make_parser(self) -> CasParser:
        return CasParser()
