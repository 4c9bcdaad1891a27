"""Mosquitto 2.0 configuration for the Green Passbook topic tree (DESIGN §5–§6).

Every kiosk is one MQTT user whose username is its device id ``D``; the ACL ties
each device to its own branch of the tree, and the central service account
(`CENTRAL_USER`) to every branch::

    topic                        device D          central
    gp/v1/dev/D/up/#             write             read  (as $share/central/…/up/batch)
    gp/v1/dev/D/status           write             read  (retained; also the kiosk's LWT)
    gp/v1/dev/D/down/#           read              write (ack; retained state)

`write_broker_config` writes all a broker needs into one folder: ``mosquitto.conf``,
``passwd`` (PBKDF2-SHA512 lines, as ``mosquitto_passwd`` writes them), ``acl``,
``tls/`` (`central.devca.DevCA` for development) and ``data/`` (persistence).
Central keeps the password file current with `write_passwd` and calls
`reload_broker` (SIGHUP) after it enrols or revokes a device: Mosquitto then
re-reads ``passwd`` and ``acl`` and disconnects any connected client whose
password no longer checks.

Run Mosquitto under the same account as central (e.g. systemd ``User=greenpass``):
it then never drops privileges, can read the 0600 ``passwd`` that central writes,
and central may signal it. Started as root, Mosquitto 2.0 switches to the account
named by its ``user`` option (default ``mosquitto``) *before* it reads anything
else, so every file must be readable by that account (`write_broker_config`'s
``run_as``).

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
import hashlib
import os
import re
import secrets
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from central.devca import DevCA
from central.files import write_private, write_public
from greenpass.errors import ConfigError

CENTRAL_USER = "central"
TOPIC_ROOT = "gp/v1/dev"
CENTRAL_SHARE_GROUP = "central"
CENTRAL_BATCH_SUBSCRIPTION = f"$share/{CENTRAL_SHARE_GROUP}/{TOPIC_ROOT}/+/up/batch"

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


@dataclass(frozen=True)
class BrokerUser:
    """One line of the password file: a device (username = device id) or central."""

    username: str
    password_hash: str


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
    if device_id == CENTRAL_USER:
        # The device ACL patterns apply to every user, central included; a device
        # named "central" would also get central's own rights.
        raise ConfigError(f"device id {device_id!r} is reserved for the central service")
    return device_id


@dataclass(frozen=True)
class BrokerFiles:
    """Where `write_broker_config` put things; `conf` is what ``mosquitto -c`` takes."""

    conf: Path
    passwd: Path
    acl: Path
    ca_cert: Path
    pid_file: Path
    data_dir: Path
    port: int


def write_passwd(path: Path, users: Sequence[BrokerUser]) -> None:
    """Replace the password file atomically (mode 0600) with exactly these users."""
    seen: set[str] = set()
    lines = []
    for user in users:
        check_username(user.username)
        if user.username in seen:
            raise ConfigError(f"broker user {user.username!r} is listed twice")
        if not user.password_hash.startswith(("$7$", "$6$")) or "\n" in user.password_hash:
            raise ConfigError(f"broker user {user.username!r}: not a Mosquitto password hash")
        seen.add(user.username)
        lines.append(f"{user.username}:{user.password_hash}\n")
    write_private(path, "".join(lines).encode("ascii"))


def reload_broker(pid_file: Path) -> bool:
    """Send SIGHUP to the broker named in `pid_file`, so it re-reads passwd and acl.

    Returns False when there is nothing to signal (no pid file, or its process is
    gone, or the pid now belongs to another program): the broker reads the files
    anyway when it next starts. Raises PermissionError when the broker runs under
    another account, which is a deployment mistake to fix, not to ignore.
    """
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return False
    comm = Path(f"/proc/{pid}/comm")
    try:
        # Mosquitto leaves a stale pid file after SIGKILL; never signal whatever reused the pid.
        if comm.parent.exists() and comm.read_text().strip() != "mosquitto":
            return False
    except OSError:
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return True


def _acl_text() -> str:
    dev = TOPIC_ROOT
    return f"""\
# Green Passbook broker ACL, written by central/broker.py (edit that, not this).
# Mosquitto denies anything not granted here. No lines before the first `user`
# line: anonymous clients get nothing (and allow_anonymous is false anyway).

# Every device: its username is its device id, substituted for %u. A device
# writes its own uplink and status and reads its own downlink, nothing else.
# It does not read its own status back: the kiosk is the source of that data,
# and central's down/ack and the retained down/state carry everything it must
# learn after a reinstall (acked seq, snapshot). These patterns also apply to
# central, which is why no device may be called "{CENTRAL_USER}".
pattern write {dev}/%u/up/#
pattern write {dev}/%u/status
pattern read {dev}/%u/down/#

# The central service: reads every device's uplink and status (its workers
# share {CENTRAL_BATCH_SUBSCRIPTION}), writes every device's downlink, and reads
# the broker's own $SYS counters for the operator dashboard.
user {CENTRAL_USER}
topic read {dev}/+/up/#
topic read {dev}/+/status
topic write {dev}/+/down/#
topic read $SYS/#
"""


def _conf_text(*, port: int, bind: str, files: BrokerFiles, tls: DevCA, run_as: str | None) -> str:
    user_line = (
        f"user {run_as}\n"
        if run_as
        else "# user mosquitto  (default; only used when started as root)\n"
    )
    return f"""\
# Green Passbook broker, written by central/broker.py (edit that, not this).

# --- who may connect ---------------------------------------------------------
# One set of users and one ACL for the whole broker, not per listener.
per_listener_settings false
# Every kiosk and central log in with a username and password.
allow_anonymous false
password_file {files.passwd}
acl_file {files.acl}
# Started as root, Mosquitto 2.0 switches to this account before reading any
# other file, so the files above must be readable by it.
{user_line}
# --- the one listener: TLS only ------------------------------------------------
# No plain-MQTT port at all: passwords never cross the network in clear.
listener {port} {bind}
cafile {tls.ca_cert}
certfile {tls.server_cert}
keyfile {tls.server_key}
# Kiosks authenticate with their password; the server certificate authenticates
# the broker to them. Per-device client certificates would need a PKI on every kiosk.
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
# Per-client queue while offline or busy. Kiosks send stop-and-wait, so central's
# queue holds about one batch per kiosk; 10000 covers a large site with room.
# Past the limit Mosquitto drops messages silently, which the application ack
# makes good.
max_queued_messages 10000
# The count above is the bound; bytes are not limited separately.
max_queued_bytes 0
# QoS 1 messages in flight to one client: central receives from every kiosk at
# once, so allow more than the default 20.
max_inflight_messages 100
# A batch is at most ~64 KiB by design; allow 1 MiB so an oversized batch is
# refused by central with a reason, not by the broker with a disconnect.
max_packet_size 1048576

# --- housekeeping ----------------------------------------------------------------
# central's reload_broker() sends SIGHUP to this pid to re-read passwd and acl.
pid_file {files.pid_file}
# Logs go to stderr only, for systemd's journal or the test's log file; no log
# file path that might not exist on a fresh machine.
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
# Subscriptions too: Mosquitto 2.0's ACL does not check them, so the log is where
# a device subscribing to something odd (e.g. central's share group) shows up.
log_type subscribe
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
"""


def write_broker_config(
    out_dir: Path,
    *,
    port: int,
    users: Sequence[BrokerUser],
    hostnames: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1",),
    bind: str = "127.0.0.1",
    run_as: str | None = None,
) -> BrokerFiles:
    """Write a complete broker folder; ``mosquitto -c <conf>`` then runs it.

    `hostnames` and `ips` go into the development server certificate (kept when
    the existing one already covers them). `run_as` becomes Mosquitto's ``user``
    option, which only matters when the broker is started as root.
    """
    if not 0 < port < 65536:
        raise ConfigError(f"broker port {port} is not a TCP port")
    if run_as is not None:
        check_username(run_as)
    out_dir = out_dir.resolve()
    if any(c in str(out_dir) for c in "\n\r"):
        raise ConfigError(f"broker folder {out_dir!r} cannot be named in mosquitto.conf")
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out_dir / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    tls = DevCA.create(out_dir / "tls", hostnames=hostnames, ips=ips)
    files = BrokerFiles(
        conf=out_dir / "mosquitto.conf",
        passwd=out_dir / "passwd",
        acl=out_dir / "acl",
        ca_cert=tls.ca_cert,
        pid_file=out_dir / "mosquitto.pid",
        data_dir=data_dir,
        port=port,
    )
    write_passwd(files.passwd, users)
    write_public(files.acl, _acl_text().encode("ascii"))
    conf = _conf_text(port=port, bind=bind, files=files, tls=tls, run_as=run_as)
    write_public(files.conf, conf.encode("utf-8"))
    return files
