"""Serial / USB-CDC QR scanners: one payload per line.

Handheld and fixed-mount scanners in "USB COM port" (CDC-ACM) or RS-232 mode
send each code as text followed by CR, LF or CR LF. `LineFramer` turns the byte
stream into payloads: lines longer than `max_line` bytes are dropped whole (a
scanner in the wrong mode, or line noise, must not grow memory), lines that are
not UTF-8 or carry control characters are counted as garbage and skipped.
`SerialScanner` reads the port with pyserial and reopens it when the cable is
pulled (the OS then removes the device; reads fail until it is back).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import serial

from hardware.scanner.base import Scan, Scanner
from hardware.scanner.errors import ScannerClosed, ScannerUnavailable
from hardware.serial_errors import PORT_GONE

# A port not there, gone as it opened, or named wrongly: the scanner is tried again.
_CANNOT_OPEN: tuple[type[Exception], ...] = (*PORT_GONE, ValueError)

_log = logging.getLogger(__name__)
_TERMINATORS = b"\r\n"


@dataclass
class FramerStats:
    lines: int = 0
    garbage: int = 0
    overlong: int = 0


class LineFramer:
    """Bytes in, validated payload lines out. Never raises on any input."""

    def __init__(self, *, max_line: int = 1024) -> None:
        self.max_line = max_line
        self.stats = FramerStats()
        self._buf = bytearray()
        self._discarding = False  # inside an overlong line: drop until its end

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        for byte in data:
            if byte in _TERMINATORS:
                if self._discarding:
                    self._discarding = False
                elif self._buf:
                    line = self._validate(bytes(self._buf))
                    if line is not None:
                        out.append(line)
                self._buf.clear()
            elif self._discarding:
                continue
            elif len(self._buf) >= self.max_line:
                self.stats.overlong += 1
                self._buf.clear()
                self._discarding = True
            else:
                self._buf.append(byte)
        return out

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished line; never more than `max_line`."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget a half-received line (the cable was pulled mid-line)."""
        self._buf.clear()
        self._discarding = False

    def _validate(self, raw: bytes) -> str | None:
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            self.stats.garbage += 1
            return None
        if not text:
            return None
        if not text.isprintable():  # NUL, ESC, bell...: noise or a scanner in a wrong mode
            self.stats.garbage += 1
            return None
        self.stats.lines += 1
        return text


class SerialPort(Protocol):
    """The slice of `serial.Serial` we use; tests may pass their own."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def close(self) -> None: ...


def _open_pyserial(port: str, baud: int, timeout: float) -> SerialPort:
    # serial_for_url also takes "hwgrep://VID:PID", which finds a board again
    # after it re-enumerates under another /dev/ttyACM name.
    opened: Any = serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    result: SerialPort = opened
    return result


class SerialScanner(Scanner):
    """A `Scanner` over a serial port; reconnects by itself after an unplug."""

    def __init__(
        self,
        port: str,
        *,
        baud: int = 9600,
        max_line: int = 1024,
        poll_s: float = 0.1,
        reopen_s: float = 0.5,
        opener: Callable[[str, int, float], SerialPort] = _open_pyserial,
        clock_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.port_name = port
        self.baud = baud
        self.poll_s = poll_s
        self.reopen_s = reopen_s
        self.framer = LineFramer(max_line=max_line)
        self.reconnects = 0
        self._opener = opener
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._pending: deque[Scan] = deque()
        self._closed = False
        self._port: SerialPort | None = self._open()
        if self._port is None:
            raise ScannerUnavailable(
                f"serial scanner port {port} could not be opened: is the scanner plugged in "
                "and in USB-COM (CDC) mode, and is the user in group 'dialout'?"
            )

    @property
    def connected(self) -> bool:
        return self._port is not None

    def _open(self) -> SerialPort | None:
        try:
            return self._opener(self.port_name, self.baud, self.poll_s)
        except _CANNOT_OPEN as exc:
            _log.debug("cannot open %s: %s", self.port_name, exc)
            return None

    def _drop_port(self, exc: Exception) -> None:
        _log.warning("serial scanner %s lost: %s; reopening", self.port_name, exc)
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
        self._port = None
        # A half-received line from before the unplug must not glue onto the next one.
        self.framer.reset()

    def _poll_once(self) -> None:
        if self._port is None:
            self._sleep(self.reopen_s)
            self._port = self._open()
            if self._port is not None:
                self.reconnects += 1
                _log.info("serial scanner %s is back", self.port_name)
            return
        try:
            data = self._port.read(max(1, self._port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            self._drop_port(exc)
            return
        now = self._clock_ms()
        self._pending.extend(Scan(line, now) for line in self.framer.feed(data))

    def read(self, timeout: float | None = None) -> Scan | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if self._closed:
                raise ScannerClosed(f"serial scanner {self.port_name} is closed")
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._poll_once()
        return self._pending.popleft()

    def close(self) -> None:
        self._closed = True
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None
