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
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.proc_stats import cpu_s, peak_rss_mb
from bench.sync_drain import PROFILE_ENV
from bench.waits import BenchError, log_tail, stop_process
from devkit.mqtt_broker import Broker
from devkit.rabbit_cluster import RabbitCluster

RESTART_AFTER_S = 1.0  # systemd's RestartSec for a worker that died


class Workers:
    """`n` central workers, `--worker-id` 1 … n, each logging to its own file;
    `central_args(worker)` are its other flags."""

    def __init__(self, n: int, folder: Path, central_args: Callable[[int], list[str]]) -> None:
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
                [*python, "-m", "greenpass.cli", "central", *self.args(worker),
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
        self.killed.append(
            f"worker {worker} SIGKILLed {when}, started again {RESTART_AFTER_S:.0f} s later"
        )
        time.sleep(RESTART_AFTER_S)
        self.procs[worker - 1] = self._start(worker)

    def cpu_s(self) -> float:
        return self.dead_cpu_s + sum(cpu_s(p.pid) for p in self.procs)

    def peak_rss_mb(self) -> float:
        return max([self.dead_rss_mb, *(peak_rss_mb(p.pid) for p in self.procs)])

    def stop(self) -> None:
        for i, proc in enumerate(self.procs, start=1):
            stop_process(proc, f"central worker {i}", timeout_s=30)


@dataclass
class Site:
    """Where the storm's kiosks connect and how central's workers reach it: one
    Mosquitto (MQTT 5, the shared subscription), or a three-node RabbitMQ cluster
    (kiosks spread over the nodes on MQTT 3.1.1, workers on its quorum queues over
    AMQP, docs/scale.md)."""

    broker: AbstractContextManager[Any]
    ca_cert: Path
    kiosk_urls: list[str]
    mqtt_version: str
    central_args: Callable[[int], list[str]]  # for worker n
    pids: Callable[[], list[int]]  # the broker's processes
    nodes: RabbitCluster | None = None
    killed: list[str] = field(default_factory=list)

    @classmethod
    def mosquitto(cls, folder: Path, users: list[tuple[str, str]]) -> Site:
        b = Broker(folder / "broker", users)
        return cls(
            b, b.ca_cert, [b.url], "5",
            lambda _n: ["--broker", b.url, "--ca", str(b.ca_cert)],
            lambda: [b.pid] if b.pid else [],
        )  # fmt: skip

    @classmethod
    def rabbit(cls, folder: Path, users: list[tuple[str, str]]) -> Site:
        c = RabbitCluster(folder / "cluster", dict(users))
        urls = [c.mqtt_url(n) for n in range(1, len(c.nodes) + 1)]
        amqp = [f"amqp://127.0.0.1:{node.amqp_port}" for node in c.nodes]

        def central_args(worker: int) -> list[str]:
            first = (worker - 1) % len(amqp)  # worker n starts at node n
            mine = amqp[first:] + amqp[:first]
            return ["--broker", urls[0], "--ca", str(c.ca_cert),
                    *(x for u in mine for x in ("--amqp", u))]  # fmt: skip

        return cls(c, c.ca_cert, urls, "3.1.1", central_args, c.pids, nodes=c)

    def kill_and_restart(self, node: int, when: str) -> None:
        """SIGKILL a cluster node, then start it again (its kiosks reconnect to it)."""
        assert self.nodes is not None
        t0 = time.perf_counter()
        self.nodes.kill(node)
        self.nodes.start(node)
        self.killed.append(
            f"node {node} SIGKILLed {when}, serving again {time.perf_counter() - t0:.0f} s later"
        )

    def __enter__(self) -> Site:
        self.broker.__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.broker.__exit__(t, e, tb)
