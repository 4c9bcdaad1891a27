"""`greenpass scanner watch` and the `simulate camera` / `simulate serial-scanner` commands."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from greenpass.cli import main
from hardware.scanner import SerialScanner
from simulator.camera_cli import add_commands
from simulator.serial_scanner import SimulatedSerialScanner
from tests.ports import wait_opened


def simulate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="greenpass simulate")
    add_commands(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_scanner_watch_prints_serial_payloads(capsys: pytest.CaptureFixture[str]) -> None:
    with SimulatedSerialScanner() as sim:

        def feed() -> None:
            # Only once the command (in this process) has opened the port, beside the
            # simulator's own end of it: opening flushes its input.
            wait_opened("self", sim.path, at_least=2)
            sim.scan("GP1.VIL-007.PB-000042.k1.sig")
            sim.garbage(b"\xff\r\n")
            sim.scan("second")

        threading.Thread(target=feed, daemon=True).start()
        assert main(["scanner", "watch", "--port", str(sim.path), "--count", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["GP1.VIL-007.PB-000042.k1.sig", "second"]


def test_scanner_watch_on_a_missing_port_is_one_clear_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scanner", "watch", "--port", "/nonexistent/ttyACM7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("greenpass: error:") and "/nonexistent/ttyACM7" in err


def test_scanner_watch_needs_a_source() -> None:
    with pytest.raises(SystemExit):
        main(["scanner", "watch"])


def test_simulate_camera_writes_frames_and_manifest(tmp_path: Path) -> None:
    assert simulate(["camera", "--out", str(tmp_path), "--frames", "4", "--seed", "2"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest) == 4
    assert all((tmp_path / item["file"]).stat().st_size > 10_000 for item in manifest)


def test_simulate_camera_stats(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate(["camera", "--stats", "--frames", "12", "--mix", "easy=1,empty=0.5"]) == 0
    out = capsys.readouterr().out
    assert "easy" in out and "false payloads: 0" in out


def test_simulate_camera_rejects_a_bad_mix() -> None:
    with pytest.raises(SystemExit):
        simulate(["camera", "--stats", "--mix", "trivial=1"])


def test_simulate_serial_scanner_turns_stdin_lines_into_scans(tmp_path: Path) -> None:
    path = tmp_path / "ttyScan"
    code = (
        "import argparse, sys\n"
        "from simulator.camera_cli import add_commands\n"
        "p = argparse.ArgumentParser(); add_commands(p.add_subparsers(required=True))\n"
        f"a = p.parse_args(['serial-scanner', '--path', {str(path)!r}])\n"
        "sys.exit(a.handler(a))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == str(path)
        reader = SerialScanner(str(path), poll_s=0.02)
        proc.stdin.write("hello from stdin\n")
        proc.stdin.flush()
        scan = reader.read(timeout=5)
        reader.close()
        assert scan is not None and scan.payload == "hello from stdin"
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
