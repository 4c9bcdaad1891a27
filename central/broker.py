"""Mosquitto 2.0 configuration for the Green Passbook topic tree (docs/design.md §5–§6).

Every kiosk is one MQTT user whose username is its device id ``D``, bound to the
client id ``gp-D``; central is the user `CENTRAL_USER`. Who may do what is held by
Mosquitto's dynamic-security plugin (`central.dynsec`), which checks subscriptions
as well as publishes::

    topic                        device D              central
    gp/v1/dev/D/up/batch         publish               receive (as $share/central/…/up/batch)
    gp/v1/dev/D/status           publish               receive (retained; also the LWT)
    gp/v1/dev/D/down/#           subscribe, receive    publish (ack; retained state)
    anything else                denied                $SYS, $CONTROL/dynamic-security

`write_broker_config` writes all a broker needs into one folder: ``mosquitto.conf``,
``tls/`` (`central.devca.DevCA` for development), ``data/`` (persistence and the pid
file) and ``dynsec/`` (the plugin's ``dynamic-security.json``, which the broker owns
and rewrites as central enrols and revokes devices over ``$CONTROL``).

Started as root, Mosquitto 2.0 switches to the account named by its ``user`` option
(``mosquitto``) *before* it reads its files, and must be able to write ``data/``:
`write_broker_config`, run as root, hands ``data/``, ``dynsec/`` and the server key to that
account, so ``mosquitto -c DIR/mosquitto.conf`` works as root and as the user who
wrote the folder alike.

National scale on a clustered broker (EMQX) — a sketch, not tested here
-----------------------------------------------------------------------
One Mosquitto holds one site. For thousands of kiosks the same topic tree and
rules move to a clustered broker such as EMQX 5:

* Authentication: a password-based authenticator with the HTTP backend pointing at
  central (``body = {username = "${username}", password = "${password}"}``), or the
  built-in database fed by central on enrolment; revocation takes effect without
  any reload.
* Authorization (``acl.conf`` or the HTTP/DB source), ``no_match = deny``::

    {allow, all, publish,   ["gp/v1/dev/${username}/up/#", "gp/v1/dev/${username}/status"]}.
    {allow, all, subscribe, ["gp/v1/dev/${username}/down/#"]}.
    {allow, {username, "central"}, subscribe,
        ["gp/v1/dev/+/up/#", "gp/v1/dev/+/status"]}.
    {allow, {username, "central"}, publish, ["gp/v1/dev/+/down/#"]}.
    {deny, all}.

* Central keeps subscribing to ``$share/central/gp/v1/dev/+/up/batch``; EMQX
  spreads the group over the workers on every node. Session persistence and queue
  limits are set per zone (``mqtt.max_mqueue_len``, ``session_expiry_interval``).
* This closes the two gaps Mosquitto 2.0's ACL file leaves open (``docs/broker.md``):
  EMQX checks subscriptions, so no device can join central's share group, and its
  HTTP authenticator also sends ``${clientid}``, so central can refuse a kiosk whose
  client id is not its device id (no client-id takeover).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from central.devca import DevCA
from central.dynsec import (
    CENTRAL_BATCH_SUBSCRIPTION,
    CENTRAL_SHARE_GROUP,
    CENTRAL_USER,
    TOPIC_ROOT,
    DeviceLogin,
    dynsec_document,
    is_reserved,
    write_dynsec,
)
from greenpass.errors import ConfigError
from greenpass.files import write_public

__all__ = [
    "CENTRAL_BATCH_SUBSCRIPTION",
    "CENTRAL_SHARE_GROUP",
    "CENTRAL_USER",
    "TOPIC_ROOT",
    "BrokerFiles",
    "broker_address",
    "check_device_id",
    "check_username",
    "dynsec_plugin",
    "mosquitto_command",
    "mosquitto_password_hash",
    "write_broker_config",
]

# Where Debian and Raspberry Pi OS (every architecture) put the plugin.
PLUGIN_GLOBS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)
DEFAULT_RUN_AS = "mosquitto"  # the account Debian's package makes; used when started as root

# Mosquitto 2.0 refuses (drops the user, logs "Unable to decode password salt")
# any $7$ line whose salt is not exactly 12 bytes or whose hash is not 64 bytes.
_SALT_BYTES = 12
_DEFAULT_ITERATIONS = 101  # mosquitto_passwd 2.0's PW_DEFAULT_ITERATIONS
# A username is also a topic level (ACL %u), a passwd key and a file-name-safe id:
# no '/', '+', '#', ':', '$', spaces or control characters.
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def mosquitto_password_hash(
    password: str, *, salt: bytes | None = None, iterations: int = _DEFAULT_ITERATIONS
) -> str:
    """The ``$7$<iterations>$<b64 salt>$<b64 hash>`` form ``mosquitto_passwd`` 2.0 writes.

    PBKDF2-HMAC-SHA512 over the UTF-8 password, 12-byte salt, 64-byte hash. 101
    iterations is Mosquitto's own default: the broker runs PBKDF2 on every CONNECT,
    so a thousand kiosks reconnecting after a power cut must stay cheap, and the
    passwords are long random strings from provisioning, not human choices.
    """
    if not password or "\0" in password:
        raise ValueError("a broker password must be non-empty and contain no NUL")
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    if len(salt) != _SALT_BYTES:
        raise ValueError(f"Mosquitto needs a {_SALT_BYTES}-byte salt, got {len(salt)}")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` (a `mosquitto_password_hash`) was made
    from; in constant time, as a login check must be."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        salt, iterations = base64.b64decode(parts[3], validate=True), int(parts[2])
        made = mosquitto_password_hash(password, salt=salt, iterations=iterations)
    except ValueError:
        return False
    return hmac.compare_digest(made.encode(), stored.encode())


def check_username(username: str) -> str:
    """Return `username` if it is safe as an MQTT username, ACL level and passwd key."""
    if not _USERNAME.fullmatch(username):
        raise ConfigError(
            f"broker username {username!r} must be 1-64 of A-Z a-z 0-9 . _ - "
            "and start with a letter or digit"
        )
    return username


def check_device_id(device_id: str) -> str:
    """Return `device_id` if it can be a device's MQTT username (never `CENTRAL_USER`)."""
    check_username(device_id)
    if is_reserved(device_id):
        # A device called "central" would be central; one called "central-1" would be
        # bound to central worker 1's client id, and could knock it off.
        raise ConfigError(f"device id {device_id!r} is reserved for the central service")
    return device_id


@dataclass(frozen=True)
class BrokerFiles:
    """Where `write_broker_config` put things; `conf` is what ``mosquitto -c`` takes."""

    conf: Path
    dynsec: Path
    ca_cert: Path
    pid_file: Path
    data_dir: Path
    port: int
    run_as: str | None  # the account a broker started as root switches to


def mosquitto_command() -> str:
    """The broker binary by its full path: a normal user's PATH on Debian has no /usr/sbin."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    return str(Path(found).resolve()) if found else "mosquitto"


def dynsec_plugin() -> Path:
    """The dynamic-security plugin that ships with Debian's mosquitto package."""
    for pattern in PLUGIN_GLOBS:
        for found in sorted(glob.glob(pattern)):
            return Path(found)
    raise ConfigError(
        "Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) is not "
        "installed; Debian's `mosquitto` package (2.0 or newer) has it"
    )


def _conf_text(*, port: int, bind: str, files: BrokerFiles, tls: DevCA, plugin: Path) -> str:
    user_line = (
        f"user {files.run_as}\n"
        if files.run_as
        else "# user mosquitto  (default; only used when started as root)\n"
    )
    return f"""\
# Green Passbook broker, written by central/broker.py (edit that, not this).

# --- who may connect, and to what ---------------------------------------------
# One set of users for the whole broker, held by the dynamic-security plugin:
# central and one client per enrolled device, each device bound to its client id
# gp-<device>, with a role of its own. Everything not granted is denied,
# subscriptions included (the plain acl_file never checks a subscription).
# Central keeps it in step over $CONTROL/dynamic-security/v1; the plugin saves it
# to the file below after every change, so it survives restarts.
per_listener_settings false
allow_anonymous false
plugin {plugin}
plugin_opt_config_file {files.dynsec}
# Started as root, Mosquitto switches to this account before reading any other
# file; write_broker_config gave it data/, dynsec/ and the server key.
{user_line}
# --- the one listener: TLS only ------------------------------------------------
# No plain-MQTT port at all: passwords never cross the network in clear.
listener {port} {bind}
cafile {tls.ca_cert}
certfile {tls.server_cert}
keyfile {tls.server_key}
# Kiosks authenticate with their password (rotated at every re-enrolment, deleted
# at revocation, both at once over $CONTROL); the server certificate
# authenticates the broker to them. docs/broker.md says why not client certificates.
require_certificate false
# Minimum version: TLS 1.2 and 1.3 are accepted, 1.0 and 1.1 refused.
tls_version tlsv1.2
# Small acks and status messages should not wait for Nagle's algorithm.
set_tcp_nodelay true

# --- store and forward ---------------------------------------------------------
# Sessions, queued QoS 1 messages and retained messages (down/state, status)
# survive a broker restart. Saved on shutdown and every autosave_interval seconds:
# a crash loses at most that much queued traffic, which kiosks resend because
# only central's application ack marks an entry synced.
persistence true
persistence_location {files.data_dir}/
autosave_interval 60
# A kiosk may be offline for weeks (harvest, broken router); keep its session and
# its queued down/ messages for 30 days, then forget it.
persistent_client_expiration 30d
# Per-client queue while offline or busy. Kiosks send stop-and-wait, and central
# acknowledges a message to the broker only once it has handled it, so in a
# reconnect storm central's queue holds about one batch per kiosk: 100000 covers
# ten thousand kiosks with room (so do the bytes below, for batches up to ~50 KiB).
# Past a limit Mosquitto drops messages silently, which the application ack makes
# good (the kiosk resends a minute later).
max_queued_messages 100000
# A batch is a few KiB (at most ~64 KiB): 512 MiB bounds the broker's memory for
# one client's queue however large the batches queued are.
max_queued_bytes 536870912
# QoS 1 messages in flight to one client: central receives from every kiosk at
# once, so allow more than the default 20.
max_inflight_messages 100
# A batch is at most ~64 KiB by design; allow 1 MiB so an oversized batch is
# refused by central with a reason, not by the broker with a disconnect. A device
# can publish on two topics only, so it can make the broker keep at most two
# retained messages of this size.
max_packet_size 1048576

# --- housekeeping ----------------------------------------------------------------
# In data/, which the account above may write (the folder itself may be root's).
pid_file {files.pid_file}
# Logs go to stderr only, for systemd's journal or the test's log file; no log
# file path that might not exist on a fresh machine.
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
# Subscriptions too: a refused one (SUBACK 0x87) is logged with the client's id.
log_type subscribe
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
"""


def _account(run_as: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(run_as)
    except KeyError:
        raise ConfigError(
            f"there is no account {run_as!r} for the broker to run as: install Debian's "
            "mosquitto package (it makes one), give another with --run-as, or run "
            "broker-config and mosquitto as a normal user"
        ) from None


def _check_reachable(folder: Path, account: pwd.struct_passwd) -> None:
    """Refuse a folder the broker's account cannot reach (e.g. under /root, 0700)."""
    for parent in [folder, *folder.parents]:
        st = parent.stat()
        if st.st_uid == account.pw_uid:
            continue
        group_ok = st.st_gid == account.pw_gid and st.st_mode & 0o010
        if not (st.st_mode & 0o001 or group_ok):
            raise ConfigError(
                f"the broker runs as {account.pw_name!r} when started as root, and that "
                f"account cannot enter {parent} (mode {st.st_mode & 0o777:o}): choose a "
                "folder it can reach, e.g. /var/lib/greenpass/broker"
            )


def write_broker_config(
    out_dir: Path,
    *,
    port: int,
    central_password_hash: str,
    devices: Sequence[DeviceLogin] = (),
    hostnames: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1",),
    bind: str = "127.0.0.1",
    run_as: str | None = None,
) -> BrokerFiles:
    """Write a complete broker folder; ``mosquitto -c <conf>`` then runs it.

    `devices` are the enrolled devices (their stored password hashes go into the
    plugin's file as they are). `hostnames` and `ips` go into the development server
    certificate (kept when the existing one already covers them). `run_as` is the
    account a broker started as root switches to: by default `DEFAULT_RUN_AS` when
    this runs as root (which then owns ``data/`` and the server key), and none
    otherwise, when the broker runs as whoever wrote the folder. ``run_as="root"``
    keeps a root broker root (tests in private temporary folders).
    """
    if not 0 < port < 65536:
        raise ConfigError(f"broker port {port} is not a TCP port")
    as_root = os.geteuid() == 0
    if run_as is None and as_root:
        run_as = DEFAULT_RUN_AS
    if run_as is not None:
        check_username(run_as)
    account = _account(run_as) if as_root and run_as not in (None, "root") else None
    out_dir = out_dir.resolve()
    if any(c in str(out_dir) for c in "\n\r"):
        raise ConfigError(f"broker folder {out_dir!r} cannot be named in mosquitto.conf")
    out_dir.mkdir(parents=True, exist_ok=True)
    if account is not None:
        _check_reachable(out_dir, account)
    data_dir = out_dir / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    # Logins apart from persistence: data/ may be wiped (sessions lost) without
    # locking everyone out. The plugin saves through a sibling temp file, so the
    # broker's account needs the folder, not just the file.
    security_dir = out_dir / "dynsec"
    security_dir.mkdir(mode=0o700, exist_ok=True)
    tls = DevCA.create(out_dir / "tls", hostnames=hostnames, ips=ips)
    files = BrokerFiles(
        conf=out_dir / "mosquitto.conf",
        dynsec=security_dir / "dynamic-security.json",
        ca_cert=tls.ca_cert,
        pid_file=data_dir / "mosquitto.pid",
        data_dir=data_dir,
        port=port,
        run_as=run_as,
    )
    write_dynsec(files.dynsec, dynsec_document(central_password_hash, devices))
    conf = _conf_text(port=port, bind=bind, files=files, tls=tls, plugin=dynsec_plugin())
    write_public(files.conf, conf.encode("utf-8"))
    if account is not None:
        # The broker writes data/ (persistence, pid file) and dynsec/ (the plugin's
        # file) and reads the server key after it has become this account; the CA
        # key stays root's.
        for path in (
            data_dir,
            *data_dir.iterdir(),
            security_dir,
            *security_dir.iterdir(),
            tls.server_key,
        ):
            os.chown(path, account.pw_uid, account.pw_gid)
    return files


def broker_address(folder: Path) -> tuple[str, Path]:
    """The URL central reaches a broker folder's listener at, and its CA certificate."""
    conf = folder / "mosquitto.conf"
    try:
        lines = conf.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{conf}: cannot read the broker's configuration: {exc}") from exc
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "listener":
            host = words[2] if len(words) > 2 and words[2] not in ("0.0.0.0", "::") else "127.0.0.1"
            host = f"[{host}]" if ":" in host else host
            return f"mqtts://{host}:{int(words[1])}", folder / "tls" / "ca.crt"
    raise ConfigError(f"{conf}: no listener line")
