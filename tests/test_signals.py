"""SIGTERM and SIGINT set events without the handler taking a lock (greenpass.signals).

The process below spends nearly all its time holding the lock inside the Event it
waits for, and is sent a burst of SIGTERMs: a handler that called `Event.set()`
there would wait for a lock its own thread holds, and the process would hang (as a
`greenpass central` given two SIGTERMs in a row once did). It must exit at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPIN = """
import signal, sys, threading
from greenpass.signals import stop_on_signals
stop = threading.Event()
stop_on_signals(stop)
print("ready", flush=True)
while not stop.is_set():
    with stop._cond:  # the lock Event.set() takes, held almost all the time
        for _ in range(2000):
            pass
# The rest of the burst may still be arriving: a finalising interpreter restores the
# default action, which would end it by SIGTERM after it stopped cleanly.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
print("stopped", flush=True)
"""


def test_a_burst_of_signals_stops_a_process_that_holds_the_events_lock() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SPIN], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for _ in range(20):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.002)
        assert proc.wait(10) == 0
        assert proc.stdout.read() == "stopped\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
