"""A simulated serial QR scanner on a real pseudo-terminal.

The driver under test opens `path`, a symlink this simulator owns, exactly as
it would open /dev/ttyACM0. `unplug()` closes the pty's master side (the
reader's next read fails, as with a pulled USB cable) and removes the symlink;
`replug()` makes a fresh pty and points the symlink at it, as a re-enumerated
device would appear.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tty
from pathlib import Path
from types import TracebackType


class SimulatedSerialScanner:
    """Controls: `scan(payload)`, `garbage(data)`, `unplug()`, `replug()`, `close()`."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, eol: bytes = b"\r\n") -> None:
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="gp-scanner-")
            path = Path(self._tmpdir.name) / "ttyScanner"
        self.path = Path(path)
        self.eol = eol
        self._master: int | None = None
        self._slave: int | None = None
        self.replug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def replug(self) -> None:
        """Plug in (again): a new pty behind the same `path`."""
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as a USB CDC port would
        tty.setraw(master)
        self._master, self._slave = master, slave
        tmp = self.path.with_name(self.path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.path)  # atomic: a reader never sees a half-made path

    def unplug(self) -> None:
        """Pull the cable: the device node disappears and open handles fail."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def write(self, data: bytes) -> None:
        if self._master is None:
            raise OSError("simulated scanner is unplugged")
        view = memoryview(data)
        while view:
            view = view[os.write(self._master, view) :]

    def scan(self, payload: str) -> None:
        """The scanner reads a code: its text and the line terminator."""
        self.write(payload.encode("utf-8") + self.eol)

    def garbage(self, data: bytes) -> None:
        """Raw bytes on the line (noise, a scanner in a wrong mode)."""
        self.write(data)

    def close(self) -> None:
        self.unplug()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> SimulatedSerialScanner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
