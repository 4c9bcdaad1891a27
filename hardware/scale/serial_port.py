"""The serial transport the drivers share: open, read with timeouts, reopen when the port returns.

This is the one place that touches pyserial. `serial.SerialException` and
`OSError` are translated here into `ScaleDisconnected` / `PortError`.

When the port vanishes (USB cable out, Pico reset) the link closes its handle
and `try_open` reopens it on a capped, jittered backoff schedule: the next
attempt waits min(backoff_max, backoff_initial * 2**failures) seconds times a
random factor in [0.5, 1]. The port may be a device path (a udev symlink such
as /dev/serial/by-id/..., which survives re-enumeration better than ttyACM0) or
any pyserial URL, notably ``hwgrep://VID:PID`` which finds the board again
under whatever name the kernel gives it this time.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

import serial

from hardware.scale.errors import PortError, ScaleDisconnected
from hardware.serial_errors import PORT_GONE


class SerialLike(Protocol):
    """The part of `serial.Serial` we use; tests of the transport can pass a twin."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


Opener = Callable[[str, int, float], SerialLike]

# How long one blocking read may wait; short, so callers' deadlines stay accurate.
READ_SLICE_S = 0.05


def open_pyserial(url: str, baudrate: int, timeout: float) -> SerialLike:
    port: SerialLike = serial.serial_for_url(
        url, baudrate=baudrate, timeout=timeout, write_timeout=1.0
    )
    return port


class SerialLink:
    """A serial port that survives being unplugged. Not thread-safe: one owner."""

    def __init__(
        self,
        url: str,
        baudrate: int,
        *,
        opener: Opener = open_pyserial,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._opener = opener
        self._clock = clock
        self._rng = rng or random.Random()
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._log = logger or logging.getLogger(__name__)
        self._port: SerialLike | None = None
        self._failures = 0
        self._next_attempt = 0.0  # clock time before which we do not retry

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def seconds_until_retry(self) -> float:
        return max(0.0, self._next_attempt - self._clock())

    def try_open(self) -> bool:
        """Open the port if closed and the backoff allows; return whether it is open."""
        if self._port is not None:
            return True
        if self._clock() < self._next_attempt:
            return False
        try:
            port = self._opener(self.url, self.baudrate, READ_SLICE_S)
        except ValueError as exc:  # pyserial: bad URL scheme or parameter; retrying won't help
            raise PortError(f"cannot use {self.url!r} as a serial port: {exc}") from exc
        except PORT_GONE as exc:
            self._schedule_retry(exc)
            return False
        try:
            # Drop whatever queued while nobody listened: a scale's old weights are stale.
            port.reset_input_buffer()
        except PORT_GONE as exc:  # a port gone since it opened
            with contextlib.suppress(*PORT_GONE):
                port.close()
            self._schedule_retry(exc)
            return False
        if self._failures:
            self._log.info("scale port %s is back", self.url)
        self._port = port
        self._failures = 0
        self._next_attempt = 0.0
        return True

    def read(self, timeout: float) -> bytes:
        """Bytes that arrive within `timeout` (b"" if none). Raises ScaleDisconnected."""
        port = self._require_open()
        deadline = self._clock() + timeout
        while True:
            try:
                data = port.read(max(1, port.in_waiting))
            except OSError as exc:
                raise self._lost(exc) from exc
            if data or self._clock() >= deadline:
                return data

    def write(self, data: bytes) -> None:
        port = self._require_open()
        try:
            port.write(data)
        except OSError as exc:  # includes serial.SerialTimeoutException
            raise self._lost(exc) from exc

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except OSError as exc:  # closing a vanished port can fail; nothing to do
                self._log.debug("closing %s: %s", self.url, exc)

    def _require_open(self) -> SerialLike:
        if self._port is None:
            raise ScaleDisconnected(f"scale port {self.url} is not open")
        return self._port

    def _lost(self, exc: OSError) -> ScaleDisconnected:
        self._log.warning("scale port %s lost: %s", self.url, exc)
        self.close()
        self._next_attempt = 0.0  # try at once: a quick replug, or a transient error
        return ScaleDisconnected(f"scale port {self.url} disconnected ({exc}); will reopen")

    def _schedule_retry(self, exc: Exception) -> None:
        delay = min(self._backoff_max, self._backoff_initial * 2.0**self._failures)
        delay *= self._rng.uniform(0.5, 1.0)
        self._failures = min(self._failures + 1, 30)
        self._next_attempt = self._clock() + delay
        if self._failures == 1:  # log the first failure only, not every retry
            self._log.warning("cannot open scale port %s: %s; retrying", self.url, exc)
