"""`greenpass central village|rules|catalogue|passbook|audit …`: the operator's
operations from the command line (for technicians and scripts; other tools call
these names, so they are fixed). Each is one call into `central.operations` or
`central.passbooks`, recorded in the audit as `cli:<unix user>`.

    greenpass central village add ID --name-zh … --name-en … [--timezone TZ]
    greenpass central village list [--json]
    greenpass central rules set --village V FILE.toml | rules show --village V [--json]
    greenpass central catalogue set --village V FILE.toml [--if-version N]
    greenpass central catalogue show --village V [--json]
    greenpass central passbook revoke ID --reason … | reinstate ID | replace OLD
    greenpass central passbook export ID [--out FILE] | erase ID   (central.cli_personal)
    greenpass central audit [--village V] [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from central.cli_common import cli_actor, now_ms, open_store, print_json
from central.cli_personal import register as register_personal
from greenpass.errors import ConfigError

if TYPE_CHECKING:  # imported lazily: the CLI must start fast for every command
    pass

Child = Callable[[str, str], argparse.ArgumentParser]


def register_operator(
    csub: argparse._SubParsersAction[argparse.ArgumentParser], child: Child
) -> None:
    """Add the operator's subcommands under `greenpass central`."""

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
    ) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=text, description=text)
        # SUPPRESS: a value given before the name is not overwritten by a default.
        p.add_argument("--db", default=argparse.SUPPRESS, help="as for `greenpass central`")
        p.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="as above")
        return p

    def group(name: str, text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        return child(name, text).add_subparsers(
            dest=f"{name}_command", metavar="COMMAND", required=True
        )

    g = group("village", "villages: add one, list them")
    p = leaf(g, "add", "create a village, or set its names and time zone")
    p.add_argument("village_id", metavar="ID", help="the village id (letters, digits, . _ -)")
    p.add_argument("--name-zh", required=True, help="the village's name in Chinese")
    p.add_argument("--name-en", required=True, help="the village's name in English")
    p.add_argument("--timezone", default="Asia/Shanghai", help="IANA time zone (Asia/Shanghai)")
    p.set_defaults(handler=_village_add)
    p = leaf(g, "list", "every village: names, kiosks, rules and catalogue versions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_village_list)

    g = group("rules", "a village's points rules: put a file in force, show it")
    p = leaf(g, "set", "put a rules file in force for a village (pushed to its kiosks)")
    p.add_argument("--village", required=True)
    p.add_argument("file", metavar="FILE.toml", type=Path)
    p.set_defaults(handler=_rules_set)
    p = leaf(g, "show", "the rules in force and every version the village has had")
    p.add_argument("--village", required=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_rules_show)

    g = group("catalogue", "a village's goods and prices: set from a file, show")
    p = leaf(g, "set", "make a file the village's catalogue (pushed to its kiosks)")
    p.add_argument("--village", required=True)
    p.add_argument("file", metavar="FILE.toml", type=Path)
    p.add_argument(
        "--if-version", type=int, help="refuse if the catalogue is no longer at this version"
    )
    p.set_defaults(handler=_catalogue_set)
    p = leaf(g, "show", "the village's items, prices and the catalogue's version")
    p.add_argument("--village", required=True)
    p.add_argument(
        "--json", action="store_true", help="machine-readable output (pictures in base64)"
    )
    p.set_defaults(handler=_catalogue_show)

    g = group(
        "passbook", "villagers' passbooks: revoke, reinstate, replace a lost card, export, erase"
    )
    p = leaf(g, "revoke", "refuse a passbook at every kiosk of its village")
    p.add_argument("passbook_id", metavar="ID")
    p.add_argument("--reason", required=True, help="why, for the audit")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_passbook_revoke)
    p = leaf(g, "reinstate", "accept a revoked passbook again")
    p.add_argument("passbook_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_passbook_reinstate)
    p = leaf(g, "replace", "a lost card: revoke it, issue a new passbook with its balance")
    p.add_argument("passbook_id", metavar="OLD")
    p.add_argument("--csv", type=Path, help="write the new card's row for `greenpass cards --csv`")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_passbook_replace)
    register_personal(g, leaf)

    p = child("audit", "the operators' changes, newest first: who, when, what, before, after")
    p.add_argument("--village", help="only this village's")
    p.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_audit)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


# --- villages -------------------------------------------------------------------------------


def _village_add(args: argparse.Namespace) -> int:
    from central import operations

    with open_store(args) as store:
        outcome = operations.add_village(
            store, args.village_id, name_zh=args.name_zh, name_en=args.name_en,
            timezone=args.timezone, actor=cli_actor(), now_ms=now_ms(),
        )  # fmt: skip
    print(f"village {args.village_id} {outcome}")
    return 0


def _village_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from central import operations

    with open_store(args) as store:
        found = operations.villages(store)
    if args.json:
        print_json([asdict(v) for v in found])
        return 0
    for v in found:
        print(
            f"{v.village_id}\t{v.name_zh}\t{v.name_en}\t{v.timezone}\tkiosks {v.devices}\t"
            f"rules {v.rules_version or '-'}\tcatalogue v{v.catalogue_version}"
        )
    if not found:
        print("no villages")
    return 0


# --- rules ----------------------------------------------------------------------------------


def _rules_set(args: argparse.Namespace) -> int:
    from central import operations

    text = _read(args.file)
    with open_store(args) as store:
        changed = operations.set_rules(
            store, args.village, text, path=str(args.file), actor=cli_actor(), now_ms=now_ms()
        )
        version = operations.rules(store, args.village).version
    if changed:
        print(f"rules {version} now in force for {args.village}; its kiosks get them next push")
    else:
        print(f"rules {version} were already in force for {args.village}")
    return 0


def _rules_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from central import operations

    with open_store(args) as store:
        found = operations.rules(store, args.village)
    if args.json:
        print_json(asdict(found))
    elif found.version is None:
        print(f"no rules set for {args.village}: its kiosks price with the rules installed there")
    else:
        print(f"# rules {found.version} for {args.village} (sha256 {found.sha256})")
        print(f"# versions: {', '.join(found.versions)}")
        print(found.text, end="" if (found.text or "").endswith("\n") else "\n")
    return 0


# --- catalogue ------------------------------------------------------------------------------


def _catalogue_set(args: argparse.Namespace) -> int:
    from central import operations
    from central.catalogue_file import parse_catalogue

    items = parse_catalogue(_read(args.file), str(args.file), args.file.parent)
    with open_store(args) as store:
        before = operations.catalogue(store, args.village).version
        done = operations.set_catalogue(
            store, args.village, items, actor=cli_actor(), now_ms=now_ms(),
            expected_version=args.if_version,
        )  # fmt: skip
    if done.version == before:
        print(f"catalogue of {args.village} unchanged (version {done.version})")
    else:
        active = sum(i.active for i in done.items)
        print(
            f"catalogue of {args.village} now version {done.version}: {active} active items "
            f"of {len(done.items)}; its kiosks get it next push"
        )
    return 0


def _catalogue_show(args: argparse.Namespace) -> int:
    from central import operations

    with open_store(args) as store:
        cat = operations.catalogue(store, args.village)
    if args.json:
        print_json(
            {
                "village_id": cat.village_id,
                "version": cat.version,
                "items": [
                    {
                        "id": i.item_id,
                        "name_zh": i.name_zh,
                        "name_en": i.name_en,
                        "points": i.points,
                        "active": i.active,
                        "picture_jpeg_base64": None
                        if i.picture is None
                        else base64.b64encode(i.picture).decode(),
                    }
                    for i in cat.items
                ],
            }
        )
        return 0
    print(f"# catalogue of {cat.village_id}, version {cat.version}")
    for i in cat.items:
        print(
            f"{i.item_id}\t{i.name_zh}\t{i.name_en}\t{i.points} points\t"
            f"{'active' if i.active else 'inactive'}\t{'-' if i.picture is None else 'picture'}"
        )
    return 0


# --- passbooks ------------------------------------------------------------------------------


def _passbook_revoke(args: argparse.Namespace) -> int:
    from central import passbooks

    with open_store(args) as store:
        changed = passbooks.revoke(
            store, args.passbook_id, reason=args.reason, actor=cli_actor(), now_ms=now_ms()
        )
    if args.json:
        print_json({"passbook_id": args.passbook_id, "status": "revoked", "changed": changed})
    elif changed:
        print(f"passbook {args.passbook_id} revoked; kiosks refuse it from their next state")
    else:
        print(f"passbook {args.passbook_id} was already revoked")
    return 0


def _passbook_reinstate(args: argparse.Namespace) -> int:
    from central import passbooks

    with open_store(args) as store:
        changed = passbooks.reinstate(store, args.passbook_id, actor=cli_actor(), now_ms=now_ms())
    if args.json:
        print_json({"passbook_id": args.passbook_id, "status": "active", "changed": changed})
    elif changed:
        print(f"passbook {args.passbook_id} reinstated; kiosks accept it from their next state")
    else:
        print(f"passbook {args.passbook_id} was not revoked")
    return 0


def _passbook_replace(args: argparse.Namespace) -> int:
    from central import passbooks, reports

    with open_store(args) as store:
        new = passbooks.replace(store, args.passbook_id, actor=cli_actor(), now_ms=now_ms())
        lines = reports.statement(store, new)
        household = passbooks.household(store, new)
    balance = lines[-1].balance if lines else 0
    if args.csv is not None:
        with args.csv.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["passbook_id", "household_name"])
            w.writerow([new, household])
    if args.json:
        print_json(
            {"old_passbook_id": args.passbook_id, "new_passbook_id": new,
             "household_name": household, "balance": balance}
        )  # fmt: skip
        return 0
    print(
        f"passbook {args.passbook_id} revoked and replaced by {new} ({household}), "
        f"balance {balance}"
    )
    if args.csv is not None:
        print(f"print its card with: greenpass cards --csv {args.csv} … (docs/cards.md)")
    return 0


# --- audit ----------------------------------------------------------------------------------


def _audit(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from central import audit

    if not 1 <= args.limit <= 10_000:
        raise ConfigError("--limit is 1 to 10000")
    with open_store(args) as store:
        found = audit.rows(store, village_id=args.village, limit=args.limit)
    if args.json:
        print_json([asdict(r) for r in found])
        return 0
    for r in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.at_ms / 1000))
        print(
            f"{when}Z\t{r.actor}\t{r.action}\t{r.target}\t"
            f"{json.dumps(r.before, ensure_ascii=False)} -> "
            f"{json.dumps(r.after, ensure_ascii=False)}"
        )
    return 0
