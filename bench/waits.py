"""Deadlines for everything a benchmark waits on.

A benchmark that waits without one hangs `make bench` instead of failing it
(issue 20: a refused deposit left `bench.kiosk` waiting fourteen minutes for a
screen that never came). Every wait here ends by its deadline with a
`BenchError` that names what it waited for and what it saw instead.
"""

from __future__ import annotations

import dataclasses
import queue
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from greenpass.errors import GreenPassError
from sync import protocol
from sync.transport import BrokerConfig, Transport

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


class StatesSeen:
    """How many states one kiosk has been sent, from its own subscription. Each central
    worker pushes every state once it has subscribed to the batches
    (`CentralService.all_states`), so n states seen say n workers take batches. A batch
    sent before any worker subscribed reaches no one (a fresh broker queues nothing for
    a subscription not yet made) and its kiosk resends it only after its 20 s ack
    timeout: a fixed sleep that a slow start outlasted measured that timeout instead.
    Subscribed before the workers start, it sees each one's push; after, at least the
    last (retained).

    It borrows the kiosk's login and client id, so its session must end with it: a
    session left behind (the kiosk's default is a week) would hand the kiosk this
    subscription when it connects next, and states where it waits for acks."""

    def __init__(self, kiosk: BrokerConfig) -> None:
        cfg = dataclasses.replace(kiosk, clean_start=True, session_expiry_s=0)
        self._t: Transport | None = Transport(cfg)
        self._t.connect()
        self._t.subscribe(protocol.topic(kiosk.username, protocol.STATE))
        self._seen = 0

    @property
    def count(self) -> int:
        while self._t is not None:
            try:
                self._t.inbox.get_nowait()
            except queue.Empty:
                break
            self._seen += 1
        return self._seen

    def close(self) -> None:
        """Closes the subscription (its client id is the kiosk's: free it for the kiosk)."""
        if self._t is not None:
            self._t.close()
            self._t = None

    def __enter__(self) -> StatesSeen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
