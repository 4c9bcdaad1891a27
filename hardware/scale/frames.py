"""What parsers produce, and the shared machinery of the line-based parsers.

Every parser is incremental: `feed(bytes) -> list[Frame]`, keeping any partial
frame for the next call. Parsers never raise: anything unusable is counted as
torn, garbage or unknown (see `FrameCounters`) and skipped.

Line parsers resynchronise inside a bad line: if the whole line fails, each
later position where a frame header could start is tried, so a frame that
follows junk or a torn frame on the same line is still recovered (a cable
glitch often eats the line end between two frames).
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from hardware.scale.base import FrameCounters, ScaleStatus


@dataclass(frozen=True)
class WeightFrame:
    """A weight report. `grams` is None unless `status` is OK."""

    grams: int | None
    status: ScaleStatus
    stable_flag: bool | None


@dataclass(frozen=True)
class ReplyFrame:
    """The scale's answer to a command: `command` is the protocol's name for it."""

    command: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class InfoFrame:
    """Key/value facts about the device (firmware version, tare value...)."""

    fields: Mapping[str, str]


Frame = WeightFrame | ReplyFrame | InfoFrame


class Verdict(enum.Enum):
    """Why a candidate frame was skipped."""

    TORN = "torn"
    GARBAGE = "garbage"
    UNKNOWN = "unknown"


class Parser(Protocol):
    def feed(self, data: bytes) -> list[Frame]: ...

    @property
    def counters(self) -> FrameCounters: ...


class Tally:
    """Mutable counters behind a parser's `counters` snapshot."""

    def __init__(self) -> None:
        self.ok = 0
        self.torn = 0
        self.garbage = 0
        self.unknown = 0

    def count(self, verdict: Verdict) -> None:
        if verdict is Verdict.TORN:
            self.torn += 1
        elif verdict is Verdict.GARBAGE:
            self.garbage += 1
        else:
            self.unknown += 1

    def snapshot(self) -> FrameCounters:
        return FrameCounters(self.ok, self.torn, self.garbage, self.unknown)


class LineParser(ABC):
    """Base for protocols whose frames end in LF (CR LF accepted).

    Subclasses give `HEADER`, a regex matching where a frame may start, and
    `parse_line`, which judges one line without its terminator.
    """

    HEADER: re.Pattern[bytes]
    # Longer than any valid line of our protocols; a run without LF longer than
    # this is junk, and only its tail is kept (it may hold the start of a frame).
    MAX_LINE = 96

    def __init__(self) -> None:
        self._buf = bytearray()
        self._tally = Tally()
        self._overflowing = False

    @property
    def counters(self) -> FrameCounters:
        return self._tally.snapshot()

    @abstractmethod
    def parse_line(self, line: bytes) -> Frame | Verdict:
        """Judge one complete line (no CR/LF). Must not raise."""

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        self._buf += data
        while (end := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            self._overflowing = False
            self._take_line(line.rstrip(b"\r"), out)
        if len(self._buf) > self.MAX_LINE:
            if not self._overflowing:  # count one runaway as one piece of garbage
                self._tally.count(Verdict.GARBAGE)
                self._overflowing = True
            del self._buf[: len(self._buf) - self.MAX_LINE]
        return out

    def _take_line(self, line: bytes, out: list[Frame]) -> None:
        if not line.strip():
            return  # blank lines are padding some indicators send; not an error
        verdict = self.parse_line(line)
        if not isinstance(verdict, Verdict):
            self._tally.ok += 1
            out.append(verdict)
            return
        # Every position, not finditer: a header-like tail of the junk ("E" before
        # "S S ...") must not hide the header of the frame that follows it.
        for start in range(1, len(line)):
            if not self.HEADER.match(line, start):
                continue
            frame = self.parse_line(line[start:])
            if not isinstance(frame, Verdict):
                prefix = line[:start]
                self._tally.count(Verdict.TORN if self.HEADER.match(prefix) else Verdict.GARBAGE)
                self._tally.ok += 1
                out.append(frame)
                return
        self._tally.count(verdict)


def ascii_text(line: bytes) -> str | None:
    """The line as text if it is printable ASCII, else None (it is then garbage or torn)."""
    if all(0x20 <= b < 0x7F for b in line):
        return line.decode("ascii")
    return None
