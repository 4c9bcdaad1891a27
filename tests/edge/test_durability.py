"""Durability: a child process deposits and prints each entry after its commit; it
is killed with SIGKILL at random moments, many times. Every printed entry must be
there after reopening, and the chain must verify."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.record.rules import DEFAULT_RULES_PATH, parse_rules

ROOT = Path(__file__).resolve().parents[2]


def _prepare(path: Path) -> None:
    # The child deposits as fast as it can: no cooldown, no daily caps to refuse it.
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    text = re.sub(r"cooldown_seconds = \d+", "cooldown_seconds = 0", text)
    text = re.sub(r"daily_cap_grams = \d+", "daily_cap_grams = 1000000000", text)
    rules = parse_rules(text.replace('version = "', 'version = "soak-'))
    with Ledger.create(
        path, device_id="K1", village="V1", rules=rules, clock=FixedClock()
    ) as ledger:
        ledger.add_staff("S1", name="Staff", role="admin", pin="2468")
        for n in range(500):
            ledger.enrol(f"Household {n}", staff_id="S1", passbook_id=f"P-{n:04d}")


def _kill_rounds(path: Path, rounds: int, seed: int) -> int:
    rng = random.Random(seed)
    confirmed: dict[int, str] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(rounds):
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("deposit_child.py")), str(path)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert child.stdout is not None
        # wait for the first confirmed deposit, then kill at a random moment after it
        first = child.stdout.readline()
        if first:
            seq, entry_id = first.split()
            confirmed[int(seq)] = entry_id
        time.sleep(rng.uniform(0, 0.15))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:  # a torn last line was never confirmed
                confirmed[int(parts[0])] = parts[1]
        assert child.returncode == -signal.SIGKILL
    with Ledger.open(path) as ledger:
        stored = {e.seq: e.entry_id for e, _ in ledger.iter_entries()}
        report = ledger.verify()
    assert report.ok, report.problem
    missing = {s: i for s, i in confirmed.items() if stored.get(s) != i}
    assert not missing, f"confirmed deposits lost after SIGKILL: {sorted(missing)[:10]}"
    assert len(confirmed) > rounds  # the children really made deposits
    return len(confirmed)


def test_sigkill_never_loses_a_confirmed_deposit(tmp_path: Path) -> None:
    _prepare(tmp_path / "k.db")
    _kill_rounds(tmp_path / "k.db", rounds=25, seed=2)


@pytest.mark.soak
def test_sigkill_soak(tmp_path: Path) -> None:
    _prepare(tmp_path / "k.db")
    rounds = int(os.environ.get("GREENPASS_SOAK_KILLS", "300"))
    n = _kill_rounds(tmp_path / "k.db", rounds=rounds, seed=int(time.time()))
    print(f"{rounds} SIGKILLs, {n} confirmed deposits, none lost")
