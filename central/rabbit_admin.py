"""A RabbitMQ cluster's logins kept equal to central's active devices (docs/scale.md).

On Mosquitto central keeps each device's login in the dynamic-security plugin over
``$CONTROL`` (`central.dynsec.BrokerAdmin`). On a RabbitMQ cluster the same job goes
through the management plugin's HTTP API, which any node answers for the whole
cluster: `RabbitAdmin.sync` has `BrokerAdmin.sync`'s contract, so `BrokerSync` runs
either (`greenpass central --amqp … --rabbit-api …`).

A device's user carries the tags `gp-device` (central made it: only those are ever
deleted) and `gp-key-<hash>` (the enrolled key its password belongs to, as
`key_label` on Mosquitto), with the rights of `central.rabbit.device_rights`. With
`passwordless` (`greenpass central --rabbit-http-auth`) it has no password and the
tag `gp-login-central`: the nodes ask central at each login (`central.rabbit_login`),
which binds the client id to the device as Mosquitto's plugin does. A cluster whose
device users carry that tag is kept so by every central, flag or not. A
re-enrolled device gets its new password; a revoked one is deleted and its open
connections are closed at once. Central's own user needs the `administrator` tag.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from central.dynsec import DeviceLogin, SyncReport
from central.rabbit import check_rabbit_id, device_rights, rabbit_password_hash
from greenpass.errors import CentralError, TransportError

log = logging.getLogger(__name__)

# How long a connection may take to appear in the management API's list.
CONNECTIONS_SEEN_S = 10.0

DEVICE_TAG = "gp-device"
LOGIN_TAG = "gp-login-central"  # no password: central checks its logins
_KEY_TAG = "gp-key-"
_VHOST = quote("/", safe="")


def key_tag(public_key: bytes) -> str:
    return _KEY_TAG + hashlib.sha256(public_key).hexdigest()[:16]


class RabbitAdmin:
    """The management API of a cluster, tried node by node (`api_urls`)."""

    def __init__(
        self,
        api_urls: Sequence[str],
        username: str,
        password: str,
        *,
        ca_cert: Path | None = None,
        timeout_s: float = 10.0,
        passwordless: bool = False,
    ) -> None:
        if not api_urls:
            raise CentralError("no RabbitMQ management API URL given")
        self.api_urls = [u.rstrip("/") for u in api_urls]
        self._auth = (username, password)
        self._verify: Any = str(ca_cert) if ca_cert else True
        self._timeout = timeout_s
        # The cluster asks central whether a device may log in (central.rabbit_login):
        # a device's user then has no password, so only that check can let it in.
        self.passwordless = passwordless
        self._client: httpx.Client | None = None
        self._base = ""

    def __enter__(self) -> RabbitAdmin:
        errors = []
        for url in self.api_urls:
            client = httpx.Client(auth=self._auth, verify=self._verify, timeout=self._timeout)
            try:
                r = client.get(f"{url}/api/whoami")
            except httpx.HTTPError as exc:
                client.close()
                errors.append(f"{url}: {exc or type(exc).__name__}")
                continue
            if r.status_code in (401, 403):
                client.close()
                raise CentralError(f"the RabbitMQ management API at {url} refused central's login")
            if "administrator" not in str(r.json().get("tags", "")):
                client.close()
                raise CentralError(
                    f"central's RabbitMQ user at {url} lacks the administrator tag: it "
                    "cannot manage the devices' logins"
                )
            self._client, self._base = client, url
            return self
        raise TransportError("no RabbitMQ management API reachable: " + "; ".join(errors))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, method: str, path: str, body: object = None) -> Any:
        if self._client is None:
            raise CentralError("RabbitAdmin used outside its `with` block")
        try:
            r = self._client.request(method, f"{self._base}{path}", json=body)
        except httpx.HTTPError as exc:
            raise TransportError(f"RabbitMQ management API {self._base}: {exc}") from exc
        if r.status_code == 404 and method == "DELETE":
            return None  # gone already
        if r.status_code >= 400:
            raise CentralError(
                f"RabbitMQ refused {method} {path}: {r.status_code} {r.text[:200].strip()}"
            )
        return r.json() if r.content else None

    def device_users(self) -> dict[str, str]:
        """Users central made for devices: name → their key tag ('' if none), with
        `+login` after it when the user has no password (`passwordless`)."""
        out: dict[str, str] = {}
        for user in self._call("GET", "/api/users") or []:
            tags = user.get("tags", [])
            tags = tags.split(",") if isinstance(tags, str) else list(tags)
            if DEVICE_TAG in tags:
                key = next((t for t in tags if t.startswith(_KEY_TAG)), "")
                out[user["name"]] = key + ("+login" if LOGIN_TAG in tags else "")
        return out

    def sync(self, devices: Sequence[DeviceLogin]) -> SyncReport:
        """Make the cluster's device users exactly `devices` (`BrokerAdmin.sync`'s
        contract): a missing one or one whose key changed is (re)made when its
        password is known (always, when `passwordless`), one no longer active is
        deleted and disconnected."""
        report = SyncReport()
        have = self.device_users()
        # Once a cluster's device logins are checked by central they stay so: a central
        # started without --rabbit-http-auth (a second worker, a `revoke --broker`)
        # giving passwords back would undo the client-id binding without a word.
        if not self.passwordless and any(v.endswith("+login") for v in have.values()):
            log.warning(
                "the cluster's device logins are checked by central (--rabbit-http-auth): "
                "keeping them so"
            )
            self.passwordless = True
        mode = "+login" if self.passwordless else ""
        wanted = {check_rabbit_id(d.device_id): d for d in devices}
        for name, d in wanted.items():
            tag = key_tag(d.public_key)
            if have.get(name) == tag + mode:
                continue
            if d.password is None and not self.passwordless:
                report.stuck.append(name)
                continue
            # Its key changed (a re-enrolment): its old connection holds the old login.
            # Only the mode changed: connections still open are closed, once, without
            # waiting for a late listing (a thousand offline kiosks would cost hours).
            rekeyed = name in have and not have[name].startswith(tag)
            self._put_user(name, d.password, tag, existed=name in have, wait=rekeyed)
            (report.updated if name in have else report.created).append(name)
        for name in sorted(set(have) - set(wanted)):
            self._call("DELETE", f"/api/users/{quote(name, safe='')}")
            self._close_connections(name)
            report.deleted.append(name)
        return report

    def _put_user(
        self, name: str, password: str | None, tag: str, *, existed: bool, wait: bool = True
    ) -> None:
        user = quote(name, safe="")
        if self.passwordless:
            # No password: the nodes' internal backend refuses it, and central checks
            # the login, client id included (central.rabbit_login).
            body = {"password_hash": "", "tags": f"{DEVICE_TAG},{tag},{LOGIN_TAG}"}
        else:
            assert password is not None  # sync gives up on a device without one
            body = {
                "password_hash": rabbit_password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": f"{DEVICE_TAG},{tag}",
            }
        self._call("PUT", f"/api/users/{user}", body)
        perms, topic = device_rights(name)
        self._call("PUT", f"/api/permissions/{_VHOST}/{user}", perms)
        self._call("PUT", f"/api/topic-permissions/{_VHOST}/{user}", topic)
        if existed:  # a re-keyed device's old connection holds the old password: close it
            self._close_connections(name, wait=wait)

    def _close_connections(self, name: str, *, wait: bool = True) -> None:
        """Close `name`'s connections. The management API lists a connection only
        once the node serving it has reported it (a few seconds for a connection just
        made, longer from a node just restarted), so an empty answer is asked again
        for a while: a device offline when it was re-keyed costs this wait in
        central's broker-sync thread, never in ingest."""
        deadline = time.monotonic() + (CONNECTIONS_SEEN_S if wait else 0.0)
        while True:
            found = [
                c
                for c in self._call("GET", "/api/connections?columns=name,user") or []
                if c.get("user") == name
            ]
            for conn in found:
                self._call("DELETE", f"/api/connections/{quote(conn['name'], safe='')}")
            if found or time.monotonic() >= deadline:
                return
            time.sleep(1.0)
