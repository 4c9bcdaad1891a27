"""`greenpass scale watch` and `greenpass simulate scale`, run for real."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from greenpass.cli import build_parser, main
from hardware.scale import ScaleStatus, open_scale
from simulator.scale import SimulatedScale
from simulator.scale.controls import ControlError, apply
from tests.hardware.conftest import FAST_RULE, stable_at, wait_for

pytestmark = pytest.mark.timeout(30)
DOC = Path(__file__).resolve().parents[2] / "docs" / "hardware-scale.md"


def test_watch_prints_json_readings(capsys: pytest.CaptureFixture[str]) -> None:
    with SimulatedScale("gpfw", rate_hz=100, settle_ms=0) as sim:
        sim.place(1250)
        argv = ["scale", "watch", "--port", str(sim.port), "--protocol", "gpfw", "--json"]
        assert main([*argv, "--count", "5", "--hold-ms", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    readings = [json.loads(line) for line in lines]
    assert set(readings[0]) == {"grams", "stable", "status"}
    assert readings[-1]["grams"] == 1250
    assert readings[-1]["status"] == "ok"


def test_watch_prints_text_and_reports_a_missing_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["scale", "watch", "--port", str(tmp_path / "none"), "--protocol", "cas"]
    assert main([*argv, "--count", "2", "--baud", "19200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all(line.split() == ["-", "moving", "disconnected"] for line in lines)


def test_simulate_scale_cli_drives_a_real_driver(tmp_path: Path) -> None:
    link = tmp_path / "scale"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greenpass",
            "simulate",
            "scale",
            "--protocol",
            "and",
            "--link",
            str(link),
            "--rate",
            "100",
            "--settle",
            "20",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == f"simulated and scale on {link}"

        def control(line: str) -> str:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        with open_scale("and", str(link), stability=FAST_RULE, reconnect_max_s=0.1) as scale:
            assert control("place 1250") == "placed 1250 g"
            stable_at(scale, 1250)
            assert control("unplug") == "unplugged"
            wait_for(scale, lambda r: r.status is ScaleStatus.DISCONNECTED)
            assert control("replug") == "plugged back in"
            stable_at(scale, 1250)
            assert control("garbage") == "sent garbage"
            wait_for(scale, lambda r: scale.counters.garbage >= 1)
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=5) == 0
        assert not link.exists()
    finally:
        proc.kill()
        proc.wait()


def test_controls_refuse_what_they_do_not_understand() -> None:
    with SimulatedScale("gpfw", settle_ms=0) as sim:
        with pytest.raises(ControlError, match="unknown control"):
            apply(sim, "jump 3")
        with pytest.raises(ControlError, match="not a number"):
            apply(sim, "place lots")
        with pytest.raises(ControlError, match="takes no arguments"):
            apply(sim, "remove 3")
        with pytest.raises(ControlError, match="takes one number"):
            apply(sim, "noise")
        assert apply(sim, "place 300") == "placed 300 g"
        assert apply(sim, "status") == "300 g stable (plugged)"
        assert apply(sim, "overload").startswith("overload")
        assert apply(sim, "status").endswith("overload (plugged)")
        assert "place GRAMS" in apply(sim, "help")


def _options(parser: argparse.ArgumentParser, *path: str) -> list[str]:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return [opt for a in parser._actions for opt in a.option_strings if opt.startswith("--")]


@pytest.mark.parametrize("path", [("scale", "watch"), ("simulate", "scale")])
def test_every_option_is_documented(path: tuple[str, ...]) -> None:
    doc = DOC.read_text()
    assert f"greenpass {' '.join(path)}" in doc
    for option in _options(build_parser(), *path):
        if option != "--help":
            assert option in doc, f"{option} of {' '.join(path)} is not in {DOC.name}"


def test_watch_exits_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greenpass",
            "scale",
            "watch",
            "--port",
            str(tmp_path / "none"),
            "--protocol",
            "gpfw",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert "disconnected" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)  # a loaded machine is slow to exit
        assert proc.returncode == 0
        assert "Traceback" not in err
    finally:
        proc.kill()
        proc.wait()
