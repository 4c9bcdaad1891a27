"""The benchmarks' own guards (issue 20): every wait ends by its deadline saying what it
saw, and the kiosk bench's scan plan cannot run into the village rules."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.kiosk import plan
from bench.waits import BenchError, StatesSeen, stop_process, wait_until
from devkit.mqtt_broker import Broker
from greenpass.record.rules import default_rules
from sync import protocol
from sync.transport import BrokerConfig


def test_a_wait_fails_at_its_deadline_naming_what_it_saw() -> None:
    t0 = time.monotonic()
    with pytest.raises(BenchError, match=r"no confirmed screen within 0.2 s; instead: refused"):
        wait_until(lambda: None, timeout_s=0.2, what="confirmed screen", seen=lambda: "refused")
    assert time.monotonic() - t0 < 2
    assert wait_until(lambda: 7, timeout_s=0.1, what="x", seen=lambda: "") == 7


def test_stop_process_kills_what_ignores_sigterm() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()  # its handler is installed
    t0 = time.monotonic()
    assert stop_process(proc, "stubborn", timeout_s=0.5) == -9
    assert time.monotonic() - t0 < 5


def test_a_state_probe_leaves_no_subscription_in_the_kiosks_session(tmp_path: Path) -> None:
    """`StatesSeen` logs in as a kiosk, with its client id. It once left its session
    (the kiosk's week) behind: the storm's kiosk resumed it, got a state where it waited
    for an ack, and its task died on it, so the storm never ended."""
    with Broker(tmp_path / "broker", [("central", "central-pw"), ("K1", "k1-pw")]) as broker:
        kiosk = BrokerConfig(broker.url, "K1", "k1-pw", "gp-K1", broker.ca_cert)
        assert not kiosk.clean_start and kiosk.session_expiry_s > 0  # as a kiosk connects
        StatesSeen(kiosk).close()
        central = broker.client("central", "central-pw")
        # 16: no matching subscribers (a session left behind would be one, and answer 0)
        assert central.publish_wait(protocol.topic("K1", protocol.STATE), b"{}") == 16
        resumed = broker.client(
            "K1", "k1-pw", client_id="gp-K1", clean_start=False, session_expiry=3600
        )
        assert resumed.messages(wait=1.0) == []
        # The same publish does reach a subscription (the check above can fail).
        resumed.subscribe_wait(protocol.topic("K1", protocol.STATE))
        assert central.publish_wait(protocol.topic("K1", protocol.STATE), b"{}") == 0
        assert resumed.next_message().payload == b"{}"


def test_the_scan_plan_never_repeats_a_villager_in_a_category() -> None:
    rules = default_rules()
    villagers = [f"v{n}" for n in range(6)]
    presentations = plan(villagers, rules, 40)
    assert len(presentations) == 40
    assert max(Counter(presentations).values()) == 1, "a (villager, category) pair twice"
    assert {c for _, c in presentations} <= set(rules.categories)


def test_a_plan_the_rules_cannot_allow_is_refused_before_the_kiosk_starts() -> None:
    rules = default_rules()
    with pytest.raises(BenchError, match="different \\(villager, category\\) pairs"):
        plan(["v1"], rules, len(rules.categories) + 1)
    with pytest.raises(BenchError):
        plan([], rules, 1)
