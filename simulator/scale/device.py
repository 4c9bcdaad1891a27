"""`SimulatedScale`: a scale on a real pseudo-terminal, with controls in the device's own terms.

    with SimulatedScale("gpfw", settle_ms=50) as sim:
        scale = open_scale("gpfw", str(sim.port))
        sim.place(1250)            # the load on the platform is now 1250 g
        sim.noise(20)              # someone leans on it: +-20 g of jitter
        sim.unplug(); sim.replug() # the cable comes out and goes back in

The device runs in one background thread that owns the pty: it sends
continuous frames at `rate_hz` (MT-SICS only answers requests), answers
commands (gpfw TARE/ZERO/CAL/INFO, MT-SICS SI/S/Z/T), and carries out
unplug/replug/injections in order with its own frames, so a garbage burst
never lands in the middle of a frame.
"""

from __future__ import annotations

import logging
import queue
import random
import select
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from simulator.scale import encoders
from simulator.scale.encoders import Display
from simulator.scale.platform import Platform
from simulator.scale.pty_port import PtyPort

PROTOCOLS = ("gpfw", "mtsics", "and", "cas", "xk3190")
DEFAULT_GARBAGE = b"\x00\xff\xfe#noise#\x7f"

log = logging.getLogger(__name__)


class SimulatedScale:
    def __init__(
        self,
        protocol: str,
        *,
        link: Path | str | None = None,
        rate_hz: float = 10.0,
        capacity_grams: int = 150_000,
        settle_ms: int = 300,
        and_indicator: bool = False,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        self.protocol = protocol
        self.rate_hz = rate_hz
        self.and_indicator = and_indicator
        self._own_dir: Path | None = None
        if link is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="greenpass-scale-"))
            link = self._own_dir / "scale"
        self.port = Path(link)
        self.platform = Platform(
            capacity_grams=capacity_grams,
            settle_ms=settle_ms,
            rng=rng or random.Random(0),
            clock=clock,
        )
        self._pty = PtyPort(self.port)
        self._clock = clock
        self._jobs: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inbox = bytearray()
        self.commands: list[str] = []  # every command received, for tests and the CLI

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> SimulatedScale:
        if self._thread is not None:  # already running: `with` on a started scale is fine
            return self
        self._pty.plug()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"sim-scale-{self.protocol}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._pty.unplug()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> SimulatedScale:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- controls, in the device's own terms ---------------------------------------------

    def place(self, grams: int) -> None:
        """The load on the platform becomes `grams` (it settles over `settle_ms`)."""
        self.platform.load(grams)

    def remove(self) -> None:
        """Take everything off the platform."""
        self.platform.load(0)

    def overload(self) -> None:
        """Put more than the capacity on the platform."""
        self.platform.load(self.platform.capacity_grams * 11 // 10)

    def noise(self, grams: int) -> None:
        """Random jitter of +-`grams` on every sample (wind, someone leaning)."""
        self.platform.noise_grams = grams

    def settle_time(self, ms: int) -> None:
        self.platform.settle_ms = ms

    def drift(self, grams_per_s: float) -> None:
        """Slow creep of the reading (a warming load cell)."""
        self.platform.set_drift(grams_per_s)

    def miscalibrate(self, factor: float) -> None:
        """The load cell's span is off by `factor` (fixed by a CAL command)."""
        self.platform.gain = factor

    def unplug(self) -> None:
        self._do(self._pty.unplug)

    def replug(self) -> None:
        self._do(self._pty.plug)

    def inject_garbage(self, data: bytes = DEFAULT_GARBAGE) -> None:
        self._do(lambda: self._pty.write(data))

    def inject_torn(self) -> None:
        """Send the first half of a frame, as if the line dropped bytes mid-frame."""

        def torn() -> None:
            frame = self._weight_frame(self.platform.display())
            self._pty.write(frame[: len(frame) // 2])

        self._do(torn)

    @property
    def plugged(self) -> bool:
        return self._pty.plugged

    # -- the device thread ---------------------------------------------------------------

    def _do(self, job: Callable[[], None]) -> None:
        """Run `job` on the device thread (it owns the pty fds) and wait for it."""
        if self._thread is None:
            job()
            return
        done = threading.Event()
        self._jobs.put((job, done))
        if not done.wait(timeout=5):
            raise TimeoutError("the simulated scale's thread did not respond")

    def _run(self) -> None:
        continuous = self.protocol != "mtsics"
        period = 1.0 / self.rate_hz
        next_frame = self._clock()
        try:
            while not self._stop.is_set():
                self._run_jobs()
                master = self._pty.master
                if master is None:
                    self._stop.wait(0.01)
                    continue
                wait = max(0.0, next_frame - self._clock()) if continuous else 0.02
                readable, _, _ = select.select([master], [], [], min(wait, 0.02))
                if readable:
                    self._receive(self._pty.read())
                now = self._clock()
                if continuous and now >= next_frame:
                    self._pty.write(self._weight_frame(self.platform.display()))
                    next_frame = max(next_frame + period, now)
        except Exception:  # top of the thread: log, so a simulator bug is seen, not silent
            log.exception("simulated scale thread crashed")
            raise

    def _run_jobs(self) -> None:
        while True:
            try:
                job, done = self._jobs.get_nowait()
            except queue.Empty:
                return
            try:
                job()
            finally:
                done.set()

    def _weight_frame(self, d: Display) -> bytes:
        if self.protocol == "gpfw":
            return encoders.gpfw_weight(d)
        if self.protocol == "mtsics":
            return encoders.mtsics_weight(d)
        if self.protocol == "and":
            return encoders.and_weight(d, indicator=self.and_indicator)
        if self.protocol == "cas":
            return encoders.cas_weight(d)
        return encoders.xk3190_weight(d)

    def _receive(self, data: bytes) -> None:
        self._inbox += data
        while (end := self._inbox.find(b"\n")) >= 0:
            line = self._inbox[:end].rstrip(b"\r").decode("ascii", "replace").strip()
            del self._inbox[: end + 1]
            if line:
                self.commands.append(line)
                reply = self._answer(line)
                if reply:
                    self._pty.write(reply)
        del self._inbox[:-256]  # a device's input buffer is small; keep ours bounded

    def _answer(self, line: str) -> bytes | None:
        if self.protocol == "gpfw":
            return self._answer_gpfw(line)
        if self.protocol == "mtsics":
            return self._answer_mtsics(line)
        return None  # continuous-output indicators ignore what they receive

    def _answer_gpfw(self, line: str) -> bytes:
        name, _, argument = line.partition(" ")
        p = self.platform
        if name == "TARE":
            p.tare()
            return encoders.gpfw_line("R,TARE,OK")
        if name == "ZERO":
            p.zero()
            return encoders.gpfw_line("R,ZERO,OK")
        if name == "CAL":
            if not argument.strip().isdigit() or int(argument) <= 0:
                return encoders.gpfw_line("R,CAL,ERR,bad_mass")
            if not p.calibrate(int(argument)):
                return encoders.gpfw_line("R,CAL,ERR,no_load")
            return encoders.gpfw_line("R,CAL,OK")
        if name == "INFO":
            return encoders.gpfw_line(f"I,fw=sim-1.0,rate={self.rate_hz:g},cap={p.capacity_grams}")
        return encoders.gpfw_line(f"R,{name.upper()[:8] or 'NONE'},ERR,unknown_command")

    def _answer_mtsics(self, line: str) -> bytes:
        p = self.platform
        if line in ("SI", "S"):
            return encoders.mtsics_weight(p.display(), line)
        if line == "Z":
            p.zero()
            return b"Z A\r\n"
        if line == "T":
            tare = p.tare()
            return f"T S {tare:>7d}.00 g\r\n".encode("ascii")
        return b"ES\r\n"
