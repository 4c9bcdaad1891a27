"""The reconnect storm's central side (`bench.sync_storm`): one or more `greenpass
central` workers on one database and broker (the MQTT v5 shared subscription hands
each batch to one of them), one of them maybe SIGKILLed mid-storm and started again
as systemd's `Restart=always` would; and the CPU and memory the storm's processes use.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.sync_drain import PROFILE_ENV
from bench.waits import BenchError, log_tail, stop_process

RESTART_AFTER_S = 1.0  # systemd's RestartSec for a worker that died


class Workers:
    """`n` central workers, `--worker-id` 1 … n, each logging to its own file."""

    def __init__(self, n: int, folder: Path, central_args: list[str]) -> None:
        self.folder, self.args = folder, central_args
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dead_cpu_s = 0.0  # of workers killed: their CPU no longer shows in /proc
        self.dead_rss_mb = 0.0
        self.killed: list[str] = []
        for i in range(1, n + 1):
            self.procs.append(self._start(i))

    def _log(self, worker: int) -> Path:
        return self.folder / f"central-{worker}.log"

    def _start(self, worker: int) -> subprocess.Popen[bytes]:
        # Under PROFILE_ENV, every thread of central writes its cProfile there.
        profile = os.environ.get(PROFILE_ENV)
        python = [
            sys.executable,
            *(["-m", "bench.profiled", f"{profile}/worker-{worker}"] if profile else []),
        ]
        with self._log(worker).open("ab") as log:
            return subprocess.Popen(
                [*python, "-m", "greenpass.cli", "central", *self.args,
                 "--worker-id", str(worker)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def check(self, progress: str) -> None:
        for i, proc in enumerate(self.procs, start=1):
            if proc.poll() is not None:
                raise BenchError(
                    f"central worker {i} exited with code {proc.returncode} during the storm "
                    f"({progress}):\n{log_tail(self._log(i))}"
                )

    def kill_and_restart(self, worker: int, when: str) -> None:
        """SIGKILL `worker` (1-based) with no warning, then start it again."""
        proc = self.procs[worker - 1]
        self.dead_cpu_s += cpu_s(proc.pid)
        self.dead_rss_mb = max(self.dead_rss_mb, peak_rss_mb(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        self.killed.append(f"worker {worker} SIGKILLed {when}")
        time.sleep(RESTART_AFTER_S)
        self.procs[worker - 1] = self._start(worker)

    def cpu_s(self) -> float:
        return self.dead_cpu_s + sum(cpu_s(p.pid) for p in self.procs)

    def peak_rss_mb(self) -> float:
        return max([self.dead_rss_mb, *(peak_rss_mb(p.pid) for p in self.procs)])

    def stop(self) -> None:
        for i, proc in enumerate(self.procs, start=1):
            stop_process(proc, f"central worker {i}", timeout_s=30)


def cpu_s(pid: int | None, *, children: bool = True) -> float:
    """User + system CPU seconds of process `pid` (all its threads), so far, and with
    `children` of its child processes still running (central's log sequencer)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if children else []
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_s(int(k)) for k in kids)


def postgres_cpu_s() -> float:
    """CPU seconds so far of every PostgreSQL server process on this machine (the
    storm's backends do the inserts: their CPU is central's cost too)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text.split(" (", 1)[1].rsplit(")", 1)
        if name == "postgres":
            fields = rest.split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def peak_rss_mb(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
