"""Evidence pack of 100,000 entries: written by central, verified offline (issue 13).

A kiosk's ledger holds `--entries` deposits (default 100,000) over a month; a second
village's kiosk syncs beside it, so the first village's leaves are scattered through
the log in runs as at a real central. Both are ingested into a central SQLite file by
central's own ingest (signed heads on), the log appended after each pair of batches.
Then `greenpass central evidence` writes the month's pack, and `greenpass
verify-evidence`'s check runs on it. Printed: the time to write and to verify, against
the raw baseline measured in the same run — reading the pack's entries and hashing
each line once with SHA-256 (the least any verifier of these entries must do).
Goal: the pack verifies (exit 0) in under 60 s.

    python -m bench.evidence_pack [--entries 100000] [--other 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
import zipfile
from datetime import date
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.sync_drain import fill
from bench.waits import BenchError
from central import evidence, tlog
from central.ingest import ingest
from central.store import CentralStore
from edge.ledger.ledger import Ledger
from greenpass import evidence as ev
from greenpass.evidence_verify import verify_pack
from sync import protocol
from sync.keys import Ed25519PrivateKey, generate_key, public_bytes

GOAL_S = 60.0
BATCH = 500
NOW = 1_800_000_000_000


def _send(store: CentralStore, led: Ledger, key: Ed25519PrivateKey, first: int) -> int:
    rows = list(islice(led.iter_entries(first - 1), BATCH))
    prev = led.outbox.hash_at(first - 1)
    assert prev is not None
    payload, n = protocol.encode_batch(
        led.device_id, rows, prev, key, NOW, max_bytes=1 << 30, sign_head=True
    )
    result = ingest(store, protocol.topic(led.device_id, protocol.BATCH), payload, NOW)
    if result.ack is None or result.ack.status != "ok":
        raise BenchError(f"ingest refused a batch of {led.device_id}: {result.ack}")
    return first + n


def build(folder: Path, entries: int, other: int, key: Ed25519PrivateKey) -> CentralStore:
    t0 = time.perf_counter()
    main = fill(folder / "kd.db", entries)
    second = fill(folder / "ko.db", other, seed=5, device_id="KO", village="V2")
    print(f"  filled the kiosks' ledgers in {time.perf_counter() - t0:.0f} s")
    store = CentralStore.open(str(folder / "central.db"), now_ms=NOW)
    keys = {"KD": generate_key(), "KO": generate_key()}
    for led, village in ((main, "V1"), (second, "V2")):
        store.create_village(village)
        token = store.create_enrol_token(led.device_id, village, NOW, actor="bench")
        store.enrol(token, led.device_id, public_bytes(keys[led.device_id]), NOW)
    settings = tlog.LogSettings(every_entries=50_000, every_s=3600)
    t0 = time.perf_counter()
    a = b = 1
    while a <= main.head()[0] or b <= second.head()[0]:
        if a <= main.head()[0]:
            a = _send(store, main, keys["KD"], a)
        if b <= second.head()[0] and a % 2500 < BATCH:
            b = _send(store, second, keys["KO"], b)
        tlog.append_pending(store, key, settings, NOW)
    print(f"  ingested and logged in {time.perf_counter() - t0:.0f} s")
    main.close()
    second.close()
    return store


def raw_read(pack: Path) -> float:
    t0 = time.perf_counter()
    with zipfile.ZipFile(pack) as z:
        for line in z.read(ev.ENTRIES).splitlines():
            hashlib.sha256(line).digest()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.evidence_pack")
    ap.add_argument("--entries", type=int, default=100_000, help="the village's entries")
    ap.add_argument("--other", type=int, default=20_000, help="another village's, between them")
    args = ap.parse_args(argv)
    key = generate_key()
    base = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(dir=base, prefix=".bench-") as tmp:
        folder = Path(tmp)
        print(f"evidence pack: {args.entries} entries, {args.other} of another village between")
        store = build(folder, args.entries, args.other, key)
        out = folder / "pack.zip"
        t0 = time.perf_counter()
        done = evidence.write_pack(
            store, key, "V1", date(2025, 12, 1), date(2026, 12, 31), out,
            origin=tlog.DEFAULT_ORIGIN, default_tz=ZoneInfo("Asia/Shanghai"), now_ms=NOW,
        )  # fmt: skip
        write_s = time.perf_counter() - t0
        store.close()
        raw = raw_read(out)
        t0 = time.perf_counter()
        report, _ = verify_pack(out, public_bytes(key).hex())
        verify_s = time.perf_counter() - t0
        size = out.stat().st_size
    print(f"  pack: {done.in_period} entries in the period, {done.entries} in all, "
          f"{size / 1e6:.1f} MB, written in {write_s:.1f} s")  # fmt: skip
    print(f"  raw: read and hash every entry line        {raw:6.2f} s")
    print(f"  verify-evidence, every check               {verify_s:6.2f} s  "
          f"({verify_s / raw:.0f}× raw)")  # fmt: skip
    for line in report.lines:
        print("    " + line)
    verified = not report.failed and not report.unproven
    met = verified and verify_s < GOAL_S
    print(
        f"  goal: verifies in < {GOAL_S:.0f} s: {'MET' if met else 'NOT MET'} "
        f"({'verified' if verified else 'NOT verified'}, {verify_s:.1f} s)"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
