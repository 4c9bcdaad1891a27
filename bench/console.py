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

    python -m bench.console [--entries 2000000] [--villages 100] [--kiosks 5]
                            [--renders 7] [--keep DIR]
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
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from central import db, rollup
from central.accounts import Accounts
from central.api import EnrolmentSettings, create_app
from central.auth import SESSION_COOKIE
from central.console import ConsoleSettings
from central.store import CentralStore
from edge.entries import Kind
from edge.rules import default_rules

GOAL_MS = 300.0
DAYS = 90
DAY_MS = 86_400_000
NOW = 1_767_300_000_000  # central's clock: 2026-01-02 04:40 in Shanghai
PASSWORD = "bench password 123"
SHANGHAI_OFFSET_MS = 8 * 3_600_000


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
            kind, ref = Kind.REVERSAL, rng.choice(deposits)
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
        yield (
            device, seq, f"{device}-{seq:012d}", kind, wall, True, "boot", seq * 1000,
            passbook, cat, grams, points, co2e, item, qty, ref, "S1", None, "bench-1", "",
            "{}", h, village, wall + 60_000,
        )  # fmt: skip


def fill(path: Path, villages: int, kiosks: int, entries: int) -> None:
    """The county, written straight into central's tables (after its migrations)."""
    CentralStore.open(path, now_ms=NOW).close()
    rng = random.Random(12)
    categories = default_rules().categories
    factors = {k: c.co2e_g_per_kg for k, c in categories.items()}
    per_kiosk = entries // (villages * kiosks)
    cols = [c.name for c in db.entries.columns]
    sql = f"INSERT INTO entries ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # filling only; reading is what is measured
    conn.execute("BEGIN")
    for v in range(villages):
        village = f"V{v:03d}"
        conn.execute("INSERT INTO villages (village_id) VALUES (?)", (village,))
        for k in range(kiosks):
            device = f"K{v:03d}{k}"
            conn.execute(
                "INSERT INTO devices (device_id, village_id, public_key, status, "
                "mqtt_password_hash, enrolled_ms, acked_seq, last_h, last_seen_ms, "
                "status_json) VALUES (?, ?, ?, 'active', '', ?, ?, ?, ?, ?)",
                (
                    device, village, bytes(32), NOW - 100 * DAY_MS, per_kiosk, bytes(32),
                    NOW - rng.randrange(4 * 3_600_000),
                    json.dumps(_status(device, per_kiosk, rng)),
                ),
            )  # fmt: skip
            conn.executemany(sql, _entries(device, village, per_kiosk, rng, factors))
    conn.execute("COMMIT")
    conn.close()
    # Written past ingest, so the rollup is made as migration 5 makes it on an upgrade.
    t0 = time.monotonic()
    with CentralStore.open(path, now_ms=NOW) as store, store.write("rebuilding") as c:
        rollup.rebuild(c)
    rows = _scalar(path, "SELECT count(*) FROM overview_rollup")
    print(f"rollup: {rows:,} rows rebuilt from the entries in {time.monotonic() - t0:.1f} s")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("ANALYZE")
    conn.close()


def _scalar(path: Path, sql: str) -> Any:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def _status(device: str, head: int, rng: random.Random) -> dict[str, Any]:
    backlog = rng.choice([0, 0, 0, 3, 40])
    return {
        "v": 1, "device_id": device, "online": rng.random() > 0.05, "ts_ms": NOW - 60_000,
        "version": "1.4.0", "backlog": backlog,
        "oldest_unsynced_ms": NOW - rng.randrange(48 * 3_600_000) if backlog else None,
        "acked_seq": head, "head_seq": head + backlog,
        "free_disk_bytes": rng.choice([8_000_000_000, 300_000_000]),
        "scale": rng.choice(["ok"] * 20 + ["error"]), "scanner": "ok", "last_error": "",
    }  # fmt: skip


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


def raw_overview(path: Path) -> None:
    conn = sqlite3.connect(path)
    since = NOW - 400 * DAY_MS  # the Overview's twelve months, and more
    conn.execute(
        "SELECT village_id, kind, category, (wall_ms + ?) / ? AS day, sum(grams), "
        "sum(points), sum(co2e_g) FROM entries WHERE wall_ms >= ? "
        "GROUP BY village_id, kind, category, day",
        (SHANGHAI_OFFSET_MS, DAY_MS, since),
    ).fetchall()
    conn.close()


def raw_fleet(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("SELECT * FROM devices ORDER BY device_id").fetchall()
    conn.close()


def measure(path: Path, renders: int) -> int:
    store = CentralStore.open(path, now_ms=NOW)
    accounts = Accounts(store)
    accounts.add("bench", "county", PASSWORD, NOW, actor="bench")
    sid, _csrf = accounts.open_session("bench", NOW)
    enrolment = EnrolmentSettings("mqtts://127.0.0.1:8883", "", bytes(32))
    app = create_app(
        store, admin_token="b" * 32, enrolment=enrolment, clock=lambda: NOW,
        console=ConsoleSettings(),
    )  # fmt: skip
    worst = 0
    with TestClient(app, base_url="https://testserver") as client:
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
            base = timed(lambda raw=raw: raw(path), renders)  # type: ignore[misc]
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
    ap = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    ap.add_argument("--entries", type=int, default=2_000_000)
    ap.add_argument("--villages", type=int, default=100)
    ap.add_argument("--kiosks", type=int, default=5, help="per village")
    ap.add_argument("--renders", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="keep the database in this folder")
    args = ap.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="gp-bench-console-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "central.db"
    try:
        if not path.exists():
            t0 = time.monotonic()
            fill(path, args.villages, args.kiosks, args.entries)
            print(
                f"SQLite: {args.villages * args.kiosks} kiosks, {args.entries:,} entries "
                f"written in {time.monotonic() - t0:.0f} s ({path.stat().st_size >> 20} MiB)",
                flush=True,
            )
        return measure(path, args.renders)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
