"""Reconnect storm: a thousand kiosks come back at once after a power cut.

`--kiosks` (default 1,000) simulated kiosks, each with `--entries` (default 100)
signed, hash-chained entries unsynced, all start connecting at the same moment
to one broker (the project's Mosquitto config, TLS) and one central process
(`greenpass central`) on PostgreSQL. Each simulated kiosk is light — a thread
with the real `sync.transport.Transport` and a precomputed batch, no ledger
file — but speaks exactly what a kiosk speaks: connect (jittered backoff on
refusal), subscribe to its ack, publish, resend on ack timeout, done on `ok`.

Printed: time until every kiosk holds an `ok` for its last entry, entries lost
or duplicated centrally (must be 0), and central's peak RSS (goal < 500 MB).

    python -m bench.sync_storm [--kiosks 1000] [--entries 100] [--pg URL] [--sqlite]
"""

from __future__ import annotations

import argparse
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.sync_drain import PG_DEFAULT, fresh_pg
from bench.waits import BenchError, log_tail, stop_process, wait_until
from devkit.mqtt_broker import Broker
from greenpass.errors import TransportError
from greenpass.record.entries import GENESIS_H, Entry, Kind, chain_hash
from greenpass.record.ids import uuid7
from greenpass.record.personal import PERSONAL_KEY, commitment, household_fields
from sync import protocol as p
from sync.keys import Ed25519PrivateKey, generate_key, public_bytes, save_private_key
from sync.transport import Backoff, BrokerConfig, Transport

GOAL_RSS_MB = 500
STORM_TIMEOUT_S = 1800.0
T0 = 1_764_000_000_000


# Enrol data version 2 (greenpass.record.personal): a commitment, the name kept beside the chain.
HOUSEHOLD = commitment(household_fields("H"), bytes(16))


def entries_for(device: str, village: str, n: int) -> list[tuple[Entry, bytes]]:
    out: list[tuple[Entry, bytes]] = []
    prev = GENESIS_H
    passbook = f"{device}-00001"
    for seq in range(1, n + 1):
        e = Entry(
            device_id=device,
            seq=seq,
            entry_id=str(uuid7(T0 + seq * 60_000)),
            kind=Kind.ENROL if seq == 1 else Kind.DEPOSIT,
            wall_ms=T0 + seq * 60_000,
            clock_ok=True,
            boot_id="b0",
            mono_ms=seq * 60_000,
            passbook_id=passbook,
            staff_id="S1" if seq == 1 else None,
            category=None if seq == 1 else "paper",
            grams=None if seq == 1 else 1000,
            points=0 if seq == 1 else 10,
            co2e_g=0 if seq == 1 else 3913,
            rules_version=None if seq == 1 else "r1",
            data={PERSONAL_KEY: HOUSEHOLD, "village": village} if seq == 1 else {},
        )
        prev = chain_hash(prev, e)
        out.append((e, prev))
    return out


class SimKiosk(threading.Thread):
    def __init__(
        self, broker: BrokerConfig, key: Ed25519PrivateKey, rows: list[tuple[Entry, bytes]]
    ) -> None:
        super().__init__(daemon=True, name=f"sim-{broker.username}")
        self.cfg = broker
        self.payload, n = p.encode_batch(broker.username, rows, GENESIS_H, key, T0)
        assert n == len(rows)
        self.last_seq = rows[-1][0].seq
        self.done = threading.Event()
        self.connects = self.resends = 0
        self.stop = threading.Event()

    def run(self) -> None:
        backoff = Backoff(0.5, 30)
        while not self.stop.is_set() and not self.done.is_set():
            t = Transport(self.cfg)
            try:
                t.connect(timeout_s=30)
                self.connects += 1
                t.subscribe(p.topic(self.cfg.username, p.ACK), timeout_s=30)
                while not self.done.is_set() and not self.stop.is_set():
                    t.publish_nowait(p.topic(self.cfg.username, p.BATCH), self.payload)
                    try:
                        msg = t.inbox.get(timeout=60)
                    except queue.Empty:
                        self.resends += 1
                        continue
                    ack = p.decode_ack(msg.payload)
                    if ack.status == "ok" and ack.acked_seq >= self.last_seq:
                        self.done.set()
            except TransportError:
                pass
            finally:
                t.close()
            if not self.done.is_set():
                self.stop.wait(backoff.next_delay())


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    from central.store import CentralStore  # noqa: PLC0415

    ap = argparse.ArgumentParser(prog="python -m bench.sync_storm")
    ap.add_argument("--kiosks", type=int, default=1000)
    ap.add_argument("--entries", type=int, default=100, help="unsynced entries per kiosk")
    ap.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL")
    ap.add_argument("--sqlite", action="store_true", help="central on SQLite instead")
    args = ap.parse_args(argv)
    threading.stack_size(512 * 1024)
    base = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(dir=base, prefix=".bench-") as tmp:
        folder = Path(tmp)
        url = str(folder / "central.db") if args.sqlite else fresh_pg(args.pg)
        if url is None:
            return 1
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
                sims.append((device, enrolment.mqtt_password, key, village))
        where = "SQLite" if args.sqlite else "PostgreSQL"
        setup_s = time.perf_counter() - t_setup
        print(f"reconnect storm: {args.kiosks} kiosks × {args.entries} entries, central on")
        print(f"  {where} (enrolment and setup {setup_s:.0f} s)")
        kiosks: list[SimKiosk] = []
        central_log = folder / "central.log"
        with Broker(folder / "broker", users) as broker:
            with central_log.open("ab") as log:
                central = subprocess.Popen(
                    [sys.executable, "-m", "greenpass.cli", "central", "--db", url, "--home",
                     str(home), "--broker", broker.url, "--ca", str(broker.ca_cert)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip

            def progress() -> str:
                done = sum(k.done.is_set() for k in kiosks)
                resends = sum(k.resends for k in kiosks)
                return f"{done} of {len(kiosks)} kiosks acked in full, {resends} resends so far"

            def all_acked() -> bool | None:
                if central.poll() is not None:
                    raise BenchError(
                        f"central exited with code {central.returncode} during the storm "
                        f"({progress()}):\n{log_tail(central_log)}"
                    )
                return True if all(k.done.is_set() for k in kiosks) else None

            try:
                time.sleep(2)
                kiosks = [
                    SimKiosk(
                        BrokerConfig(broker.url, d, pw, f"gp-{d}", broker.ca_cert),
                        key,
                        entries_for(d, v, args.entries),
                    )
                    for d, pw, key, v in sims
                ]
                t0 = time.perf_counter()
                for k in kiosks:
                    k.start()
                wait_until(
                    all_acked,
                    timeout_s=STORM_TIMEOUT_S,
                    what="ok from central for every kiosk's last entry",
                    seen=progress,
                    every_s=0.1,
                )
                elapsed = time.perf_counter() - t0
                rss = peak_rss_mb(central.pid)
            finally:
                for k in kiosks:
                    k.stop.set()
                stop_process(central, "greenpass central", timeout_s=30)
        with CentralStore.open(url) as store:
            stored = store.count_entries()
        want = args.kiosks * args.entries
        done = sum(k.done.is_set() for k in kiosks)
        lost, dup = max(0, want - stored), max(0, stored - want)
        connects = sum(k.connects for k in kiosks)
        resends = sum(k.resends for k in kiosks)
        verdict = "met" if rss < GOAL_RSS_MB else "NOT met"
        print(f"  all acked in        {elapsed:8.1f} s ({done}/{args.kiosks} kiosks done)")
        print(f"  entries stored      {stored} of {want} (lost {lost}, duplicated {dup})")
        print(f"  connects {connects}, resends {resends}")
        print(f"  central peak RSS    {rss:8.0f} MB (goal < {GOAL_RSS_MB} MB: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
