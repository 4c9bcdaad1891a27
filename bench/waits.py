"""Deadlines for everything a benchmark waits on.

A benchmark that waits without one hangs `make bench` instead of failing it
(issue 20: a refused deposit left `bench.kiosk` waiting fourteen minutes for a
screen that never came). Every wait here ends by its deadline with a
`BenchError` that names what it waited for and what it saw instead.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from greenpass.errors import GreenPassError

T = TypeVar("T")


class BenchError(GreenPassError, RuntimeError):
    """A benchmark could not finish; the message says what it waited for and what it saw."""


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    seen: Callable[[], str],
    every_s: float = 0.05,
) -> T:
    """Poll `check` until it returns something other than None; that value.

    `what` is what is awaited ("the kiosk's ready file"); `seen()` describes the
    state instead, for the message when the deadline passes. `check` may raise
    `BenchError` itself to fail early (a process that exited will never be ready).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"no {what} within {timeout_s:g} s; instead: {seen()}")
        time.sleep(every_s)


def stop_process(
    proc: subprocess.Popen[bytes],
    name: str,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout_s: float = 10.0,
) -> int:
    """Send `sig`, wait `timeout_s`, then SIGKILL and wait again; the exit code.

    A child that outlives SIGKILL (stuck in the kernel) is an error, not a wait."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"{name} (pid {proc.pid}) still running {timeout_s:g} s after SIGKILL"
        ) from None


def log_tail(log: Path, lines: int = 15) -> str:
    """The end of a child's log, indented, for an error message: benchmarks keep their
    logs in temporary folders that are gone by the time anyone reads the message."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"    (no log: {exc})"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])
