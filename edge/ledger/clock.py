"""Time as the ledger records it, and entry ids.

A Raspberry Pi has no real-time clock: after a power cut its wall clock may be
wrong until NTP answers. So every entry records the wall clock *and* whether it
was synchronised, plus the boot id and monotonic milliseconds, which are right
even when the wall clock is not. Order is always by `seq`, never by time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
import uuid
from pathlib import Path
from typing import Protocol

_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_TIME_ERROR = 5  # adjtimex(2): clock not synchronised


class Clock(Protocol):
    """What the ledger needs to know about time."""

    boot_id: str

    def wall_ms(self) -> int: ...
    def mono_ms(self) -> int: ...
    def clock_ok(self) -> bool: ...


def _read_boot_id() -> str:
    try:
        return _BOOT_ID_PATH.read_text().strip()
    except OSError:  # not Linux: one id per process is the best we can do
        return str(uuid.uuid4())


class SystemClock:
    """The machine's clocks; `clock_ok` asks the kernel whether NTP has synchronised it."""

    def __init__(self) -> None:
        self.boot_id = _read_boot_id()
        self._adjtimex = None
        # struct timex is ~208 bytes; modes=0 (first field) makes the call read-only.
        self._timex = ctypes.create_string_buffer(512)
        libc_name = ctypes.util.find_library("c")
        if libc_name:
            try:
                self._adjtimex = ctypes.CDLL(libc_name, use_errno=True).adjtimex
            except (OSError, AttributeError):
                self._adjtimex = None

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def mono_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def clock_ok(self) -> bool:
        if self._adjtimex is None:
            return False
        ctypes.memset(self._timex, 0, 8)  # modes = 0 even if the kernel wrote back
        state = self._adjtimex(self._timex)
        return bool(state >= 0 and state != _TIME_ERROR)


class FixedClock:
    """A clock that moves only when told to: for tests, the simulator and replay."""

    def __init__(
        self,
        wall_ms: int = 1_767_225_600_000,
        *,
        ok: bool = True,
        boot_id: str = "00000000-0000-4000-8000-000000000000",
    ) -> None:
        self.boot_id = boot_id
        self._wall = wall_ms
        self._mono = 1_000
        self.ok = ok

    def wall_ms(self) -> int:
        return self._wall

    def mono_ms(self) -> int:
        return self._mono

    def clock_ok(self) -> bool:
        return self.ok

    def advance(self, ms: int) -> None:
        self._wall += ms
        self._mono += ms
