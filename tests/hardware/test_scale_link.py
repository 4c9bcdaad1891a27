"""The serial transport and the factory, against real ports (a pty) and real absences."""

from __future__ import annotations

import os
import random
import select
import termios
import time
import tty
from pathlib import Path

import pytest
import serial

from greenpass.errors import HardwareError
from hardware.scale import (
    BadSetting,
    PortError,
    ScaleDisconnected,
    ScaleStatus,
    UnknownProtocol,
    open_scale,
)
from hardware.scale.serial_port import SerialLike, SerialLink


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_and_is_capped(tmp_path: Path) -> None:
    clock = ManualClock()
    link = SerialLink(
        str(tmp_path / "absent"),
        9600,
        clock=clock,
        rng=random.Random(1),
        backoff_initial=0.1,
        backoff_max=1.0,
    )
    waits = []
    for _ in range(8):
        assert not link.try_open()
        waits.append(link.seconds_until_retry())
        assert not link.try_open()  # too early: no attempt, same schedule
        clock.now += waits[-1]
    assert 0.05 <= waits[0] <= 0.1
    assert waits[3] > waits[0]
    assert all(w <= 1.0 for w in waits)
    assert waits[-1] >= 0.5


def test_reopens_when_the_port_appears_and_reads_bytes(tmp_path: Path) -> None:
    path = tmp_path / "scale"
    link = SerialLink(str(path), 9600, backoff_initial=0.0)
    assert not link.try_open()
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        path.symlink_to(os.ttyname(slave))
        assert link.try_open()
        os.write(master, b"ST,+00001.00  g\r\n")
        data = b""
        while not data.endswith(b"\r\n"):
            data += link.read(0.5)
        assert data == b"ST,+00001.00  g\r\n"
        link.write(b"Z\r\n")
        assert os.read(master, 16) == b"Z\r\n"
        os.close(master)
        master = -1
        with pytest.raises(ScaleDisconnected) as lost:
            for _ in range(20):
                link.read(0.05)
        assert isinstance(lost.value, HardwareError)
        assert isinstance(lost.value, ConnectionError)
        assert not link.is_open
    finally:
        link.close()
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)


def test_a_port_pulled_as_it_opens_is_retried_not_raised(tmp_path: Path) -> None:
    """The cable pulled between open and the input reset: tcflush raises termios.error,
    which is no OSError; the link closes the port and tries again later."""
    path = tmp_path / "scale"
    master, slave = os.openpty()
    path.symlink_to(os.ttyname(slave))
    opened: list[serial.Serial] = []

    def pulled_at_open(url: str, baud: int, timeout: float) -> SerialLike:
        port = serial.Serial(url, baud, timeout=timeout)
        opened.append(port)
        os.close(master)  # pulled: the kernel hangs the open port up a moment later
        poll = select.poll()
        poll.register(port.fileno(), select.POLLHUP)
        deadline = time.monotonic() + 5
        while not any(ev & select.POLLHUP for _, ev in poll.poll(50)):
            assert time.monotonic() < deadline, "the port was not hung up"
        return port

    link = SerialLink(str(path), 9600, opener=pulled_at_open, backoff_initial=0.0)
    try:
        assert not link.try_open()
        assert not link.is_open and not opened[0].is_open  # closed, not leaked
        assert link.seconds_until_retry() >= 0 and len(opened) == 1
    finally:
        link.close()
        os.close(slave)


def test_a_port_that_fails_its_setup_as_it_opens_is_retried_not_raised() -> None:
    """pyserial's own open sets the line up with tcsetattr, whose termios.error it lets
    through: the link tries again later, as for any port that cannot be opened."""

    def hung_up(_url: str, _baud: int, _timeout: float) -> SerialLike:
        raise termios.error(5, "Input/output error")

    link = SerialLink("/dev/ttyUSB-scale", 9600, opener=hung_up, backoff_initial=0.0)
    assert not link.try_open() and not link.is_open
    assert not link.try_open()  # and again, still without raising


def test_a_missing_port_reads_disconnected_not_an_exception(tmp_path: Path) -> None:
    with open_scale("gpfw", str(tmp_path / "nothing-here"), reconnect_max_s=0.05) as scale:
        readings = [scale.read(timeout=0.1) for _ in range(3)]
    assert [r.status for r in readings] == [ScaleStatus.DISCONNECTED] * 3
    assert all(r.grams is None and not r.stable for r in readings)


def test_a_nonsense_url_is_a_port_error() -> None:
    with open_scale("cas", "nosuchscheme://x") as scale, pytest.raises(PortError):
        scale.read(timeout=0.1)


def test_unknown_protocol_and_bad_settings() -> None:
    with pytest.raises(UnknownProtocol, match="gpfw, mtsics, and, cas, xk3190"):
        open_scale("toledo", "/dev/null")
    with pytest.raises(BadSetting):
        open_scale("gpfw", "/dev/null", baud=0)
    with pytest.raises(BadSetting):
        open_scale("xk3190", "/dev/null", unit="lb")
    assert issubclass(UnknownProtocol, HardwareError)


def test_a_closed_scale_refuses_to_read(tmp_path: Path) -> None:
    scale = open_scale("and", str(tmp_path / "x"))
    scale.close()
    scale.close()
    with pytest.raises(ScaleDisconnected):
        scale.read(timeout=0.1)
