"""Bytes on the wire per deposit entry in full sync batches, beside naive JSON.

A kiosk with 200 villagers makes a day's worth of deposits (random categories
and weights, one to ninety seconds apart); the outbox is cut into full batches
exactly as the uplink does (`sync.protocol.encode_batch`: ≤ 500 entries, ≤ 64 KiB),
and the signed, compressed MQTT payloads are measured. Baseline: each entry as
plain JSON with its hash, the way a generic gateway would forward rows.
Goal: ≤ 60 B per deposit.

    python -m bench.sync_wire [--entries 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from bench.waits import BenchError
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.errors import Refused
from greenpass.record.rules import default_rules
from sync import protocol as p
from sync.keys import generate_key

GOAL = 60
MAX_REFUSED_IN_A_ROW = 1000
CATEGORIES = ("paper", "cardboard", "plastic_pet", "plastic_hdpe", "metal", "glass")


def fill(path: Path, entries: int, seed: int = 7) -> Ledger:
    rng = random.Random(seed)
    clock = FixedClock()
    led = Ledger.create(path, device_id="K0001", village="V1", rules=default_rules(), clock=clock)
    led.add_staff("S1", name="Bench", role="admin", pin="2468")
    people = [led.enrol(f"Household {n}", staff_id="S1").passbook_id or "" for n in range(200)]
    refused = 0
    while led.head()[0] < entries + 200:
        clock.advance(rng.randint(1_000, 90_000))
        try:
            led.deposit(rng.choice(people), rng.choice(CATEGORIES), rng.randint(300, 8000))
            refused = 0
        except Refused as exc:  # caps and cooldowns, as at a real kiosk
            refused += 1
            if refused >= MAX_REFUSED_IN_A_ROW:  # rules that refuse everything: never full
                raise BenchError(
                    f"making deposits: {refused} refused in a row at {led.head()[0] - 200} "
                    f"of {entries}, the last: {exc.code} ({exc})"
                ) from exc
    return led


def run(entries: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        led = fill(Path(tmp) / "k.db", entries)
        key = generate_key()
        wire = naive = count = 0
        after = 200  # the enrolments: measure deposits only
        while True:
            rows = led.outbox.read(after, p.MAX_ENTRIES)
            if len(rows) < p.MAX_ENTRIES:
                break  # full batches only
            payload, n = p.encode_batch("K0001", rows, led.outbox.hash_at(after) or b"", key, 0)
            wire += len(payload)
            naive += sum(len(json.dumps({**e.fields(), "h": h.hex()})) for e, h in rows[:n])
            count += n
            after = rows[n - 1][0].seq
        led.close()
    return {"entries": count, "wire": wire / count, "naive": naive / count}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sync_wire")
    ap.add_argument("--entries", type=int, default=5000, help="deposits to make and send")
    args = ap.parse_args(argv)
    r = run(args.entries)
    print(f"bytes on the wire per deposit, {r['entries']:.0f} deposits in full batches")
    print(f"  naive JSON per entry     {r['naive']:8.1f}")
    print(f"  signed compact batch     {r['wire']:8.1f}")
    ok = r["wire"] <= GOAL
    print(
        f"  ratio {r['wire'] / r['naive']:.3f} of naive (goal ≤ {GOAL} B: "
        f"{'met' if ok else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
