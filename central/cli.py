"""`greenpass central …`: run the central server, and its operator's tools.

    greenpass central --db URL --broker URL [--http HOST:PORT] …   run (MQTT + admin API)
    greenpass central enrol-token --device D --village V          one-time enrolment token
    greenpass central devices | revoke --device D                 the fleet
    greenpass central broker-config --out DIR                     a working Mosquitto folder
    greenpass central public-key                                  what kiosks verify state with
    greenpass central statement-link | statements                 villagers' statements

`--db` takes a file path (SQLite) or `postgresql://…`; `$GREENPASS_CENTRAL_DB` is
its default everywhere, `$GREENPASS_CENTRAL_HOME` the folder for the signing key
and secrets (default `./central-home`).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from central.cli_accounts import register_accounts
from central.cli_common import (
    DB_ENV,
    broker_sync,
    central_key,
    central_password,
    cli_actor,
    now_ms,
    open_store,
)
from central.cli_evidence import register as register_evidence
from central.cli_operator import register_operator
from central.cli_registry import register as register_registry
from central.cli_run import run
from central.cli_statements import register as register_statements
from greenpass.errors import ConfigError

HOME_ENV = "GREENPASS_CENTRAL_HOME"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        default=os.environ.get(DB_ENV),
        help=f"central database: a file path (SQLite) or postgresql://… (default: ${DB_ENV})",
    )
    common.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get(HOME_ENV, "central-home")),
        help=f"folder for central's signing key and secrets (default: ${HOME_ENV} "
        "or ./central-home)",
    )
    parser = sub.add_parser(
        "central",
        parents=[common],
        help="the central server: ingest, acks, state push, admin API",
        description="Without a subcommand: run the central server until stopped.",
    )
    parser.add_argument("--broker", help="broker URL, mqtts://HOST:PORT")
    parser.add_argument(
        "--no-broker",
        action="store_true",
        help="no MQTT: serve only the --http API and console (a reporting replica)",
    )
    parser.add_argument("--broker-user", default="central", help="MQTT username (central)")
    parser.add_argument(
        "--mqtt-version",
        choices=("5", "3.1.1"),
        default="5",
        help="MQTT protocol to the broker (default 5; 3.1.1 has no shared subscriptions: "
        "one worker only)",
    )
    parser.add_argument(
        "--amqp",
        action="append",
        metavar="amqp://HOST:PORT",
        help="consume batches and statuses from a RabbitMQ cluster's quorum queues over "
        "AMQP, with --broker-user and its password file (repeatable: one per node; "
        "docs/scale.md); the broker's logins are then managed only with --rabbit-api",
    )
    parser.add_argument(
        "--rabbit-api",
        action="append",
        metavar="http://HOST:15672",
        help="with --amqp: the cluster's management API (repeatable: one per node), through "
        "which central keeps the devices' logins as it does on Mosquitto; its user needs "
        "the administrator tag",
    )
    parser.add_argument(
        "--rabbit-http-auth",
        action="store_true",
        help="bind a RabbitMQ cluster's device logins to their client ids: with --rabbit-api "
        "make device users without a password; with --http answer the nodes' login checks "
        "at /broker/rabbitmq/user (docs/scale.md)",
    )
    parser.add_argument(
        "--broker-password-file",
        type=Path,
        help="file holding central's MQTT password (default: HOME/central.password, "
        "written by broker-config)",
    )
    parser.add_argument("--ca", type=Path, help="CA certificate the broker's TLS chains to")
    parser.add_argument(
        "--public-broker-url", help="broker URL handed to kiosks at enrolment (default: --broker)"
    )
    parser.add_argument(
        "--http", help="serve the admin and enrolment API on HOST:PORT (HTTPS unless --http-plain)"
    )
    parser.add_argument(
        "--http-tls",
        type=Path,
        metavar="DIR",
        help="the API's TLS folder: ca.crt, server.crt, server.key (default HOME/http-tls; "
        "a development CA is made there when it holds no certificate)",
    )
    parser.add_argument(
        "--http-hostname",
        action="append",
        metavar="NAME",
        help="a host name or IP the API's certificate must cover (repeatable; default: "
        "localhost, 127.0.0.1 and the --http address)",
    )
    parser.add_argument(
        "--http-plain",
        action="store_true",
        help="plain HTTP, only on a loopback address behind a TLS reverse proxy",
    )
    parser.add_argument(
        "--http-max-connections",
        type=int,
        default=100,
        help="connections and requests at once; more get 503 (default 100)",
    )
    parser.add_argument(
        "--enrol-rate",
        type=int,
        default=10,
        help="enrolment attempts a minute from one address, also the burst (default 10)",
    )
    parser.add_argument(
        "--methodology",
        type=Path,
        metavar="FILE",
        help="the methodology the console and API issue reduction units by "
        "(default: the shipped one; docs/methodology.md)",
    )
    parser.add_argument("--worker-id", default="1", help="tells central workers apart (MQTT id)")
    parser.add_argument(
        "--log-origin",
        help="the transparency log's name in its checkpoints: a unique, URL-like name, "
        "e.g. central.county.example/log (default greenpass.local/log)",
    )
    parser.add_argument(
        "--no-log",
        action="store_true",
        help="keep no transparency log in this worker (for benchmarks: another worker, "
        "or a later run, appends what it missed)",
    )
    parser.add_argument(
        "--checkpoint-entries",
        type=int,
        default=1000,
        help="sign a log checkpoint after this many new entries (default 1000) …",
    )
    parser.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=10.0,
        help="… or after this many seconds with new entries (default 10)",
    )
    parser.add_argument(
        "--debounce", type=float, default=1.0, help="seconds from a change to its state push"
    )
    parser.add_argument(
        "--min-push-interval",
        type=float,
        default=5.0,
        help="least seconds between two state pushes to one village",
    )
    parser.set_defaults(handler=run)
    csub = parser.add_subparsers(dest="central_command", metavar="SUBCOMMAND")

    def child(name: str, text: str) -> argparse.ArgumentParser:
        # SUPPRESS: a child's default must not overwrite a value given before the name.
        p = csub.add_parser(name, help=text)
        p.add_argument("--db", default=argparse.SUPPRESS, help="as for `greenpass central`")
        p.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="as above")
        return p

    p = child("enrol-token", "issue a one-time enrolment token for a kiosk")
    p.add_argument("--device", required=True, help="the kiosk's device id")
    p.add_argument("--village", required=True, help="the village the kiosk serves")
    p.add_argument("--ttl-hours", type=float, default=24.0, help="validity (default 24)")
    p.set_defaults(handler=_enrol_token)
    p = child("devices", "list enrolled kiosks")
    p.set_defaults(handler=_devices)
    p = child("revoke", "revoke a kiosk: its batches are refused, its broker login removed")
    p.add_argument("--device", required=True)
    p.add_argument(
        "--broker-dir", type=Path, help="drop it from the broker this folder configures, now"
    )
    p.add_argument(
        "--broker",
        default=argparse.SUPPRESS,
        help="or: drop it from the broker at mqtts://HOST:PORT, now",
    )
    p.add_argument(
        "--ca", type=Path, default=argparse.SUPPRESS, help="with --broker: the CA it chains to"
    )
    p.set_defaults(handler=_revoke)
    p = child("broker-config", "write a Mosquitto folder: TLS, logins and rights, limits")
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    p.add_argument("--port", type=int, default=8883, help="TLS listener port (default 8883)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument(
        "--hostname", action="append", default=None, help="name in the server certificate"
    )
    p.add_argument(
        "--run-as",
        help="account a broker started as root switches to (default: mosquitto when "
        "this runs as root; it is given data/ and the server key)",
    )
    p.set_defaults(handler=_broker_config)
    p = child("issuer-key", "trust a key to sign a village's passbook cards (the office key)")
    p.add_argument("--village", required=True, help="the village whose cards it signs")
    p.add_argument("--key-id", required=True, help="the id printed on its cards")
    p.add_argument("--public-key", required=True, help="the raw Ed25519 public key, 64 hex digits")
    p.set_defaults(handler=_issuer_key)
    p = child("prune-dead-letters", "delete refused batches kept for inspection, once old")
    p.add_argument("--days", type=float, default=90.0, help="keep this many days (90)")
    p.set_defaults(handler=_prune_dead_letters)
    p = child("public-key", "print central's state-signing public key (hex)")
    p.set_defaults(handler=_public_key)
    register_operator(csub, child)  # village, rules, catalogue, passbook, audit
    register_accounts(csub, child)  # account add|list|disable|unlock|token
    register_evidence(child)  # evidence --village V --from --to --out
    register_registry(child)  # registry issue|account|transfer|retire|reconcile|show
    register_statements(child)  # statement-link, statements (issue 16)


def _enrol_token(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.create_village(args.village)
        token = store.create_enrol_token(
            args.device,
            args.village,
            now_ms(),
            ttl_s=int(args.ttl_hours * 3600),
            actor=cli_actor(),
        )
    print(token)
    return 0


def _devices(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        devices = store.devices()
    print(f"{'device':16} {'village':12} {'status':8} {'acked':>8}  last seen")
    for d in devices:
        seen = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(d.last_seen_ms / 1000))
            if d.last_seen_ms
            else "never"
        )
        print(f"{d.device_id:16} {d.village_id:12} {d.status:8} {d.acked_seq:>8}  {seen}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.revoke_device(args.device, now_ms(), actor=cli_actor())
        print(f"revoked {args.device}")
        if args.broker_dir or args.broker:
            from central.broker import broker_address

            url, ca = broker_address(args.broker_dir) if args.broker_dir else (args.broker, args.ca)
            report = broker_sync(args, store, url, ca).sync_now()
            print(f"the broker has dropped {args.device} ({report})")
        else:
            print(
                "the broker still lets it log in until central next syncs it (at most 5 "
                "minutes while central runs); give --broker-dir or --broker to do it now"
            )
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    from central.broker import mosquitto_command, mosquitto_password_hash, write_broker_config
    from central.broker_sync import active_logins, load_secret

    central_hash = mosquitto_password_hash(central_password(args.home))
    devices = []
    if args.db:
        with open_store(args) as store:
            devices = active_logins(store, load_secret(args.home))
    files = write_broker_config(
        args.out,
        port=args.port,
        central_password_hash=central_hash,
        devices=devices,
        hostnames=args.hostname or ["localhost"],
        bind=args.bind,
        run_as=args.run_as,
    )
    print(f"wrote {files.conf} with {len(devices)} enrolled devices")
    print(f"run: {mosquitto_command()} -c {files.conf}")
    if files.run_as and os.geteuid() == 0:
        print(f"(started as root it runs as {files.run_as!r}, which now owns data/ and dynsec/)")
    print(f"kiosks and central trust {files.ca_cert}")
    print(f"central's MQTT password is in {args.home / 'central.password'}")
    return 0


def _issuer_key(args: argparse.Namespace) -> int:
    import time

    try:
        raw = bytes.fromhex(args.public_key)
    except ValueError as exc:
        raise ConfigError("--public-key must be 64 hex digits") from exc
    with open_store(args) as store:
        store.create_village(args.village)
        added = store.add_issuer_key(args.key_id, args.village, raw, now_ms=int(time.time() * 1000))
    print(
        f"issuer key {args.key_id} {'now trusted' if added else 'was already trusted'} for "
        f"{args.village}; its kiosks learn it with their next state"
    )
    return 0


def _prune_dead_letters(args: argparse.Namespace) -> int:
    import time

    if args.days < 0:
        raise ConfigError("--days must be 0 or more")
    cutoff = int((time.time() - args.days * 86_400) * 1000)
    with open_store(args) as store:
        gone = store.prune_dead_letters(cutoff)
    print(f"deleted {gone} dead letters older than {args.days:g} days")
    return 0


def _public_key(args: argparse.Namespace) -> int:
    from sync.keys import public_bytes

    print(public_bytes(central_key(args.home)).hex())
    return 0
