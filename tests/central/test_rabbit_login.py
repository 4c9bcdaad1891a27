"""Central's check of a device's login on a RabbitMQ cluster (central.rabbit_login),
on both databases: allowed only with the device's own password and its own client id
`gp-<device>`, while it is active; the form as RabbitMQ's HTTP backend posts it. The
nodes asking it is `make test-cluster`'s (tests/cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from central.api import create_app
from central.rabbit_login import PATH
from central.store import CentralStore
from sync import enrol as enrol_client
from sync.keys import generate_key, public_bytes
from tests.central.test_api import ADMIN, AUTH, SETTINGS, Api, Clock, app_api

__all__ = ["app_api"]  # the fixture, imported for pytest


@pytest.fixture
def checks(store: CentralStore) -> Iterator[Api]:
    """The API as `greenpass central --rabbit-http-auth --http …` serves it."""
    clock = Clock()
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS, clock=clock, rabbit_logins=True)
    with TestClient(app) as client:
        yield Api(client, store, clock, [])


def ask(api: Api, **fields: str) -> str:
    r = api.client.post(
        PATH,
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    return r.text


def enrolled(api: Api, device: str) -> str:
    token = api.token(device, ttl_hours=2)
    key = public_bytes(generate_key())
    return enrol_client.enrol(
        "https://central.test/", token, device, key, transport=api.transport()
    ).mqtt_password


def test_only_a_devices_own_password_and_client_id_log_in(checks: Api) -> None:
    app_api = checks
    k7, k8 = enrolled(app_api, "K7"), enrolled(app_api, "K8")
    own = {"username": "K7", "password": k7, "vhost": "/", "client_id": "gp-K7"}
    assert ask(app_api, **own) == "allow"
    assert ask(app_api, **{**own, "username": "K8", "password": k8, "client_id": "gp-K8"}) == (
        "allow"
    )
    refused = [
        {**own, "client_id": "gp-K8"},  # K7 taking K8's client id: the takeover
        {**own, "client_id": "K7"},
        {**own, "password": k8},  # another device's password
        {**own, "password": k7 + "x"},
        {**own, "username": "K9", "client_id": "gp-K9"},  # never enrolled
        {k: v for k, v in own.items() if k != "client_id"},  # not MQTT
        {k: v for k, v in own.items() if k != "password"},
        {**own, "username": "central", "client_id": "gp-central"},
        {**own, "username": "central-1", "client_id": "gp-central-1"},  # never a device
        {**own, "username": "K7/x", "client_id": "gp-K7/x"},
    ]
    for fields in refused:
        assert ask(app_api, **fields) == "deny", fields
    # A repeated field is not one answer to trust.
    r = app_api.client.post(
        PATH,
        content=urlencode(own) + "&username=K8",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.text == "deny"
    assert ask(app_api) == "deny"

    revoked = app_api.client.post("/api/v1/devices/K7/revoke", headers=AUTH)
    assert revoked.status_code == 200, revoked.text
    assert ask(app_api, **own) == "deny"
    # Re-enrolled (a new key): only the new password.
    new = enrolled(app_api, "K8")
    assert ask(app_api, username="K8", password=k8, client_id="gp-K8") == "deny"
    assert ask(app_api, username="K8", password=new, client_id="gp-K8") == "allow"


def test_without_the_flag_the_route_is_not_there(app_api: Api) -> None:
    token = app_api.token("K7", ttl_hours=2)
    key = public_bytes(generate_key())
    password = enrol_client.enrol(
        "https://central.test/", token, "K7", key, transport=app_api.transport()
    ).mqtt_password
    r = app_api.client.post(
        PATH,
        content=urlencode({"username": "K7", "password": password, "client_id": "gp-K7"}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 404
