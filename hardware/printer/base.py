"""The `Printer` interface every receipt printer driver implements.

A driver must implement `print_job`, `status` and `close`. A job is the whole
receipt as ESC/POS bytes (`document.render`): the driver only delivers bytes and
reports the printer's state, so the receipt's layout is tested without a printer
and the same bytes go to a real printer and to the simulated one.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class PrinterStatus(enum.Enum):
    OK = "ok"
    PAPER_LOW = "paper_low"  # near the end of the roll: still prints
    PAPER_OUT = "paper_out"
    JAMMED = "jammed"  # cover open, cutter error, or another printer error
    OFFLINE = "offline"  # not reachable (unplugged, off)
    UNKNOWN = "unknown"  # reachable but answers no status query (a write-only device file)

    @property
    def can_print(self) -> bool:
        return self in (PrinterStatus.OK, PrinterStatus.PAPER_LOW, PrinterStatus.UNKNOWN)


class Printer(ABC):
    """A receipt printer. Use as a context manager so the port is always released."""

    kind: str = ""

    @abstractmethod
    def print_job(self, job: bytes) -> None:
        """Print `job` (ESC/POS bytes, ending with its cut). Raises `PaperOut`,
        `PrinterJammed`, `PrinterOffline` or `PrinterTimeout` when it could not be
        printed whole; the next call tries the device afresh."""

    @abstractmethod
    def status(self) -> PrinterStatus:
        """Ask the printer how it is (never raises: an unreachable printer is OFFLINE)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device. Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
