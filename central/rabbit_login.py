"""Device logins on a RabbitMQ cluster, checked by central: the client-id binding
Mosquitto's plugin gives (docs/broker.md), which RabbitMQ 3.10 has no rule for.

Without it a kiosk's own password with another kiosk's client id logs in, and the
cluster closes the other kiosk's connection (the id is taken over): one kiosk could
keep another off the broker (docs/scale.md measured it). So with
`greenpass central --rabbit-http-auth` central makes each device's RabbitMQ user
without a password (`central.rabbit_admin`), the nodes' internal backend refuses it,
and their HTTP backend (`rabbitmq_auth_backend_http`, `central.rabbit.node_config`)
asks this route, which RabbitMQ calls with the MQTT client id (3.8 and later):

    POST /broker/rabbitmq/user   username=D&password=P&client_id=gp-D[&vhost=/]
                                 -> "allow" | "deny"   (text, always 200)

It allows an active device, with its own client id `gp-<device>`, whose password
matches the hash central keeps from enrolment; anything else is denied, central's
own user included (the nodes' internal backend, tried first, logs that one in). The
rights stay the internal backend's (`central.rabbit.device_rights`). No login of its
own: RabbitMQ sends none, and it answers only what a CONNECT to the broker would,
in the same time whether or not the device exists. Served only with
`--rabbit-http-auth` (`create_app(rabbit_logins=True)`).
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from central.broker import mosquitto_password_hash, password_matches
from central.rabbit import check_rabbit_id
from central.store import CentralStore
from greenpass.errors import ConfigError, GreenPassError

log = logging.getLogger(__name__)

PATH = "/broker/rabbitmq/user"
MAX_FIELD = 512  # a username, a password or a client id longer than this is no device's


def allows(store: CentralStore, fields: dict[str, str]) -> bool:
    """Whether `fields` (what RabbitMQ posts) are an active device's own login."""
    user = fields.get("username", "")
    password = fields.get("password", "")
    client_id = fields.get("client_id")
    if not _device_id(user) or not password or client_id != f"gp-{user}":
        return False  # no client id: not MQTT, which is all a device speaks
    try:
        device = store.device(user)
    except GreenPassError as exc:  # the database is away: no login now, the kiosk retries
        log.error("central: a RabbitMQ login of %s not checked: %s", user, exc)
        return False
    if device is None or device.status != "active" or not device.mqtt_password_hash:
        # The same hashing as a real check: how long the answer takes does not tell
        # which device ids are enrolled.
        password_matches(password, _NO_DEVICE)
        return False
    return password_matches(password, device.mqtt_password_hash)


def _device_id(user: str) -> bool:
    """A name a device's RabbitMQ user can have (never central's own)."""
    try:
        check_rabbit_id(user)
    except ConfigError:
        return False
    return True


_NO_DEVICE = mosquitto_password_hash(secrets.token_urlsafe(24))


def rabbit_login_router(store: CentralStore) -> APIRouter:
    r = APIRouter(tags=["broker"])

    @r.post(PATH, response_class=PlainTextResponse)
    async def rabbitmq_user(request: Request) -> PlainTextResponse:
        """RabbitMQ's HTTP authentication backend asks whether a device may log in."""
        raw = (await request.body()).decode("utf-8", "replace")
        fields = {
            k: v[0]
            for k, v in parse_qs(raw, keep_blank_values=True).items()
            if len(v) == 1 and len(v[0]) <= MAX_FIELD
        }
        ok = await run_in_threadpool(allows, store, fields)
        return PlainTextResponse("allow" if ok else "deny")

    return r
