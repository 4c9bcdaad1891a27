"""`greenpass central …`: run the central server, and its operator's tools.

    greenpass central --db URL --broker URL [--http HOST:PORT] …   run (MQTT + admin API)
    greenpass central enrol-token --device D --village V          one-time enrolment token
    greenpass central devices | revoke --device D                 the fleet
    greenpass central broker-config --out DIR                     a working Mosquitto folder
    greenpass central public-key                                  what kiosks verify state with

`--db` takes a file path (SQLite) or `postgresql://…`; `$GREENPASS_CENTRAL_DB` is
its default everywhere, `$GREENPASS_CENTRAL_HOME` the folder for the signing key
and secrets (default `./central-home`).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from greenpass.errors import ConfigError

if TYPE_CHECKING:  # imported lazily below: the CLI must start fast for every command
    from central.store import CentralStore
    from sync.keys import Ed25519PrivateKey

DB_ENV = "GREENPASS_CENTRAL_DB"
HOME_ENV = "GREENPASS_CENTRAL_HOME"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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
    parser.add_argument("--broker-user", default="central", help="MQTT username (central)")
    parser.add_argument(
        "--broker-password-file",
        type=Path,
        help="file holding central's MQTT password (default: HOME/central.password, "
        "written by broker-config)",
    )
    parser.add_argument("--ca", type=Path, help="CA certificate the broker's TLS chains to")
    parser.add_argument(
        "--broker-dir",
        type=Path,
        help="the folder broker-config wrote: after each enrolment or revocation central "
        "rewrites its passwd file and signals the broker to reload it",
    )
    parser.add_argument(
        "--public-broker-url", help="broker URL handed to kiosks at enrolment (default: --broker)"
    )
    parser.add_argument("--http", help="serve the admin and enrolment API on HOST:PORT")
    parser.add_argument("--worker-id", default="1", help="tells central workers apart (MQTT id)")
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
    p.add_argument("--broker-dir", type=Path, help="rewrite this broker folder's passwd")
    p.set_defaults(handler=_revoke)
    p = child("broker-config", "write a Mosquitto folder: TLS, passwords, ACL, limits")
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    p.add_argument("--port", type=int, default=8883, help="TLS listener port (default 8883)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument(
        "--hostname", action="append", default=None, help="name in the server certificate"
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


def _store(args: argparse.Namespace) -> CentralStore:
    from central.store import CentralStore

    if not args.db:
        raise ConfigError(f"no central database: give --db or set ${DB_ENV}")
    return CentralStore.open(args.db)


def _key(home: Path) -> Ed25519PrivateKey:
    from sync.keys import load_or_create_key

    return load_or_create_key(home / "central.key")


def _central_password(home: Path) -> str:
    path = home / "central.password"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text(encoding="utf-8").strip()


def _sync_broker(store: CentralStore, home: Path, broker_dir: Path | None) -> None:
    """Rewrite the broker's passwd from the enrolled devices and make it reload."""
    if broker_dir is None:
        return
    from central.broker import mosquitto_password_hash, reload_broker, write_passwd

    users = store.broker_users(mosquitto_password_hash(_central_password(home)))
    write_passwd(broker_dir / "passwd", users)
    reload_broker(broker_dir / "mosquitto.pid")


def _run(args: argparse.Namespace) -> int:
    from central.service import CentralService
    from sync.transport import BrokerConfig

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.broker:
        raise ConfigError("give --broker mqtts://HOST:PORT")
    password_file = args.broker_password_file or args.home / "central.password"
    try:
        password = password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{password_file}: cannot read central's MQTT password") from exc
    store = _store(args)
    key = _key(args.home)
    service = CentralService(
        store,
        BrokerConfig(
            url=args.broker,
            username=args.broker_user,
            password=password,
            client_id=f"gp-central-{args.worker_id}",
            ca_cert=args.ca,
        ),
        key,
        debounce_s=args.debounce,
        min_interval_s=args.min_push_interval,
    )
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()
        service.receiver.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    if args.http:
        _serve_http(args, store, key, stop)
    else:
        stop.wait()
    service.stop()
    store.close()
    return 0


def _serve_http(
    args: argparse.Namespace, store: CentralStore, key: Ed25519PrivateKey, stop: threading.Event
) -> None:
    import uvicorn

    from central.api import EnrolmentSettings, create_app
    from sync.keys import public_bytes

    host, _, port = args.http.rpartition(":")
    token_file = args.home / "admin.token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
        token_file.chmod(0o600)
    ca_pem = args.ca.read_text(encoding="ascii") if args.ca else ""
    app = create_app(
        store,
        admin_token=token_file.read_text(encoding="utf-8").strip(),
        enrolment=EnrolmentSettings(
            broker_url=args.public_broker_url or args.broker,
            ca_cert_pem=ca_pem,
            central_public_key=public_bytes(key),
        ),
        on_devices_changed=lambda: _sync_broker(store, args.home, args.broker_dir),
    )
    server = uvicorn.Server(uvicorn.Config(app, host=host or "127.0.0.1", port=int(port)))

    def watch() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=watch, daemon=True).start()
    server.run()


def _enrol_token(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.create_village(args.village)
        token = store.create_enrol_token(
            args.device, args.village, _now_ms(), ttl_s=int(args.ttl_hours * 3600)
        )
    print(token)
    return 0


def _devices(args: argparse.Namespace) -> int:
    with _store(args) as store:
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
    with _store(args) as store:
        store.revoke_device(args.device, _now_ms())
        _sync_broker(store, args.home, args.broker_dir)
    print(f"revoked {args.device}")
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    from central.broker import BrokerUser, mosquitto_password_hash, write_broker_config

    central_hash = mosquitto_password_hash(_central_password(args.home))
    if args.db:
        with _store(args) as store:
            users = store.broker_users(central_hash)
    else:
        users = [BrokerUser("central", central_hash)]
    files = write_broker_config(
        args.out,
        port=args.port,
        users=users,
        hostnames=args.hostname or ["localhost"],
        bind=args.bind,
    )
    print(f"wrote {files.conf}; run: mosquitto -c {files.conf}")
    print(f"kiosks and central trust {files.ca_cert}")
    print(f"central's MQTT password is in {args.home / 'central.password'}")
    return 0


def _issuer_key(args: argparse.Namespace) -> int:
    import time

    try:
        raw = bytes.fromhex(args.public_key)
    except ValueError as exc:
        raise ConfigError("--public-key must be 64 hex digits") from exc
    with _store(args) as store:
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
    with _store(args) as store:
        gone = store.prune_dead_letters(cutoff)
    print(f"deleted {gone} dead letters older than {args.days:g} days")
    return 0


def _public_key(args: argparse.Namespace) -> int:
    from sync.keys import public_bytes

    print(public_bytes(_key(args.home)).hex())
    return 0
