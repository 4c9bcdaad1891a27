"""What every `greenpass central …` command module shares: the database argument's
variable, opening the store, the audit's name for a command-line change, the time,
and JSON output. The command modules import this one and never each other, so
`central.cli` can assemble them all."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import time
from typing import TYPE_CHECKING, Any

from greenpass.errors import ConfigError

if TYPE_CHECKING:  # imported lazily: the CLI must start fast for every command
    from central.store import CentralStore

DB_ENV = "GREENPASS_CENTRAL_DB"


def cli_actor() -> str:
    """Who the audit names for a command-line change: the CLI writes the database
    directly, so the unix user is all there is to vouch for."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"cli:uid-{os.getuid()}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def open_store(args: argparse.Namespace) -> CentralStore:
    """The store `--db` names (or `$GREENPASS_CENTRAL_DB`), created or migrated."""
    from central.store import CentralStore  # noqa: PLC0415 - SQLAlchemy only when needed

    if not args.db:
        raise ConfigError(f"no central database: give --db or set ${DB_ENV}")
    return CentralStore.open(args.db)


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))
