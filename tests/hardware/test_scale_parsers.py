"""Each protocol's parser on exact frames from the manuals (and our firmware's spec)."""

from __future__ import annotations

import pytest

from hardware.scale.and_ascii import AndParser
from hardware.scale.base import FrameCounters, ScaleStatus
from hardware.scale.cas import CasParser
from hardware.scale.frames import InfoFrame, ReplyFrame, WeightFrame
from hardware.scale.gpfw import GpfwParser, checksum
from hardware.scale.mtsics import MtSicsParser
from hardware.scale.units import to_grams
from hardware.scale.xk3190 import Xk3190Parser, check_chars

OK, OL, UL, ER = ScaleStatus.OK, ScaleStatus.OVERLOAD, ScaleStatus.UNDERLOAD, ScaleStatus.ERROR


# -- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "unit", "grams"),
    [
        ("+00123.45", "g", 123),
        ("+0012.34", "kg", 12340),
        ("-0012.34", "kg", -12340),
        ("129.07", "g", 129),
        ("0.5", "g", 1),  # half away from zero
        ("-0.5", "g", -1),
        ("1.0005", "kg", 1001),
        ("-1.0005", "kg", -1001),
        ("1.0004", "kg", 1000),
        ("-  13.5", "kg", -13500),  # CAS pads between sign and digits
        ("000013.5", "kg", 13500),
        ("2500", "mg", 3),
        ("1.2", "t", 1_200_000),
        ("12.", "KG", 12000),
    ],
)
def test_to_grams_rounds_half_away_from_zero(number: str, unit: str, grams: int) -> None:
    assert to_grams(number, unit) == grams


@pytest.mark.parametrize(
    ("number", "unit"), [("1.2.3", "g"), ("", "g"), ("12", "lb"), ("1E3", "g")]
)
def test_to_grams_refuses_what_it_cannot_convert(number: str, unit: str) -> None:
    assert to_grams(number, unit) is None


# -- gpfw --------------------------------------------------------------------------------


def gpfw(body: str) -> bytes:
    return f"{body}*{checksum(body.encode()):02X}\n".encode()


def test_gpfw_checksum_is_xor_of_the_body() -> None:
    # W=0x57 ,=0x2C +=0x2B 1=0x31 2=0x32 5=0x35 0=0x30 S=0x53 O=0x4F K=0x4B
    assert checksum(b"W,+1250,S,OK") == 0x01
    assert GpfwParser().feed(b"W,+1250,S,OK*01\n") == [WeightFrame(1250, OK, True)]


@pytest.mark.parametrize(
    ("body", "frame"),
    [
        ("W,+1250,S,OK", WeightFrame(1250, OK, True)),
        ("W,-3,U,OK", WeightFrame(-3, OK, False)),
        ("W,0,S,OK", WeightFrame(0, OK, True)),
        ("W,+99999,U,OL", WeightFrame(None, OL, False)),
        ("W,-20000,U,UL", WeightFrame(None, UL, False)),
        ("W,+0,U,ER", WeightFrame(None, ER, False)),
        ("R,TARE,OK", ReplyFrame("TARE", True)),
        ("R,CAL,OK,factor=429.1", ReplyFrame("CAL", True, "factor=429.1")),
        ("R,CAL,ERR,no_load", ReplyFrame("CAL", False, "no_load")),
        ("I,fw=1.0.0,rate=10", InfoFrame({"fw": "1.0.0", "rate": "10"})),
    ],
)
def test_gpfw_frames(body: str, frame: object) -> None:
    parser = GpfwParser()
    assert parser.feed(gpfw(body)) == [frame]
    assert parser.counters == FrameCounters(ok=1)


def test_gpfw_accepts_crlf_and_frames_split_across_reads() -> None:
    parser = GpfwParser()
    data = gpfw("W,+1250,S,OK").replace(b"\n", b"\r\n") + gpfw("W,+1251,U,OK")
    frames = [f for byte in data for f in parser.feed(bytes([byte]))]
    assert frames == [WeightFrame(1250, OK, True), WeightFrame(1251, OK, False)]


def test_gpfw_bad_checksum_is_torn_and_junk_is_garbage() -> None:
    parser = GpfwParser()
    assert parser.feed(b"W,+1250,S,OK*02\n") == []
    assert parser.feed(b"hello\n") == []
    assert parser.counters == FrameCounters(torn=1, garbage=1)


def test_gpfw_unknown_type_with_good_checksum_is_unknown() -> None:
    parser = GpfwParser()
    assert parser.feed(gpfw("X,whatever") + gpfw("W,12,S,??")) == []
    assert parser.counters == FrameCounters(unknown=2)


def test_gpfw_recovers_a_frame_glued_to_a_torn_one() -> None:
    parser = GpfwParser()
    assert parser.feed(b"W,+12" + gpfw("W,+1250,S,OK")) == [WeightFrame(1250, OK, True)]
    assert parser.counters == FrameCounters(ok=1, torn=1)


# -- MT-SICS -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "frame"),
    [
        (b"S S     100.00 g", WeightFrame(100, OK, True)),
        (b"S D     129.07 g", WeightFrame(129, OK, False)),
        (b"S S      -0.51 g", WeightFrame(-1, OK, True)),
        (b"S S    12.3456 kg", WeightFrame(12346, OK, True)),
        (b"S D     -1.250 kg", WeightFrame(-1250, OK, False)),
        (b"S +", WeightFrame(None, OL, None)),
        (b"S -", WeightFrame(None, UL, None)),
        (b"S I", ReplyFrame("S", False, "busy")),
        (b"Z A", ReplyFrame("Z", True)),
        (b"Z I", ReplyFrame("Z", False, "busy")),
        (b"Z +", ReplyFrame("Z", False, "upper limit exceeded")),
        (b"Z -", ReplyFrame("Z", False, "lower limit exceeded")),
        (b"T S     100.00 g", ReplyFrame("T", True, "100.00 g")),
        (b"T I", ReplyFrame("T", False, "busy")),
        (b"ES", ReplyFrame("E", False, "ES syntax error")),
        (b"ET", ReplyFrame("E", False, "ET transmission error")),
        (b"EL", ReplyFrame("E", False, "EL logical error")),
    ],
)
def test_mtsics_frames(line: bytes, frame: object) -> None:
    parser = MtSicsParser()
    assert parser.feed(line + b"\r\n") == [frame]
    assert parser.counters == FrameCounters(ok=1)


def test_mtsics_other_units_and_responses_are_unknown() -> None:
    parser = MtSicsParser()
    assert parser.feed(b'S S      1.000 lb\r\nI4 A "B021002593"\r\n') == []
    assert parser.counters == FrameCounters(unknown=2)


def test_mtsics_broken_weight_is_torn() -> None:
    parser = MtSicsParser()
    assert parser.feed(b"S S     10.0.0 g\r\n") == []
    assert parser.counters == FrameCounters(torn=1)


# -- A&D ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "frame"),
    [
        (b"ST,+00123.45  g", WeightFrame(123, OK, True)),
        (b"US,+00123.55  g", WeightFrame(124, OK, False)),
        (b"ST,-00001.50  g", WeightFrame(-2, OK, True)),
        (b"ST,+0012.345 kg", WeightFrame(12345, OK, True)),
        (b"ST,NT,+0012.34kg", WeightFrame(12340, OK, True)),
        (b"US,GS,-0000.75kg", WeightFrame(-750, OK, False)),
        (b"ST,GS,+  12.34kg", WeightFrame(12340, OK, True)),
        (b"OL,+1E19  g", WeightFrame(None, OL, None)),
        (b"OL,-1E19  g", WeightFrame(None, UL, None)),
        (b"OL,GS,+9999999kg", WeightFrame(None, OL, None)),
        (b"ST,TR,+0001.20kg", InfoFrame({"tare_grams": "1200"})),
    ],
)
def test_and_frames(line: bytes, frame: object) -> None:
    parser = AndParser()
    assert parser.feed(line + b"\r\n") == [frame]
    assert parser.counters == FrameCounters(ok=1)


def test_and_counting_mode_and_odd_units_are_unknown() -> None:
    parser = AndParser()
    assert parser.feed(b"QT,+0000123 PC\r\nST,+00001.00 ct\r\n") == []
    assert parser.counters == FrameCounters(unknown=2)


def test_and_cut_frame_is_torn() -> None:
    parser = AndParser()
    assert parser.feed(b"ST,+001\r\n") == []
    assert parser.counters == FrameCounters(torn=1)


# -- CAS ---------------------------------------------------------------------------------


def cas(header: bytes, lamp: int, data: bytes, unit: bytes = b"kg", device: int = 1) -> bytes:
    return header + b"," + bytes([0x30 + device, lamp]) + b"," + data + b" " + unit + b"\r\n"


STABLE_LAMP = 0b1100_0100  # bit7 always 1, bit6 stable, bit2 gross
MOVING_LAMP = 0b1000_0100


@pytest.mark.parametrize(
    ("frame_bytes", "frame"),
    [
        (cas(b"ST,GS", STABLE_LAMP, b"000013.5"), WeightFrame(13500, OK, True)),
        (cas(b"US,GS", MOVING_LAMP, b"0001.250"), WeightFrame(1250, OK, False)),
        (cas(b"ST,NT", STABLE_LAMP, b"-001.250"), WeightFrame(-1250, OK, True)),
        (cas(b"ST,GS", STABLE_LAMP, b"   0.005"), WeightFrame(5, OK, True)),
        (cas(b"ST,GS", STABLE_LAMP, b"  2.0005"), WeightFrame(2001, OK, True)),
        (cas(b"OL,GS", MOVING_LAMP, b"--OL--  "), WeightFrame(None, OL, False)),
        # The lamp byte's stable bit decides, whatever the header says.
        (cas(b"ST,GS", MOVING_LAMP, b"0001.000"), WeightFrame(1000, OK, False)),
    ],
)
def test_cas_frames(frame_bytes: bytes, frame: object) -> None:
    assert len(frame_bytes) == 22
    parser = CasParser()
    assert parser.feed(frame_bytes) == [frame]
    assert parser.counters == FrameCounters(ok=1)


def test_cas_wrong_length_is_torn_and_pound_unit_unknown() -> None:
    parser = CasParser()
    assert (
        parser.feed(b"ST,GS,1\xc4,0013.5 kg\r\n" + cas(b"ST,GS", STABLE_LAMP, b"0001.000", b"lb"))
        == []
    )
    assert parser.counters == FrameCounters(torn=1, unknown=1)


# -- XK3190-A9 ---------------------------------------------------------------------------


def xk(sign: bytes, digits: bytes, places: bytes) -> bytes:
    body = sign + digits + places
    return b"\x02" + body + check_chars(body) + b"\x03"


def test_xk3190_check_characters_match_the_manual_rule() -> None:
    # XOR of "+0012503" = 0x1E -> high nibble '1', low nibble 0xE -> 0x0E + 0x37 = 'E'
    assert check_chars(b"+0012503") == b"1E"
    frame = bytes.fromhex("02 2B 30 30 31 32 35 30 33 31 45 03")
    assert Xk3190Parser().feed(frame) == [WeightFrame(1250, OK, None)]


@pytest.mark.parametrize(
    ("frame_bytes", "unit", "grams"),
    [
        (xk(b"+", b"001250", b"3"), "kg", 1250),
        (xk(b"-", b"000350", b"2"), "kg", -3500),
        (xk(b"+", b"012345", b"0"), "kg", 12_345_000),
        (xk(b"+", b"000125", b"1"), "g", 13),  # 12.5 g rounds away from zero
        (xk(b"-", b"000125", b"1"), "g", -13),
        (xk(b"+", b"123456", b"4"), "kg", 12346),
    ],
)
def test_xk3190_frames(frame_bytes: bytes, unit: str, grams: int) -> None:
    parser = Xk3190Parser(unit)
    assert parser.feed(frame_bytes) == [WeightFrame(grams, OK, None)]
    assert parser.counters == FrameCounters(ok=1)


def test_xk3190_resynchronises_on_stx_after_a_torn_frame() -> None:
    good = xk(b"+", b"001250", b"3")
    parser = Xk3190Parser()
    assert parser.feed(b"junk" + good[:5] + good + good) == [WeightFrame(1250, OK, None)] * 2
    assert parser.counters == FrameCounters(ok=2, torn=1, garbage=1)


def test_xk3190_bad_check_is_torn_and_impossible_fields_unknown() -> None:
    parser = Xk3190Parser()
    bad_check = xk(b"+", b"001250", b"3")[:9] + b"00\x03"
    assert parser.feed(bad_check + xk(b"+", b"00A250", b"3") + xk(b"+", b"001250", b"7")) == []
    assert parser.counters == FrameCounters(torn=1, unknown=2)
