"""Child process for the durability test: makes deposits as fast as it can and
prints each one's seq and entry id only after its commit returned."""

from __future__ import annotations

import sys

from edge.ledger.clock import SystemClock
from edge.ledger.ledger import Ledger


def main(path: str) -> None:
    clock = SystemClock()
    with Ledger.open(path, clock) as ledger:
        n = 0
        while True:
            n += 1
            # many villagers, so cooldown and daily caps never refuse
            e = ledger.deposit(f"P-{n % 500:04d}", "paper", 200 + n % 1000)
            sys.stdout.write(f"{e.seq} {e.entry_id}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
