"""Evidence packs: one village's entries over a period, with everything a third party
needs to check them offline (docs/trust.md, "Evidence packs").

A pack is a zip of plain files, written by `greenpass central evidence` and read by
`greenpass verify-evidence` (`greenpass.evidence_verify`), which needs this package
alone — no central, no network, no database:

    manifest.json    format, village, period (local days and their epoch-ms bounds),
                     the log's origin, central's public key (for reading: the verifier
                     is given the key it trusts), counts
    checkpoint.txt   central's signed checkpoint (C2SP signed note) covering the period
    devices.json     each kiosk: id, village, Ed25519 public key, enrolment and status
    entries.jsonl    one entry per line, every field of its canonical bytes, its chain
                     hash `h` and central's `received_ms`, devices in order, seq order
    chains.json      per device: the chain hash before its first entry in the pack
    heads.json       per device: [seq, signature] of each signed chain head kept
                     (`greenpass.heads`): what proves the device wrote its entries
    proofs.json      per device: the leaf index of each of its proven entries (runs of
                     [first_seq, first_index, count]) and one many-leaf proof
                     (`greenpass.merkle_multi`) against the checkpoint's tree
    rules/V.toml     every rules version an entry names, as central holds it
    factors.csv      the emission factors and points of those rules, with sources
    totals.json      central's own totals for the village and period (its reports')
    summary.html     for people, in Chinese and English
    README.txt       what this is and how to check it

Which entries a pack holds, per device: from the one before its first entry in the
period (or seq 1), through every entry a reversal in the period cancels, to the first
signed head at or after its last entry in the period, and one entry beyond it when
there is one, so a verifier sees where each device's period starts and ends. The
verifier decides for itself which entries are in the period (by `wall_ms`).

A pack holds pseudonymous passbook ids and no household name: an enrolment carries
only a commitment (docs/privacy.md). An enrolment from before enrol data version 2
held the name in its chained data; central no longer has it, so such an entry is in
the pack `redacted`, its hash given rather than recomputed.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenpass.errors import ConfigError
from greenpass.record.entries import Entry, Kind

FORMAT = "greenpass-evidence/1"
MANIFEST, CHECKPOINT, DEVICES, ENTRIES = (
    "manifest.json", "checkpoint.txt", "devices.json", "entries.jsonl"
)  # fmt: skip
CHAINS, HEADS, PROOFS, TOTALS = "chains.json", "heads.json", "proofs.json", "totals.json"
FACTORS, SUMMARY, README, RULES_DIR = "factors.csv", "summary.html", "README.txt", "rules/"
REQUIRED = (MANIFEST, CHECKPOINT, DEVICES, ENTRIES, CHAINS, HEADS, PROOFS, TOTALS, FACTORS)
MAX_MEMBER_BYTES = 2 * 1024**3  # a pack's member a verifier will read at most

# Entry fields as `entries.jsonl` writes them, beside `h`, `received_ms`, `village_id`
# and `redacted`.
ENTRY_FIELDS = tuple(Entry.__dataclass_fields__)
FACTOR_COLUMNS = (
    "rules_version", "category", "name_zh", "name_en", "points_per_kg", "co2e_kg_per_kg",
    "factor_source", "proxy", "factors_source",
)  # fmt: skip


@dataclass(frozen=True)
class PackEntry:
    entry: Entry
    h: bytes  # as central states it; the verifier recomputes it
    village_id: str  # central's attribution (the device's village when it arrived)
    received_ms: int
    redacted: bool = False

    @property
    def name(self) -> str:
        return f"{self.entry.device_id}:{self.entry.seq}"


@dataclass
class Pack:
    manifest: dict[str, Any]
    checkpoint: bytes
    devices: list[dict[str, Any]]
    entries: list[PackEntry]
    chains: dict[str, str]
    heads: dict[str, list[list[Any]]]
    proofs: dict[str, dict[str, Any]]
    totals: dict[str, Any]
    factors_csv: str
    rules: dict[str, str] = field(default_factory=dict)  # file name → text


def file_name(version: str) -> str:
    """A rules version as a file name in the pack (the verifier reads the version from
    the file's own `version`, not from its name)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", version).lstrip(".") or "rules"


def entry_record(e: Entry, h: bytes, village_id: str, received_ms: int, redacted: bool) -> str:
    """One line of `entries.jsonl`."""
    fields = e.fields()
    if fields["ref_device"] is None:  # as in the canonical bytes: only when it is set
        del fields["ref_device"]
    fields.update(h=h.hex(), village_id=village_id, received_ms=received_ms)
    if redacted:
        fields["redacted"] = True
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _entry_of(line: str, n: int) -> PackEntry:
    try:
        raw = json.loads(line)
        fields = {k: raw[k] for k in ENTRY_FIELDS if k != "ref_device"}
        fields["ref_device"] = raw.get("ref_device")  # absent: not a cross-kiosk reversal
        fields["kind"] = Kind(fields["kind"])
        if not isinstance(fields["data"], dict):
            raise TypeError("data is not an object")
        return PackEntry(
            Entry(**fields),
            bytes.fromhex(raw["h"]),
            str(raw["village_id"]),
            int(raw["received_ms"]),
            bool(raw.get("redacted", False)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{ENTRIES} line {n}: not an entry ({exc})") from exc


def _read(z: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError as exc:
        raise ConfigError(f"not an evidence pack: it has no {name}") from exc
    if info.file_size > MAX_MEMBER_BYTES:
        raise ConfigError(f"{name} is {info.file_size} bytes, more than a pack holds")
    return z.read(info)


def _json(z: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(_read(z, name))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from exc


def read_pack(path: Path) -> Pack:
    """The pack at `path`, parsed; ConfigError if it is not one (nothing checked yet)."""
    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"cannot open {path} as an evidence pack: {exc}") from exc
    with z:
        manifest = _json(z, MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ConfigError(f"{path}: not an evidence pack of format {FORMAT}")
        try:
            text = _read(z, ENTRIES).decode()
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{ENTRIES} is not UTF-8: {exc}") from exc
        entries = [_entry_of(line, n) for n, line in enumerate(text.splitlines(), 1) if line]
        rules = {
            name: _read(z, name).decode(errors="replace")
            for name in z.namelist()
            if name.startswith(RULES_DIR) and name.endswith(".toml")
        }
        return Pack(
            manifest=manifest,
            checkpoint=_read(z, CHECKPOINT),
            devices=_json(z, DEVICES),
            entries=entries,
            chains=_json(z, CHAINS),
            heads=_json(z, HEADS),
            proofs=_json(z, PROOFS),
            totals=_json(z, TOTALS),
            factors_csv=_read(z, FACTORS).decode(),
            rules=rules,
        )


# --- totals: the verifier's and the summary's, from entries --------------------------


def kg(grams: int) -> str:
    """Integer grams as kilograms with three decimals, e.g. -1,234.500 (for reading)."""
    sign = "-" if grams < 0 else ""
    return f"{sign}{abs(grams) // 1000:,}.{abs(grams) % 1000:03d}"


@dataclass
class Totals:
    grams_by_category: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    deposits_by_category: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    co2e_by_category: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    deposits: int = 0
    points_issued: int = 0
    points_redeemed: int = 0
    co2e_g: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "grams_by_category": {k: v for k, v in sorted(self.grams_by_category.items())},
            "deposits": self.deposits,
            "points_issued": self.points_issued,
            "points_redeemed": self.points_redeemed,
            "co2e_g": self.co2e_g,
        }


def totals_of(entries: Iterable[Entry], targets: Mapping[tuple[str, int], Entry]) -> Totals:
    """Sums net of reversals, as central's reports count them: a reversal on its own
    day, under the kind of the entry it cancels (`targets`: (device, seq) → entry)."""
    t = Totals()
    for e in entries:
        kind, sign = e.kind, 1
        if kind == Kind.REVERSAL:
            target = targets.get((e.ref_device or e.device_id, e.ref_seq or 0))
            if target is None:
                continue  # the verifier reports it; it counts nowhere
            kind, sign = target.kind, -1
        if kind == Kind.DEPOSIT:
            cat = e.category or ""
            t.deposits += sign
            t.deposits_by_category[cat] += sign
            t.grams_by_category[cat] += e.grams or 0
            t.co2e_by_category[cat] += e.co2e_g
            t.points_issued += e.points
            t.co2e_g += e.co2e_g
        elif kind == Kind.AWARD:
            t.points_issued += e.points
        elif kind == Kind.REDEEM:
            t.points_redeemed -= e.points
    return t
