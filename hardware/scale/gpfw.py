"""Green Passbook firmware protocol ("gpfw"): our Pico + HX711 board, 115200 8N1.

The firmware under `hardware/firmware/` implements exactly this; change both or neither.

Device -> host, one ASCII line each, terminated by LF (CR LF accepted):

    W,<grams>,<S|U>,<ST>*<CK>            weight, about 10 per second
    R,<CMD>,OK[,<detail>]*<CK>           a command succeeded
    R,<CMD>,ERR,<reason>*<CK>            a command was refused, e.g. R,CAL,ERR,no_load
    I,<key>=<value>[,<key>=<value>...]*<CK>   answer to INFO

    grams  signed decimal integer grams: +1250, -3 (sign optional on input)
    S / U  stable / unstable by the firmware's own filter
    ST     OK | OL | UL | ER  (ok / overload / underload / error)
    CK     two uppercase hex digits: XOR of every byte from the start of the
           line up to, not including, '*' (NMEA style, without NMEA's '$')

    example: W,+1250,S,OK*01

Host -> device, ASCII lines ending in LF:

    TARE            take the current load as tare     -> R,TARE,OK
    ZERO            set the current load as zero      -> R,ZERO,OK
    CAL <grams>     calibrate with this known mass    -> R,CAL,OK | R,CAL,ERR,<reason>
    INFO            report facts                      -> I,fw=...,...

Frame judgement: bad checksum, or a line starting W,/R,/I, that does not end
in *CK -> torn; a line that does not start like a frame -> garbage; a line with
a good checksum but an unknown type or malformed fields -> unknown (a firmware
newer than this driver).
"""

from __future__ import annotations

import re

from hardware.scale.base import ScaleStatus
from hardware.scale.driver import SerialScale
from hardware.scale.errors import CommandFailed
from hardware.scale.frames import (
    Frame,
    InfoFrame,
    LineParser,
    ReplyFrame,
    Verdict,
    WeightFrame,
    ascii_text,
)

BAUDRATE = 115200
COMMAND_TIMEOUT_S = 3.0  # CAL averages samples on the Pico; give it time

_STATUS = {
    "OK": ScaleStatus.OK,
    "OL": ScaleStatus.OVERLOAD,
    "UL": ScaleStatus.UNDERLOAD,
    "ER": ScaleStatus.ERROR,
}
_FRAME = re.compile(r"(.*)\*([0-9A-F]{2})")
_WEIGHT = re.compile(r"W,([+-]?[0-9]{1,9}),([SU]),(OK|OL|UL|ER)")
_REPLY = re.compile(r"R,([A-Z]+),(OK|ERR)(?:,(.*))?")
_INFO_PAIR = re.compile(r"([A-Za-z0-9_.-]+)=([^,*]*)")


def checksum(body: bytes) -> int:
    """XOR of `body`'s bytes: the CK of a gpfw line whose text before '*' is `body`."""
    ck = 0
    for byte in body:
        ck ^= byte
    return ck


class GpfwParser(LineParser):
    HEADER = re.compile(rb"[WRI],")

    def parse_line(self, line: bytes) -> Frame | Verdict:
        text = ascii_text(line)
        starts_like_frame = self.HEADER.match(line) is not None
        framed = _FRAME.fullmatch(text) if text is not None else None
        if framed is None:
            return Verdict.TORN if starts_like_frame else Verdict.GARBAGE
        body = framed.group(1)
        if checksum(body.encode("ascii")) != int(framed.group(2), 16):
            return Verdict.TORN if starts_like_frame else Verdict.GARBAGE
        return _decode(body)


def _decode(body: str) -> Frame | Verdict:
    if weight := _WEIGHT.fullmatch(body):
        status = _STATUS[weight.group(3)]
        grams = int(weight.group(1)) if status is ScaleStatus.OK else None
        return WeightFrame(grams, status, weight.group(2) == "S")
    if reply := _REPLY.fullmatch(body):
        return ReplyFrame(reply.group(1), reply.group(2) == "OK", reply.group(3) or "")
    if body.startswith("I,"):
        pairs = body[2:].split(",")
        fields: dict[str, str] = {}
        for pair in pairs:
            if (kv := _INFO_PAIR.fullmatch(pair)) is None:
                return Verdict.UNKNOWN
            fields[kv.group(1)] = kv.group(2)
        return InfoFrame(fields)
    return Verdict.UNKNOWN


class GpfwScale(SerialScale):
    """Our firmware: continuous weights, and TARE / ZERO / CAL / INFO commands."""

    protocol = "gpfw"

    def make_parser(self) -> GpfwParser:
        return GpfwParser()

    def tare(self) -> None:
        self._command("TARE")

    def zero(self) -> None:
        self._command("ZERO")

    def calibrate(self, known_grams: int) -> None:
        if known_grams <= 0:
            raise CommandFailed("CAL", f"reference mass must be positive, got {known_grams} g")
        self._command("CAL", f"CAL {int(known_grams)}")

    def info(self) -> dict[str, str]:
        """The firmware's INFO facts (version, rate, calibration...)."""
        self.discard_replies()
        self.send(b"INFO\n")
        reply = self.await_reply(lambda r: isinstance(r, InfoFrame), COMMAND_TIMEOUT_S, "INFO")
        assert isinstance(reply, InfoFrame)
        return dict(reply.fields)

    def _command(self, name: str, line: str | None = None) -> None:
        self.discard_replies()  # a late reply to an earlier command must not answer this one
        self.send((line or name).encode("ascii") + b"\n")
        reply = self.await_reply(
            lambda r: isinstance(r, ReplyFrame) and r.command == name, COMMAND_TIMEOUT_S, name
        )
        assert isinstance(reply, ReplyFrame)
        if not reply.ok:
            raise CommandFailed(name, reply.detail or "no reason given")
