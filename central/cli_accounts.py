"""`greenpass central account …`: the operators' accounts, from the command line.

    greenpass central account add NAME --role county|village|buyer [--village V]
                                  [--registry-account ID] --password-file F
    greenpass central account list
    greenpass central account disable NAME
    greenpass central account unlock NAME
    greenpass central account token NAME          an API token for scripts (shown once)

These write central's database directly, so they need no token: whoever can run them
on central's machine already holds the database. That is how the first account is
made (docs/operator.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from central.cli_common import DB_ENV, cli_actor, now_ms
from greenpass.errors import ConfigError

if TYPE_CHECKING:  # imported lazily: the CLI must start fast for every command
    from central.accounts import Accounts

Child = Callable[[str, str], argparse.ArgumentParser]


def register_accounts(
    csub: argparse._SubParsersAction[argparse.ArgumentParser], child: Child
) -> None:
    """Add `account` and its subcommands under `greenpass central`."""
    del csub  # `child` adds to it; taken for the same signature as register_operator
    group = child("account", "operators' accounts: add, list, disable, unlock, API tokens")
    sub = group.add_subparsers(dest="account_command", metavar="COMMAND", required=True)

    def leaf(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        # SUPPRESS: a value given before the name is not overwritten by a default.
        p.add_argument("--db", default=argparse.SUPPRESS, help="as for `greenpass central`")
        p.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="as above")
        return p

    p = leaf(
        "add",
        "add an account (county: every village; village: one; buyer: an enterprise's "
        "registry account only)",
    )
    p.add_argument("name", metavar="NAME", help="the login name (letters, digits, . _ -)")
    p.add_argument("--role", required=True, choices=["county", "village", "buyer"])
    p.add_argument("--village", help="the village of a village account")
    p.add_argument(
        "--registry-account",
        metavar="ID",
        help="a buyer's account in the reduction registry (greenpass central registry account add)",
    )
    p.add_argument(
        "--password-file",
        required=True,
        metavar="F",
        help="file whose first line is the password (at least 10 characters); - reads stdin",
    )
    p.set_defaults(handler=_add)
    p = leaf("list", "list the accounts: role, village, active or disabled, locked")
    p.set_defaults(handler=_list)
    p = leaf("disable", "disable an account: its password, API tokens and sessions stop now")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=_disable)
    p = leaf("unlock", "lift a lockout after too many wrong passwords")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=_unlock)
    p = leaf("token", "issue an API token for scripts (printed once; central keeps a hash)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=_token)


def _accounts(args: argparse.Namespace) -> Accounts:
    from central.accounts import Accounts  # noqa: PLC0415  (the CLI must start fast)
    from central.store import CentralStore  # noqa: PLC0415

    db = getattr(args, "db", None) or os.environ.get(DB_ENV)
    if not db:
        raise ConfigError(f"no central database: give --db or set ${DB_ENV}")
    return Accounts(CentralStore.open(db))


def _read_password(path: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the password: {exc}", path=path) from exc
    lines = text.splitlines()
    return lines[0] if lines else ""


def _add(args: argparse.Namespace) -> int:
    password = _read_password(args.password_file)
    accounts = _accounts(args)
    try:
        a = accounts.add(
            args.name, args.role, password, now_ms(), village_id=args.village,
            registry_account=args.registry_account, actor=cli_actor(),
        )  # fmt: skip
    finally:
        accounts.store.close()
    where = (
        f" of village {a.village_id}"
        if a.village_id
        else f" for registry account {a.registry_account}"
        if a.registry_account
        else " (every village)"
    )
    print(f"added {a.role} account {a.name}{where}")
    return 0


def _list(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    try:
        found = accounts.all()
    finally:
        accounts.store.close()
    now = now_ms()
    print(f"{'account':20} {'role':8} {'village / registry':20} state")
    for a in found:
        state = "active" if a.active else "disabled"
        if a.locked_until_ms is not None and a.locked_until_ms > now:
            state += ", locked"
        print(f"{a.name:20} {a.role:8} {a.village_id or a.registry_account or '-':20} {state}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    try:
        changed = accounts.disable(args.name, now_ms(), actor=cli_actor())
    finally:
        accounts.store.close()
    print(f"disabled {args.name}" if changed else f"{args.name} was already disabled")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    try:
        accounts.unlock(args.name, now_ms(), actor=cli_actor())
    finally:
        accounts.store.close()
    print(f"unlocked {args.name}")
    return 0


def _token(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    try:
        token = accounts.issue_token(args.name, now_ms(), actor=cli_actor())
    finally:
        accounts.store.close()
    print(token)
    return 0
