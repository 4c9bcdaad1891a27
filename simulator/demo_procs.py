"""The demo's processes: choosing their ports, starting them, waiting for them, stopping them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from simulator.demo_folder import ROOT, DemoError

KIOSK_PORT_OFFSET = 10  # kiosk N serves on base + 10 + N


# --- ports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    central: int
    broker: int
    kiosks: tuple[int, ...]

    @classmethod
    def choose(cls, base: int, kiosks: int) -> Ports:
        """`base` (central), `base + 1` (broker), `base + 10 + N` (kiosk N); 0: free ports."""
        if base == 0:
            return cls(_free_port(), _free_port(), tuple(_free_port() for _ in range(kiosks)))
        ports = cls(
            base, base + 1, tuple(base + KIOSK_PORT_OFFSET + n for n in range(1, kiosks + 1))
        )
        for port in (ports.central, ports.broker, *ports.kiosks):
            if not 1 <= port <= 65535:
                raise DemoError(f"port {port} is out of range: give a lower --base-port")
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            except OSError as exc:
                raise DemoError(
                    f"port {port} on 127.0.0.1 is in use ({exc.strerror}): stop what uses it, "
                    "or give another --base-port (0: any free ports)"
                ) from exc
        return ports


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- child processes ----------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the demo process dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """One process of the demo, its output in `log`."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops us in order
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout_s`; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


def gp(*args: str) -> list[str]:
    return [sys.executable, "-m", "greenpass", *args]


def wait_until(what: str, ok: Callable[[], bool], child: Child | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if child is not None and not child.alive():
            raise DemoError(
                f"{child.name} exited with {child.proc.returncode} while {what}; "
                f"the end of {child.log}:\n{child.tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"; the end of {child.log}:\n{child.tail()}" if child else ""
            raise DemoError(f"timed out after {timeout_s:g} s {what}{tail}")
        time.sleep(0.1)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    if found is None:
        raise DemoError(
            "mosquitto is not installed: run scripts/bootstrap (Debian: apt-get install mosquitto)"
        )
    return found


def http_ok(url: str, ca_file: Path | None = None) -> bool:
    """`url` answers 200 (over HTTPS: with a certificate that chains to `ca_file`)."""
    try:
        verify = True if ca_file is None else ssl.create_default_context(cafile=str(ca_file))
        return httpx.get(url, timeout=1, verify=verify).status_code == 200
    except (httpx.HTTPError, OSError, ssl.SSLError):  # OSError: the CA is still being written
        return False
