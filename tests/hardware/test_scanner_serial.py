"""Serial / USB-CDC scanner against the simulated one on a real pseudo-terminal."""

from __future__ import annotations

import subprocess
import sys
import termios
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.scanner import LineFramer, ScannerClosed, ScannerConfig, SerialScanner, open_scanner
from hardware.scanner.errors import ScannerError, ScannerUnavailable
from hardware.scanner.serial_scanner import SerialPort
from simulator.serial_scanner import SimulatedSerialScanner


@pytest.fixture
def sim() -> Iterator[SimulatedSerialScanner]:
    with SimulatedSerialScanner() as scanner:
        yield scanner


@pytest.fixture
def reader(sim: SimulatedSerialScanner) -> Iterator[SerialScanner]:
    scanner = SerialScanner(str(sim.path), poll_s=0.02, reopen_s=0.02, max_line=256)
    yield scanner
    scanner.close()


def read_payload(reader: SerialScanner, timeout: float = 2.0) -> str | None:
    scan = reader.read(timeout=timeout)
    return None if scan is None else scan.payload


def test_payloads_are_read_in_order(sim: SimulatedSerialScanner, reader: SerialScanner) -> None:
    for payload in ("GP1.VIL-001.PB-000001.k1.abc", "second", "ünïcode ✓"):
        sim.scan(payload)
    assert [read_payload(reader) for _ in range(3)] == [
        "GP1.VIL-001.PB-000001.k1.abc",
        "second",
        "ünïcode ✓",
    ]
    assert reader.read(timeout=0.1) is None


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\n"])
def test_every_line_ending_frames_a_payload(eol: bytes) -> None:
    with SimulatedSerialScanner(eol=eol) as sim:
        reader = SerialScanner(str(sim.path), poll_s=0.02)
        sim.scan("A")
        sim.scan("B")
        assert [read_payload(reader), read_payload(reader)] == ["A", "B"]
        reader.close()


def test_garbage_is_counted_and_skipped(sim: SimulatedSerialScanner, reader: SerialScanner) -> None:
    sim.garbage(b"\xff\xfe\xc3(\r\n")  # not UTF-8
    sim.garbage(b"\x1b[2J\x07\r\n")  # control characters
    sim.garbage(b"\r\n\r\n   \r\n")  # empty lines are not garbage, just nothing
    sim.scan("good")
    assert read_payload(reader) == "good"
    assert reader.framer.stats.garbage == 2


def test_overlong_line_is_dropped_whole(sim: SimulatedSerialScanner, reader: SerialScanner) -> None:
    sim.scan("X" * 5000)  # max_line is 256 here
    sim.scan("after")
    assert read_payload(reader) == "after"
    assert reader.framer.stats.overlong == 1


def test_unplug_and_replug_recovers(sim: SimulatedSerialScanner, reader: SerialScanner) -> None:
    sim.scan("before")
    assert read_payload(reader) == "before"
    sim.unplug()
    assert reader.read(timeout=0.3) is None
    assert not reader.connected
    sim.replug()
    deadline = time.monotonic() + 3
    while not reader.connected and time.monotonic() < deadline:
        reader.read(timeout=0.05)
    assert reader.connected and reader.reconnects == 1
    sim.scan("after")
    assert read_payload(reader) == "after"


def test_half_line_before_unplug_does_not_glue_onto_the_next(
    sim: SimulatedSerialScanner, reader: SerialScanner
) -> None:
    sim.garbage(b"GP1.half")
    assert reader.read(timeout=0.1) is None
    sim.unplug()
    reader.read(timeout=0.1)
    sim.replug()
    while not reader.connected:
        reader.read(timeout=0.05)
    sim.scan("whole")
    assert read_payload(reader) == "whole"


def test_missing_port_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(ScannerUnavailable, match="dialout"):
        SerialScanner("/nonexistent/ttyACM9")


def test_closed_scanner_ends_iteration(sim: SimulatedSerialScanner) -> None:
    reader = open_scanner(ScannerConfig(kind="serial", port=str(sim.path)))
    sim.scan("one")
    it = iter(reader)
    assert next(it).payload == "one"
    reader.close()
    with pytest.raises(ScannerClosed):
        reader.read(timeout=0.1)
    assert list(it) == []


def test_framer_splits_across_chunks_and_mixed_endings() -> None:
    framer = LineFramer(max_line=16)
    assert framer.feed(b"ab") == []
    assert framer.feed(b"c\r\nde") == ["abc"]
    assert framer.feed(b"f\rg\n\n") == ["def", "g"]
    assert framer.feed(b"0123456789abcdefXYZ\nok\n") == ["ok"]
    assert framer.stats.overlong == 1
    assert framer.feed(b"  padded \t\r") == ["padded"]


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=20), max_line=st.integers(1, 64))
def test_framer_never_raises_and_bounds_lines(chunks: list[bytes], max_line: int) -> None:
    framer = LineFramer(max_line=max_line)
    try:
        lines = [line for chunk in chunks for line in framer.feed(chunk)]
    except ScannerError:  # the only errors allowed out are ours (none are raised today)
        return
    for line in lines:
        assert line and line == line.strip() and line.isprintable()
        assert len(line.encode("utf-8")) <= max_line
        assert "\r" not in line and "\n" not in line
    assert framer.buffered <= max_line  # memory stays bounded however long the noise


def test_serial_scanner_needs_no_camera_packages() -> None:
    """A kiosk with a USB scanner runs without the `camera` extra (OpenCV, numpy)."""
    code = (
        "import sys\n"
        "for name in ('cv2', 'numpy', 'zxingcpp', 'pyzbar'):\n"
        "    sys.modules[name] = None\n"
        "from hardware.scanner import SerialScanner, ScannerConfig, DECODER_NAMES\n"
        "import hardware.scanner_cli\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_port_that_fails_its_setup_as_it_opens_is_unavailable_not_a_crash() -> None:
    """pyserial's own open sets the line up with tcsetattr, whose termios.error it lets
    through (a scanner pulled as it opened): as for any port that cannot be opened."""

    def hung_up(_port: str, _baud: float, _timeout: float) -> SerialPort:
        raise termios.error(5, "Input/output error")

    with pytest.raises(ScannerUnavailable, match="could not be opened"):
        SerialScanner("/dev/ttyACM-scanner", opener=hung_up)
