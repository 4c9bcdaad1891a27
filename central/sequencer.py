"""The transparency log's sequencer in a process of its own (`greenpass central`).

Appending to the log is CPU work — two SHA-256 per entry and a few rows — that in
central's own process took Python's interpreter lock from ingest: on a two-core
machine ingest drained about 11 % slower with the log (`python -m bench.sync_drain`).
In a child process it runs on the other core, while ingest keeps the interpreter to
itself. It is safe beside any other worker's sequencer: each append takes the log's
lock (`central.tlog.append_pending`), and on PostgreSQL only one of them plans an
append at a time (the others skip their turn rather than hash the same entries).

The child opens the database by the URL central was given, takes the signing key as
raw bytes, and ends on SIGTERM (how central stops it) or Ctrl-C, or when central's
process is gone (it checks its parent every second, so a SIGKILLed central leaves no
sequencer behind). No lock is shared with it: it was told to stop through a
`multiprocessing.Event`, whose lock a child killed at the wrong moment (the OOM
killer, a `kill -9`) held for ever, and central then hung in `stop` on a futex.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import tlog
from central.store import CentralStore
from greenpass.errors import GreenPassError
from greenpass.signals import stop_on_signals

log = logging.getLogger(__name__)

LOG_EVERY_S = 1.0  # how often the sequencer looks for new entries


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


class Stop(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


def loop(
    store: CentralStore,
    key: Ed25519PrivateKey,
    settings: tlog.LogSettings,
    now_ms: Callable[[], int],
    stop: Stop,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Append what ingest stored, about once a second, until `stop` is set or `alive`
    says the process it serves is gone: the child's loop and the in-process thread's."""
    while not stop.is_set() and alive():
        try:
            # Not waiting: another worker's sequencer appending now does it for all.
            appended = tlog.append_pending(store, key, settings, now_ms(), wait=False)
        except GreenPassError as exc:  # the database is away: ingest says so too
            log.warning("transparency log not appended: %s", exc)
            appended = 0
        if appended < tlog.MAX_APPEND:
            stop.wait(LOG_EVERY_S)


def _run(url: str, raw_key: bytes, settings: tlog.LogSettings, parent: int) -> None:
    stop = threading.Event()
    stop_on_signals(stop)  # SIGTERM from `Sequencer.stop`, or Ctrl-C in a terminal
    key = Ed25519PrivateKey.from_private_bytes(raw_key)
    with CentralStore.open(url) as store:
        loop(store, key, settings, lambda: time.time_ns() // 10**6, stop,
             alive=lambda: os.getppid() == parent)  # fmt: skip


class Sequencer:
    """Start and stop the child; `start` returns at once."""

    def __init__(self, url: str, key: Ed25519PrivateKey, settings: tlog.LogSettings) -> None:
        self._ctx = multiprocessing.get_context("spawn")  # no forked threads or sockets
        self._args = (url, _raw(key), settings, os.getpid())
        self._proc: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        if self._proc is None:
            self._proc = self._ctx.Process(
                target=_run, args=self._args, name="central-log", daemon=True
            )
            self._proc.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._proc is not None:
            self._proc.terminate()  # SIGTERM: the child finishes its append and ends
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
            self._proc = None
