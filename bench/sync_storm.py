"""Reconnect storm: a thousand kiosks come back at once after a power cut.

`--kiosks` (default 1,000) simulated kiosks, each with `--entries` (default 100)
signed, hash-chained entries unsynced, all start connecting at the same moment
to one broker (the project's Mosquitto config, TLS) and one central process
(`greenpass central`) on PostgreSQL. The kiosks (`bench.storm_kiosks`) hold a
precomputed batch and no ledger file, but speak exactly what a kiosk speaks: its
paho client, connect (jittered backoff on refusal), subscribe to its ack, publish,
resend on ack timeout, done on `ok`.

Printed: time until every kiosk holds an `ok` for its last entry, entries lost
or duplicated centrally (must be 0), and central's peak RSS (goal < 500 MB). And
where the time goes: per phase (connect: until every kiosk has subscribed to its
ack; sync: until the last ack), the CPU seconds of this load generator, of central
and of the broker, beside the phase's wall time: a process using ~1 CPU second per
second of a phase is the bottleneck there, and if none is, the storm is waiting.

    python -m bench.sync_storm [--kiosks 1000] [--entries 100] [--pg URL] [--sqlite]
                               [--generators 4]

With GREENPASS_BENCH_PROFILE=FOLDER, central runs under cProfile (`bench.profiled`).

The kiosks are spread over `--generators` processes, each running its share on one
asyncio loop (paho with no network thread): a thread per kiosk took half of two
cores for a thousand kiosks and thrashed the machine at ten thousand.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import queue
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.proc_stats import cpu_s, peak_rss_mb, postgres_cpu_s
from bench.storm_central import Site, Workers
from bench.storm_kiosks import T0, generate
from bench.sync_drain import PG_DEFAULT, drop_pg, fresh_pg
from bench.waits import BenchError, StatesSeen, wait_until
from sync.keys import generate_key, public_bytes, save_private_key
from sync.transport import BrokerConfig

GOAL_RSS_MB = 500
GOAL_RATE = 10_000  # entries/s until all acked (issue 15)
STORM_TIMEOUT_S = 1800.0


class Fleet:
    """The parent's view of every generator's kiosks, from their events."""

    def __init__(self, events: Any, n: int) -> None:
        self.events, self.n = events, n
        self.connected: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.counts: dict[str, tuple[int, int]] = {}  # connects, resends
        self.refused = ""
        self.ready = 0

    def drain(self) -> None:
        while True:
            try:
                what, name, t, detail = self.events.get_nowait()
            except queue.Empty:
                return
            if what == "ready":
                self.ready += 1
            elif what == "sub":
                self.connected[name] = t
            elif what == "ack":
                self.acked[name] = t
                connects, resends = detail.split()
                self.counts[name] = (int(connects), int(resends))
            elif what == "refused":
                self.refused = f"central rejected {name}'s batch: {detail}"

    def all_ready(self, generators: int) -> bool:
        self.drain()
        return self.ready == generators

    def progress(self) -> str:
        self.drain()
        return (
            f"{len(self.connected)} of {self.n} kiosks subscribed, {len(self.acked)} acked in full"
        )


class CpuClock:
    """CPU seconds of the load generator (this process without its children, which
    include central and the broker, plus the generator processes), central's workers,
    the database server (PostgreSQL's processes) and the broker at each mark, and the
    wall time between marks."""

    COLUMNS = ("generator", "central", "database", "broker")

    def __init__(
        self,
        generators: list[int],
        workers: Workers,
        broker: Callable[[], list[int]],
        postgres: bool,
    ) -> None:
        self.generators, self.workers, self.broker = generators, workers, broker
        self.postgres = postgres
        self.marks: list[tuple[str, float, dict[str, float]]] = []
        self.mark("start")

    def mark(self, name: str) -> None:
        cpu = {
            "generator": cpu_s(os.getpid(), children=False)
            + sum(cpu_s(g) for g in self.generators),
            "central": self.workers.cpu_s(),
            "database": postgres_cpu_s() if self.postgres else float("nan"),
            "broker": sum(cpu_s(pid) for pid in self.broker()),
        }
        self.marks.append((name, time.perf_counter(), cpu))

    def lines(self) -> list[str]:
        out = ["  phase      wall s   CPU s: generator  central database   broker  (2 cores)"]
        for (_, t0, c0), (name, t1, c1) in zip(self.marks, self.marks[1:], strict=False):
            # The database column is "-" on SQLite: central's own threads do its work.
            cpu = "".join(
                f" {c1[k] - c0[k]:8.1f}" if not math.isnan(c1[k]) else f" {'-':>8}"
                for k in self.COLUMNS[1:]
            )
            out.append(
                f"  {name:<9} {t1 - t0:7.1f}   {c1['generator'] - c0['generator']:15.1f}{cpu}"
            )
        return out


def main(argv: list[str] | None = None) -> int:
    from central.store import CentralStore  # noqa: PLC0415

    ap = argparse.ArgumentParser(prog="python -m bench.sync_storm")
    ap.add_argument("--kiosks", type=int, default=1000)
    ap.add_argument("--entries", type=int, default=100, help="unsynced entries per kiosk")
    ap.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL")
    ap.add_argument("--sqlite", action="store_true", help="central on SQLite instead")
    ap.add_argument(
        "--generators", type=int, default=4,
        help="load-generator processes the kiosks are spread over (4)",
    )  # fmt: skip
    ap.add_argument(
        "--workers", type=int, default=1,
        help="central workers on the shared subscription (1)",
    )  # fmt: skip
    ap.add_argument(
        "--kill-worker", type=float, metavar="SHARE",
        help="SIGKILL worker 1 once this share of the kiosks (0-1) are acked, and start "
        "it again a second later, as systemd would",
    )  # fmt: skip
    ap.add_argument(
        "--cluster", action="store_true",
        help="a three-node RabbitMQ cluster instead of one Mosquitto: kiosks spread over "
        "its nodes (MQTT 3.1.1), central's workers consuming its queues over AMQP",
    )  # fmt: skip
    ap.add_argument(
        "--kill-node", type=float, metavar="SHARE",
        help="with --cluster: SIGKILL node 2 once this share of the kiosks (0-1) are "
        "acked, and start it again",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.kill_node is not None and not args.cluster:
        ap.error("--kill-node needs --cluster")
    base = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(dir=base, prefix=".bench-") as tmp, ExitStack() as cleanup:
        folder = Path(tmp)
        url = str(folder / "central.db") if args.sqlite else fresh_pg(args.pg)
        if url is None:
            return 1
        if not args.sqlite:
            cleanup.callback(drop_pg, args.pg, url)  # a run's database is not left behind
        home = folder / "home"
        home.mkdir()
        (home / "central.password").write_text("central-pw\n")
        central_key = generate_key()
        save_private_key(home / "central.key", central_key)
        users = [("central", "central-pw")]
        sims = []
        t_setup = time.perf_counter()
        with CentralStore.open(url) as store:
            for i in range(args.kiosks):
                device, village = f"S{i:05d}", f"V{i % 20:02d}"
                store.create_village(village)
                key = generate_key()
                token = store.create_enrol_token(device, village, T0, ttl_s=10**9, actor="bench")
                enrolment = store.enrol(token, device, public_bytes(key), T0)
                users.append((device, enrolment.mqtt_password))
                sims.append((device, enrolment.mqtt_password, key.private_bytes_raw(), village))
        where = "SQLite" if args.sqlite else "PostgreSQL"
        setup_s = time.perf_counter() - t_setup
        print(f"reconnect storm: {args.kiosks} kiosks × {args.entries} entries, central on")
        print(f"  {where} (enrolment and setup {setup_s:.0f} s), kiosks spread over")
        print(f"  {args.generators} load-generator processes, {args.workers} central worker(s)")
        print(
            "  broker: a three-node RabbitMQ cluster (MQTT 3.1.1, central over AMQP)"
            if args.cluster
            else "  broker: one Mosquitto (MQTT 5)"
        )
        ctx = multiprocessing.get_context("spawn")
        events, start, stop = ctx.Queue(), ctx.Event(), ctx.Event()
        fleet = Fleet(events, args.kiosks)
        with ExitStack() as on_site:
            site = on_site.enter_context(
                Site.rabbit(folder, users) if args.cluster else Site.mosquitto(folder, users)
            )
            common = ["--db", url, "--home", str(home)]
            # Subscribed before the workers start, to see each one's connect-time push.
            device, password = sims[0][0], sims[0][1]
            probe_cfg = BrokerConfig(
                site.kiosk_urls[0], device, password, f"gp-{device}", site.ca_cert,
                mqtt_version=site.mqtt_version,
            )  # fmt: skip
            probe = on_site.enter_context(StatesSeen(probe_cfg))
            workers = Workers(args.workers, folder, lambda n: [*common, *site.central_args(n)])
            cleanup.callback(workers.stop)

            def check() -> None:
                fleet.drain()
                workers.check(fleet.progress())
                if fleet.refused:
                    raise BenchError(fleet.refused)

            def all_subscribed() -> bool | None:
                check()
                return True if len(fleet.connected) == args.kiosks else None

            def all_acked() -> bool | None:
                check()
                acked = len(fleet.acked)
                kill = args.kill_worker
                if kill is not None and not workers.killed and acked >= kill * args.kiosks:
                    when = f"at {acked} of {args.kiosks} kiosks acked"
                    workers.kill_and_restart(1, when)
                kill = args.kill_node
                if kill is not None and not site.killed and acked >= kill * args.kiosks:
                    site.kill_and_restart(2, f"at {acked} of {args.kiosks} kiosks acked")
                return True if acked == args.kiosks else None

            cfg = BrokerConfig("", "", "", "", site.ca_cert, mqtt_version=site.mqtt_version)
            urls = site.kiosk_urls
            placed = [(*sim, urls[i % len(urls)]) for i, sim in enumerate(sims)]
            gens = max(1, min(args.generators, args.kiosks))
            procs = [
                ctx.Process(
                    target=generate, args=(cfg, placed[g::gens], args.entries, start, stop, events),
                    name=f"storm-generator-{g}",
                )
                for g in range(gens)
            ]  # fmt: skip
            try:
                for proc in procs:
                    proc.start()
                wait_until(
                    lambda: True if fleet.all_ready(gens) else None,
                    timeout_s=600,
                    what="the generators' batches signed",
                    seen=fleet.progress,
                )
                wait_until(
                    lambda: True if probe.count >= args.workers else None,
                    timeout_s=120,
                    what=f"every central worker subscribed ({args.workers})",
                    seen=lambda: f"{probe.count} workers' states seen",
                )
                probe.close()
                clock = CpuClock(
                    [proc.pid for proc in procs if proc.pid], workers, site.pids, not args.sqlite
                )
                t0 = time.perf_counter()
                start.set()
                wait_until(
                    all_subscribed,
                    timeout_s=STORM_TIMEOUT_S,
                    what="every kiosk connected and subscribed",
                    seen=fleet.progress,
                    every_s=0.1,
                )
                clock.mark("connect")
                wait_until(
                    all_acked,
                    timeout_s=STORM_TIMEOUT_S,
                    what="ok from central for every kiosk's last entry",
                    seen=fleet.progress,
                    every_s=0.1,
                )
                elapsed = time.perf_counter() - t0
                clock.mark("sync")
                rss = workers.peak_rss_mb()
                broker_rss = max((peak_rss_mb(pid) for pid in site.pids()), default=float("nan"))
            finally:
                stop.set()
                for proc in procs:
                    proc.join(30)
                    if proc.is_alive():
                        proc.kill()
                workers.stop()
        with CentralStore.open(url) as store:
            stored = store.count_entries()
        want = args.kiosks * args.entries
        done = len(fleet.acked)
        lost, dup = max(0, want - stored), max(0, stored - want)
        connects = sum(c for c, _ in fleet.counts.values())
        resends = sum(r for _, r in fleet.counts.values())
        verdict = "met" if rss < GOAL_RSS_MB else "NOT met"
        print(f"  all acked in        {elapsed:8.1f} s ({done}/{args.kiosks} kiosks done)")
        print(f"  entries stored      {stored} of {want} (lost {lost}, duplicated {dup})")
        print(f"  connects {connects}, resends {resends}")
        for line in [*workers.killed, *site.killed]:
            print(f"  {line}")
        print(
            f"  central peak RSS    {rss:8.0f} MB (goal < {GOAL_RSS_MB} MB: {verdict}; per worker)"
        )
        print(f"  broker peak RSS     {broker_rss:8.0f} MB{' (per node)' if args.cluster else ''}")
        rate = stored / elapsed if elapsed > 0 else 0.0
        met = "met" if rate >= GOAL_RATE and lost == dup == 0 else "NOT met"
        print(f"  throughput          {rate:8.0f} entries/s (goal >= {GOAL_RATE:,}: {met})")
        print("\n".join(clock.lines()))
        for what, times in (
            ("connected", [t - t0 for t in fleet.connected.values()]),
            ("acked", [t - t0 for t in fleet.acked.values()]),
        ):
            q = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
            print(
                f"  kiosks {what:<9} s after the start: median {statistics.median(times):.1f}, "
                f"90 % by {q[-1]:.1f}, last {max(times):.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
