"""Waiting for a process to open a simulated serial port.

pyserial flushes a port's input when it opens it, so a test that types into a
simulated scanner before the program under test has opened the port loses what it
typed. Sleeping a fixed time is not enough on a loaded machine; this watches the
process's open files instead (Linux /proc)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


def opened(pid: int | str, port: str | os.PathLike[str]) -> int:
    """How many of process `pid`'s file descriptors are open on `port`'s device."""
    tty = os.path.realpath(port)
    found = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                found += os.path.realpath(f"/proc/{pid}/fd/{fd}") == tty
    return found


def wait_opened(
    pid: int | str, port: str | os.PathLike[str], *, at_least: int = 1, timeout_s: float = 60
) -> None:
    """Return once `pid` holds `port` open `at_least` times, and pyserial has had time
    to flush it; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while opened(pid, port) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not open {Path(port)} in {timeout_s} s")
        time.sleep(0.02)
    time.sleep(0.3)  # pyserial flushes right after it opens
