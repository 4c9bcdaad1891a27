"""The `Scale` interface every driver implements, and what it yields.

A driver must implement `read`, `close` and `counters`; it may override
`tare`, `zero` and `calibrate`, which raise `Unsupported` by default because
most continuous-output indicators take no commands over the wire.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from hardware.scale.errors import Unsupported


class ScaleStatus(enum.Enum):
    OK = "ok"
    OVERLOAD = "overload"
    UNDERLOAD = "underload"
    ERROR = "error"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class Reading:
    """One weight report.

    `grams` is None unless `status` is OK. `stable` is the kiosk's own decision
    (see `stability.py`); `raw_stable_flag` is what the scale itself said, or
    None when its protocol has no such flag. `at_mono_ms` is a monotonic clock
    in milliseconds, for ordering and ages, never for wall time.
    """

    grams: int | None
    stable: bool
    status: ScaleStatus
    raw_stable_flag: bool | None
    at_mono_ms: int


@dataclass(frozen=True)
class FrameCounters:
    """How many frames a parser accepted or skipped, and why it skipped them.

    torn: a frame that began correctly but was cut or corrupted (bad checksum);
    garbage: bytes that do not look like this protocol at all;
    unknown: well-formed frames of this protocol that we do not use.
    """

    ok: int = 0
    torn: int = 0
    garbage: int = 0
    unknown: int = 0


class Scale(ABC):
    """A weighing device. Use as a context manager so the port is always closed."""

    protocol: str = ""

    @abstractmethod
    def read(self, timeout: float = 1.0) -> Reading:
        """Return the next reading.

        While the port is gone this returns `disconnected` readings (and keeps
        trying to reopen it); raises `ScaleTimeout` if the port is open but
        nothing usable arrives within `timeout` seconds.
        """

    @property
    @abstractmethod
    def counters(self) -> FrameCounters:
        """A snapshot of the frame counters since the scale was opened."""

    @abstractmethod
    def close(self) -> None:
        """Release the port. Safe to call twice."""

    def tare(self) -> None:
        """Take the current load as tare, so the scale reads net weight."""
        raise Unsupported(f"{self.protocol or type(self).__name__} cannot tare over the wire")

    def zero(self) -> None:
        """Set the current (empty) load as zero."""
        raise Unsupported(f"{self.protocol or type(self).__name__} cannot zero over the wire")

    def calibrate(self, known_grams: int) -> None:
        """Calibrate the span with `known_grams` of reference mass on the platform."""
        raise Unsupported(f"{self.protocol or type(self).__name__} cannot calibrate over the wire")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
