"""Mettler Toledo MT-SICS level 0 (plus T from level 1): request/response, 9600 8N1, CR LF.

Frames, per the MT-SICS reference manual (host sends a command; every
response line ends in CR LF; weight fields are right-aligned, so the number
of blanks varies and we split on blanks):

    host   SI      weight now, stable or not (what the driver polls with)
    scale  S S     100.00 g       stable weight
           S D     129.07 g       dynamic (not stable) weight
           S I                    command not executable now (busy, e.g. taring)
           S +  /  S -            overload / underload
    host   S       next stable weight (same replies; we do not use it)
    host   Z       zero
    scale  Z A                    zero set
           Z I / Z + / Z -        busy / upper / lower limit of the zero range exceeded
    host   T       tare (MT-SICS level 1; level 0 balances answer ES)
    scale  T S     100.00 g       tare taken; the value is the tare weight
           T I / T + / T -        busy / upper / lower limit exceeded
    scale  ES  ET  EL             syntax error / transmission error / logical error

Units we convert: mg, g, kg, t; frames in others (ct, lb, oz...) are counted
as unknown. Other well-formed replies (I4 A "...", @) are unknown too.
Calibration (C, C1...) is not in level 0, so `calibrate` raises `Unsupported`.
An E* reply while a command waits is taken as that command's failure, since
MT-SICS answers strictly in order.
"""

from __future__ import annotations

import re

from hardware.scale.base import ScaleStatus
from hardware.scale.driver import ScaleOptions, SerialScale
from hardware.scale.errors import CommandFailed
from hardware.scale.frames import Frame, LineParser, ReplyFrame, Verdict, WeightFrame, ascii_text
from hardware.scale.serial_port import SerialLink
from hardware.scale.units import to_grams

BAUDRATE = 9600
REPLY_TIMEOUT_S = 0.5  # a reply lost to a glitch is asked for again after this
COMMAND_TIMEOUT_S = 5.0  # zero/tare wait for the balance to settle first

_WEIGHT = re.compile(r"S ([SD]) +(-?[0-9.]+) +(\S+)")
_TARE = re.compile(r"T S +(-?[0-9.]+) +(\S+)")
_LIMITS = {"I": "busy", "+": "upper limit exceeded", "-": "lower limit exceeded"}
_ERRORS = {"ES": "syntax error", "ET": "transmission error", "EL": "logical error"}
# Any MT-SICS response: an upper-case command name, then a blank and the rest.
_ANY_RESPONSE = re.compile(r"[A-Z][A-Z0-9]*( .*)?")


class MtSicsParser(LineParser):
    HEADER = re.compile(rb"[SZT] [SDIA+-]|E[STL]")

    def parse_line(self, line: bytes) -> Frame | Verdict:
        text = ascii_text(line)
        if text is None:
            return Verdict.TORN if self.HEADER.match(line) else Verdict.GARBAGE
        text = text.strip()
        if weight := _WEIGHT.fullmatch(text):
            grams = to_grams(weight.group(2), weight.group(3))
            if grams is None:
                return Verdict.UNKNOWN if _plain_number(weight.group(2)) else Verdict.TORN
            return WeightFrame(grams, ScaleStatus.OK, weight.group(1) == "S")
        if text in ("S +", "S -"):
            status = ScaleStatus.OVERLOAD if text == "S +" else ScaleStatus.UNDERLOAD
            return WeightFrame(None, status, None)
        if text == "S I":
            return ReplyFrame("S", False, "busy")
        if text == "Z A":
            return ReplyFrame("Z", True)
        if tare := _TARE.fullmatch(text):
            if to_grams(tare.group(1), tare.group(2)) is None:
                return Verdict.UNKNOWN
            return ReplyFrame("T", True, f"{tare.group(1)} {tare.group(2)}")
        if len(text) == 3 and text[0] in "ZT" and text[1] == " " and text[2] in _LIMITS:
            return ReplyFrame(text[0], False, _LIMITS[text[2]])
        if text in _ERRORS:
            return ReplyFrame("E", False, f"{text} {_ERRORS[text]}")
        if self.HEADER.match(line):
            return Verdict.TORN  # began like a response we know, then went wrong
        return Verdict.UNKNOWN if _ANY_RESPONSE.fullmatch(text) else Verdict.GARBAGE


def _plain_number(text: str) -> bool:
    return re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text) is not None


class MtSicsScale(SerialScale):
    """An MT-SICS balance, polled with SI every `poll_interval` seconds."""

    protocol = "mtsics"

    def __init__(
        self,
        link: SerialLink,
        options: ScaleOptions | None = None,
        *,
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__(link, options)
        self._poll_interval_ms = int(poll_interval * 1000)
        self._asked_at: int | None = None  # when the outstanding SI was sent
        self._last_poll = -(10**12)

    def make_parser(self) -> MtSicsParser:
        return MtSicsParser()

    def poll(self) -> None:
        now = self._clock_ms()
        if self._asked_at is not None and now - self._asked_at < REPLY_TIMEOUT_S * 1000:
            return  # an answer is still due
        if now - self._last_poll < self._poll_interval_ms:
            return
        self.send(b"SI\r\n")
        self._asked_at = self._last_poll = now

    def on_disconnect(self) -> None:
        self._asked_at = None  # that SI died with the port; ask afresh once it is back

    def handle_frame(self, frame: Frame) -> None:
        if isinstance(frame, WeightFrame) or (
            isinstance(frame, ReplyFrame) and frame.command == "S"
        ):
            self._asked_at = None  # SI answered (S I = busy: ask again next interval)
        if isinstance(frame, ReplyFrame) and frame.command == "S":
            return
        super().handle_frame(frame)

    def zero(self) -> None:
        self._command(b"Z\r\n", "Z")

    def tare(self) -> None:
        self._command(b"T\r\n", "T")

    def _command(self, request: bytes, name: str) -> None:
        self.discard_replies()
        self.send(request)
        reply = self.await_reply(
            lambda r: isinstance(r, ReplyFrame) and r.command in (name, "E"),
            COMMAND_TIMEOUT_S,
            name,
        )
        assert isinstance(reply, ReplyFrame)
        if not reply.ok:
            raise CommandFailed(name, reply.detail)
