"""SIGTERM and SIGINT turned into `threading.Event`s, safely.

A Python signal handler runs in the main thread between two bytecodes, possibly
while that thread holds the very lock `Event.set()` takes (every Event has one),
for instance while it is itself setting that Event during shutdown. The handler
then waits for a lock its own thread holds, and the process hangs for good: a
`greenpass central` given two SIGTERMs in a row sat in a futex wait with one
thread left. So the handler here only writes a byte to a pipe, which takes no
lock, and a thread of its own sets the events.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType

__all__ = ["stop_on_signals"]


def stop_on_signals(*events: threading.Event) -> None:
    """From now on SIGTERM and SIGINT set `events` (call from the main thread)."""
    r, w = os.pipe()
    os.set_blocking(w, False)

    def handler(_sig: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe holds wake-ups enough
            os.write(w, b"\0")

    def watch() -> None:
        os.read(r, 1)
        for event in events:
            event.set()

    threading.Thread(target=watch, name="signals", daemon=True).start()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
