"""A pseudo-terminal that can be "unplugged": the simulated scale's serial cable.

The driver opens `link`, a symlink this class controls, never the /dev/pts
name itself. Unplugging closes the master (the driver's reads and writes now
fail, as when a USB adapter is pulled) and removes the symlink (reopening fails
with "no such file", as for a vanished /dev/ttyUSB0). Replugging makes a new
pty and points the symlink at it, as udev does when the cable returns.

Not thread-safe: `SimulatedScale` calls it from its one device thread.
"""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path


class PtyPort:
    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self._slave: int | None = None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def plug(self) -> None:
        if self.master is not None:
            return
        master, slave = os.openpty()
        # Raw: no echo of the driver's commands, no CR/LF translation of our bytes.
        tty.setraw(slave)
        os.set_blocking(master, False)
        # Keep our own slave handle open so the master never sees a hang-up
        # between a driver's close and its reopen.
        self.master, self._slave = master, slave
        temporary = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(os.ttyname(slave))
        os.replace(temporary, self.link)  # atomic: the driver never sees a half-made link

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        fds = (self.master, self._slave)
        self.master = self._slave = None  # unplugged before the driver can notice
        for fd in fds:
            if fd is not None:
                os.close(fd)

    def write(self, data: bytes) -> None:
        """Send bytes to the driver; dropped if unplugged or nobody reads (a UART
        transmits into the void, it does not wait for a listener)."""
        if self.master is None:
            return
        with contextlib.suppress(BlockingIOError):
            os.write(self.master, data)

    def read(self) -> bytes:
        """Bytes the driver sent, b"" if none."""
        if self.master is None:
            return b""
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""
        except OSError:  # EIO while no process holds the slave open: nothing to read
            return b""
