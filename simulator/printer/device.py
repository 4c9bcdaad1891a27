"""A simulated ESC/POS receipt printer on a pseudo-terminal: the kiosk's real driver
(`hardware.printer`, kind serial) prints to it, and each receipt becomes a PNG.

Controls, in the printer's own terms: `paper_out()`, `load_paper()`, `paper_low()`,
`open_cover()`, `close_cover()`, `jam_cutter()`, `clear_jam()`, `unplug()`,
`replug()`, `vanish_after(n)` (the cable is pulled once `n` more bytes arrived:
mid-receipt), `hold()` / `release()` (the printer stops taking bytes, as a slow or
stuck printer does; what was sent waits in the line). `receipts` lists the PNGs;
`wait_receipts(n)` waits for the n-th.
"""

from __future__ import annotations

import contextlib
import select
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from PIL import Image

from simulator.printer.model import EscPosModel, PrinterState
from simulator.scale.pty_port import PtyPort

POLL_S = 0.05  # how often the device thread looks at its stop flag while idle


class SimulatedPrinter:
    def __init__(self, width_mm: int = 58, folder: Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gp-printer-")
            folder = Path(self._tmp.name)
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = PtyPort(self.folder / "ttyPrinter")
        self.state = PrinterState()
        self.receipts: list[Path] = []
        self.received = 0  # bytes taken since start
        self._vanish_at: int | None = None
        self._held = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._model = EscPosModel(
            384 if width_mm == 58 else 576, self.state, self._saved, self._say
        )
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        """What the driver opens (a symlink to the pty, gone while unplugged)."""
        return self.port.link

    @property
    def plugged(self) -> bool:
        return self.port.plugged

    def start(self) -> Self:
        self.port.plug()
        self._thread = threading.Thread(target=self._run, name="sim-printer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        with self._cond:
            self.port.unplug()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- controls -----------------------------------------------------------------------

    def paper_out(self) -> None:
        self.state.paper = "out"

    def paper_low(self) -> None:
        self.state.paper = "low"

    def load_paper(self) -> None:
        self.state.paper = "ok"

    def open_cover(self) -> None:
        self.state.cover_open = True

    def close_cover(self) -> None:
        self.state.cover_open = False

    def jam_cutter(self) -> None:
        self.state.cutter_jammed = True

    def clear_jam(self) -> None:
        self.state.cutter_jammed = False

    def unplug(self) -> None:
        with self._cond:
            self.port.unplug()

    def replug(self) -> None:
        with self._cond:
            self._vanish_at = None
            self.port.plug()

    def vanish_after(self, n: int) -> None:
        with self._cond:
            self._vanish_at = self.received + n

    def hold(self) -> None:
        with self._cond:
            self._held = True

    def release(self) -> None:
        with self._cond:
            self._held = False

    def wait_receipts(self, n: int, timeout: float = 10.0) -> list[Path]:
        """The receipts once there are at least `n`; AssertionError if not in time."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.receipts) >= n, timeout):
                raise AssertionError(f"{len(self.receipts)} receipts printed, waited for {n}")
            return list(self.receipts)

    def controls(self) -> dict[str, object]:
        return {
            "plugged": self.plugged,
            "paper": self.state.paper,
            "cover_open": self.state.cover_open,
            "cutter_jammed": self.state.cutter_jammed,
            "held": self._held,
            "receipts": len(self.receipts),
        }

    # --- the device ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            master = self.port.master
            if master is None or self._held:
                self._stop.wait(POLL_S)
                continue
            with contextlib.suppress(OSError, ValueError):
                ready, _, _ = select.select([master], [], [], POLL_S)
                if not ready:
                    continue
            with self._cond:
                data = self.port.read()
                if not data:
                    continue
                if self._vanish_at is not None and self.received + len(data) >= self._vanish_at:
                    data = data[: self._vanish_at - self.received]
                    self.received += len(data)
                    self._model.feed(data)
                    self.port.unplug()  # the cable is pulled mid-receipt
                    self._vanish_at = None
                    continue
                self.received += len(data)
                self._model.feed(data)

    def _say(self, data: bytes) -> None:
        self.port.write(data)

    def _saved(self, image: Image.Image) -> None:
        path = self.folder / f"receipt-{len(self.receipts) + 1:04d}.png"
        image.save(path)
        self.receipts.append(path)
        self._cond.notify_all()  # called from _run, inside the condition
