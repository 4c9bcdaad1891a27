"""Frame encoders for the simulated scale, written from the manuals independently of
`hardware.scale`'s parsers, so a misreading of a manual shows up as a test failure
rather than being shared by both sides.

Each encoder takes the display state (integer grams, the device's own stable
flag, and whether it is overloaded) and returns the bytes the device would send.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Display:
    grams: int
    stable: bool
    overload: bool = False


def _xor(data: bytes) -> int:
    result = 0
    for byte in data:
        result ^= byte
    return result


def gpfw_line(body: str) -> bytes:
    """A firmware line: body, '*', XOR checksum as two upper-case hex digits, LF."""
    raw = body.encode("ascii")
    return raw + b"*" + f"{_xor(raw):02X}".encode("ascii") + b"\n"


def gpfw_weight(d: Display) -> bytes:
    status = "OL" if d.overload else "OK"
    return gpfw_line(f"W,{d.grams:+d},{'S' if d.stable else 'U'},{status}")


def mtsics_weight(d: Display, command: str = "SI") -> bytes:
    """The reply to SI (or S). Weight right-aligned in 10 characters, unit g."""
    if d.overload:
        return b"S +\r\n"
    if command == "S" and not d.stable:
        return b"S I\r\n"
    kind = "S" if d.stable else "D"
    return f"S {kind} {d.grams:>7d}.00 g\r\n".encode("ascii")


def and_weight(d: Display, indicator: bool = False) -> bytes:
    """Balance form `ST,+00123.45  g`, or indicator form `ST,NT,+0001.250kg`."""
    header = "OL" if d.overload else ("ST" if d.stable else "US")
    if d.overload:
        return b"OL,+1E19  g\r\n" if not indicator else b"OL,GS,+9999999kg\r\n"
    if indicator:
        sign = "-" if d.grams < 0 else "+"
        kg = abs(d.grams) / 1000
        return f"{header},GS,{sign}{kg:07.3f}kg\r\n".encode("ascii")
    sign = "-" if d.grams < 0 else "+"
    return f"{header},{sign}{abs(d.grams):05d}.00  g\r\n".encode("ascii")


def cas_weight(d: Display, device_id: int = 1) -> bytes:
    """22 bytes: ST,GS, id lamp , data(8) ' kg' CR LF; lamp bit 6 = stable."""
    header = b"OL" if d.overload else (b"ST" if d.stable else b"US")
    lamp = 0x80 | (0x40 if d.stable else 0) | 0x04 | (0x01 if d.grams == 0 else 0)
    data = f"{d.grams / 1000:08.3f}".encode("ascii")[:8]
    frame = header + b",GS," + bytes([0x30 + device_id, lamp]) + b"," + data + b" kg\r\n"
    assert len(frame) == 22
    return frame


def xk3190_weight(d: Display, places: int = 3) -> bytes:
    """STX, sign, 6 digits, decimal places, XOR high/low nibbles as ASCII, ETX.

    The indicator is set to kg with `places` decimals; with 3 a digit is a gram.
    Overload is not signalled by the frame: the weight is simply sent.
    """
    units = abs(d.grams) * 10**places // 1000
    body = (("-" if d.grams < 0 else "+") + f"{min(units, 999_999):06d}" + str(places)).encode()
    check = _xor(body)
    nibbles = bytes(n + 0x30 if n < 10 else n - 10 + ord("A") for n in (check >> 4, check & 15))
    return b"\x02" + body + nibbles + b"\x03"
