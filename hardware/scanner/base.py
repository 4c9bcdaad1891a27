"""The `Scanner` interface: something that yields decoded QR payloads.

Every driver (camera + decoder, serial / USB-CDC scanner, the simulated ones)
implements `read()`; iteration, `close()` and the context manager come from here.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from hardware.scanner.errors import ScannerClosed

# Here, not in decoders.py, so config and CLI can name decoders without numpy/OpenCV.
DecoderName = Literal["zxing", "pyzbar"]
DECODER_NAMES: tuple[DecoderName, ...] = ("zxing", "pyzbar")


@dataclass(frozen=True, slots=True)
class Scan:
    """One decoded code: its text and when it was read (monotonic milliseconds)."""

    payload: str
    at_mono_ms: int


class Scanner(abc.ABC):
    """Yields `Scan`s. `read()` is the one method a driver must provide."""

    @abc.abstractmethod
    def read(self, timeout: float | None = None) -> Scan | None:
        """Block until the next scan, or return None after `timeout` seconds.

        Raises `ScannerClosed` once the scanner is closed or its source ended.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device. Safe to call twice."""

    def __iter__(self) -> Iterator[Scan]:
        """Scans until the scanner is closed or its source ends."""
        while True:
            try:
                scan = self.read()
            except ScannerClosed:
                return
            if scan is not None:
                yield scan

    def payloads(self) -> Iterator[str]:
        """Only the decoded texts, for callers that do not need the timestamps."""
        for scan in self:
            yield scan.payload

    def __enter__(self) -> Scanner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
