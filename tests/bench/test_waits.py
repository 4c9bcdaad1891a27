"""The benchmarks' own guards (issue 20): every wait ends by its deadline saying what it
saw, and the kiosk bench's scan plan cannot run into the village rules."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest

from bench.kiosk import plan
from bench.waits import BenchError, stop_process, wait_until
from greenpass.record.rules import default_rules


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
