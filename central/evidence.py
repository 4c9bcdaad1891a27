"""`greenpass central evidence`: write a village's evidence pack for a period
(`greenpass.evidence` says what a pack holds; docs/trust.md, "Evidence packs").

Everything is read in one snapshot, so the entries, the proofs and central's totals
describe the same moment. Before reading, the log is brought up to date and a
checkpoint signed if entries of the period are not yet in one (`tlog.append_pending`,
safe beside running central workers: it takes the log's lock like theirs).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, and_, func, select

from central import db, exports, rules_versions, tlog, tlog_proofs
from central.evidence_summary import readme, summary_html
from central.heads import device_heads
from central.reports import _ENTRY_FIELDS, entry_from_row
from central.store import CentralStore
from greenpass import evidence as ev
from greenpass import merkle_multi
from greenpass.checkpoint import Checkpoint
from greenpass.errors import CentralError, ConfigError
from greenpass.evidence_pricing import factors_csv
from greenpass.record.entries import GENESIS_H, Kind
from greenpass.record.personal import PERSONAL_KEY
from greenpass.record.rules import Rules
from sync.keys import public_bytes

CATCH_UP_ROUNDS = 200  # sequencer passes (20,000 entries each) before giving up


@dataclass(frozen=True)
class Written:
    path: Path
    entries: int  # in the pack
    in_period: int
    devices: int
    size: int  # the checkpoint's
    totals: dict[str, Any]
    central_key: str  # hex, as the pack's verify line names it


def _origin_of(note: str) -> str:
    return note.split("\n", 1)[0]


def catch_up_log(store: CentralStore, key: Ed25519PrivateKey, origin: str, now_ms: int) -> None:
    """Append what the log lacks and sign a checkpoint of it (none if nothing is new)."""
    newest = tlog.latest_checkpoint(store)
    settings = tlog.LogSettings(
        origin=_origin_of(newest[1]) if newest else origin, every_entries=1, every_s=0
    )
    for _ in range(CATCH_UP_ROUNDS):
        if not tlog.append_pending(store, key, settings, now_ms):
            break
    tlog.append_pending(store, key, settings, now_ms)  # the checkpoint, if one is due


def write_pack(
    store: CentralStore,
    key: Ed25519PrivateKey,
    village_id: str,
    first: date,
    last: date,
    out: Path,
    *,
    origin: str,
    default_tz: ZoneInfo,
    now_ms: int,
) -> Written:
    if first > last:
        raise ConfigError(f"--from {first} is after --to {last}")
    with store.read("reading the village") as conn:
        if (
            conn.scalar(
                select(db.villages.c.village_id).where(db.villages.c.village_id == village_id)
            )
            is None
        ):
            raise CentralError(f"no village {village_id!r}")
    tz = exports.village_tz(store, village_id, default_tz)
    period = exports.Period(first, last, tz)
    catch_up_log(store, key, origin, now_ms)
    with store.read("reading the evidence", snapshot=True) as conn:
        parts = _gather(conn, village_id, period)
        sums = exports.sums_as_api(village_id, exports.totals_in(conn, village_id, period))
    central_key = public_bytes(key.public_key()).hex()
    manifest = {
        "format": ev.FORMAT,
        "village": village_id,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timezone": str(tz.key),
        "start_ms": period.start_ms,
        "end_ms": period.end_ms,
        "made_ms": now_ms,
        "log_origin": parts.cp.origin,
        "central_key": central_key,
        "checkpoint_size": parts.cp.size,
        "entries": len(parts.lines),
        "entries_in_period": parts.in_period,
        "devices": len(parts.devices),
    }
    _write_zip(out, manifest, parts, sums)
    return Written(
        out, len(parts.lines), parts.in_period, len(parts.devices), parts.cp.size, sums,
        central_key,
    )  # fmt: skip


@dataclass
class _Parts:
    cp: Checkpoint
    note: str
    devices: list[dict[str, Any]]
    lines: list[str]
    chains: dict[str, str]
    heads: dict[str, list[list[Any]]]
    proofs: dict[str, dict[str, Any]]
    rules: list[Rules]
    in_period: int


def _ranges(
    conn: Connection, village_id: str, period: exports.Period
) -> dict[str, tuple[int, int, int]]:
    """Per device: (lo, hi, count) — its first entry to put in the pack, its last in the
    period, and how many it has in the period."""
    e = db.entries
    in_period = (
        (e.c.village_id == village_id)
        & (e.c.wall_ms >= period.start_ms)
        & (e.c.wall_ms < period.end_ms)
    )
    rows = conn.execute(
        select(e.c.device_id, func.min(e.c.seq), func.max(e.c.seq), func.count())
        .where(in_period)
        .group_by(e.c.device_id)
    ).all()
    # The entries the period's reversals cancel, by the device that holds each: its own
    # (ref_device NULL) or another kiosk's, whose range then reaches back to it too.
    owner = func.coalesce(e.c.ref_device, e.c.device_id)
    refs = {
        str(device): (int(lo), int(hi))
        for device, lo, hi in conn.execute(
            select(owner, func.min(e.c.ref_seq), func.max(e.c.ref_seq))
            .where(in_period & (e.c.kind == Kind.REVERSAL.value))
            .group_by(owner)
        )
    }
    out = {}
    for device_id, first, hi, n in rows:
        ref_lo, ref_hi = refs.pop(str(device_id), (int(first), int(hi)))
        lo = min(int(first), ref_lo)
        out[str(device_id)] = (max(1, lo - 1), max(int(hi), ref_hi), int(n))
    for device_id, (ref_lo, ref_hi) in refs.items():  # no entry of its own in the period
        out[device_id] = (max(1, ref_lo - 1), ref_hi, 0)
    return out


def _gather(conn: Connection, village_id: str, period: exports.Period) -> _Parts:
    c = tlog.tlog_checkpoints
    newest = conn.execute(
        select(c.c.size, c.c.root, c.c.note).order_by(c.c.size.desc()).limit(1)
    ).first()
    if newest is None:
        raise CentralError("the transparency log has no checkpoint: nothing to prove entries by")
    note = str(newest.note)
    cp = Checkpoint(_origin_of(note), int(newest.size), bytes(newest.root))
    e, hd = db.entries, device_heads
    ranges = _ranges(conn, village_id, period)
    lines: list[str] = []
    chains: dict[str, str] = {}
    heads: dict[str, list[list[Any]]] = {}
    proofs: dict[str, dict[str, Any]] = {}
    versions: set[str] = set()
    nodes = tlog_proofs.Nodes(conn)
    for device_id, (lo, hi, _n) in sorted(ranges.items()):
        head = conn.scalar(
            select(func.min(hd.c.seq)).where((hd.c.device_id == device_id) & (hd.c.seq >= hi))
        )
        end = int(head) if head is not None else hi
        if conn.scalar(select(e.c.seq).where((e.c.device_id == device_id) & (e.c.seq == end + 1))):
            end += 1  # one beyond: shows where the device's period ends
        prev = conn.scalar(select(e.c.h).where((e.c.device_id == device_id) & (e.c.seq == lo - 1)))
        chains[device_id] = (bytes(prev) if prev is not None else GENESIS_H).hex()
        cols = [e.c[name] for name in _ENTRY_FIELDS]
        rows = conn.execute(
            select(*cols, e.c.h, e.c.village_id, e.c.received_ms)
            .where((e.c.device_id == device_id) & e.c.seq.between(lo, end))
            .order_by(e.c.seq)
        ).all()
        for r in rows:
            entry = entry_from_row(r._mapping)
            redacted = entry.kind == Kind.ENROL and PERSONAL_KEY not in entry.data
            lines.append(
                ev.entry_record(entry, bytes(r.h), r.village_id, int(r.received_ms), redacted)
            )
            if entry.rules_version:
                versions.add(entry.rules_version)
        heads[device_id] = [
            [int(s), bytes(sig).hex(), bytes(pub).hex()]
            for s, sig, pub in conn.execute(
                select(hd.c.seq, hd.c.sig, hd.c.public_key)
                .where((hd.c.device_id == device_id) & hd.c.seq.between(lo, end))
                .order_by(hd.c.seq)
            )
        ]
        proofs[device_id] = _proof(conn, nodes, device_id, lo, end, cp.size)
    in_period = sum(n for *_, n in ranges.values())
    _check_covered(ranges, proofs)
    return _Parts(
        cp, note, _devices(conn, heads), lines, chains, heads, proofs,
        _rules(conn, village_id, versions), in_period,
    )  # fmt: skip


def _proof(
    conn: Connection, nodes: tlog_proofs.Nodes, device_id: str, lo: int, end: int, size: int
) -> dict[str, Any]:
    r = tlog.tlog_runs
    runs: list[list[int]] = []
    indices: list[int] = []
    for first_idx, first_seq, count in conn.execute(
        select(r.c.first_idx, r.c.first_seq, r.c.count)
        .where(
            (r.c.device_id == device_id)
            & (r.c.first_seq <= end)
            & (r.c.first_seq + r.c.count > lo)
            & (r.c.first_idx < size)
        )
        .order_by(r.c.first_seq)
    ):
        skip = max(0, lo - int(first_seq))
        n = min(int(count), end - int(first_seq) + 1, size - int(first_idx)) - skip
        if n > 0:
            runs.append([int(first_seq) + skip, int(first_idx) + skip, n])
            indices += range(int(first_idx) + skip, int(first_idx) + skip + n)
    hashes: list[bytes] = []
    if indices:
        indices.sort()
        hashes = nodes.prove(merkle_multi.multi_proof, indices, size)
    return {"runs": runs, "hashes": [h.hex() for h in hashes]}


def _check_covered(
    ranges: dict[str, tuple[int, int, int]], proofs: dict[str, dict[str, Any]]
) -> None:
    for device_id, (_lo, hi, _n) in ranges.items():
        runs = proofs[device_id]["runs"]
        upto = max((s + n - 1 for s, _i, n in runs), default=0)
        if upto < hi:
            raise CentralError(
                f"entries of {device_id} up to seq {hi} are in the period but the log's "
                f"newest checkpoint covers it only to seq {upto}: another central worker is "
                "appending; try again in a few seconds"
            )


def _devices(conn: Connection, heads: dict[str, list[list[Any]]]) -> list[dict[str, Any]]:
    """Each kiosk's enrolment record: its key now, and every key its heads in the pack
    were kept with (a kiosk re-enrolled with a new key signed its older heads with the
    old one)."""
    d = db.devices
    cols = (d.c.device_id, d.c.village_id, d.c.public_key, d.c.status, d.c.enrolled_ms)
    rows = conn.execute(
        select(*cols, d.c.revoked_ms).where(d.c.device_id.in_(list(heads))).order_by(d.c.device_id)
    )
    out = []
    for r in rows:
        key = bytes(r.public_key).hex()
        earlier = sorted({h[2] for h in heads[r.device_id]} - {key})
        out.append(
            {"device_id": r.device_id, "village_id": r.village_id, "status": r.status,
             "public_key": key, "public_keys": [key, *earlier], "enrolled_ms": r.enrolled_ms,
             "revoked_ms": r.revoked_ms}
        )  # fmt: skip
    return out


def _rules(conn: Connection, village_id: str, versions: set[str]) -> list[Rules]:
    shipped = rules_versions.shipped()
    rv = db.rules_versions
    texts = dict(
        conn.execute(
            select(rv.c.version, rv.c.text).where(
                and_(rv.c.village_id == village_id, rv.c.version.in_(sorted(versions)))
            )
        ).all()
    )
    out = []
    for v in sorted(versions):
        if v in texts:
            out.append(rules_versions._parsed(texts[v]))
        elif v in shipped:
            out.append(shipped[v])
        else:
            raise CentralError(f"entries name rules version {v!r}, which central does not hold")
    return out


def _write_zip(out: Path, manifest: dict[str, Any], parts: _Parts, sums: dict[str, Any]) -> None:
    def js(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True) + "\n"

    tmp = out.with_name(out.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(ev.MANIFEST, js(manifest))
            z.writestr(ev.CHECKPOINT, parts.note)
            z.writestr(ev.DEVICES, js(parts.devices))
            z.writestr(ev.ENTRIES, "".join(line + "\n" for line in parts.lines))
            z.writestr(ev.CHAINS, js(parts.chains))
            z.writestr(ev.HEADS, js(parts.heads))
            z.writestr(ev.PROOFS, json.dumps(parts.proofs, sort_keys=True))
            for r in parts.rules:
                z.writestr(f"{ev.RULES_DIR}{ev.file_name(r.version)}.toml", r.text)
            z.writestr(ev.FACTORS, factors_csv(parts.rules))
            z.writestr(ev.TOTALS, js(sums))
            z.writestr(ev.SUMMARY, summary_html(manifest, sums, parts.rules, parts.devices))
            z.writestr(ev.README, readme(manifest))
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CentralError(f"cannot write {out}: {exc}") from exc
