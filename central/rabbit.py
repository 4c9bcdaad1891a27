"""A RabbitMQ 3.10 cluster as the broker: node configuration, users and rights.

The national deployment (docs/scale.md): kiosks keep speaking MQTT 3.1.1 to any node
(the `rabbitmq_mqtt` plugin); central consumes batches and statuses over AMQP from
quorum queues, as competing consumers (`central.amqp_receiver`). Every device is a
RabbitMQ user with the rights Mosquitto's dynamic-security plugin gives it
(docs/broker.md): publish its own `up/batch` and `status`, read its own `down/…`.

MQTT topics map to AMQP routing keys on `amq.topic` with `/` as `.`:
`gp/v1/dev/K1/up/batch` is `gp.v1.dev.K1.up.batch`. A device id with a `.` in it
would cross a topic level there, so the cluster refuses such ids (`check_rabbit_id`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from central.dynsec import CENTRAL_USER
from greenpass.errors import ConfigError

EXCHANGE = "amq.topic"
# Central's queues: quorum (Raft-replicated over three nodes), consumed by every
# central worker at once; RabbitMQ hands each message to one of them.
BATCH_QUEUE = "gp.central.batches"
STATUS_QUEUE = "gp.central.status"
RESERVE_QUEUE = "gp.central.reserve"  # requests to reverse another kiosk's entry
BATCH_KEY = "gp.v1.dev.*.up.batch"
STATUS_KEY = "gp.v1.dev.*.status"
RESERVE_KEY = "gp.v1.dev.*.up.reverse"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class RabbitNode:
    name: str  # Erlang node name, gp1@host
    amqp_port: int
    mqtt_port: int  # MQTT over TLS
    dist_port: int  # Erlang distribution between the nodes
    api_port: int = 0  # the management API (central keeps the logins through it); 0: none
    amqps_port: int = 0  # AMQP over TLS, for central workers on other machines; 0: none


def check_rabbit_id(device_id: str) -> str:
    if not _ID.match(device_id) or device_id.lower().startswith("central"):
        raise ConfigError(f"device id {device_id!r} cannot be a RabbitMQ MQTT user (no '.')")
    return device_id


def rabbit_password_hash(password: str) -> str:
    """The `rabbit_password_hashing_sha256` hash a definitions file takes:
    base64(salt ‖ SHA-256(salt ‖ password)), 4-byte salt."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def amq_key(mqtt_topic: str) -> str:
    return mqtt_topic.replace("/", ".")


def device_rights(device_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """Vhost permissions and topic permissions of one device.

    The MQTT plugin keeps a persistent (clean_session=false) session in the queue
    `mqtt-subscription-<client id>qos1`: a device may declare, bind and read only
    its own (client id `gp-D`), so it cannot consume another kiosk's session even
    with that kiosk's client id. Topic rights bind it to its own branch.
    """
    d = re.escape(check_rabbit_id(device_id))
    own = rf"mqtt-subscription-gp-{d}qos[01]"
    perms = {
        "configure": rf"^{own}$",
        "write": rf"^(amq\.topic|{own})$",
        "read": rf"^(amq\.topic|{own})$",
    }
    topic = {
        "exchange": EXCHANGE,
        "write": rf"^gp\.v1\.dev\.{d}\.(up\.batch|up\.reverse|status)$",
        "read": rf"^gp\.v1\.dev\.{d}\.down\.",
    }
    return perms, topic


def central_rights() -> tuple[dict[str, str], dict[str, str]]:
    perms = {
        "configure": r"^(gp\.central\..*|mqtt-subscription-central.*)$",
        "write": r"^(amq\.topic|gp\.central\..*|mqtt-subscription-central.*)$",
        "read": r"^(amq\.topic|gp\.central\..*|mqtt-subscription-central.*)$",
    }
    topic = {
        "exchange": EXCHANGE,
        "write": r"^gp\.v1\.dev\.[^.]+\.down\.",
        "read": r"^gp\.v1\.dev\.[^.]+\.(up\.batch|up\.reverse|status)$",
    }
    return perms, topic


def cluster_definitions(users: Mapping[str, str]) -> str:
    """A definitions file (`load_definitions`): the users with their hashed
    passwords and rights. (Central declares its queues: `amqp_receiver.declare_queues`.)"""
    out: dict[str, list[dict[str, object]]] = {
        "vhosts": [{"name": "/"}],
        "users": [],
        "permissions": [],
        "topic_permissions": [],
    }
    for user, password in users.items():
        perms, topic = central_rights() if user == CENTRAL_USER else device_rights(user)
        # Central keeps the devices' logins through the management API: administrator.
        tags = ["administrator"] if user == CENTRAL_USER else []
        out["users"].append(
            {"name": user, "password_hash": rabbit_password_hash(password),
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags}
        )  # fmt: skip
        out["permissions"].append({"user": user, "vhost": "/", **perms})
        out["topic_permissions"].append({"user": user, "vhost": "/", **topic})
    return json.dumps(out, indent=1)


@dataclass(frozen=True)
class LoginCheck:
    """Central's route that checks device logins (`central.rabbit_login`), as the nodes
    reach it: https://CENTRAL:PORT/broker/rabbitmq/user, its TLS checked against `ca`
    for the URL's host name — or for `server_name` when the URL has an IP address:
    Erlang checks a certificate's names, never its IP addresses."""

    url: str
    ca: Path
    server_name: str | None = None

    def __post_init__(self) -> None:
        # A node asks central whether a device may log in: an answer from anyone else
        # (plain HTTP, or TLS unchecked: OTP's HTTP client checks nothing by default)
        # would let anyone on the path log in as any device.
        if not self.url.startswith("https://") or not _plain(self.url):
            raise ConfigError(f"the login check's URL must be https://…, not {self.url!r}")
        if self.server_name is not None and not _plain(self.server_name):
            raise ConfigError(f"{self.server_name!r} is not a host name")


PLUGINS = ("rabbitmq_mqtt", "rabbitmq_management")
LOGIN_PLUGIN = "rabbitmq_auth_backend_http"


def enabled_plugins(login: LoginCheck | None) -> str:
    """The enabled_plugins file."""
    names = [*PLUGINS, LOGIN_PLUGIN] if login is not None else list(PLUGINS)
    return "[" + ",".join(names) + "].\n"


def _plain(text: str) -> bool:
    """Printable ASCII without quotes, backslashes or spaces: safe in rabbitmq.conf and,
    quoted, as an Erlang string."""
    return bool(text) and all(33 <= ord(c) < 127 and c not in '"\\' for c in text)


def _erl_string(text: str | Path) -> str:
    value = str(text)
    if not _plain(value):
        raise ConfigError(f"{value!r}: RabbitMQ's files take printable ASCII without spaces here")
    return f'"{value}"'


def advanced_config(login: LoginCheck | None) -> str:
    """advanced.config: the HTTP backend's TLS options, which 3.10's rabbitmq.conf
    schema has no keys for."""
    if login is None:
        return "[].\n"
    options = [f"{{cacertfile, {_erl_string(login.ca)}}}", "{verify, verify_peer}"]
    if login.server_name:
        options.append(f"{{server_name_indication, {_erl_string(login.server_name)}}}")
    return "[{rabbitmq_auth_backend_http, [{ssl_options, [" + ", ".join(options) + "]}]}].\n"


def dist_tls_options(ca: Path, cert: Path, key: Path) -> str:
    """The `-ssl_dist_optfile` of a node: its Erlang distribution — the traffic between
    the nodes (queue replication, every kiosk's messages between the node it is on and
    the queue's leader) and `rabbitmqctl`'s — over mutual TLS. Each node is a server
    to its peers and a client of them, with one certificate for both (clientAuth and
    serverAuth, `DevCA.issue_peer`); a peer without a certificate of `ca` is refused.
    A client checks the peer's certificate against the host of its node name."""
    files = [
        f"{{cacertfile, {_erl_string(ca)}}}",
        f"{{certfile, {_erl_string(cert)}}}",
        f"{{keyfile, {_erl_string(key)}}}",
        "{secure_renegotiate, true}",
        "{verify, verify_peer}",
        "{versions, ['tlsv1.3', 'tlsv1.2']}",
    ]
    server = [*files, "{fail_if_no_peer_cert, true}"]
    return f"[{{server, [{', '.join(server)}]}},\n {{client, [{', '.join(files)}]}}].\n"


def dist_erl_args(optfile: Path) -> str:
    """RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS and RABBITMQ_CTL_ERL_ARGS, both: the
    server and the CLI tools must speak the same distribution."""
    return f"-proto_dist inet_tls -ssl_dist_optfile {_erl_string(optfile)[1:-1]}"


def node_config(
    nodes: Sequence[RabbitNode],
    n: int,
    *,
    tls: tuple[Path, Path, Path],
    definitions: Path | None = None,
    bind: str = "127.0.0.1",
    login: LoginCheck | None = None,
) -> str:
    """rabbitmq.conf of node `n` (1-based) of `nodes`. Why each line is there:"""
    me = nodes[n - 1]
    ca, cert, key = tls
    lines = [
        # Plain AMQP: on loopback only once AMQP over TLS is offered (workers on other
        # machines come over amqps://), for tools on the node's own machine.
        f"listeners.tcp.default = {'127.0.0.1' if me.amqps_port else bind}:{me.amqp_port}",
        # Kiosks: MQTT over TLS only (as on Mosquitto: plain MQTT is refused).
        "mqtt.listeners.tcp = none",
        f"mqtt.listeners.ssl.default = {bind}:{me.mqtt_port}",
        f"ssl_options.cacertfile = {ca}",
        f"ssl_options.certfile = {cert}",
        f"ssl_options.keyfile = {key}",
        "ssl_options.verify = verify_none",
        "ssl_options.versions.1 = tlsv1.3",
        "ssl_options.versions.2 = tlsv1.2",
        "mqtt.allow_anonymous = false",
        "mqtt.vhost = /",
        f"mqtt.exchange = {EXCHANGE}",
        # A kiosk's session queue (clean_session=false) is a quorum queue: its
        # un-acked acks and states survive the loss of the node it was on.
        "mqtt.durable_queue_type = quorum",
        # No guest user: every login is one of the definitions' users.
        "default_user = guest-disabled-" + secrets.token_hex(8),
        "default_pass = " + secrets.token_hex(16),
        "loopback_users = none",
        "cluster_formation.peer_discovery_backend = classic_config",
        *(f"cluster_formation.classic_config.nodes.{i} = {x.name}" for i, x in enumerate(nodes, 1)),
        # A node cut off from the majority pauses rather than serve a split brain.
        "cluster_partition_handling = pause_minority",
        "vm_memory_high_watermark.relative = 0.2",
        "disk_free_limit.absolute = 50MB",
    ]
    if me.amqps_port:
        # Central's workers on other machines: AMQP over TLS, the MQTT listener's
        # certificate (`greenpass central --amqp amqps://HOST:PORT --ca CA`).
        lines.append(f"listeners.ssl.default = {bind}:{me.amqps_port}")
    if me.api_port:
        # Central keeps the devices' logins through it (`central.rabbit_admin`).
        lines += [f"management.tcp.ip = {bind}", f"management.tcp.port = {me.api_port}"]
    if definitions is not None:
        lines.append(f"load_definitions = {definitions}")
    if login is not None:
        lines += [
            # Central's own users log in with their passwords, here; a device's user has
            # none (`RabbitAdmin(passwordless=True)`), so this refuses it …
            "auth_backends.1 = internal",
            # … and central decides: its own password and client id gp-<device> only
            # (`central.rabbit_login`). Its rights stay the internal ones.
            "auth_backends.2.authn = http",
            "auth_backends.2.authz = internal",
            "auth_http.http_method = post",
            f"auth_http.user_path = {login.url}",
            # Unused (rights are internal), but the plugin wants every path set.
            f"auth_http.vhost_path = {login.url}",
            f"auth_http.resource_path = {login.url}",
            f"auth_http.topic_path = {login.url}",
            # A central that does not answer costs a kiosk's login 5 s at most; the
            # kiosk retries with its backoff.
            "auth_http.connection_timeout = 2000",
            "auth_http.request_timeout = 5000",
        ]
    return "\n".join(lines) + "\n"
