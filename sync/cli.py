"""`greenpass sync …`: run the kiosk's uplink in the foreground, show its backlog."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from pathlib import Path
from types import FrameType

from edge.cli import DB_ENV
from edge.ledger import Ledger
from greenpass.errors import ConfigError
from sync.config import load_sync_config, write_sync_config
from sync.enrol import enrol, save_credentials
from sync.keys import load_or_create_key, public_bytes
from sync.setup import uplink_from_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sync", help="the kiosk's store-and-forward link to central")
    ssub = parser.add_subparsers(dest="sync_command", metavar="SUBCOMMAND")
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--db", default=os.environ.get(DB_ENV), help=f"ledger file (default: ${DB_ENV})"
    )
    p = ssub.add_parser(
        "run", parents=[db], help="send the ledger to central until stopped (Ctrl-C)"
    )
    p.add_argument("--config", required=True, type=Path, help="TOML file with a [sync] table")
    p.add_argument("--verbose", action="store_true", help="log every batch and ack")
    p.set_defaults(handler=_run)
    p = ssub.add_parser("status", parents=[db], help="acked seq, backlog, oldest unsynced entry")
    p.set_defaults(handler=_status)
    p = ssub.add_parser(
        "enrol",
        parents=[db],
        help="enrol this kiosk with central: key pair, MQTT credentials, [sync] config",
    )
    p.add_argument("--central", required=True, help="central's URL, e.g. https://central.example")
    p.add_argument("--token", required=True, help="the one-time enrolment token")
    p.add_argument(
        "--central-ca",
        type=Path,
        help="central's CA certificate (its http-tls/ca.crt) to verify its HTTPS with "
        "(default: the system's CAs)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="folder for device.key, mqtt.password, ca.crt, sync.toml",
    )
    p.set_defaults(handler=_enrol)


def _ledger(args: argparse.Namespace) -> Ledger:
    if not args.db:
        raise ConfigError(f"no ledger file: give --db or set ${DB_ENV}")
    return Ledger.open(args.db)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = load_sync_config(args.config)
    ledger = _ledger(args)
    uplink = uplink_from_config(ledger, cfg)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        uplink.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    uplink.run()
    ledger.close()
    return 0


def _enrol(args: argparse.Namespace) -> int:
    """Generate the key on this device, trade the token for credentials, write the config."""
    with _ledger(args) as ledger:
        device_id, village = ledger.device_id, ledger.village
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(out / "device.key")
    creds = enrol(args.central, args.token, device_id, public_bytes(key), ca_file=args.central_ca)
    if creds.village_id != village:
        raise ConfigError(
            f"central enrolled {device_id} for village {creds.village_id!r}, but this ledger "
            f"is for {village!r}: ask the operator for a token for the right village"
        )
    config = out / "sync.toml"
    write_sync_config(config, save_credentials(out, creds, out / "device.key"))
    print(f"enrolled {device_id} (village {village}) with {args.central}")
    print(f"broker {creds.broker_url}; config written to {config}")
    print(f"start syncing: greenpass sync run --db {args.db} --config {config}")
    return 0


def _status(args: argparse.Namespace) -> int:
    with _ledger(args) as ledger:
        b = ledger.outbox.backlog()
    print(f"acked seq   {b.acked_seq}")
    print(f"head seq    {b.head_seq}")
    print(f"backlog     {b.depth} entries")
    if b.oldest_unsynced_ms is not None:
        age_s = max(0, time.time() - b.oldest_unsynced_ms / 1000)
        print(f"oldest      {age_s / 3600:.1f} h unsynced")
    return 0
