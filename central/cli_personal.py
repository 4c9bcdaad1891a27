"""`greenpass central passbook export ID`, `passbook erase ID` and `passbook correct
ID --household NAME`: a household's requests under the Personal Information Protection
Law (docs/privacy.md), from the command line. The names are fixed: other tools call
them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from central.cli_common import cli_actor, now_ms, open_store, print_json

if TYPE_CHECKING:
    Leaf = Callable[
        [argparse._SubParsersAction[argparse.ArgumentParser], str, str], argparse.ArgumentParser
    ]


def register(group: argparse._SubParsersAction[argparse.ArgumentParser], leaf: Leaf) -> None:
    """Add `export` and `erase` under `greenpass central passbook`."""
    p = leaf(group, "export", "everything central holds about a household, as JSON")
    p.add_argument("passbook_id", metavar="ID", help="any of the household's passbooks")
    p.add_argument("--out", type=Path, help="write the JSON to this file instead of stdout")
    p.set_defaults(handler=_export)
    p = leaf(group, "erase", "erase a household's name; its points and CO2e stay, pseudonymous")
    p.add_argument("passbook_id", metavar="ID", help="any of the household's passbooks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_erase)
    p = leaf(group, "correct", "correct a household's name (every card of its account)")
    p.add_argument("passbook_id", metavar="ID", help="any of the household's passbooks")
    p.add_argument("--household", required=True, help="the household's name as it should be")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_correct)


def _export(args: argparse.Namespace) -> int:
    from central import personal

    with open_store(args) as store:
        found = personal.export(store, args.passbook_id)
    if args.out is None:
        print_json(found)
        return 0
    args.out.write_text(json.dumps(found, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"the data held about {args.passbook_id}'s household is in {args.out}")
    return 0


def _erase(args: argparse.Namespace) -> int:
    from central import personal

    with open_store(args) as store:
        erased = personal.erase(store, args.passbook_id, actor=cli_actor(), now_ms=now_ms())
    if args.json:
        print_json({"passbook_id": args.passbook_id, "erased": erased})
    else:
        print(
            f"erased the household name of {', '.join(erased)}; their points and CO2e stay "
            "under these ids, and kiosks drop the name with their next state"
        )
    return 0


def _correct(args: argparse.Namespace) -> int:
    from central import personal

    with open_store(args) as store:
        cards = personal.correct(
            store, args.passbook_id, args.household, actor=cli_actor(), now_ms=now_ms()
        )
    if args.json:
        print_json({"passbook_id": args.passbook_id, "corrected": cards})
    else:
        print(f"the household name of {', '.join(cards)} is corrected; kiosks take it with "
              "their next state")  # fmt: skip
    return 0
