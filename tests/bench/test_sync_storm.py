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
    assert sync_storm.main(["--kiosks", "4", "--entries", "12", "--sqlite"]) == 0
    out = capsys.readouterr().out
    assert "(4/4 kiosks done)" in out, out
    assert "entries stored      48 of 48 (lost 0, duplicated 0)" in out, out
    assert re.search(r"throughput +\d+ entries/s", out), out
    for phase in ("connect", "sync"):
        assert re.search(rf"^  {phase} +\d+\.\d +\d+\.\d +\d+\.\d +\d+\.\d$", out, re.M), out
