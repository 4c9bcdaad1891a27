"""`greenpass central` itself: central waiting for its database, its transparency log,
its receiver (MQTT, or AMQP on a RabbitMQ cluster), the keeper of the broker's device
logins and the HTTPS API and console, until a signal stops it (`central.cli` parses
the arguments)."""

from __future__ import annotations

import argparse
import logging
import secrets
import threading
from typing import TYPE_CHECKING

from central.cli_common import (
    DB_ENV,
    broker_sync,
    central_broker,
    central_key,
    open_store,
)
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

NO_BROKER_URL = "mqtts://no-broker.invalid:8883"  # what --no-broker hands kiosks, unless told


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


def run(args: argparse.Namespace) -> int:
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
    admin = central_broker(args, args.broker, args.ca)
    stop = threading.Event()
    services: list[CentralService] = []  # none while central waits for its database
    stop_on_signals(stop)  # then `service.stop()` below stops the receiver
    store = _store_when_reachable(args, stop)
    if store is None:
        return 0  # stopped while waiting for the database
    key = central_key(args.home)
    amqp = _amqp(args, admin) if args.amqp else None
    # Mosquitto's logins are central's to keep (over $CONTROL); a cluster's too when
    # central is given its management API (--rabbit-api).
    keeps_logins = amqp is None or bool(args.rabbit_api)
    logins = broker_sync(args, store, args.broker, args.ca) if keeps_logins else None
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
    if logins is not None:
        logins.start()
    if args.http:
        _serve_http(args, store, key, stop, logins, method)
    else:
        stop.wait()
    if logins is not None:
        logins.stop()
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
        _serve_http(args, store, central_key(args.home), stop, None, method)
    finally:
        store.close()
    return 0


def _serve_http(
    args: argparse.Namespace,
    store: CentralStore,
    key: Ed25519PrivateKey,
    stop: threading.Event,
    logins: BrokerSync | None,
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
            broker_secret=None if logins is None else logins.secret,
            # A cluster's MQTT plugin speaks 3.1.1 only (docs/scale.md).
            mqtt_version="3.1.1" if args.amqp else "5",
        ),
        # Synchronous: a revocation answers only once the broker has dropped the
        # device (or 503); an enrolment runs it after its answer.
        on_devices_changed=None if logins is None else (lambda: _devices_changed(logins)),
        limits=HttpLimits(enrol_per_minute=args.enrol_rate),
        console=load_settings(args.home / "console.toml"),
        registry_packs=args.home / "registry",  # where `registry issue` keeps them
        registry_key=key,
        methodology=method,
        rabbit_logins=bool(getattr(args, "rabbit_http_auth", False)),
    )
    server = make_server(app, host, port, tls=tls, max_connections=args.http_max_connections)
    # central.cli's logger, as before this module was split from it: log filters stay.
    logging.getLogger("central.cli").info(
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


def _devices_changed(logins: BrokerSync) -> None:
    try:
        logins.sync_now()
    except Exception:
        logins.request()  # the background thread retries until the broker answers
        raise
