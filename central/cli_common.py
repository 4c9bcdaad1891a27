"""What every `greenpass central …` command module shares: the database argument's
variable, opening the store, the audit's name for a command-line change, the time,
JSON output, and central's home folder: its signing key, its broker login and the
keeper of the broker's device logins. The command modules import this one and never
each other, so `central.cli` can assemble them all."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenpass.errors import ConfigError
from greenpass.files import create_private

if TYPE_CHECKING:  # imported lazily: the CLI must start fast for every command
    from central.broker_sync import BrokerSync
    from central.store import CentralStore
    from sync.keys import Ed25519PrivateKey
    from sync.transport import BrokerConfig

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


def central_key(home: Path) -> Ed25519PrivateKey:
    from sync.keys import load_or_create_key  # noqa: PLC0415

    return load_or_create_key(home / "central.key")


def central_password(home: Path) -> str:
    path = home / "central.password"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        create_private(path, (secrets.token_urlsafe(24) + "\n").encode("ascii"))
    return path.read_text(encoding="utf-8").strip()


def central_broker(args: argparse.Namespace, url: str, ca: Path | None) -> BrokerConfig:
    from sync.transport import BrokerConfig  # noqa: PLC0415

    password_file = getattr(args, "broker_password_file", None) or args.home / "central.password"
    try:
        password = password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{password_file}: cannot read central's MQTT password") from exc
    return BrokerConfig(
        url=url,
        username=getattr(args, "broker_user", "central"),
        password=password,
        client_id=f"gp-central-admin-{secrets.token_hex(4)}",
        ca_cert=ca,
        clean_start=True,
        session_expiry_s=0,
    )


def broker_sync(
    args: argparse.Namespace, store: CentralStore, url: str, ca: Path | None
) -> BrokerSync:
    from central.broker_sync import BrokerSync, load_secret  # noqa: PLC0415

    login = central_broker(args, url, ca)
    if not getattr(args, "rabbit_api", None):
        return BrokerSync(store, login, load_secret(args.home))
    from central.rabbit_admin import RabbitAdmin  # noqa: PLC0415

    def rabbit() -> RabbitAdmin:
        return RabbitAdmin(
            args.rabbit_api,
            login.username,
            login.password,
            ca_cert=ca,
            passwordless=bool(getattr(args, "rabbit_http_auth", False)),
        )

    return BrokerSync(store, login, load_secret(args.home), admin=rabbit)
