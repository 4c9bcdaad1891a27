"""The reconnect storm (`python -m bench.sync_storm`) on a tiny fleet: every kiosk's
batch is accepted by central's re-checks and acked, nothing lost or stored twice,
and the CPU table names each phase. (It once priced its deposits by a rules version
central did not know: every batch was dead-lettered and the storm never ended.)"""

from __future__ import annotations

import re

import pytest

from bench import sync_storm
from devkit.mqtt_broker import mosquitto_binary


def test_a_tiny_storm_is_all_acked_and_accounted(capsys: pytest.CaptureFixture[str]) -> None:
    mosquitto_binary()  # skips without Mosquitto (fails under CI=true)
    # One generator process: a tiny fleet needs no more, and the suite's other tests
    # share the cores.
    assert (
        sync_storm.main(["--kiosks", "4", "--entries", "12", "--sqlite", "--generators", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "(4/4 kiosks done)" in out, out
    assert "entries stored      48 of 48 (lost 0, duplicated 0)" in out, out
    assert re.search(r"throughput +\d+ entries/s", out), out
    for phase in ("connect", "sync"):
        # wall, then CPU of generator, central, database ("-" on SQLite), broker
        assert re.search(rf"^  {phase} +\d+\.\d +\d+\.\d +\d+\.\d +- +\d+\.\d$", out, re.M), out


def test_a_storm_on_two_workers_survives_one_killed(capsys: pytest.CaptureFixture[str]) -> None:
    """Worker 1 is SIGKILLed once half the kiosks are acked and started again: every
    entry is stored once, and no kiosk had to resend (what the killed worker had taken
    but not handled stayed with the broker: tests/sync/test_receiver_acks.py)."""
    mosquitto_binary()
    argv = ["--kiosks", "6", "--entries", "12", "--sqlite", "--workers", "2", "--generators", "1"]
    assert sync_storm.main([*argv, "--kill-worker", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "2 central worker(s)" in out, out
    assert "(6/6 kiosks done)" in out, out
    assert "entries stored      72 of 72 (lost 0, duplicated 0)" in out, out
    assert "connects 6, resends 0" in out, out
    assert re.search(r"worker 1 SIGKILLed at [3-6] of 6 kiosks acked, started again", out), out
