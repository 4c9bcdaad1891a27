"""`greenpass central registry …`: reduction units issued, transferred and retired
(`central.registry`; docs/registry.md). The names are fixed: other tools call them.

    greenpass central registry issue --village V --period YYYY-MM [--methodology F] [--out-dir D]
    greenpass central registry account add ID --name NAME
    greenpass central registry transfer SERIALS --to ACCOUNT
    greenpass central registry retire SERIALS --beneficiary WHO --purpose WHY
    greenpass central registry certificate ID --out CERT.json [--pdf CERT.pdf] --public-url URL
    greenpass central registry reconcile
    greenpass central registry show [--account ID] [--json]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from central.cli_common import cli_actor, now_ms, open_store, print_json
from greenpass.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    Child = Callable[[str, str], argparse.ArgumentParser]


def register(child: Child) -> None:
    g = child(
        "registry", "reduction units: issue a village's month, transfer, retire"
    ).add_subparsers(dest="registry_command", metavar="COMMAND", required=True)

    def leaf(name: str, text: str) -> argparse.ArgumentParser:
        p = g.add_parser(name, help=text, description=text)
        p.add_argument("--db", default=argparse.SUPPRESS, help="as for `greenpass central`")
        p.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="as above")
        return p

    p = leaf("issue", "issue a village's month of verified deposits as units (once)")
    p.add_argument("--village", required=True, help="the village id")
    p.add_argument("--period", required=True, metavar="YYYY-MM", help="the month (its vintage)")
    p.add_argument("--methodology", type=Path, help="methodology file (default: the shipped one)")
    p.add_argument("--out-dir", type=Path, help="where the evidence pack goes (HOME/registry)")
    p.set_defaults(handler=_issue)
    p = leaf("account", "add a buyer's account (an enterprise)")
    sub = p.add_subparsers(dest="account_command", metavar="COMMAND", required=True)
    a = sub.add_parser("add", help="add a buyer's account", description="add a buyer's account")
    a.add_argument("--db", default=argparse.SUPPRESS, help="as for `greenpass central`")
    a.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="as above")
    a.add_argument("account_id", metavar="ID", help="the account id (no ':')")
    a.add_argument("--name", required=True, help="the enterprise's name")
    a.set_defaults(handler=_account_add)
    p = leaf("transfer", "move units to another account")
    p.add_argument("serials", metavar="SERIALS", help="GP-<village>-<YYYYMM>-<first>-<last>")
    p.add_argument("--to", required=True, metavar="ACCOUNT", help="the account receiving them")
    p.set_defaults(handler=_transfer)
    p = leaf("retire", "retire units for good, for a beneficiary and a purpose")
    p.add_argument("serials", metavar="SERIALS", help="GP-<village>-<YYYYMM>-<first>-<last>")
    p.add_argument("--beneficiary", required=True, help="on whose behalf they are retired")
    p.add_argument("--purpose", required=True, help="what they offset")
    p.set_defaults(handler=_retire)
    p = leaf("certificate", "a retirement's certificate: signed JSON (checks offline) and a PDF")
    p.add_argument("retirement_id", type=int, metavar="ID", help="the retirement's number")
    p.add_argument("--out", type=Path, required=True, metavar="CERT.json", help="JSON to write")
    p.add_argument("--pdf", type=Path, metavar="CERT.pdf", help="also the PDF, for people")
    p.add_argument(
        "--public-url",
        required=True,
        metavar="URL",
        help="central's public address, for the QR code (e.g. https://central.county.example)",
    )
    p.set_defaults(handler=_certificate)
    p = leaf("reconcile", "cover deposits reversed after their issuance from the buffer pool")
    p.set_defaults(handler=_reconcile)
    p = leaf("show", "issuances, holdings and retirements")
    p.add_argument("--account", help="one account's holdings only")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_show)


def _issue(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from central import registry
    from central.operations import DEFAULT_TIMEZONE
    from greenpass.record.methodology import default_methodology, load_methodology
    from sync.keys import load_private_key

    key_file = args.home / "central.key"
    if not key_file.exists():
        raise ConfigError(f"no central key at {key_file}: give central's --home")
    method = load_methodology(args.methodology) if args.methodology else default_methodology()
    with open_store(args) as store:
        done = registry.issue(
            store, load_private_key(key_file), args.village, args.period, method,
            args.out_dir or args.home / "registry", actor=cli_actor(), now_ms=now_ms(),
            default_tz=ZoneInfo(DEFAULT_TIMEZONE),
        )  # fmt: skip
    for line in done.covered:
        print(f"covered: {line}")
    print(f"issued {done.issuance_id} by methodology {method.version}: {done.entries} deposits, "
          f"{done.gross_g} g CO2e before deductions")  # fmt: skip
    print(f"  to {registry.issuer_account(args.village)}: {done.issued or 'none'}")
    print(f"  to the buffer pool {registry.buffer_account(args.village)}: {done.buffer or 'none'}")
    print(f"  evidence pack: {done.pack}")
    if done.left_out:
        print(f"left out, not in the log's checkpoint yet ({len(done.left_out)}): "
              + ", ".join(done.left_out[:20]))  # fmt: skip
    return 0


def _account_add(args: argparse.Namespace) -> int:
    from central import registry

    with open_store(args) as store:
        registry.add_account(store, args.account_id, args.name, actor=cli_actor(), now_ms=now_ms())
    print(f"registry account {args.account_id} added")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from central import registry
    from central.registry_db import parse_serials

    s = parse_serials(args.serials)
    with open_store(args) as store:
        holder = registry.transfer(store, s, args.to, actor=cli_actor(), now_ms=now_ms())
    print(f"{s.count} unit(s) {s} moved from {holder} to {args.to}")
    return 0


def _retire(args: argparse.Namespace) -> int:
    from central import registry
    from central.registry_db import parse_serials

    s = parse_serials(args.serials)
    with open_store(args) as store:
        rid = registry.retire(store, s, beneficiary=args.beneficiary, purpose=args.purpose,
                              actor=cli_actor(), now_ms=now_ms())  # fmt: skip
    print(f"{s.count} unit(s) {s} retired for {args.beneficiary}: retirement {rid}")
    return 0


def _certificate(args: argparse.Namespace) -> int:
    import json

    from central import registry_certificate
    from sync.keys import load_private_key

    key_file = args.home / "central.key"
    if not key_file.exists():
        raise ConfigError(f"no central key at {key_file}: give central's --home")
    with open_store(args) as store:
        doc = registry_certificate.document(
            store, load_private_key(key_file), args.retirement_id, args.public_url
        )
    args.out.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"certificate of retirement {args.retirement_id} ({doc['retirement']['serials']}) "
          f"in {args.out}")  # fmt: skip
    if args.pdf:
        registry_certificate.write_pdf(doc, args.pdf)
        print(f"for people: {args.pdf}")
    pack = args.home / "registry" / doc["issuance"]["pack"]  # where `issue` keeps it
    print(f"check it: greenpass verify-evidence {pack if pack.exists() else pack.name} "
          f"--central-key {doc['central_key']} --certificate {args.out}")  # fmt: skip
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from central import registry

    with open_store(args) as store:
        done = registry.cover_reversals(store, actor=cli_actor(), now_ms=now_ms())
    for line in done:
        print(line)
    print(f"{len(done)} reversal(s) of issued deposits covered")
    return 0


def _show(args: argparse.Namespace) -> int:
    from central import registry

    with open_store(args) as store:
        found = registry.summary(store)
    if args.account:
        found["holdings"] = [h for h in found["holdings"] if h["account"] == args.account]
    if args.json:
        print_json(found)
        return 0
    for i in found["issuances"]:
        print(f"{i['issuance_id']}  {i['units']} units ({i['buffer_units']} buffer), "
              f"{i['entries']} deposits, methodology {i['methodology']}, "
              f"pack {i['pack_name']}")  # fmt: skip
    for h in found["holdings"]:
        state = f"retired ({h['retirement']})" if h["retirement"] else "held"
        print(f"  {h['account']:<24} {h['serials']:<36} {h['units']:>8}  {state}")
    return 0
