"""Deposit commit latency against a raw durable SQLite insert, in the same run.

Baseline: one single-row INSERT committed in its own transaction on a WAL,
synchronous=FULL SQLite file in the same folder — the least a durable deposit can
cost. Measured: `Ledger.deposit` (validation, caps, flags, hashing, insert, head
update, commit). The two are interleaved in blocks so disk and CPU drift hit
both alike. Goal: deposit p99 ≤ 1.5 × raw p99.

    python -m bench.ledger_commit [--n 2000] [--rounds 1] [--dir PATH]

The machine is shared and its disk noisy: a p99 from one round moves by ±0.3×.
`--rounds N` runs N rounds on fresh files and prints each, then the median ratios.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from edge.ledger.clock import SystemClock
from edge.ledger.ledger import Ledger
from greenpass.record.rules import DEFAULT_RULES_PATH, parse_rules

GOAL = 1.5
BLOCK = 50


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, passbook TEXT, grams INTEGER)")
    return conn


def _ledger(path: Path, villagers: int) -> Ledger:
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    text = re.sub(r"cooldown_seconds = \d+", "cooldown_seconds = 0", text)
    text = re.sub(r"daily_cap_grams = \d+", "daily_cap_grams = 1000000000", text)
    ledger = Ledger.create(
        path,
        device_id="BENCH",
        village="V1",
        rules=parse_rules(text.replace('version = "', 'version = "bench-')),
        clock=SystemClock(),
    )
    ledger.add_staff("S1", name="Bench", role="admin", pin="2468")
    for n in range(villagers):
        ledger.enrol(f"Household {n}", staff_id="S1", passbook_id=f"P{n:04d}")
    return ledger


def run(n: int, folder: Path) -> dict[str, float]:
    raw = _raw(folder / "raw.db")
    ledger = _ledger(folder / "ledger.db", villagers=200)
    raw_ms: list[float] = []
    dep_ms: list[float] = []
    i = 0
    while i < n:
        for _ in range(BLOCK):
            t0 = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO t (passbook, grams) VALUES (?, ?)", (f"P{i % 200:04d}", i))
            raw.execute("COMMIT")
            raw_ms.append((time.perf_counter() - t0) * 1000)
        for k in range(BLOCK):
            t0 = time.perf_counter()
            ledger.deposit(f"P{(i + k) % 200:04d}", "paper", 500 + (i + k) % 1000)
            dep_ms.append((time.perf_counter() - t0) * 1000)
        i += BLOCK
    raw.close()
    ledger.close()
    return {
        "raw_p50": statistics.median(raw_ms),
        "raw_p99": _pct(raw_ms, 99),
        "dep_p50": statistics.median(dep_ms),
        "dep_p99": _pct(dep_ms, 99),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ledger_commit")
    ap.add_argument("--n", type=int, default=2000, help="commits of each kind")
    ap.add_argument("--rounds", type=int, default=1, help="rounds on fresh files (default 1)")
    ap.add_argument(
        "--dir",
        help="folder on the disk to measure (default: a temp folder "
        "beside this checkout, not /tmp which may be RAM)",
    )
    args = ap.parse_args(argv)
    base = Path(args.dir) if args.dir else Path(__file__).resolve().parents[1]
    ratios: list[tuple[float, float]] = []
    for _ in range(max(1, args.rounds)):
        with tempfile.TemporaryDirectory(dir=base, prefix=".bench-") as tmp:
            r = run(args.n, Path(tmp))
        ratios.append(_report(args.n, r))
    if len(ratios) > 1:
        p50 = statistics.median(x for x, _ in ratios)
        p99 = statistics.median(y for _, y in ratios)
        print(
            f"median of {len(ratios)} rounds: p50 {p50:.2f}×, p99 {p99:.2f}× "
            f"(goal p99 ≤ {GOAL}×: {'met' if p99 <= GOAL else 'NOT met'})"
        )
    return 0


def _report(n: int, r: dict[str, float]) -> tuple[float, float]:
    ratio50 = r["dep_p50"] / r["raw_p50"]
    ratio99 = r["dep_p99"] / r["raw_p99"]
    print(f"ledger commit latency, {n} commits each (ms)")
    print(f"  {'':22}{'p50':>9}{'p99':>9}")
    print(f"  {'raw durable insert':22}{r['raw_p50']:9.3f}{r['raw_p99']:9.3f}")
    print(f"  {'Ledger.deposit':22}{r['dep_p50']:9.3f}{r['dep_p99']:9.3f}")
    print(
        f"  ratio deposit/raw: p50 {ratio50:.2f}×, p99 {ratio99:.2f}× "
        f"(goal p99 ≤ {GOAL}×: {'met' if ratio99 <= GOAL else 'NOT met'})"
    )
    return ratio50, ratio99


if __name__ == "__main__":
    raise SystemExit(main())
