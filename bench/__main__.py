"""`python -m bench` (or `make bench`): every benchmark, each against its raw
baseline measured in the same run."""

from __future__ import annotations

import importlib
import sys
import time

from bench.waits import BenchError

BENCHMARKS = ("bench.ledger_commit", "bench.camera_loop", "bench.sync_wire", "bench.kiosk")


def main() -> int:
    worst = 0
    t0 = time.monotonic()
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            worst = max(worst, importlib.import_module(name).main([]))
        except BenchError as exc:
            # One benchmark that cannot finish must not cost the others their figures.
            print(f"FAILED: {exc}", flush=True)
            worst = max(worst, 1)
        print(f"({name} took {time.monotonic() - started:.0f} s)")
        print(flush=True)
    print(f"all benchmarks: {time.monotonic() - t0:.0f} s")
    return worst


if __name__ == "__main__":
    sys.exit(main())
