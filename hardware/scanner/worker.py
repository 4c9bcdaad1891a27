"""Run a decoder in a worker process, so a crash in its C library cannot kill the kiosk.

libzbar (behind pyzbar) has open double-free / segfault bugs. A segfault in the
kiosk process would end the session and the UI; in a worker it only loses one
frame: the parent notices the dead pipe, counts the crash, and starts a fresh
worker for the next frame. A worker that hangs is killed after `timeout_s`.

The worker is started with the ``spawn`` method: forking a kiosk that runs
threads (UI server, sync) can copy a held lock into the child and deadlock it.
The decoder is built in the child by `factory`, a picklable callable (a module
level function or a `functools.partial` of one).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import numpy as np

from hardware.scanner.decoders import Decoder, GreyImage
from hardware.scanner.errors import DecoderError

DecoderFactory = Callable[[], Decoder]

_log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """What went wrong in the worker so far; `doctor` and the status page show these."""

    starts: int = 0
    crashes: int = 0
    timeouts: int = 0


def _serve(conn: Connection, factory: DecoderFactory) -> None:
    """The worker's loop: (height, width, bytes) in, list of texts out; None ends it."""
    decoder = factory()
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            break
        height, width, data = msg
        grey = np.frombuffer(data, dtype=np.uint8).reshape(height, width)
        conn.send(decoder.decode(grey))
    decoder.close()


class IsolatedDecoder:
    """A `Decoder` whose work happens in a restartable child process."""

    def __init__(
        self,
        factory: DecoderFactory,
        *,
        name: str = "isolated",
        timeout_s: float = 5.0,
        start_timeout_s: float = 30.0,
        start_method: str = "spawn",
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.stats = WorkerStats()
        self._factory = factory
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._ctx = mp.get_context(start_method)
        self._log = logger or _log
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(  # type: ignore[attr-defined]  # typeshed: BaseContext
            target=_serve, args=(child, self._factory), name=f"decoder-{self.name}", daemon=True
        )
        proc.start()
        child.close()
        self.stats.starts += 1
        # Wait for "ready" so a factory that cannot load (no libzbar) fails loudly here,
        # not as an endless series of "crashes".
        try:
            ready = parent.poll(self._start_timeout_s) and parent.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._kill(proc, parent)
            raise DecoderError(f"the {self.name} decoder worker did not start")
        self._proc, self._conn = proc, parent
        return parent

    def decode(self, grey: GreyImage) -> list[str]:
        conn = self._conn or self._start()
        height, width = grey.shape
        try:
            conn.send((height, width, np.ascontiguousarray(grey).tobytes()))
            if conn.poll(self._timeout_s):
                result: list[str] = conn.recv()
                return result
            self.stats.timeouts += 1
            self._log.warning("%s decoder worker hung; restarting it", self.name)
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self.stats.crashes += 1
            code = self._proc.exitcode if self._proc is not None else None
            self._log.warning("%s decoder worker crashed (exit %s); restarting", self.name, code)
        # This frame is lost; the next decode() starts a fresh worker.
        self._stop()
        return []

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs (tests and `doctor` use it)."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def _stop(self) -> None:
        if self._proc is not None and self._conn is not None:
            self._kill(self._proc, self._conn)
        self._proc = self._conn = None

    @staticmethod
    def _kill(proc: BaseProcess, conn: Connection) -> None:
        conn.close()
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5)

    def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(timeout=2)
            except (BrokenPipeError, ConnectionResetError):
                pass
        self._stop()
