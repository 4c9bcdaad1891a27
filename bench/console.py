"""The operator's console on a county: 500 kiosks and 2,000,000 entries.

A county of `--villages` villages (default 100) with `--kiosks` kiosks each (5: 500
in all) and `--entries` entries (2,000,000) over 90 days is written straight into
central's tables (their definitions from `central.db`, after central's own
migrations), shaped as ingest stores them: deposits in every category, awards,
redemptions and reversals, in seq order per kiosk, and each kiosk's retained status
in `devices.status_json`. The Overview's rollup (`central.rollup`) is then rebuilt
from those entries, as migration 5 backfills it, and the time that took is printed.
Then the console's Overview (``/``) and Fleet (``/fleet``)
pages are rendered through the ASGI app in-process, with a county account's session
cookie, `--renders` times each (the first, which warms caches, is not counted).

Printed: each page's median and p95 time, beside a raw SQL aggregate over the same
data in the same run (Overview: one GROUP BY over the entries of the same months by
village, kind, category and local day, with no reversal join; Fleet: every device
row). Goal: each page under 300 ms.

The database is a SQLite file in a temporary folder, removed at the end; or, with
`--keep DIR`, ``DIR/central.db``, kept; or, with `--db-url URL`, that database
(PostgreSQL: ``postgresql://user@host/db``; create it empty first, e.g.
``createdb gp_bench_console``), never dropped. A database this bench filled before
(`--keep`'s file, `--db-url`'s database) is measured again as it is, with its
`bench` account: the county is written once, and `--entries`, `--villages` and
`--kiosks` apply only to that first run. A database holding anything else is refused.

    python -m bench.console [--entries 2000000] [--villages 100] [--kiosks 5]
                            [--renders 7] [--keep DIR | --db-url URL]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from central import db, rollup
from central.accounts import Accounts
from central.api import EnrolmentSettings, create_app
from central.auth import SESSION_COOKIE
from central.console import ConsoleSettings
from central.store import CentralStore
from greenpass.record.entries import Kind
from greenpass.record.rules import default_rules

GOAL_MS = 300.0
DAYS = 90
DAY_MS = 86_400_000
NOW = 1_767_300_000_000  # central's clock: 2026-01-02 04:40 in Shanghai
PASSWORD = "bench password 123"
SHANGHAI_OFFSET_MS = 8 * 3_600_000

DEVICE_COLUMNS = (
    "device_id, village_id, public_key, status, mqtt_password_hash, enrolled_ms, "
    "acked_seq, last_h, last_seen_ms, status_json"
)
Row = tuple[Any, ...]
County = list[tuple[str, list[Row]]]  # each village and its kiosks' `devices` rows
Rows = Callable[[list[Row]], Iterator[Row]]  # the entries of some kiosks, in order


def _entries(
    device: str, village: str, n: int, rng: random.Random, factors: dict[str, int]
) -> Iterator[tuple[Any, ...]]:
    """`n` entries of one kiosk in seq order over the last DAYS days, as central stores
    them (the columns of `db.entries`, in order)."""
    cats = sorted(factors)
    start = NOW - DAYS * DAY_MS
    step = DAYS * DAY_MS // n
    deposits: list[int] = []
    h = bytes(32)
    for seq in range(1, n + 1):
        wall = start + seq * step + rng.randrange(step)
        roll = rng.random()
        cat = grams = item = qty = ref = None
        points = co2e = 0
        kind = Kind.DEPOSIT
        if roll < 0.03 and deposits:
            # Each deposit reversed at most once, as central's unique index holds.
            kind, ref = Kind.REVERSAL, deposits.pop(rng.randrange(len(deposits)))
            points, co2e = -10, -500  # roughly; the bench measures reading, not pricing
        elif roll < 0.06:
            kind, points = Kind.AWARD, 10
        elif roll < 0.12:
            kind, item, qty, points = Kind.REDEEM, "rice", 1, -50
        else:
            cat = cats[seq % len(cats)]
            grams = rng.randint(300, 5000)
            points, co2e = grams // 100, grams * factors[cat] // 1_000
            deposits.append(seq)
        passbook = f"{village}-{rng.randrange(400):05d}"
        row = dict(zip(_NAMED, (
            device, seq, f"{device}-{seq:012d}", kind, wall, True, "boot", seq * 1000,
            passbook, cat, grams, points, co2e, item, qty, ref, "S1", None, "bench-1", "",
            "{}", h, village, wall + 60_000,
        ), strict=True))  # fmt: skip
        # By name: a column central adds later (e.g. ref_device) is None here.
        yield tuple(row.get(c.name) for c in db.entries.columns)


_NAMED = ("device_id", "seq", "entry_id", "kind", "wall_ms", "clock_ok", "boot_id", "mono_ms",
          "passbook_id", "category", "grams", "points", "co2e_g", "item_id", "qty", "ref_seq",
          "staff_id", "reason", "rules_version", "flags", "data", "h", "village_id",
          "received_ms")  # fmt: skip


def fill(url: str, villages: int, kiosks: int, entries: int) -> None:
    """The county, written straight into central's tables (after its migrations) in one
    transaction, then the rollup rebuilt from it."""
    CentralStore.open(url, now_ms=NOW).close()
    rng = random.Random(12)
    categories = default_rules().categories
    factors = {k: c.co2e_g_per_kg for k, c in categories.items()}
    per_kiosk = entries // (villages * kiosks)
    county: County = []
    for v in range(villages):
        village = f"V{v:03d}"
        devices: list[Row] = [
            (
                f"K{v:03d}{k}", village, bytes(32), "active", "", NOW - 100 * DAY_MS,
                per_kiosk, bytes(32), NOW - rng.randrange(4 * 3_600_000),
                json.dumps(_status(f"K{v:03d}{k}", per_kiosk, rng)),
            )
            for k in range(kiosks)
        ]  # fmt: skip
        county.append((village, devices))

    def rows(devices: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        for d in devices:
            yield from _entries(d[0], d[1], per_kiosk, rng, factors)

    if _is_postgres(url):
        _write_pg(url, county, rows)
    else:
        _write_sqlite(_sqlite_path(url), county, rows)
    rebuild_rollup(url)


def _write_sqlite(path: Path, county: County, rows: Rows) -> None:
    cols = [c.name for c in db.entries.columns]
    sql = f"INSERT INTO entries ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    add_device = f"INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ({', '.join('?' * 10)})"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # filling only; reading is what is measured
    conn.execute("BEGIN")
    for village, devices in county:
        conn.execute("INSERT INTO villages (village_id) VALUES (?)", (village,))
        conn.executemany(add_device, devices)
        conn.executemany(sql, rows(devices))
    conn.execute("COMMIT")
    conn.close()


def _write_pg(url: str, county: County, rows: Rows) -> None:
    import psycopg  # noqa: PLC0415 - only for PostgreSQL

    cols = ", ".join(c.name for c in db.entries.columns)
    add_device = f"INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})"
    with psycopg.connect(_libpq(url)) as conn:  # one transaction, committed on exit
        for village, devices in county:
            conn.execute("INSERT INTO villages (village_id) VALUES (%s)", (village,))
            with conn.cursor() as cur:
                cur.executemany(add_device, devices)
                with cur.copy(f"COPY entries ({cols}) FROM STDIN") as copy:
                    for row in rows(devices):
                        copy.write_row(row)


def rebuild_rollup(url: str) -> None:
    """Written past ingest, so the rollup is made as migration 5 makes it on an upgrade;
    then the planner's statistics, as a database in service would have them."""
    t0 = time.monotonic()
    with CentralStore.open(url, now_ms=NOW) as store:
        with store.write("rebuilding") as c:
            rollup.rebuild(c)
        with store.read("counting") as c:
            made = c.scalar(select(func.count()).select_from(rollup.overview_rollup))
        print(f"rollup: {made:,} rows rebuilt from the entries in {time.monotonic() - t0:.1f} s")
    with _raw(url, autocommit=True) as conn:
        # PostgreSQL: its tables only (a shared server's other databases are not ours).
        tables = "entries, devices, overview_rollup"
        conn.execute(f"VACUUM ANALYZE {tables}" if _is_postgres(url) else "ANALYZE")


def bench_state(url: str) -> tuple[int, int, int] | None:
    """(kiosks, entries, rollup rows) of a database this bench filled; None when it is
    empty; a SystemExit when it holds anything else (a real kiosk has a broker
    password, the bench's have none)."""
    with CentralStore.open(url, now_ms=NOW) as store, store.read("looking") as c:
        d = db.devices
        kiosks = c.scalar(select(func.count()).select_from(d)) or 0
        real = c.scalar(select(func.count()).where(d.c.mqtt_password_hash != "")) or 0
        entries = c.scalar(select(func.count()).select_from(db.entries)) or 0
        made = c.scalar(select(func.count()).select_from(rollup.overview_rollup)) or 0
        villages = c.scalar(select(func.count()).select_from(db.villages)) or 0
    if real or (villages and not kiosks):
        raise SystemExit(f"{url}: holds a central database this bench did not fill; give an "
                         "empty one")  # fmt: skip
    return (kiosks, entries, made) if kiosks else None


def _status(device: str, head: int, rng: random.Random) -> dict[str, Any]:
    backlog = rng.choice([0, 0, 0, 3, 40])
    return {
        "v": 1, "device_id": device, "online": rng.random() > 0.05, "ts_ms": NOW - 60_000,
        "version": "1.4.0", "backlog": backlog,
        "oldest_unsynced_ms": NOW - rng.randrange(48 * 3_600_000) if backlog else None,
        "acked_seq": head, "head_seq": head + backlog,
        "free_disk_bytes": rng.choice([8_000_000_000, 1_200_000_000, 300_000_000]),
        "disk_bytes": rng.choice([16_000_000_000, 16_000_000_000, None]),  # None: older kiosks
        "scale": rng.choice(["ok"] * 20 + ["error"]), "scanner": "ok", "last_error": "",
    }  # fmt: skip


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgres:", "postgresql+psycopg:"))


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "") if "://" in url else Path(url)


def _libpq(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg takes it (no `+psycopg`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _raw(url: str, *, autocommit: bool = False) -> Iterator[Any]:
    """A plain driver connection (sqlite3 or psycopg): the raw baselines' and the
    fill's, with none of central's layers."""
    if _is_postgres(url):
        import psycopg  # noqa: PLC0415

        with psycopg.connect(_libpq(url), autocommit=autocommit) as pg:
            yield pg
    else:
        conn = sqlite3.connect(_sqlite_path(url), isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()


def timed(fn: Callable[[], object], times: int) -> list[float]:
    fn()  # warm: the first call pays for imports, template compiling and cold pages
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


def raw_overview(conn: Any) -> None:
    since = NOW - 400 * DAY_MS  # the Overview's twelve months, and more
    conn.execute(
        f"SELECT village_id, kind, category, (wall_ms + {SHANGHAI_OFFSET_MS}) / {DAY_MS} AS day, "
        "sum(grams), sum(points), sum(co2e_g) FROM entries "
        f"WHERE wall_ms >= {since} GROUP BY village_id, kind, category, day"
    ).fetchall()


def raw_fleet(conn: Any) -> None:
    conn.execute("SELECT * FROM devices ORDER BY device_id").fetchall()


def measure(url: str, renders: int) -> int:
    store = CentralStore.open(url, now_ms=NOW)
    accounts = Accounts(store)
    if accounts.get("bench") is None:  # a kept database has it from its first run
        accounts.add("bench", "county", PASSWORD, NOW, actor="bench")
    sid, _csrf = accounts.open_session("bench", NOW)
    enrolment = EnrolmentSettings("mqtts://127.0.0.1:8883", "", bytes(32))
    app = create_app(
        store, admin_token="b" * 32, enrolment=enrolment, clock=lambda: NOW,
        console=ConsoleSettings(),
    )  # fmt: skip
    worst = 0
    with TestClient(app, base_url="https://testserver") as client, _raw(url) as conn:
        client.cookies.set(SESSION_COOKIE, sid)

        def render(page: str) -> Callable[[], object]:
            def go() -> object:
                r = client.get(page)
                if r.status_code != 200 or "<table" not in r.text:
                    raise SystemExit(f"{page} answered {r.status_code}: {r.text[:200]}")
                return r

            return go

        for page, raw in (("/", raw_overview), ("/fleet", raw_fleet)):
            got = timed(render(page), renders)
            base = timed(lambda raw=raw: raw(conn), renders)  # type: ignore[misc]
            ok = statistics.median(got) < GOAL_MS and p95(got) < GOAL_MS
            worst = max(worst, 0 if ok else 1)
            print(
                f"  {page:7} median {statistics.median(got):7.1f} ms  p95 {p95(got):7.1f} ms"
                f"   raw SQL median {statistics.median(base):7.1f} ms  p95 {p95(base):7.1f} ms"
                f"   goal < {GOAL_MS:.0f} ms: {'met' if ok else 'MISSED'}",
                flush=True,
            )
    store.close()
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.console",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--entries", type=int, default=2_000_000, help="in all (first run only)")
    ap.add_argument("--villages", type=int, default=100, help="(first run only)")
    ap.add_argument("--kiosks", type=int, default=5, help="per village (first run only)")
    ap.add_argument("--renders", type=int, default=7, help="timed renders of each page")
    where = ap.add_mutually_exclusive_group()
    where.add_argument(
        "--keep", type=Path, metavar="DIR",
        help="keep the SQLite database in DIR/central.db instead of a temporary folder; a "
        "later run with the same DIR measures it again without writing the county anew",
    )  # fmt: skip
    where.add_argument(
        "--db-url", metavar="URL",
        help="use this (empty, or filled by an earlier run) database instead, e.g. "
        "postgresql://postgres@127.0.0.1:5432/gp_bench_console; never dropped",
    )  # fmt: skip
    args = ap.parse_args(argv)
    folder: Path | None = None
    if args.db_url:
        url = args.db_url
    else:
        folder = args.keep or Path(tempfile.mkdtemp(prefix="gp-bench-console-"))
        folder.mkdir(parents=True, exist_ok=True)
        url = str(folder / "central.db")
    label = "PostgreSQL" if _is_postgres(url) else "SQLite"
    try:
        found = bench_state(url)
        if found is None:
            t0 = time.monotonic()
            fill(url, args.villages, args.kiosks, args.entries)
            print(
                f"{label}: {args.villages * args.kiosks} kiosks, {args.entries:,} entries "
                f"written in {time.monotonic() - t0:.0f} s{_size(url)}",
                flush=True,
            )
        else:
            kiosks, entries, made = found
            print(f"{label}: {kiosks} kiosks, {entries:,} entries kept from an earlier run",
                  flush=True)  # fmt: skip
            if not made:  # that run stopped before its rollup
                rebuild_rollup(url)
        return measure(url, args.renders)
    finally:
        if folder is not None and args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _size(url: str) -> str:
    if _is_postgres(url):
        with _raw(url) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    else:
        size = _sqlite_path(url).stat().st_size
    return f" ({size >> 20} MiB)"


if __name__ == "__main__":
    sys.exit(main())
