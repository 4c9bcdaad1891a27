"""Who may connect to the broker, as which client id, to which topics.

Mosquitto 2.0's dynamic-security plugin holds the answer (``docs/broker.md`` says why
it, and not the password and ACL files: those never check a subscription, so a device
could join central's share group, and any user could take any client id).

* **Central** is one client, ``central``, with the role `CENTRAL_ROLE`: it reads every
  device's ``up/batch`` through ``$share/central/…`` and every ``status``, writes every
  ``down/``, reads ``$SYS`` and administers this plugin over `CONTROL_TOPIC`. It has no
  client id of its own, so several workers can log in at once.
* **Each device D** is a client ``D`` bound to the client id ``gp-D`` (the broker
  refuses any other, so no kiosk can knock another off, nor reach central), with its
  own role ``gp-device-D``: publish ``up/batch`` and ``status``, subscribe to and
  receive its own ``down/…``, nothing else. One role per device because Mosquitto
  2.0.11's dynamic-security ACLs do not substitute ``%u`` (tested).
* Everything not granted is denied (`DEFAULT_ACCESS`), subscriptions included.

`dynsec_document` writes the plugin's file for a broker that is not running
(``greenpass central broker-config``); `BrokerAdmin.sync` brings a running broker
in step with central's enrolled devices over its ``$CONTROL`` topic (the plugin
re-reads nothing on SIGHUP). A device's MQTT password is derived from central's
`broker secret <load_or_create_secret>`, its id and its enrolled public key
(`device_password`), so central can create a missing client at any time without
storing any password in clear, and a re-enrolment with a new key rotates it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from greenpass.errors import CentralError, ConfigError, TransportError
from greenpass.files import create_private, write_private
from sync.protocol import STATE, device_client_id, topic
from sync.transport import BrokerConfig, Transport

log = logging.getLogger(__name__)

CENTRAL_USER = "central"
TOPIC_ROOT = "gp/v1/dev"
CENTRAL_SHARE_GROUP = "central"
CENTRAL_BATCH_SUBSCRIPTION = f"$share/{CENTRAL_SHARE_GROUP}/{TOPIC_ROOT}/+/up/batch"
CENTRAL_STATUS_SUBSCRIPTION = f"$share/{CENTRAL_SHARE_GROUP}/{TOPIC_ROOT}/+/status"
CENTRAL_RESERVE_SUBSCRIPTION = f"$share/{CENTRAL_SHARE_GROUP}/{TOPIC_ROOT}/+/up/reverse"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
CENTRAL_ROLE = "gp-central"
DEVICE_ROLE_PREFIX = "gp-device-"
DEFAULT_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,  # leaving a subscription one has is harmless
}
_COMMANDS_PER_MESSAGE = 100  # keeps each control message far below max_packet_size


def is_reserved(device_id: str) -> bool:
    """Ids no device may have: ``central`` itself, and any id whose bound client id
    ``gp-D`` could be one of central's own (``gp-central-<worker>``)."""
    return device_id.lower().startswith(CENTRAL_USER)


def device_role(device_id: str) -> str:
    return f"{DEVICE_ROLE_PREFIX}{device_id}"


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def device_acls(device_id: str) -> list[dict[str, Any]]:
    """A device writes its own uplink and status, and subscribes to its own downlink.

    ``subscribeLiteral`` compares the filter as written, so a device can subscribe to
    exactly these filters: ``down/#``, or ``down/ack``, ``down/state`` and
    ``down/reverse`` as the kiosk does. No retained junk under ``up/…``: only
    ``up/batch`` and ``up/reverse`` (a request to reserve another kiosk's entry for a
    reversal, `sync.reserve_wire`) may be published.
    """
    dev = f"{TOPIC_ROOT}/{device_id}"
    return [
        _acl("publishClientSend", f"{dev}/up/batch"),
        _acl("publishClientSend", f"{dev}/up/reverse"),
        _acl("publishClientSend", f"{dev}/status"),
        _acl("subscribeLiteral", f"{dev}/down/#"),
        _acl("subscribeLiteral", f"{dev}/down/ack"),
        _acl("subscribeLiteral", f"{dev}/down/state"),
        _acl("subscribeLiteral", f"{dev}/down/reverse"),
        _acl("publishClientReceive", f"{dev}/down/#"),
    ]


def central_acls() -> list[dict[str, Any]]:
    """Central: every uplink through its share group, every status, every downlink."""
    dev = TOPIC_ROOT
    return [
        _acl("subscribeLiteral", CENTRAL_BATCH_SUBSCRIPTION),
        # Its workers share the status stream too (sync.receiver), a monitor may not.
        _acl("subscribeLiteral", CENTRAL_STATUS_SUBSCRIPTION),
        _acl("subscribeLiteral", f"{dev}/+/status"),
        _acl("subscribeLiteral", CENTRAL_RESERVE_SUBSCRIPTION),
        _acl("subscribeLiteral", f"{dev}/+/up/reverse"),
        _acl("publishClientReceive", f"{dev}/+/up/batch"),
        _acl("publishClientReceive", f"{dev}/+/up/reverse"),
        _acl("publishClientReceive", f"{dev}/+/status"),
        _acl("publishClientSend", f"{dev}/+/down/#"),
        _acl("subscribePattern", "$SYS/#"),
        _acl("publishClientReceive", "$SYS/#"),
        _acl("publishClientSend", CONTROL_TOPIC),
        _acl("subscribeLiteral", RESPONSE_TOPIC),
        _acl("publishClientReceive", RESPONSE_TOPIC),
    ]


def key_label(public_key: bytes) -> str:
    """The client's ``textname``: which enrolled key its password belongs to."""
    return f"key sha256:{hashlib.sha256(public_key).hexdigest()[:16]}"


def device_password(secret: bytes, device_id: str, public_key: bytes) -> str:
    """Device `device_id`'s MQTT password while `public_key` is its enrolled key.

    HMAC-SHA256 under central's broker secret: 43 random-looking characters that
    central can recompute but never stores; a new key (re-enrolment) gives a new one.
    """
    if len(secret) < 32:
        raise ConfigError("the broker secret must be at least 32 bytes")
    msg = b"gp-mqtt-password-v1\0" + device_id.encode("utf-8") + b"\0" + public_key
    digest = hmac.new(secret, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def load_or_create_secret(path: Path) -> bytes:
    """Central's broker secret (32 random bytes, hex, mode 0600), made on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Another central process may make it a moment before: the first one stays.
        create_private(path, (secrets.token_hex(32) + "\n").encode("ascii"))
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a broker secret (64 hex digits): {exc}") from exc


def dynsec_password(password_hash: str) -> dict[str, Any]:
    """The plugin's password fields from a ``$7$iterations$salt$hash`` line.

    Both are PBKDF2-HMAC-SHA512 with a 12-byte salt, so the hashes central already
    stores move into the plugin's file unchanged, and no password is needed in clear.
    """
    parts = password_hash.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ConfigError("not a Mosquitto $7$ password hash")
    try:
        iterations = int(parts[2])
        salt, digest = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError as exc:
        raise ConfigError(f"not a Mosquitto $7$ password hash: {exc}") from exc
    if len(salt) != 12 or len(digest) != 64 or iterations < 1:
        raise ConfigError("a $7$ hash needs a 12-byte salt, a 64-byte hash and iterations")
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


@dataclass(frozen=True)
class DeviceLogin:
    """What the broker must know of one active device."""

    device_id: str
    public_key: bytes
    password_hash: str  # as central stores it
    password: str | None = None  # in clear, when central can derive it


def dynsec_document(central_hash: str, devices: Iterable[DeviceLogin]) -> dict[str, Any]:
    """The plugin's whole file: central, every device, their roles, deny by default."""
    clients: list[dict[str, Any]] = [
        {
            "username": CENTRAL_USER,
            "textname": "the central service (all workers)",
            "roles": [{"rolename": CENTRAL_ROLE}],
            **dynsec_password(central_hash),
        }
    ]
    roles: list[dict[str, Any]] = [{"rolename": CENTRAL_ROLE, "acls": central_acls()}]
    for d in sorted(devices, key=lambda d: d.device_id):
        clients.append(
            {
                "username": d.device_id,
                "clientid": device_client_id(d.device_id),
                "textname": key_label(d.public_key),
                "roles": [{"rolename": device_role(d.device_id)}],
                **dynsec_password(d.password_hash),
            }
        )
        roles.append({"rolename": device_role(d.device_id), "acls": device_acls(d.device_id)})
    return {"defaultACLAccess": DEFAULT_ACCESS, "clients": clients, "groups": [], "roles": roles}


def write_dynsec(path: Path, document: dict[str, Any]) -> None:
    write_private(path, json.dumps(document, indent=1).encode("utf-8"))


@dataclass
class SyncReport:
    """What `BrokerAdmin.sync` changed, and what it could not."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)  # active, but no password to give the broker

    def __str__(self) -> str:
        parts = [
            f"{name} {len(ids)} ({', '.join(ids[:5])}{', …' if len(ids) > 5 else ''})"
            for name, ids in (
                ("created", self.created),
                ("updated", self.updated),
                ("deleted", self.deleted),
                ("stuck", self.stuck),
            )
            if ids
        ]
        return "; ".join(parts) or "no change"


class BrokerAdmin:
    """Central's administrator connection to a running broker's dynamic-security plugin.

    ``with BrokerAdmin(cfg) as admin: admin.sync(devices)``. Each command's answer is
    read from `RESPONSE_TOPIC`; an error answer raises `CentralError` naming it.
    """

    def __init__(self, cfg: BrokerConfig, *, timeout_s: float = 10.0) -> None:
        self.cfg = cfg
        self.timeout_s = timeout_s
        self._t: Transport | None = None
        # Every admin connection reads every answer on RESPONSE_TOPIC: with several
        # central workers syncing at once, each took the others' answers for its own
        # ("the broker answered 1 of 100 commands"). The plugin echoes a command's
        # correlationData in its answer; answers to other ids are someone else's.
        self._tag = secrets.token_hex(6)
        self._sent = 0

    def __enter__(self) -> BrokerAdmin:
        t = Transport(self.cfg)
        t.connect(self.timeout_s)
        try:
            t.subscribe(RESPONSE_TOPIC, timeout_s=self.timeout_s)
        except TransportError:
            t.close()
            raise
        self._t = t
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._t is not None:
            self._t.close()
            self._t = None

    def run(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send `commands`, return their answers in order; raise on the first error."""
        t = self._t
        if t is None:
            raise CentralError("BrokerAdmin is used outside its `with` block")
        answers: list[dict[str, Any]] = []
        for i in range(0, len(commands), _COMMANDS_PER_MESSAGE):
            chunk = list(commands[i : i + _COMMANDS_PER_MESSAGE])
            self._sent += 1
            ids = [f"{self._tag}-{self._sent}-{n}" for n in range(len(chunk))]
            tagged = [{**c, "correlationData": cid} for c, cid in zip(chunk, ids, strict=True)]
            t.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}).encode("utf-8"))
            got = self._answer(t, set(ids))
            if len(got) != len(chunk):
                raise CentralError(f"the broker answered {len(got)} of {len(chunk)} commands")
            for cmd, answer in zip(chunk, got, strict=True):
                if "error" in answer:
                    who = cmd.get("username") or cmd.get("rolename") or ""
                    raise CentralError(f"broker refused {cmd['command']} {who}: {answer['error']}")
            answers.extend(got)
        return answers

    def _answer(self, t: Transport, ids: set[str]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(
                    f"the broker at {self.cfg.url} did not answer on {RESPONSE_TOPIC} "
                    f"within {self.timeout_s:g} s: is its dynamic-security plugin loaded?"
                )
            try:
                msg = t.inbox.get(timeout=min(left, 0.1))
            except queue.Empty:
                t.check_connected()
                continue
            if msg.topic != RESPONSE_TOPIC:
                continue
            try:
                responses = json.loads(msg.payload)["responses"]
            except (ValueError, KeyError, TypeError) as exc:
                raise CentralError(f"the broker's control answer is malformed: {exc}") from exc
            mine = [r for r in responses if isinstance(r, dict) and r.get("correlationData") in ids]
            if mine:
                return mine  # another admin's answers (no id of ours) are skipped

    def clients(self) -> dict[str, dict[str, Any]]:
        (answer,) = self.run([{"command": "listClients", "verbose": True, "count": -1}])
        return {c["username"]: c for c in answer.get("data", {}).get("clients", [])}

    def roles(self) -> set[str]:
        (answer,) = self.run([{"command": "listRoles", "verbose": False, "count": -1}])
        return set(answer.get("data", {}).get("roles", []))

    def role_acls(self, role: str) -> set[tuple[str, str]]:
        """(acltype, topic) of each ACL `role` has now."""
        (answer,) = self.run([{"command": "getRole", "rolename": role}])
        acls = answer.get("data", {}).get("role", {}).get("acls", [])
        return {(a.get("acltype", ""), a.get("topic", "")) for a in acls if isinstance(a, dict)}

    def _missing_acls(self, role: str, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A broker set up by an older central lacks the ACLs added since (`up/reverse`):
        # add what is missing, never remove (removing is what revoking a device does).
        have = self.role_acls(role)
        return _role_acl_commands(
            role, [a for a in wanted if (a["acltype"], a["topic"]) not in have]
        )

    def clear_state(self, device_id: str) -> None:
        """Delete the retained state of a device that is gone: it holds its village's
        names and balances, and central sends a revoked device no state that would
        replace it (an empty retained message deletes it, MQTT 3.3.1.3)."""
        assert self._t is not None, "use BrokerAdmin in a with block"
        self._t.publish(_no_state(device_id), b"", retain=True, timeout_s=self.timeout_s)

    def sync(self, devices: Sequence[DeviceLogin]) -> SyncReport:
        """Make the broker's clients exactly central and `devices`.

        A missing device is created and a device whose key changed (re-enrolment) gets
        its new password, when `DeviceLogin.password` is known; a client that is no
        longer an active device is deleted, which also disconnects it at once.
        """
        report = SyncReport()
        have = self.clients()
        roles = self.roles()
        wanted = {d.device_id: d for d in devices}
        commands: list[dict[str, Any]] = []
        if CENTRAL_ROLE in roles:
            commands += self._missing_acls(CENTRAL_ROLE, central_acls())
        for d in wanted.values():
            role, label, cid = device_role(d.device_id), key_label(d.public_key), None
            if role not in roles:
                commands.append({"command": "createRole", "rolename": role})
                commands += _role_acl_commands(role, device_acls(d.device_id))
            else:
                commands += self._missing_acls(role, device_acls(d.device_id))
            current = have.get(d.device_id)
            if current is None:
                if d.password is None:
                    report.stuck.append(d.device_id)
                    continue
                commands.append(
                    {
                        "command": "createClient",
                        "username": d.device_id,
                        "password": d.password,
                        "clientid": device_client_id(d.device_id),
                        "textname": label,
                        "roles": [{"rolename": role}],
                    }
                )
                report.created.append(d.device_id)
                continue
            cid = current.get("clientid")
            has_role = any(r.get("rolename") == role for r in current.get("roles", []))
            if current.get("textname") != label:
                if d.password is None:
                    report.stuck.append(d.device_id)
                    continue
                commands.append(
                    {
                        "command": "setClientPassword",
                        "username": d.device_id,
                        "password": d.password,
                    }
                )
            elif cid == device_client_id(d.device_id) and has_role:
                continue
            commands.append(
                {
                    "command": "modifyClient",
                    "username": d.device_id,
                    "clientid": device_client_id(d.device_id),
                    "textname": label,
                    "roles": [{"rolename": role}],
                }
            )
            report.updated.append(d.device_id)
        for username in sorted(have):
            if username != CENTRAL_USER and username not in wanted:
                commands.append({"command": "deleteClient", "username": username})
                report.deleted.append(username)
        for role in sorted(roles):
            device = role.removeprefix(DEVICE_ROLE_PREFIX)
            if role.startswith(DEVICE_ROLE_PREFIX) and device not in wanted:
                commands.append({"command": "deleteRole", "rolename": role})
        if commands:
            self.run(commands)
        for username in report.deleted:
            self.clear_state(username)
        if report.stuck:
            log.warning(
                "broker: %d active devices are not in the broker and their passwords cannot "
                "be derived (enrolled before broker secrets): %s. Stop the broker and run "
                "`greenpass central broker-config --db …` again, or re-enrol them",
                len(report.stuck),
                ", ".join(report.stuck[:10]),
            )
        return report


def _no_state(device_id: str) -> str:
    return topic(device_id, STATE)


def _role_acl_commands(role: str, acls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "command": "addRoleACL",
            "rolename": role,
            "acltype": a["acltype"],
            "topic": a["topic"],
            "priority": a["priority"],
            "allow": a["allow"],
        }
        for a in acls
    ]
