"""CPU seconds and peak memory of the benches' processes, read from /proc: central's
workers (with their log sequencers), the brokers, PostgreSQL's server processes."""

from __future__ import annotations

import os
from pathlib import Path


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
    """Peak resident memory of process `pid` plus that of its child processes (a
    RabbitMQ node's Erlang VM runs under its start script)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return float("nan")
    own = next((int(x.split()[1]) / 1024 for x in lines if x.startswith("VmHWM:")), 0.0)
    return own + sum(peak_rss_mb(int(k)) for k in kids)
