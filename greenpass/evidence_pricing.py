"""The rules, factor-table and pricing checks of `greenpass verify-evidence`
(`greenpass.evidence_verify`): every rules version an entry names is in the pack and
says what the factor table says, and each entry's points and CO2e are what its rules
give (docs/trust.md, "Evidence packs")."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from greenpass.errors import GreenPassError
from greenpass.evidence import FACTOR_COLUMNS, Pack, PackEntry
from greenpass.record.entries import REVERSIBLE, Entry, Kind
from greenpass.record.personal import PERSONAL_KEY
from greenpass.record.rules import Rules, parse_rules

if TYPE_CHECKING:
    from greenpass.evidence_verify import Report


def check_rules(pack: Pack, report: Report) -> dict[str, Rules]:
    problems: list[str] = []
    known: dict[str, Rules] = {}
    for name, text in pack.rules.items():
        try:
            parsed = parse_rules(text, name)
        except GreenPassError as exc:
            problems.append(str(exc))
            continue
        if parsed.version in known:
            problems.append(f"{name}: a second text for rules version {parsed.version}")
        known[parsed.version] = parsed
    named = {p.entry.rules_version for p in pack.entries if p.entry.rules_version}
    problems += [
        f"rules version {v} is named but not in the pack" for v in sorted(named - set(known))
    ]
    rows = list(csv.DictReader(io.StringIO(pack.factors_csv)))
    listed = set()
    for row in rows:
        rules = known.get(row.get("rules_version", ""))
        cat = rules.category(row.get("category", "")) if rules else None
        listed.add((row.get("rules_version"), row.get("category")))
        if rules is None or cat is None:
            problems.append(
                f"factors.csv: {row.get('rules_version')}/{row.get('category')} is in no rules"
            )
        elif row != _factor_row(rules, cat.key):
            problems.append(
                f"factors.csv: {rules.version}/{cat.key} differs from rules/{rules.version}.toml"
            )
    for version, rules in known.items():
        problems += [
            f"factors.csv lacks {version}/{key}"
            for key in rules.categories
            if (version, key) not in listed
        ]
    if problems:
        report.fail("rules", problems)
    else:
        report.ok("rules", f"{len(known)} rules version(s); factor table matches them")
    return known


def _milli(value: int) -> str:
    return f"{value // 1000}.{value % 1000:03d}"


def _factor_row(rules: Rules, key: str) -> dict[str, str]:
    cat = rules.categories[key]
    values = (
        rules.version, key, cat.name_zh, cat.name_en, _milli(cat.points_per_tonne),
        _milli(cat.co2e_g_per_kg), cat.factor_source, cat.proxy, rules.factors_source,
    )  # fmt: skip
    return dict(zip(FACTOR_COLUMNS, values, strict=True))


def factors_csv(rules: Sequence[Rules]) -> str:
    """The pack's factor table: one row per rules version and category."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=FACTOR_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rules:
        for key in r.categories:
            w.writerow(_factor_row(r, key))
    return out.getvalue()


def _price(e: Entry, rules: Rules | None) -> str | None:
    """What is wrong with a deposit's or award's numbers under its rules, if anything."""
    if rules is None:
        return f"rules {e.rules_version} unknown"
    if e.kind == Kind.AWARD:
        ok = 1 <= e.points <= rules.max_award_points
        return (
            None
            if ok
            else f"award of {e.points} points, the rules allow 1..{rules.max_award_points}"
        )
    cat = rules.category(e.category or "")
    grams = e.grams or 0
    if cat is None or not cat.min_grams <= grams <= cat.max_grams:
        return f"{grams} g of {e.category} is outside rules {rules.version}"
    if e.points != cat.points_for(grams):
        return (
            f"{e.points} points for {grams} g, rules {rules.version} give {cat.points_for(grams)}"
        )
    if e.co2e_g != cat.co2e_for(grams):
        factor = _milli(cat.co2e_g_per_kg)
        return f"{e.co2e_g} g CO2e for {grams} g, factor {factor} gives {cat.co2e_for(grams)}"
    return None


def _reversal(e: Entry, target: Entry | None) -> str | None:
    if target is None:
        where = f"{e.ref_device} " if e.ref_device else ""
        return f"cancels {where}seq {e.ref_seq}, which is not in the pack"
    if target.kind not in REVERSIBLE:
        return f"cancels a {target.kind} entry, which cannot be reversed"
    pairs = [(e.grams, target.grams), (e.points, target.points), (e.co2e_g, target.co2e_g),
             (e.qty, target.qty)]  # fmt: skip
    if any(a != (None if b is None else -b) for a, b in pairs) or e.category != target.category:
        return f"is not the exact negation of seq {e.ref_seq}"
    return None


_CHECKS: dict[Kind, Callable[[Entry, Rules | None], str | None]] = {
    Kind.DEPOSIT: _price,
    Kind.AWARD: _price,
}


def check_pricing(
    period: Sequence[PackEntry], by_key: Mapping[tuple[str, int], Entry], known: dict[str, Rules],
    report: Report,
) -> None:  # fmt: skip
    problems: list[str] = []
    checked = 0
    # (target, reversing kiosk): a kiosk reverses an entry once, but the entry's own
    # kiosk and the one holding central's reservation may both have, offline
    # (`central.reservations`): both count.
    reversed_: set[tuple[tuple[str, int], str]] = set()
    for p in period:
        e = p.entry
        wrong: str | None = None
        if e.kind in _CHECKS:
            wrong = _CHECKS[e.kind](e, known.get(e.rules_version or ""))
        elif e.kind == Kind.REDEEM and (e.points >= 0 or (e.qty or 0) >= 0):
            wrong = "a redemption must take points and stock"
        elif e.kind == Kind.REVERSAL:
            # Its own kiosk's entry, or another's (`ref_device`, a cross-kiosk reversal).
            target_key = (e.ref_device or e.device_id, e.ref_seq or 0)
            wrong = _reversal(e, by_key.get(target_key))
            if wrong is None and (target_key, e.device_id) in reversed_:
                wrong = f"reverses seq {e.ref_seq} a second time"
            reversed_.add((target_key, e.device_id))
        elif e.kind == Kind.ENROL and not p.redacted and PERSONAL_KEY not in e.data:
            wrong = "an enrolment without its household's commitment"
        if wrong:
            problems.append(f"{p.name}: {wrong}")
        checked += 1
    if problems:
        report.fail("pricing", problems)
    else:
        report.ok("pricing", f"{checked} entries: points and CO2e recomputed by their rules")
