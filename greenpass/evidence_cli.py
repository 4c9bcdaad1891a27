"""`greenpass verify-evidence FILE.zip --central-key HEX`: check an evidence pack
offline (`greenpass.evidence_verify`; docs/trust.md, "Evidence packs")."""

from __future__ import annotations

import argparse
from pathlib import Path

from greenpass.evidence import Totals, kg


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify-evidence",
        help="check an evidence pack offline: signatures, chains, log proofs, points, totals",
        description="Check an evidence pack from `greenpass central evidence` with this "
        "package alone: no central, no network, no database. One verdict line per check; "
        "exit status 0 verified, 1 a discrepancy (the entry named), 3 some entries' device "
        "origin unproven, 2 not a pack or a bad key.",
    )
    p.add_argument("pack", type=Path, metavar="FILE.zip", help="the evidence pack")
    p.add_argument(
        "--central-key",
        required=True,
        metavar="HEX",
        help="central's public key, 64 hex digits (`greenpass central public-key`), "
        "obtained from central's operator by a channel you trust, not from the pack",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="another checkpoint central signed (a kiosk's, from `greenpass sync log "
        "--note`): one of the same size with another root proves a forked log (repeatable)",
    )
    p.add_argument(
        "--certificate",
        type=Path,
        action="append",
        default=[],
        metavar="CERT.json",
        help="a retirement certificate (`greenpass central registry certificate`): its units "
        "are recomputed from this pack's deposits by its methodology (repeatable)",
    )
    p.set_defaults(handler=_verify)


def _kg(grams: int) -> str:
    return f"{kg(grams)} kg"


def _print_totals(t: Totals) -> None:
    print("totals (entries in the period, net of reversals):")
    for cat in sorted(t.grams_by_category):
        print(
            f"  {cat or '-':<16} {_kg(t.grams_by_category[cat]):>14}  "
            f"{t.deposits_by_category[cat]:>6} deposits  CO2e {_kg(t.co2e_by_category[cat])}"
        )
    print(f"  deposits {t.deposits}, points issued {t.points_issued}, redeemed {t.points_redeemed}")
    print(f"  CO2e {_kg(t.co2e_g)} ({t.co2e_g} g)")


def _verify(args: argparse.Namespace) -> int:
    from greenpass import evidence_verify as ev  # noqa: PLC0415 - the CLI starts fast

    print(f"verifying {args.pack}", flush=True)
    report, totals = ev.verify_pack(args.pack, args.central_key, args.checkpoint, args.certificate)
    for line in report.lines:
        print(line)
    _print_totals(totals)
    if report.failed:
        print(f"verdict: NOT VERIFIED, {report.failed} check(s) failed")
        return ev.EXIT_DISCREPANCY
    if report.unproven:
        print(
            f"verdict: no discrepancy, but {report.unproven} entries' device origin is not "
            "proven (see origin)"
        )
        return ev.EXIT_UNPROVEN
    print("verdict: VERIFIED")
    return ev.EXIT_OK
