"""Run a module with every thread under cProfile, for a benchmark's child process.

`python -m cProfile` sees only the main thread, and central ingests on its
receiver's thread. This wraps `threading.Thread.run`, so each thread started after
it writes `<folder>/<thread name>.prof` when it ends (the main thread writes
`main.prof`); read them with `python -m pstats`.

    python -m bench.profiled FOLDER -m greenpass.cli central …
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import threading
from pathlib import Path


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "-m":
        raise SystemExit("usage: python -m bench.profiled FOLDER -m MODULE [ARG …]")
    folder, module = Path(argv[0]), argv[2]
    folder.mkdir(parents=True, exist_ok=True)
    plain_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        prof = cProfile.Profile()
        try:
            prof.runcall(plain_run, self)
        finally:
            prof.dump_stats(folder / f"{self.name}.prof")

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    sys.argv = [module, *argv[3:]]
    prof = cProfile.Profile()
    try:
        prof.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        prof.dump_stats(folder / "main.prof")


if __name__ == "__main__":
    main(sys.argv[1:])
