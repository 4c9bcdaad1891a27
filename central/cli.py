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
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from central.cli_accounts import register_accounts
from central.cli_common import DB_ENV, cli_actor, now_ms, open_store
from central.cli_evidence import register as register_evidence
from central.cli_operator import register_operator
from central.cli_registry import register as register_registry
from central.cli_statements import register as register_statements
from greenpass.errors import ConfigError
from greenpass.files import create_private
from greenpass.signals import stop_on_signals

if TYPE_CHECKING:  # imported lazily below: the CLI must start fast for every command
    from central.amqp_receiver import AmqpConfig
    from central.broker_sync import BrokerSync
    from central.store import CentralStore
    from central.tlog import LogSettings
    from greenpass.record.methodology import Methodology
    from sync.keys import Ed25519PrivateKey
    from sync.transport import BrokerConfig

HOME_ENV = "GREENPASS_CENTRAL_HOME"
NO_BROKER_URL = "mqtts://no-broker.invalid:8883"  # what --no-broker hands kiosks, unless told


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
    parser.set_defaults(handler=_run)
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


def _store_when_reachable(args: argparse.Namespace, stop: threading.Event) -> CentralStore | None:
    """As `open_store`, but waits while a PostgreSQL server cannot be reached (central.db_wait)."""
    from central.db_wait import open_when_reachable

    if not args.db:
        raise ConfigError(f"no central database: give --db or set ${DB_ENV}")
    return open_when_reachable(str(args.db), stop)


def _log_settings(args: argparse.Namespace) -> LogSettings | None:
    from central.tlog import DEFAULT_ORIGIN, LogSettings

    if args.no_log:
        return None
    if args.checkpoint_entries < 1 or args.checkpoint_seconds <= 0:
        raise ConfigError("--checkpoint-entries and --checkpoint-seconds must be positive")
    return LogSettings(
        origin=args.log_origin or DEFAULT_ORIGIN,
        every_entries=args.checkpoint_entries,
        every_s=args.checkpoint_seconds,
    )


def _key(home: Path) -> Ed25519PrivateKey:
    from sync.keys import load_or_create_key

    return load_or_create_key(home / "central.key")


def _central_password(home: Path) -> str:
    path = home / "central.password"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        create_private(path, (secrets.token_urlsafe(24) + "\n").encode("ascii"))
    return path.read_text(encoding="utf-8").strip()


def _central_broker(args: argparse.Namespace, url: str, ca: Path | None) -> BrokerConfig:
    from sync.transport import BrokerConfig

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


def _broker_sync(
    args: argparse.Namespace, store: CentralStore, url: str, ca: Path | None
) -> BrokerSync:
    from central.broker_sync import BrokerSync, load_secret

    login = _central_broker(args, url, ca)
    if not getattr(args, "rabbit_api", None):
        return BrokerSync(store, login, load_secret(args.home))
    from central.rabbit_admin import RabbitAdmin

    def rabbit() -> RabbitAdmin:
        return RabbitAdmin(
            args.rabbit_api,
            login.username,
            login.password,
            ca_cert=ca,
            passwordless=bool(getattr(args, "rabbit_http_auth", False)),
        )

    return BrokerSync(store, login, load_secret(args.home), admin=rabbit)


def _amqp(args: argparse.Namespace, login: BrokerConfig) -> AmqpConfig:
    """`--amqp amqp://HOST:PORT` URLs with central's login put in (never on the command
    line, where `ps` would show the password)."""
    from urllib.parse import quote, urlsplit

    from central.amqp_receiver import AmqpConfig

    urls = []
    for url in args.amqp:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname or parts.username:
            raise ConfigError(f"--amqp {url!r}: give amqp://HOST:PORT (the login is central's)")
        user, pw = quote(login.username, safe=""), quote(login.password, safe="")
        urls.append(f"{parts.scheme}://{user}:{pw}@{parts.netloc}/%2F")
    return AmqpConfig(tuple(urls), ca_cert=args.ca)


def _run(args: argparse.Namespace) -> int:
    from central.service import CentralService
    from sync.transport import BrokerConfig

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    method = _methodology(args)  # a bad file stops central before anything starts
    if args.no_broker:
        return _run_without_broker(args, method)
    if not args.broker:
        raise ConfigError("give --broker mqtts://HOST:PORT (or --no-broker with --http)")
    if args.rabbit_api and not args.amqp:  # before the database is opened or made
        raise ConfigError("--rabbit-api is a RabbitMQ cluster's: give it with --amqp")
    if args.rabbit_http_auth and not (args.rabbit_api or args.http):
        raise ConfigError(
            "--rabbit-http-auth needs --rabbit-api (the logins) or --http (the check)"
        )
    admin = _central_broker(args, args.broker, args.ca)
    stop = threading.Event()
    services: list[CentralService] = []  # none while central waits for its database
    stop_on_signals(stop)  # then `service.stop()` below stops the receiver
    store = _store_when_reachable(args, stop)
    if store is None:
        return 0  # stopped while waiting for the database
    key = _key(args.home)
    amqp = _amqp(args, admin) if args.amqp else None
    # Mosquitto's logins are central's to keep (over $CONTROL); a cluster's too when
    # central is given its management API (--rabbit-api).
    keeps_logins = amqp is None or bool(args.rabbit_api)
    broker_sync = _broker_sync(args, store, args.broker, args.ca) if keeps_logins else None
    service = CentralService(
        store,
        BrokerConfig(
            url=admin.url,
            username=admin.username,
            password=admin.password,
            client_id=f"gp-central-{args.worker_id}",
            ca_cert=args.ca,
            mqtt_version=args.mqtt_version,
        ),
        key,
        debounce_s=args.debounce,
        min_interval_s=args.min_push_interval,
        log=_log_settings(args),
        log_process_url=str(args.db),
        amqp=amqp,
    )
    services.append(service)
    if stop.is_set():  # a signal while it was being built
        store.close()
        return 0
    service.start()
    if broker_sync is not None:
        broker_sync.start()
    if args.http:
        _serve_http(args, store, key, stop, broker_sync, method)
    else:
        stop.wait()
    if broker_sync is not None:
        broker_sync.stop()
    service.stop()
    store.close()
    return 0


def _run_without_broker(args: argparse.Namespace, method: Methodology) -> int:
    """The API and console alone: no ingest, no state push, no broker logins. Changes
    made here reach kiosks when a central with a broker next pushes (it watches the
    villages' `changed_ms` in the same database)."""
    if not args.http:
        raise ConfigError("--no-broker serves only the API: give --http HOST:PORT")
    store = open_store(args)
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        _serve_http(args, store, _key(args.home), stop, None, method)
    finally:
        store.close()
    return 0


def _serve_http(
    args: argparse.Namespace,
    store: CentralStore,
    key: Ed25519PrivateKey,
    stop: threading.Event,
    broker_sync: BrokerSync | None,
    method: Methodology,
) -> None:
    from central.api import EnrolmentSettings, create_app
    from central.console import load_settings
    from central.http_guard import HttpLimits
    from central.http_server import (
        check_plain,
        default_names,
        http_tls,
        make_server,
        serve,
        split_host_port,
    )
    from sync.keys import public_bytes

    host, port = split_host_port(args.http)
    if args.http_plain:
        check_plain(host)  # before anything is written
        tls = None
    else:
        tls = http_tls(
            args.http_tls or args.home / "http-tls", args.http_hostname or default_names(host)
        )
    token_file = args.home / "admin.token"
    if not token_file.exists():
        args.home.mkdir(parents=True, exist_ok=True)
        # Mode 0600 from its creation: readable by no one else at any moment.
        create_private(token_file, (secrets.token_urlsafe(24) + "\n").encode("ascii"))
    ca_pem = args.ca.read_text(encoding="ascii") if args.ca else ""
    app = create_app(
        store,
        admin_token=token_file.read_text(encoding="utf-8").strip(),
        enrolment=EnrolmentSettings(
            # Without a broker (--no-broker) a kiosk enrolled here is told the
            # --public-broker-url, if given; an unusable placeholder otherwise.
            broker_url=args.public_broker_url or args.broker or NO_BROKER_URL,
            ca_cert_pem=ca_pem,
            central_public_key=public_bytes(key),
            broker_secret=None if broker_sync is None else broker_sync.secret,
            # A cluster's MQTT plugin speaks 3.1.1 only (docs/scale.md).
            mqtt_version="3.1.1" if args.amqp else "5",
        ),
        # Synchronous: a revocation answers only once the broker has dropped the
        # device (or 503); an enrolment runs it after its answer.
        on_devices_changed=None if broker_sync is None else (lambda: _devices_changed(broker_sync)),
        limits=HttpLimits(enrol_per_minute=args.enrol_rate),
        console=load_settings(args.home / "console.toml"),
        registry_packs=args.home / "registry",  # where `registry issue` keeps them
        registry_key=key,
        methodology=method,
        rabbit_logins=bool(getattr(args, "rabbit_http_auth", False)),
    )
    server = make_server(app, host, port, tls=tls, max_connections=args.http_max_connections)
    logging.getLogger(__name__).info(
        "API on %s://%s:%d%s",
        "http" if tls is None else "https",
        host,
        port,
        "" if tls is None else f"; technicians verify it with {tls.ca_cert}",
    )
    serve(server, stop)


def _methodology(args: argparse.Namespace) -> Methodology:
    from greenpass.record.methodology import default_methodology, load_methodology

    path = getattr(args, "methodology", None)
    return load_methodology(path) if path else default_methodology()


def _devices_changed(broker_sync: BrokerSync) -> None:
    try:
        broker_sync.sync_now()
    except Exception:
        broker_sync.request()  # the background thread retries until the broker answers
        raise


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
            report = _broker_sync(args, store, url, ca).sync_now()
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

    central_hash = mosquitto_password_hash(_central_password(args.home))
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

    print(public_bytes(_key(args.home)).hex())
    return 0
