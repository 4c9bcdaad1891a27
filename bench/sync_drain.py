"""Backlog drain: a kiosk that was offline for a long time comes back online.

A kiosk ledger holds `--entries` (default 100,000) unsynced deposits. A real
Mosquitto (the project's config, TLS) and a real central process (`greenpass
central`, SQLite, then PostgreSQL if reachable) run; the kiosk's uplink starts and
the clock runs until central has acknowledged the last entry. Printed: entries/s,
against the raw baseline measured in the same run on the same database — the same
rows inserted straight into a table of the same shape in 500-row durable
transactions (no network, no signature, no chain: the least storing them can cost);
on PostgreSQL the faster of psycopg's executemany and binary COPY, as a fast client
would write, never SQLite's figure.
Goal: ≥ 20,000 entries/s and ≥ 60 % of raw (issue 15). Each database is drained twice, with
central's transparency log (the default) and with `--no-log`: the log may cost at most
10 % of drain throughput (issue 13), and the bench prints how long after the last ack
a signed checkpoint covered every entry.

"The same shape" is central's own `entries` table (its DDL from `central.db`: the
same columns, primary key, unique entry id, indexes, check and foreign key, with
foreign keys enforced as central has them) and the same values per row that
central stores (`sync.batch.ROW_FIELDS`, then the hash, village and time
received). The baseline used to be a 12-column table with only a rowid key
and one unique index: a third of the indexes to maintain, so it measured a
cheaper table than central can ever write to, not central's overhead.

The PostgreSQL run uses a database of its own (`gp_bench_<pid>`), dropped at the
end, also when the run fails.

    python -m bench.sync_drain [--entries 100000] [--pg postgresql://…] [--no-pg | --no-sqlite]
        [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.proc_stats import cpu_s, postgres_cpu_s
from bench.waits import BenchError, StatesSeen, log_tail, stop_process, wait_until
from devkit.mqtt_broker import Broker
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.errors import Refused
from greenpass.record.rules import default_rules
from sync.batch import ROW_FIELDS
from sync.keys import generate_key, public_bytes, save_private_key
from sync.transport import Backoff, BrokerConfig
from sync.uplink import Uplink

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

GOAL_RATE = 20_000
GOAL_SHARE = 0.60  # of the same database's raw batched insert (issue 15)
LOG_COST = 0.10  # the transparency log may cost at most this share of drain throughput
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
DRAIN_TIMEOUT_S = 600.0  # 100,000 entries at a fifth of the goal rate
MAX_REFUSED_IN_A_ROW = 1000
RAW_BATCH = 500  # entries per transaction of the raw baselines: the kiosk's batch size
# A folder: central runs under cProfile (bench.profiled), each drain's profiles and log
# kept in a subfolder of it.
PROFILE_ENV = "GREENPASS_BENCH_PROFILE"


def fill(
    path: Path, entries: int, seed: int = 3, *, device_id: str = "KD", village: str = "V1"
) -> Ledger:
    rng = random.Random(seed)
    clock = FixedClock()
    led = Ledger.create(
        path, device_id=device_id, village=village, rules=default_rules(), clock=clock
    )
    led.store.conn.execute("PRAGMA synchronous=OFF")  # filling only; measured part is central's
    led.add_staff("S1", name="Bench", role="admin", pin="2468")
    people = [led.enrol(f"H{n}", staff_id="S1").passbook_id or "" for n in range(500)]
    cats = ("paper", "cardboard", "plastic_pet", "metal", "glass", "aluminium")
    refused = 0
    while led.head()[0] < entries:
        clock.advance(rng.randint(1_000, 20_000))
        try:
            led.deposit(rng.choice(people), rng.choice(cats), rng.randint(300, 5000))
            refused = 0
        except Refused as exc:  # caps and cooldowns, as at a real kiosk
            refused += 1
            if refused >= MAX_REFUSED_IN_A_ROW:  # rules that refuse everything: never full
                raise BenchError(
                    f"filling the backlog: {refused} deposits refused in a row at "
                    f"{led.head()[0]} of {entries} entries, the last: {exc.code} ({exc})"
                ) from exc
    led.store.conn.execute("PRAGMA synchronous=FULL")
    return led


def raw_rows(led: Ledger) -> list[tuple[object, ...]]:
    """The values per entry that central stores, in its column order
    (`central.ingest_rows.ENTRY_COLUMNS`: the entry's fields, then h, village, received)."""

    def value(e: object, name: str) -> object:
        v = getattr(e, name)
        if name == "kind":
            return v.value
        if name == "data":
            return json.dumps(dict(v), sort_keys=True, ensure_ascii=False)
        return v

    return [(*(value(e, f) for f in ROW_FIELDS), h, "V1", 0) for e, h in led.iter_entries()]


def _entries_ddl(dialect: Dialect) -> list[str]:
    """central's own `entries` table and its indexes, compiled for `dialect`."""
    from sqlalchemy.schema import CreateIndex, CreateTable  # noqa: PLC0415

    from central import db  # noqa: PLC0415 - central's modules, as in drain

    return [
        str(CreateTable(db.entries).compile(dialect=dialect)),
        *(str(CreateIndex(index).compile(dialect=dialect)) for index in db.entries.indexes),
    ]


def raw_rate(rows: list[tuple[object, ...]], folder: Path) -> float:
    """Entries/s of the rows inserted straight into SQLite, RAW_BATCH per transaction."""
    from sqlalchemy.dialects import sqlite  # noqa: PLC0415

    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE devices (device_id VARCHAR(64) PRIMARY KEY)")  # the FK's target
    conn.execute("INSERT INTO devices VALUES (?)", (rows[0][0],))
    for ddl in _entries_ddl(sqlite.dialect()):
        conn.execute(ddl)
    marks = ", ".join("?" * len(rows[0]))
    t0 = time.perf_counter()
    for i in range(0, len(rows), RAW_BATCH):
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO entries VALUES ({marks})", rows[i : i + RAW_BATCH])
        conn.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - t0)
    conn.close()
    return rate


def raw_pg_rate(rows: list[tuple[object, ...]], url: str) -> tuple[float, float]:
    """Entries/s of the rows inserted straight into PostgreSQL, RAW_BATCH per committed
    transaction, as a fast client would: (psycopg's executemany, binary COPY), each into
    a fresh `entries` table of central's DDL. Central's ingest uses COPY."""
    import psycopg  # noqa: PLC0415
    from sqlalchemy import create_mock_engine  # noqa: PLC0415

    from central.ingest_rows import COPY_TYPES  # noqa: PLC0415 - central's column types

    cols = len(rows[0])
    rates = []
    with psycopg.connect(url) as conn:
        for how in ("executemany", "copy"):
            with conn.transaction():
                conn.execute("DROP TABLE IF EXISTS entries, devices")
                conn.execute("CREATE TABLE devices (device_id VARCHAR(64) PRIMARY KEY)")
                conn.execute("INSERT INTO devices VALUES (%s)", (rows[0][0],))
                for ddl in _entries_ddl(create_mock_engine(url, executor=None).dialect):
                    conn.execute(ddl.encode())  # our own DDL
            t0 = time.perf_counter()
            for i in range(0, len(rows), RAW_BATCH):
                with conn.transaction(), conn.cursor() as cur:
                    if how == "copy":
                        with cur.copy("COPY entries FROM STDIN (FORMAT BINARY)") as copy:
                            copy.set_types(COPY_TYPES)
                            for row in rows[i : i + RAW_BATCH]:
                                copy.write_row(row)
                    else:
                        cur.executemany(
                            f"INSERT INTO entries VALUES ({', '.join(['%s'] * cols)})".encode(),
                            rows[i : i + RAW_BATCH],
                        )
            rates.append(len(rows) / (time.perf_counter() - t0))
    return rates[0], rates[1]


def drain(
    source: Path, folder: Path, db_url: str, label: str, *, with_log: bool = True
) -> tuple[float, float | None, dict[str, float]]:
    """Seconds from the uplink's start until central acked the whole backlog (of a fresh
    copy of the filled kiosk ledger, so every run starts with nothing acked), and with
    `with_log`, the seconds after that until a signed checkpoint of the transparency log
    covered every entry (central's sequencer follows ingest a tick behind), and the CPU
    seconds each part used meanwhile (`_cpu`)."""
    from central.store import CentralStore  # noqa: PLC0415 - after the fill, as central would

    home = folder / f"home-{label}"
    home.mkdir()
    (home / "central.password").write_text("central-pw\n")
    central_key = generate_key()
    save_private_key(home / "central.key", central_key)
    kiosk_key = generate_key()
    with CentralStore.open(db_url) as store:
        store.create_village("V1")
        token = store.create_enrol_token("KD", "V1", 0, ttl_s=10**9, actor="bench")
        enrolment = store.enrol(token, "KD", public_bytes(kiosk_key), 0)
    with Broker(folder / f"broker-{label}", [("central", "central-pw")]) as broker:
        broker.add_user("KD", enrolment.mqtt_password)
        profile = os.environ.get(PROFILE_ENV)
        logs = Path(profile) / label if profile else folder
        logs.mkdir(parents=True, exist_ok=True)
        central_log = logs / f"central-{label}.log"
        # Under PROFILE_ENV, every thread of central writes its cProfile to `logs`.
        python = [sys.executable, *(["-m", "bench.profiled", str(logs)] if profile else [])]
        with central_log.open("ab") as log:
            central = subprocess.Popen(
                [*python, "-m", "greenpass.cli", "central", "--db", db_url, "--home",
                 str(home), "--broker", broker.url, "--ca", str(broker.ca_cert),
                 *([] if with_log else ["--no-log"])],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            kiosk_broker = BrokerConfig(
                broker.url, "KD", enrolment.mqtt_password, "gp-KD", broker.ca_cert
            )
            wait_subscribed(kiosk_broker, central, central_log)
            copy = folder / f"kiosk-{label}.db"
            shutil.copyfile(source, copy)
            kiosk = Ledger.open(copy, FixedClock())
            up = Uplink(
                kiosk,
                kiosk_key,
                kiosk_broker,
                central_key=central_key.public_key(),
                window=4,
                poll_s=0.01,
                backoff=Backoff(0.05, 0.5),
            )
            head = kiosk.head()[0]
            # The bench's own read-only connection: polling on the uplink's (as it did
            # until 2026-12-07) queued behind its reads and writes, and the kiosk's CPU
            # then counted a quarter of bench.
            watch = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)

            def acked() -> int:
                return int(watch.execute("SELECT acked_seq FROM outbox WHERE id = 1").fetchone()[0])

            def drained() -> bool | None:
                if central.poll() is not None:
                    raise BenchError(
                        f"{label}: central exited with code {central.returncode} with "
                        f"{acked()} of {head} entries acked:\n"
                        f"{log_tail(central_log)}"
                    )
                return True if acked() >= head else None

            before = _cpu(central.pid, broker.pid, pg=label != "SQLite")
            t0 = time.perf_counter()
            up.start()
            try:
                wait_until(
                    drained,
                    timeout_s=DRAIN_TIMEOUT_S,
                    what=f"ack of the last entry (seq {head}) from central on {label}",
                    seen=lambda: f"central acked up to seq {acked()}",
                    every_s=0.01,  # the drain's own clock: polled finely
                )
                elapsed = time.perf_counter() - t0
                after = _cpu(central.pid, broker.pid, pg=label != "SQLite")
                cpu = {k: after[k] - before[k] for k in after}
                catch_up = logged_after(db_url, head, central, central_log) if with_log else None
            finally:
                up.stop()
                watch.close()
                kiosk.close()
        finally:
            stop_process(central, f"greenpass central ({label})")
    with CentralStore.open(db_url) as store:
        stored = store.count_entries("KD")
    if stored != head:
        raise SystemExit(f"{label}: central holds {stored} entries, the kiosk {head}")
    return elapsed, catch_up, cpu


def _cpu(central: int, broker: int | None, *, pg: bool) -> dict[str, float]:
    """CPU seconds so far of each part of the drain: the kiosk's uplink (this process's
    threads), central (with its log sequencer), the database, the broker."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "kiosk": usage.ru_utime + usage.ru_stime,
        "central": cpu_s(central),
        "database": postgres_cpu_s() if pg else 0.0,  # SQLite's is central's own
        "broker": cpu_s(broker, children=False),
    }


def wait_subscribed(
    kiosk: BrokerConfig, central: subprocess.Popen[bytes], central_log: Path
) -> None:
    """Until central has subscribed to the batches: its state reaching the kiosk says
    so (`StatesSeen`)."""
    with StatesSeen(kiosk) as seen:

        def state() -> bool | None:
            if central.poll() is not None:
                raise BenchError(f"central exited while starting:\n{log_tail(central_log)}")
            return True if seen.count else None

        wait_until(
            state,
            timeout_s=60.0,
            what="central's state pushed to the kiosk (central subscribed)",
            seen=lambda: "no state yet",
        )


def logged_after(
    db_url: str, head: int, central: subprocess.Popen[bytes], central_log: Path
) -> float:
    """Seconds until central's newest checkpoint covers `head` entries."""
    from central import tlog  # noqa: PLC0415
    from central.store import CentralStore  # noqa: PLC0415

    t0 = time.perf_counter()
    with CentralStore.open(db_url) as store:

        def covered() -> bool | None:
            if central.poll() is not None:
                raise BenchError(f"central exited while logging:\n{log_tail(central_log)}")
            found = tlog.latest_checkpoint(store)
            return True if found is not None and found[0] >= head else None

        wait_until(
            covered,
            timeout_s=DRAIN_TIMEOUT_S,
            what="a checkpoint of every entry",
            seen=lambda: f"the newest checkpoint: {tlog.latest_checkpoint(store)}",
        )
    return time.perf_counter() - t0


def fresh_pg(url: str, suffix: str = "") -> str | None:
    try:
        import psycopg  # noqa: PLC0415

        name = f"gp_bench_{os.getpid()}{'_' + suffix if suffix else ''}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return url.rsplit("/", 1)[0] + "/" + name
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        print(f"  (PostgreSQL skipped: {exc})")
        return None


def drop_pg(url: str, db_url: str) -> None:
    """Drop the run's database; FORCE ends whatever a failed run left connected."""
    import psycopg  # noqa: PLC0415

    name = db_url.rsplit("/", 1)[1]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except psycopg.Error as exc:
        print(f"  (could not drop PostgreSQL database {name}: {exc})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sync_drain")
    ap.add_argument("--entries", type=int, default=100_000, help="backlog size")
    ap.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL for the second run")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--no-pg", action="store_true", help="SQLite only")
    only.add_argument(
        "--no-sqlite", action="store_true", help="PostgreSQL only (its raw baselines and drains)"
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="drains of each kind per database (median; 3)"
    )
    args = ap.parse_args(argv)
    base = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(dir=base, prefix=".bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        led = fill(folder / "kiosk.db", args.entries)
        n = led.head()[0]
        fill_s = time.perf_counter() - t0
        print(f"backlog drain: {n} entries queued offline (filled in {fill_s:.0f} s)")
        rows = raw_rows(led)
        led.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file alone is complete
        led.close()
        raws: dict[str, float] = {}
        if not args.no_sqlite:
            raws["SQLite"] = raw_rate(rows, folder)
            print(f"  raw batched SQLite insert       {raws['SQLite']:10.0f} entries/s")
        pg_raw = None if args.no_pg else fresh_pg(args.pg, "raw")
        if pg_raw is not None:
            try:
                many, copy = raw_pg_rate(rows, pg_raw)
            finally:
                drop_pg(args.pg, pg_raw)
            raws["PostgreSQL"] = max(many, copy)  # the faster: the least storing can cost
            print(f"  raw batched PostgreSQL insert   {many:10.0f} entries/s (executemany)")
            print(f"  raw batched PostgreSQL COPY     {copy:10.0f} entries/s")
        del rows
        if not raws:  # --no-sqlite, and no PostgreSQL (the reason is printed above)
            print("backlog drain: no database to drain into")
            return 1
        labels = list(raws)
        for label in labels:
            with_log: list[float] = []
            without: list[float] = []
            catch_ups: list[float] = []
            cpus: list[dict[str, float]] = []
            # Runs of the two kinds alternate, each on a database of its own: on two
            # shared cores one run alone says little, the median of a few does.
            for r in range(args.repeat):
                for keep_log in (r % 2 == 0, r % 2 == 1):
                    tag = f"{label.lower()}_{r}_{'log' if keep_log else 'nolog'}"
                    url = str(folder / f"{tag}.db") if label == "SQLite" else fresh_pg(args.pg, tag)
                    if url is None:
                        break
                    try:
                        secs, catch_up, cpu = drain(
                            folder / "kiosk.db", folder, url, tag, with_log=keep_log
                        )
                    finally:
                        if label != "SQLite":
                            drop_pg(args.pg, url)
                    (with_log if keep_log else without).append(secs)
                    if keep_log:
                        cpus.append(cpu)
                    if catch_up is not None:
                        catch_ups.append(catch_up)
            if not with_log or not without:
                continue
            secs, bare = statistics.median(with_log), statistics.median(without)
            rate, rate_bare = n / secs, n / bare
            raw = raws[label]
            ok = rate >= GOAL_RATE and rate >= GOAL_SHARE * raw
            print(
                f"  drain, central on {label:10} {rate:10.0f} entries/s  (median of "
                f"{len(with_log)}: {secs:.1f} s, {rate / raw:.0%} of raw; goal ≥ {GOAL_RATE} "
                f"and ≥ {GOAL_SHARE:.0%}: {'met' if ok else 'NOT met'})"
            )
            cost = 1 - rate / rate_bare
            print(
                f"    same, without the log   {rate_bare:10.0f} entries/s  ({bare:.1f} s, "
                f"{rate_bare / raw:.0%} of raw); the "
                f"log costs {cost:.0%} of drain throughput (goal ≤ {LOG_COST:.0%}: "
                f"{'met' if cost <= LOG_COST else 'NOT met'}); its checkpoint covered every "
                f"entry {statistics.median(catch_ups):.1f} s (median) after the last ack"
            )
            # Where the time goes: on two shared cores the kiosk's side and central's
            # compete, and a drain that waits on neither waits on round trips.
            parts = {k: statistics.median(c[k] for c in cpus) for k in cpus[0]}
            print(
                f"    CPU-s while draining (median, with the log; {secs:.1f} s of wall time): "
                + ", ".join(f"{k} {v:.1f}" for k, v in parts.items() if v or k != "database")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
