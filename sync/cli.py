"""`greenpass sync …`: run the kiosk's uplink in the foreground, show its backlog and
its check of central's log."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from edge.ledger import log_record
from edge.ledger.cli import DB_ENV
from edge.ledger.ledger import Ledger
from greenpass.errors import ConfigError
from greenpass.signals import stop_on_signals
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
        "log",
        parents=[db],
        help="this kiosk's check of central's log: the checkpoint accepted, the fault and "
        "its evidence",
    )
    p.add_argument(
        "--reset",
        action="store_true",
        help="clear the log fault and forget the accepted checkpoint (once the operator "
        "has looked at it): the next one is taken as new",
    )
    p.add_argument(
        "--note",
        action="store_true",
        help="print only the checkpoint accepted last, as central signed it (to keep, or to "
        "compare with an evidence pack: `greenpass verify-evidence --checkpoint FILE`)",
    )
    p.set_defaults(handler=_log)
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

    stop_on_signals(uplink.stop_event)
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


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _log(args: argparse.Namespace) -> int:
    """What `sync.log_check` holds, for the operator (and the evidence to keep)."""
    with _ledger(args) as ledger:
        if args.reset:
            cleared = log_record.reset(ledger.store, ledger.clock.wall_ms())
            what = "no fault" if cleared is None else f"fault {cleared.code} cleared"
            print(f"{what}; the accepted checkpoint is forgotten: the next one from central")
            print("is taken as new, and this kiosk's entries are proven again from seq 1")
            return 0
        with ledger.store.read() as conn:
            acc = log_record.accepted(conn)
            history = log_record.fault_history(conn)
    if args.note:
        if acc is None:
            print("no checkpoint accepted yet", file=sys.stderr)
            return 1
        sys.stdout.write(acc.note)
        return 0
    if acc is None:
        print("checkpoint  none accepted yet")
    else:
        print(f"log         {acc.origin}")
        print(f"checkpoint  size {acc.size}, accepted {_when(acc.accepted_ms)}")
        print(f"proven      this kiosk's entries up to seq {acc.checked_seq}")
    current = [f for f in history if f.cleared_ms is None]
    print(f"fault       {current[0].code if current else 'none'}")
    if current:
        f = current[0]
        print(f"since       {_when(f.since_ms)}")
        if f.seq:
            print(f"about       entry {f.seq}, in the checkpoint of size {f.size}")
        else:
            print(f"about       the checkpoint {f'of size {f.size}' if f.size else 'central sent'}")
        print(f"message     {f.message}")
        if f.evidence:
            print("\nthe checkpoint that failed, as central signed it:\n" + f.evidence)
    if acc is not None:
        print("\nthe checkpoint accepted last, as central signed it:\n" + acc.note)
    if len(history) > len(current):
        print(f"{len(history) - len(current)} earlier fault(s), cleared:")
        for f in history:
            if f.cleared_ms is not None:
                print(f"  {_when(f.since_ms)}  {f.code}: {f.message}")
    return 0
