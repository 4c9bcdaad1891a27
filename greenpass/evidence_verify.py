"""`greenpass verify-evidence`: check an evidence pack offline, trusting only central's
public key (docs/trust.md, "Evidence packs").

Each check recomputes what the pack states and says where it differs, naming the
entry (`K1:17`, device and seq):

- checkpoint: signed by the key given, of the log the manifest names;
- forks: any other checkpoint given (from a kiosk, `greenpass sync log --note`, or an
  earlier pack) of the same size has the same root;
- chains: each device's entries are consecutive, none twice, and each hashes from
  the one before to its stated `h` (from the pack's starting hash);
- origin: every signed head verifies with the device's key on the recomputed hash,
  and covers (through the chain) every entry in the period;
- log: each device's proof places the leaves recomputed from its entries in the
  checkpoint's tree, every entry in the period among them;
- rules and factors: each rules version named is in the pack and parses, and the
  factor table says what those rules say;
- pricing: points and CO2e of each deposit recomputed by its rules version, awards
  within their limit, redemptions negative, each reversal the exact negation of the
  entry it cancels;
- totals: recomputed from the entries in the period, compared with central's.

Exit status: 0 all verified; 1 a discrepancy; 3 nothing wrong, but some entries'
device origin rests on central's word alone (see `origin`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from greenpass import certificate, checkpoint, heads, merkle_multi
from greenpass.errors import ConfigError, GreenPassError
from greenpass.evidence import Pack, PackEntry, Totals, read_pack, totals_of
from greenpass.evidence_pricing import check_pricing, check_rules
from greenpass.record.entries import GENESIS_H, Entry, Kind, chain_hash
from greenpass.tlog_leaf import entry_leaf_hash

EXIT_OK, EXIT_DISCREPANCY, EXIT_UNPROVEN = 0, 1, 3
MAX_NAMED = 5  # entries named per failed check; the count says how many more


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failed: int = 0
    unproven: int = 0

    def ok(self, check: str, detail: str) -> None:
        self.lines.append(f"ok     {check:<11} {detail}")

    def fail(self, check: str, problems: Sequence[str]) -> None:
        self.failed += 1
        more = f" (and {len(problems) - MAX_NAMED} more)" if len(problems) > MAX_NAMED else ""
        self.lines.append(f"FAIL   {check:<11} {'; '.join(problems[:MAX_NAMED])}{more}")

    def note(self, check: str, detail: str) -> None:
        self.lines.append(f"note   {check:<11} {detail}")


@dataclass
class _Ctx:
    pack: Pack
    report: Report
    start_ms: int
    end_ms: int
    village: str
    hashes: dict[tuple[str, int], bytes] = field(default_factory=dict)  # recomputed
    by_key: dict[tuple[str, int], Entry] = field(default_factory=dict)
    per_device: dict[str, list[PackEntry]] = field(default_factory=dict)

    def in_period(self, p: PackEntry) -> bool:
        return p.village_id == self.village and self.start_ms <= p.entry.wall_ms < self.end_ms

    @property
    def period_entries(self) -> list[PackEntry]:
        return [p for p in self.pack.entries if self.in_period(p)]


def _public_key(hex_key: str, what: str) -> Ed25519PublicKey:
    try:
        raw = bytes.fromhex(hex_key)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} must be 64 hex digits (an Ed25519 public key)") from exc


def verify_pack(
    path: Path, central_key: str, others: Sequence[Path] = (), certificates: Sequence[Path] = ()
) -> tuple[Report, Totals]:
    key = _public_key(central_key, "--central-key")
    pack = read_pack(path)
    m = pack.manifest
    try:
        ctx = _Ctx(pack, Report(), int(m["start_ms"]), int(m["end_ms"]), str(m["village"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"manifest.json lacks the village or period: {exc}") from exc
    cp = _check_checkpoint(ctx, key)
    _check_forks(ctx, key, cp, others)
    _check_chains(ctx)
    _check_origin(ctx)
    _check_log(ctx, cp)
    known = check_rules(ctx.pack, ctx.report)
    check_pricing(ctx.period_entries, ctx.by_key, known, ctx.report)
    totals = _check_totals(ctx)
    for cert in certificates:
        _check_certificate(ctx, key, path, cert)
    return ctx.report, totals


def _check_certificate(ctx: _Ctx, key: Ed25519PublicKey, path: Path, cert: Path) -> None:
    doc = certificate.read(cert)
    if not certificate.signed_by(doc, key):
        ctx.report.fail("certificate", [f"{cert}: not signed by the key given"])
        return
    reversed_in_pack = {
        (p.entry.ref_device or p.entry.device_id, p.entry.ref_seq or 0)
        for p in ctx.pack.entries
        if p.entry.kind == Kind.REVERSAL
    }
    deposits = [p.entry for p in ctx.period_entries]
    problems = certificate.check_against_pack(
        doc, path, ctx.pack.manifest, deposits, reversed_in_pack
    )
    if problems:
        ctx.report.fail("certificate", [f"{cert}: {x}" for x in problems])
        return
    r = doc["retirement"]
    ctx.report.ok(
        "certificate",
        f"{r['serials']} retired for {r['beneficiary']}: units of this pack's deposits by "
        f"methodology {doc['issuance']['methodology']}",
    )


def _check_checkpoint(ctx: _Ctx, key: Ed25519PublicKey) -> checkpoint.Checkpoint | None:
    origin = str(ctx.pack.manifest.get("log_origin", ""))
    try:
        cp = checkpoint.open_checkpoint(ctx.pack.checkpoint, origin, key, origin=origin)
    except GreenPassError as exc:
        ctx.report.fail("checkpoint", [f"{exc} (the key given: central's?)"])
        return None
    ctx.report.ok("checkpoint", f"log {origin}, size {cp.size}, signed by the key given")
    return cp


def _check_forks(
    ctx: _Ctx, key: Ed25519PublicKey, cp: checkpoint.Checkpoint | None, others: Sequence[Path]
) -> None:
    """Every checkpoint given, and the pack's, side by side: central must never have
    signed two trees of one size (kiosks shown different logs each accept their own)."""
    if cp is None or not others:
        return
    problems: list[str] = []
    seen: dict[int, tuple[bytes, str]] = {cp.size: (cp.root_hash, "the pack's")}
    compared = 0
    for other in others:
        try:
            got = checkpoint.open_checkpoint(other.read_bytes(), cp.origin, key, origin=cp.origin)
        except (OSError, GreenPassError) as exc:
            problems.append(f"{other}: {exc}")
            continue
        first = seen.setdefault(got.size, (got.root_hash, str(other)))
        if first[1] != str(other):
            compared += 1
            if first[0] != got.root_hash:
                problems.append(
                    f"{other} and {first[1]}: central signed two trees of size {got.size} "
                    "with different roots — its log is forked"
                )
    sizes = sorted(seen)
    if problems:
        ctx.report.fail("forks", problems)
    elif compared:
        ctx.report.ok("forks", f"{compared} checkpoint(s) of a size seen twice: the same root")
    if len(sizes) > 1 and not problems:
        ctx.report.note(
            "forks",
            f"checkpoints of sizes {', '.join(map(str, sizes))}: those of different sizes are "
            f"compared by consistency proofs, e.g. GET /log/proof/consistency?from={sizes[0]}"
            f"&to={sizes[-1]}",
        )


def _check_chains(ctx: _Ctx) -> None:
    problems: list[str] = []
    devices: dict[str, list[PackEntry]] = defaultdict(list)
    for p in ctx.pack.entries:
        devices[p.entry.device_id].append(p)
    listed = {str(d.get("device_id")) for d in ctx.pack.devices}
    for device_id, rows in devices.items():
        rows.sort(key=lambda p: p.entry.seq)
        if device_id not in listed:
            problems.append(f"{rows[0].name}: device {device_id} is not in devices.json")
        try:
            prev = bytes.fromhex(ctx.pack.chains.get(device_id, ""))
        except ValueError:
            prev = b""
        if rows[0].entry.seq == 1:
            prev = prev if prev else GENESIS_H
        if len(prev) != 32 or (rows[0].entry.seq == 1 and prev != GENESIS_H):
            problems.append(f"{rows[0].name}: no valid starting hash in chains.json")
            prev = GENESIS_H
        first_bad = None
        for n, p in enumerate(rows):
            want = rows[0].entry.seq + n
            if p.entry.seq != want:
                what = "appears twice" if p.entry.seq < want else f"follows {want - 1}: missing"
                problems.append(f"{device_id}:{want if p.entry.seq > want else p.entry.seq} {what}")
                break
            h = p.h if p.redacted else chain_hash(prev, p.entry)
            if p.redacted and (p.entry.kind != Kind.ENROL or p.entry.points or p.entry.grams):
                problems.append(f"{p.name}: only an old enrolment may be given by hash alone")
            if h != p.h and first_bad is None:
                first_bad = p.name
                problems.append(f"{p.name}: does not hash to its recorded h (changed)")
            ctx.hashes[p.entry.device_id, p.entry.seq] = h
            ctx.by_key[p.entry.device_id, p.entry.seq] = p.entry
            prev = h
        ctx.per_device[device_id] = rows
    n = len(ctx.pack.entries)
    if problems:
        ctx.report.fail("chains", problems)
    else:
        ctx.report.ok("chains", f"{len(devices)} device(s), {n} entries hash from one to the next")


def _check_origin(ctx: _Ctx) -> None:
    keys = {
        str(d.get("device_id")): [str(k) for k in d.get("public_keys", [d.get("public_key")])]
        for d in ctx.pack.devices
    }
    problems: list[str] = []
    signed = 0
    unproven: list[str] = []
    for device_id, rows in ctx.per_device.items():
        good: set[int] = set()
        for item in ctx.pack.heads.get(device_id, []):
            try:
                seq, sig, key = int(item[0]), bytes.fromhex(str(item[1])), str(item[2])
                pub = _public_key(key, f"the key of {device_id}:{seq}'s head")
            except (ConfigError, ValueError, TypeError, IndexError):
                problems.append(f"{device_id}: a malformed signed head")
                continue
            h = ctx.hashes.get((device_id, seq))
            if key not in keys.get(device_id, []):
                problems.append(f"{device_id}:{seq}: its head's key is not the device's")
            elif h is None or not heads.head_verifies(pub, device_id, seq, h, sig):
                problems.append(f"{device_id}:{seq}: its signed head does not verify")
            else:
                good.add(seq)
                signed += 1
        # An entry is the device's if a verified head at or after it is reached through
        # hashes recomputed all the way (a redacted entry's hash is only stated).
        covered_from: int | None = None
        for p in reversed(rows):
            if p.entry.seq in good:
                covered_from = p.entry.seq
            if covered_from is None and ctx.in_period(p):
                unproven.append(p.name)
            if p.redacted:
                covered_from = None
    if problems:
        ctx.report.fail("origin", problems)
    elif unproven:
        ctx.report.unproven = len(unproven)
        ctx.report.note(
            "origin",
            f"{len(unproven)} entries in the period are under no signed head "
            f"({', '.join(sorted(unproven)[:MAX_NAMED])}…): written before kiosks signed "
            "their heads, or before an enrolment given by hash alone; they rest on central's word",
        )
    else:
        ctx.report.ok("origin", f"{signed} signed head(s) cover every entry in the period")


def _check_log(ctx: _Ctx, cp: checkpoint.Checkpoint | None) -> None:
    if cp is None:
        ctx.report.fail("log", ["no trusted checkpoint to prove entries against"])
        return
    problems: list[str] = []
    proven: set[tuple[str, int]] = set()
    for device_id, proof in ctx.pack.proofs.items():
        try:
            runs = [(int(a), int(b), int(c)) for a, b, c in proof["runs"]]
            hashes = [bytes.fromhex(x) for x in proof["hashes"]]
        except (KeyError, TypeError, ValueError):
            problems.append(f"device {device_id}: malformed proof")
            continue
        indices, leaves, names = [], [], []
        for first_seq, first_index, count in runs:
            for k in range(count):
                h = ctx.hashes.get((device_id, first_seq + k))
                if h is None:
                    problems.append(f"{device_id}:{first_seq + k}: proven, but not in the pack")
                    break
                indices.append(first_index + k)
                leaves.append(entry_leaf_hash(device_id, first_seq + k, h))
                names.append((device_id, first_seq + k))
        order = sorted(range(len(indices)), key=indices.__getitem__)
        indices = [indices[i] for i in order]
        leaves = [leaves[i] for i in order]
        if indices and not merkle_multi.verify_multi(
            indices, leaves, cp.size, hashes, cp.root_hash
        ):
            problems.append(
                f"device {device_id}: its {len(indices)} entries are not in the checkpoint's "
                "tree at the places given"
            )
            continue
        proven.update(names)
    missing = [p.name for p in ctx.period_entries if (p.entry.device_id, p.entry.seq) not in proven]
    problems += [f"{name}: not proven to be in the log" for name in missing]
    if problems:
        ctx.report.fail("log", problems)
    else:
        ctx.report.ok("log", f"{len(proven)} entries proven in the checkpoint's tree")


def _check_totals(ctx: _Ctx) -> Totals:
    totals = totals_of((p.entry for p in ctx.period_entries), ctx.by_key)
    mine, stated = totals.as_json(), ctx.pack.totals
    differ = [
        f"{k}: central says {stated.get(k)!r}, the entries give {v!r}"
        for k, v in mine.items()
        if stated.get(k) != v
    ]
    if differ:
        ctx.report.fail("totals", differ)
    else:
        ctx.report.ok("totals", "central's totals are the entries' sums")
    return totals
