"""`python -m bench` (or `make bench`): every benchmark, each against its raw
baseline measured in the same run."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("bench.ledger_commit", "bench.camera_loop", "bench.sync_wire", "bench.kiosk")


def main() -> int:
    worst = 0
    for name in BENCHMARKS:
        print(f"== {name}")
        worst = max(worst, importlib.import_module(name).main([]))
        print()
    return worst


if __name__ == "__main__":
    sys.exit(main())
