"""`greenpass ledger …`, `greenpass verify` and `greenpass rules check`.

Commands a technician or the village office runs on the kiosk itself. Staff
actions ask for the staff member's PIN (typed, or one line on stdin when piped),
so the CLI is audited like the touchscreen.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Any

from edge.ledger.ledger import Ledger
from greenpass.errors import ConfigError, Refused
from greenpass.record.entries import Entry
from greenpass.record.rules import DEFAULT_RULES_PATH, Rules, load_rules

DB_ENV = "GREENPASS_DB"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--db", default=os.environ.get(DB_ENV), help=f"ledger file (default: ${DB_ENV})"
    )
    js = argparse.ArgumentParser(add_help=False)
    js.add_argument("--json", action="store_true", help="print JSON instead of text")
    staff = argparse.ArgumentParser(add_help=False)
    staff.add_argument("--staff", required=True, help="staff id (the PIN is asked for)")

    ledger = sub.add_parser("ledger", help="the kiosk's local ledger")
    lsub = ledger.add_subparsers(dest="ledger_command", metavar="ACTION")

    p = lsub.add_parser("init", parents=[db], help="create a new ledger file")
    p.add_argument("--device-id", required=True)
    p.add_argument("--village", required=True)
    p.add_argument("--rules", help=f"rules file (default: {DEFAULT_RULES_PATH.name})")
    p.set_defaults(handler=cmd_init)

    p = lsub.add_parser(
        "staff-add", parents=[db], help="add a staff member (the first needs no admin)"
    )
    p.add_argument("--id", dest="staff_id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", choices=["staff", "admin", "technician"], default="staff")
    p.add_argument("--by", dest="by_staff", help="admin adding them (asks the admin's PIN)")
    p.set_defaults(handler=cmd_staff_add)

    p = lsub.add_parser("enrol", parents=[db, staff, js], help="enrol a villager household")
    p.add_argument("--household", required=True, help="household name as printed on the card")
    p.add_argument("--passbook", help="passbook id (default: <device>-<n>)")
    p.set_defaults(handler=cmd_enrol)

    p = lsub.add_parser("deposit", parents=[db, js], help="record a weighed deposit")
    p.add_argument("--passbook", required=True)
    p.add_argument("--category", required=True)
    p.add_argument("--grams", required=True, type=int)
    p.set_defaults(handler=cmd_deposit)

    p = lsub.add_parser("redeem", parents=[db, staff, js], help="exchange points for goods")
    p.add_argument("--passbook", required=True)
    p.add_argument(
        "--item",
        action="append",
        required=True,
        metavar="ITEM[:QTY]",
        help="catalogue item and quantity; repeat for a cart",
    )
    p.set_defaults(handler=cmd_redeem)

    p = lsub.add_parser("award", parents=[db, staff, js], help="award points (volunteer work)")
    p.add_argument("--passbook", required=True)
    p.add_argument("--points", required=True, type=int)
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=cmd_award)

    p = lsub.add_parser("reverse", parents=[db, staff, js], help="reverse an entry by its seq")
    p.add_argument("--seq", required=True, type=int)
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=cmd_reverse)

    p = lsub.add_parser(
        "villager-status", parents=[db, staff, js], help="activate, deactivate or revoke a passbook"
    )
    p.add_argument("--passbook", required=True)
    p.add_argument("--status", required=True, choices=["active", "inactive", "revoked"])
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=cmd_villager_status)

    p = lsub.add_parser(
        "replace",
        parents=[db, staff, js],
        help="replace a lost card: a new passbook with its balance, the old one revoked",
    )
    p.add_argument("--passbook", required=True, help="the lost card's passbook id")
    p.add_argument("--new-passbook", help="the new passbook id (default: <device>-<n>)")
    p.set_defaults(handler=cmd_replace)

    p = lsub.add_parser("item", parents=[db, staff], help="add or change a catalogue item")
    p.add_argument("--id", dest="item_id", required=True)
    p.add_argument("--name-zh", required=True)
    p.add_argument("--name-en", required=True)
    p.add_argument("--price", required=True, type=int, help="points per unit")
    p.add_argument("--inactive", action="store_true", help="hide it from redemption")
    p.set_defaults(handler=cmd_item)

    p = lsub.add_parser("restock", parents=[db, staff, js], help="add stock of an item")
    p.add_argument("--item", required=True)
    p.add_argument("--qty", required=True, type=int)
    p.set_defaults(handler=cmd_restock)

    p = lsub.add_parser("catalogue", parents=[db, js], help="list items, prices and stock")
    p.set_defaults(handler=cmd_catalogue)

    p = lsub.add_parser("balance", parents=[db, js], help="a passbook's balance")
    p.add_argument("--passbook", required=True)
    p.set_defaults(handler=cmd_balance)

    p = lsub.add_parser("statement", parents=[db, js], help="a passbook's entries")
    p.add_argument("--passbook", required=True)
    p.set_defaults(handler=cmd_statement)

    p = lsub.add_parser("rules", parents=[db], help="show the active rules, or install new ones")
    p.add_argument("--install", metavar="FILE", help="rules file to make active")
    p.set_defaults(handler=cmd_rules)

    p = sub.add_parser("verify", help="re-compute a ledger's hash chain; non-zero exit if broken")
    p.add_argument("db", metavar="DB", help="ledger file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_verify)

    rules = sub.add_parser("rules", help="village rules files")
    rsub = rules.add_subparsers(dest="rules_command", metavar="ACTION")
    p = rsub.add_parser("check", help="validate a rules file and print its categories")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(handler=cmd_rules_check)


# --- helpers ---------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Ledger:
    if not args.db:
        raise ConfigError(f"no ledger file: give --db or set ${DB_ENV}")
    return Ledger.open(args.db)


def _read_pin(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().strip()


def _signed_in(ledger: Ledger, staff_id: str) -> str:
    ledger.authenticate(staff_id, _read_pin(f"PIN for {staff_id}: "))
    return staff_id


def _when(e: Entry, ledger: Ledger) -> str:
    t = datetime.fromtimestamp(e.wall_ms / 1000, ledger.rules.tz).strftime("%Y-%m-%d %H:%M")
    return t if e.clock_ok else t + "?"


def _describe(e: Entry) -> str:
    parts = [f"#{e.seq} {e.kind}"]
    if e.category:
        parts.append(f"{e.category} {e.grams} g")
    if e.item_id:
        parts.append(f"{e.item_id} ×{abs(e.qty or 0)}")
    if e.points:
        parts.append(f"{e.points:+d} points")
    if e.co2e_g:
        parts.append(f"{e.co2e_g:+d} g CO2e")
    if e.ref_seq:
        where = f"{e.ref_device} " if e.ref_device else ""
        parts.append(f"reverses {where}#{e.ref_seq}")
    if e.data.get("replaces"):
        parts.append(f"{e.passbook_id} replaces {e.data['replaces']}")
    if e.reason:
        parts.append(f"({e.reason})")
    if e.flags:
        parts.append(f"[review: {e.flags}]")
    return "  ".join(parts)


def _emit(args: argparse.Namespace, entries: list[Entry], extra: dict[str, Any]) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"entries": [e.fields() for e in entries], **extra}, ensure_ascii=False))
        return
    for e in entries:
        print(_describe(e))
    for key, value in extra.items():
        print(f"{key}: {value}")


# --- handlers --------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    if not args.db:
        raise ConfigError(f"no ledger file: give --db or set ${DB_ENV}")
    rules: Rules = load_rules(args.rules or DEFAULT_RULES_PATH)
    with Ledger.create(
        args.db, device_id=args.device_id, village=args.village, rules=rules
    ) as ledger:
        print(
            f"ledger {args.db}: device {ledger.device_id}, village {ledger.village}, "
            f"rules {ledger.rules.version}"
        )
    return 0


def cmd_staff_add(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        by = _signed_in(ledger, args.by_staff) if args.by_staff else None
        pin = _read_pin(f"new PIN for {args.staff_id}: ")
        m = ledger.add_staff(args.staff_id, name=args.name, role=args.role, pin=pin, by_staff_id=by)
        print(f"staff {m.staff_id} ({m.role}) added")
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        e = ledger.enrol(
            args.household, staff_id=_signed_in(ledger, args.staff), passbook_id=args.passbook
        )
        _emit(args, [e], {"passbook": e.passbook_id})
    return 0


def cmd_deposit(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        e = ledger.deposit(args.passbook, args.category, args.grams)
        _emit(args, [e], {"balance": ledger.balance(args.passbook)})
    return 0


def _parse_item(text: str) -> tuple[str, int]:
    item, _, qty = text.partition(":")
    try:
        return item, int(qty or "1")
    except ValueError:
        raise ConfigError(f"--item {text!r}: quantity must be a whole number") from None


def cmd_redeem(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        entries = ledger.redeem(
            args.passbook,
            [_parse_item(t) for t in args.item],
            staff_id=_signed_in(ledger, args.staff),
        )
        _emit(args, entries, {"balance": ledger.balance(args.passbook)})
    return 0


def cmd_award(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        e = ledger.award(
            args.passbook, args.points, staff_id=_signed_in(ledger, args.staff), reason=args.reason
        )
        _emit(args, [e], {"balance": ledger.balance(args.passbook)})
    return 0


def cmd_reverse(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        e = ledger.reverse(args.seq, staff_id=_signed_in(ledger, args.staff), reason=args.reason)
        _emit(args, [e], {})
    return 0


def cmd_villager_status(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        e = ledger.set_villager_status(
            args.passbook, args.status, reason=args.reason, staff_id=_signed_in(ledger, args.staff)
        )
        _emit(args, [e], {})
    return 0


def cmd_replace(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        enrolled, revoked = ledger.replace_passbook(
            args.passbook,
            staff_id=_signed_in(ledger, args.staff),
            new_passbook_id=args.new_passbook,
        )
        new = enrolled.passbook_id
        assert new is not None
        _emit(args, [enrolled, revoked], {"passbook": new, "balance": ledger.balance(new)})
    return 0


def cmd_item(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        ledger.put_item(
            args.item_id,
            name_zh=args.name_zh,
            name_en=args.name_en,
            points_price=args.price,
            active=not args.inactive,
            staff_id=_signed_in(ledger, args.staff),
        )
        print(f"item {args.item_id}: {args.price} points")
    return 0


def cmd_restock(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        e = ledger.restock(args.item, args.qty, staff_id=_signed_in(ledger, args.staff))
        _emit(args, [e], {"stock": ledger.stock(args.item)})
    return 0


def cmd_catalogue(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        items = ledger.catalogue()
    if args.json:
        print(json.dumps([asdict(i) for i in items], ensure_ascii=False))
    for i in items if not args.json else []:
        hidden = "" if i.active else "  (hidden)"
        print(
            f"{i.item_id:<16} {i.name_zh} / {i.name_en}  {i.points_price} points  "
            f"stock {i.stock}{hidden}"
        )
    return 0


def cmd_balance(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        if ledger.villager(args.passbook) is None:
            raise Refused("unknown_passbook", f"no villager with passbook {args.passbook!r}")
        points = ledger.balance(args.passbook)
    if args.json:
        print(json.dumps({"passbook": args.passbook, "balance": points}))
    else:
        print(f"{args.passbook}: {points} points")
    return 0


def cmd_statement(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        lines = ledger.statement(args.passbook)
        v = ledger.villager(args.passbook)
        if args.json:
            print(
                json.dumps(
                    {
                        "passbook": args.passbook,
                        "villager": asdict(v) if v else None,
                        "lines": [
                            {"entry": ln.entry.fields(), "balance": ln.balance} for ln in lines
                        ],
                    },
                    ensure_ascii=False,
                )
            )
            return 0
        if v:
            print(f"{v.passbook_id}  {v.household_name}  ({v.village}, {v.status})")
        co2e = 0
        for ln in lines:
            co2e += ln.entry.co2e_g
            print(f"{_when(ln.entry, ledger)}  {_describe(ln.entry)}  → {ln.balance}")
        print(
            f"balance: {lines[-1].balance if lines else 0} points; "
            f"CO2e avoided: {co2e / 1000:.3f} kg"
        )
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        if args.install:
            changed = ledger.install_rules(load_rules(args.install))
            print(f"rules {ledger.rules.version} " + ("installed" if changed else "already active"))
            return 0
        _print_rules(ledger.rules)
    return 0


def _print_rules(rules: Rules) -> None:
    print(f"rules {rules.version} (village {rules.village}, {rules.timezone})")
    for c in rules.categories.values():
        proxy = "  [proxy]" if c.proxy else ""
        print(
            f"  {c.key:<14} {c.name_zh} / {c.name_en}: {c.points_per_tonne / 1000:g} "
            f"points/kg, min {c.min_grams} g, daily cap {c.daily_cap_grams} g, "
            f"{c.co2e_g_per_kg / 1000:g} kg CO2e/kg{proxy}"
        )


def cmd_rules_check(args: argparse.Namespace) -> int:
    _print_rules(load_rules(args.file))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with Ledger.open(args.db) as ledger:
        report = ledger.verify()
    if args.json:
        print(json.dumps(asdict(report)))
    elif report.ok:
        print(f"{args.db}: chain intact, {report.checked} entries, head {report.head_seq}")
    else:
        print(
            f"{args.db}: BROKEN at entry {report.first_bad_seq}: {report.problem}", file=sys.stderr
        )
    return 0 if report.ok else 1
