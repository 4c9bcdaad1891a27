"""Central's HTTP API over a real store (SQLite and PostgreSQL), in process with
TestClient, and the kiosk's enrolment client against it (and once over real HTTP)."""

from __future__ import annotations

import csv
import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from central import api, reports
from central.api import EnrolmentSettings, create_app
from central.engines import open_engine
from central.ingest import ingest
from central.state import build_state
from central.store import CentralStore
from greenpass.errors import CentralError, ConfigError
from sync import enrol as enrol_client
from sync.keys import generate_key, public_bytes
from tests.central.conftest import NOW, SQLITE_ONLY, Kiosk, enrol, new_kiosk, populate

# SQLite only: the API's routes and answers; the reports, exports and enrolment queries
# behind them run on both in their own tests.
pytestmark = SQLITE_ONLY

ADMIN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
CENTRAL_KEY = public_bytes(generate_key())
SETTINGS = EnrolmentSettings(
    broker_url="mqtts://central.example:8883",
    ca_cert_pem="-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n",
    central_public_key=CENTRAL_KEY,
)
# Routes anyone may call: the enrolment (its token is the credential) and the docs.
PUBLIC = {"/api/v1/enrol", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> int:
        return self.now


@dataclass
class Api:
    client: TestClient
    store: CentralStore
    clock: Clock
    changes: list[str] = field(default_factory=list)

    def transport(self) -> httpx.BaseTransport:
        return _ViaTestClient(self.client)

    def token(self, device_id: str, village_id: str = "V1", ttl_hours: int = 24) -> str:
        r = self.client.post(
            "/api/v1/enrol-tokens",
            headers=AUTH,
            json={"device_id": device_id, "village_id": village_id, "ttl_hours": ttl_hours},
        )
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token

    def enrol(self, token: str, device_id: str, key: bytes | None = None) -> httpx.Response:
        body = {
            "token": token,
            "device_id": device_id,
            "public_key": (key or public_bytes(generate_key())).hex(),
        }
        r: httpx.Response = self.client.post("/api/v1/enrol", json=body)
        return r


class _ViaTestClient(httpx.BaseTransport):
    """Hands the enrolment client's requests to the in-process app."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        got = self.client.request(
            request.method, request.url.path, content=request.read(), headers=request.headers
        )
        return httpx.Response(got.status_code, headers=got.headers, content=got.content)


@pytest.fixture
def app_api(store: CentralStore) -> Iterator[Api]:
    clock = Clock()
    changes: list[str] = []
    app = create_app(
        store,
        admin_token=ADMIN,
        enrolment=SETTINGS,
        on_devices_changed=lambda: changes.append("changed"),
        clock=clock,
    )
    with TestClient(app) as client:
        yield Api(client, store, clock, changes)


def sync(store: CentralStore, k: Kiosk) -> None:
    """What the kiosk's uplink and central's ingest do for one batch."""
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


# --- authentication ---------------------------------------------------------------------


def app_routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    """(path, methods) of every route. FastAPI 0.165 keeps included routers unflattened
    in `app.routes`; `iter_route_contexts` walks them (older versions: flat already)."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(walk(app.routes)) if walk else list(app.routes)
    return [(r.path, set(r.methods)) for r in routes if r.path and r.methods]


def test_every_admin_route_requires_the_admin_token(app_api: Api) -> None:
    app = app_api.client.app
    assert isinstance(app, FastAPI)
    openapi = app_api.client.get("/openapi.json").json()
    checked = set()
    for route_path, methods in app_routes(app):
        # The console's pages (not under /api/) send a browser to its login page instead:
        # tests/central/test_auth.py checks each of them.
        if route_path in PUBLIC or not route_path.startswith("/api/"):
            continue
        path = route_path.replace("{", "").replace("}", "")  # {village_id} → village_id
        for method in methods - {"HEAD"}:
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token-wrong-token"},
                {"Authorization": f"Bearer {ADMIN}x"},
                {"Authorization": f"Basic {ADMIN}"},
            ):
                r = app_api.client.request(method, path, headers=headers)
                assert r.status_code == 401, (method, route_path, headers, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
            r = app_api.client.request(method, path, headers=AUTH)
            assert r.status_code != 401, (method, route_path)
            assert openapi["paths"][route_path][method.lower()]["security"] == [{"AdminToken": []}]
            checked.add(f"{method} {route_path}")
    assert {
        "GET /api/v1/devices",
        "POST /api/v1/devices/{device_id}/revoke",
        "POST /api/v1/enrol-tokens",
        "GET /api/v1/villages/{village_id}/totals",
        "GET /api/v1/villages/{village_id}/overdrafts",
        "GET /api/v1/villages/{village_id}/export.csv",
        "GET /api/v1/passbooks/{passbook_id}/statement",
        "GET /api/v1/dead-letters",
    } <= checked
    assert "security" not in openapi["paths"]["/api/v1/enrol"]["post"]
    assert openapi["info"]["title"] == "Green Passbook central"


def test_a_short_admin_token_is_refused(store: CentralStore) -> None:
    with pytest.raises(ConfigError, match="admin_token"):
        create_app(store, admin_token="short", enrolment=SETTINGS)


# --- enrolment --------------------------------------------------------------------------


def test_enrol_token_then_enrol_lists_the_device(app_api: Api) -> None:
    key = public_bytes(generate_key())
    token = app_api.token("K7", ttl_hours=2)
    creds = enrol_client.enrol(
        "https://central.test/", token, "K7", key, transport=app_api.transport()
    )
    assert creds == enrol_client.Credentials(
        device_id="K7",
        village_id="V1",
        mqtt_username="K7",
        mqtt_password=creds.mqtt_password,
        broker_url=SETTINGS.broker_url,
        ca_cert_pem=SETTINGS.ca_cert_pem,
        central_public_key=CENTRAL_KEY,
    )
    assert len(creds.mqtt_password) >= 24
    assert app_api.changes == ["changed"]
    device = app_api.store.device("K7")
    assert device is not None and device.public_key == key
    assert creds.mqtt_password not in device.mqtt_password_hash

    listed = app_api.client.get("/api/v1/devices", headers=AUTH).json()
    assert [(d["device_id"], d["village_id"], d["status"]) for d in listed] == [
        ("K7", "V1", "active")
    ]
    assert listed[0]["enrolled_ms"] == NOW
    assert listed[0]["health"] is None and listed[0]["backlog"] is None


def test_token_expiry_comes_from_the_clock(app_api: Api) -> None:
    r = app_api.client.post(
        "/api/v1/enrol-tokens",
        headers=AUTH,
        json={"device_id": "K7", "village_id": "V1", "ttl_hours": 1},
    )
    assert r.status_code == 201
    assert r.json()["expires_ms"] == NOW + 3_600_000
    app_api.clock.now = NOW + 3_600_000
    refused = app_api.enrol(r.json()["token"], "K7")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "enrolment refused: the token has expired"}


def test_refused_enrolments_are_403_with_the_reason(app_api: Api) -> None:
    key = public_bytes(generate_key())
    used = app_api.token("K7")
    assert app_api.enrol(used, "K7", key).status_code == 200
    cases = {
        "already been used": (used, "K7"),
        "unknown, or was issued for another device id": (app_api.token("K8"), "K9"),
        "unknown": ("not-a-token", "K7"),
    }
    for reason, (token, device) in cases.items():
        r = app_api.enrol(token, device)
        assert r.status_code == 403, r.text
        assert reason in r.json()["detail"]
        assert "K8" not in r.json()["detail"]  # the device a token was for is never named
    # The client turns each into a CentralError a technician can read.
    with pytest.raises(CentralError, match=r"^enrolment refused: the token has already been used$"):
        enrol_client.enrol("https://central.test", used, "K7", key, transport=app_api.transport())
    assert app_api.changes == ["changed"]


def test_a_revoked_device_cannot_enrol(app_api: Api) -> None:
    first, spare = app_api.token("K7"), app_api.token("K7")
    assert app_api.enrol(first, "K7").status_code == 200
    r = app_api.client.post("/api/v1/devices/K7/revoke", headers=AUTH)
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["revoked_ms"]) == ("revoked", NOW)
    assert app_api.changes == ["changed", "changed"]
    assert app_api.store.broker_logins() == []

    refused = app_api.enrol(spare, "K7")
    assert refused.status_code == 403
    assert "revoked" in refused.json()["detail"]
    no_token = app_api.client.post(
        "/api/v1/enrol-tokens", headers=AUTH, json={"device_id": "K7", "village_id": "V1"}
    )
    assert no_token.status_code == 409
    assert "revoked" in no_token.json()["detail"]
    again = app_api.client.post("/api/v1/devices/K7/revoke", headers=AUTH)
    assert (again.status_code, again.json()["revoked_ms"]) == (200, NOW)


def test_broker_update_failures(store: CentralStore) -> None:
    """Enrolment: the answer still carries the password (the token is spent). Revocation:
    a 503 that says so, and calling it again completes it."""
    broken = [True]

    def rewrite_passwd() -> None:
        if broken[0]:
            raise PermissionError("passwd: permission denied")

    app = create_app(
        store, admin_token=ADMIN, enrolment=SETTINGS, on_devices_changed=rewrite_passwd
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        token = client.post(
            "/api/v1/enrol-tokens", headers=AUTH, json={"device_id": "K7", "village_id": "V1"}
        ).json()["token"]
        body = {"token": token, "device_id": "K7", "public_key": "ab" * 32}
        r = client.post("/api/v1/enrol", json=body)
        assert r.status_code == 200 and r.json()["mqtt_password"]

        r = client.post("/api/v1/devices/K7/revoke", headers=AUTH)
        assert r.status_code == 503
        assert "is revoked, but the broker's password file could not be" in r.json()["detail"]
        broken[0] = False
        r = client.post("/api/v1/devices/K7/revoke", headers=AUTH)
        assert (r.status_code, r.json()["status"]) == (200, "revoked")


@pytest.mark.parametrize(
    "body",
    [
        {"token": "t", "device_id": "K7", "public_key": "ab" * 31},  # 31 bytes
        {"token": "t", "device_id": "K7", "public_key": "zz" * 32},
        {"token": "t", "device_id": "K/7", "public_key": "ab" * 32},
        {"token": "", "device_id": "K7", "public_key": "ab" * 32},
        {"token": "t", "device_id": "K7"},
        {"token": "t", "device_id": "K7", "public_key": "ab" * 32, "extra": 1},
    ],
)
def test_malformed_enrolment_is_422(app_api: Api, body: dict[str, object]) -> None:
    assert app_api.client.post("/api/v1/enrol", json=body).status_code == 422
    assert app_api.changes == []


@pytest.mark.parametrize(
    "body",
    [
        {"device_id": "K7", "village_id": "V1", "ttl_hours": 0},
        {"device_id": "K7", "village_id": "V1", "ttl_hours": 721},
        {"device_id": "K 7", "village_id": "V1"},
        {"device_id": "K7"},
    ],
)
def test_malformed_token_request_is_422(app_api: Api, body: dict[str, object]) -> None:
    r = app_api.client.post("/api/v1/enrol-tokens", headers=AUTH, json=body)
    assert r.status_code == 422


def test_unknown_things_are_404(app_api: Api) -> None:
    for method, path, body in [
        ("GET", "/api/v1/villages/V9/totals", None),
        ("GET", "/api/v1/villages/V9/overdrafts", None),
        ("GET", "/api/v1/villages/V9/export.csv", None),
        ("GET", "/api/v1/devices?village_id=V9", None),
        ("GET", "/api/v1/passbooks/P-none/statement", None),
        ("POST", "/api/v1/devices/K9/revoke", None),
        ("POST", "/api/v1/enrol-tokens", {"device_id": "K9", "village_id": "V9"}),
    ]:
        r = app_api.client.request(method, path, headers=AUTH, json=body)
        assert r.status_code == 404, (path, r.text)
        assert set(r.json()) == {"detail"} and isinstance(r.json()["detail"], str)
    assert app_api.changes == []


def test_bad_parameters_are_422(app_api: Api) -> None:
    for path in [
        "/api/v1/dead-letters?limit=0",
        "/api/v1/dead-letters?limit=abc",
        "/api/v1/villages/-V1/totals",
        "/api/v1/devices?village_id=a%20b",
    ]:
        assert app_api.client.get(path, headers=AUTH).status_code == 422, path


# --- the fleet and the reports ------------------------------------------------------------


def test_devices_show_their_kiosk_status(app_api: Api, k1: Kiosk) -> None:
    populate(k1)
    sync(app_api.store, k1)
    status = (
        b'{"v":1,"device_id":"K1","online":true,"ts_ms":1767299999000,"version":"0.1.0",'
        b'"backlog":3,"oldest_unsynced_ms":1767299990000,"acked_seq":17,"head_seq":20,'
        b'"free_disk_bytes":123456789,"scale":"ok","scanner":"error","last_error":"camera"}'
    )
    assert app_api.store.record_status("gp/v1/dev/K1/status", status, NOW + 7)
    (k1_out,) = app_api.client.get("/api/v1/devices?village_id=V1", headers=AUTH).json()
    assert k1_out["acked_seq"] == k1.head_seq
    assert (k1_out["online"], k1_out["backlog"], k1_out["last_seen_ms"]) == (True, 3, NOW + 7)
    assert k1_out["oldest_unsynced_ms"] == 1767299990000
    assert k1_out["health"] == {
        "reported_ms": 1767299999000,
        "software_version": "0.1.0",
        "head_seq": 20,
        "scale": "ok",
        "scanner": "error",
        "free_disk_bytes": 123456789,
        "disk_bytes": None,  # a kiosk from before it reported its disk's size
        "last_error": "camera",
        "log_size": 0,  # … or checked central's log
        "log_seq": 0,
        "log_fault": None,
        "clock_ok": None,
        "printer": None,
    }
    newer = status.replace(b'"last_error"', b'"disk_bytes":987654321,"last_error"')
    assert app_api.store.record_status("gp/v1/dev/K1/status", newer, NOW + 8)
    (k1_out,) = app_api.client.get("/api/v1/devices?village_id=V1", headers=AUTH).json()
    assert k1_out["health"]["disk_bytes"] == 987654321
    fault = b'"log_size":9,"log_seq":4,"log_fault":{"code":"log_entry_missing",'
    fault += b'"message":"K1: skips entry K1:5","since_ms":1,"seq":5,"size":9},"last_error"'
    assert app_api.store.record_status(
        "gp/v1/dev/K1/status", status.replace(b'"last_error"', fault), NOW + 9
    )
    (k1_out,) = app_api.client.get("/api/v1/devices?village_id=V1", headers=AUTH).json()
    health = k1_out["health"]
    assert (health["log_size"], health["log_seq"]) == (9, 4)
    assert health["log_fault"] == {
        "code": "log_entry_missing", "message": "K1: skips entry K1:5", "seq": 5, "size": 9,
        "since_ms": 1,
    }  # fmt: skip


def test_totals_statement_and_export_after_ingest(
    app_api: Api, k1: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = populate(k1)
    sync(app_api.store, k1)
    client = app_api.client

    totals = client.get("/api/v1/villages/V1/totals", headers=AUTH).json()
    assert totals == reports.village_totals(app_api.store, "V1")
    assert (totals["deposits"], totals["points_redeemed"]) == (4, 50)  # one deposit reversed
    assert totals["grams_by_category"]["paper"] == 2500
    assert all(isinstance(v, int) for v in totals["grams_by_category"].values())

    st = client.get(f"/api/v1/passbooks/{ids['li']}/statement", headers=AUTH).json()
    mine = [e for e, _ in k1.rows() if e.passbook_id == ids["li"]]
    assert [(x["device_id"], x["seq"]) for x in st["lines"]] == [("K1", e.seq) for e in mine]
    assert st["balance"] == st["lines"][-1]["balance"] == k1.ledger.balance(ids["li"])
    assert [x["kind"] for x in st["lines"]] == ["enrol", "deposit", "deposit", "redeem"]

    assert client.get("/api/v1/villages/V1/overdrafts", headers=AUTH).json() == []

    monkeypatch.setattr(api, "CSV_ROWS_PER_CHUNK", 4)  # several chunks for a small village
    r = client.get("/api/v1/villages/V1/export.csv", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="V1-entries.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(csv.reader(io.StringIO(r.text)).__next__()) == reports.EXPORT_COLUMNS
    assert len(rows) == k1.head_seq == app_api.store.count_entries("K1")
    assert [int(x["seq"]) for x in rows] == list(range(1, k1.head_seq + 1))
    assert {x["village_id"] for x in rows} == {"V1"}
    hashes = [h.hex() for _, h in k1.rows()]
    assert [x["h"] for x in rows] == hashes


def test_empty_village_exports_only_the_header(app_api: Api) -> None:
    r = app_api.client.get("/api/v1/villages/V1/export.csv", headers=AUTH)
    assert r.status_code == 200
    assert list(csv.reader(io.StringIO(r.text))) == [list(reports.EXPORT_COLUMNS)]


def test_overdraft_when_two_kiosks_spend_the_same_points(
    app_api: Api, k1: Kiosk, tmp_path: Path
) -> None:
    store = app_api.store
    li = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert li is not None
    k1.ledger.deposit(li, "aluminium", 1000)
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    k2.apply(build_state(store, "K2", NOW))
    for k in (k1, k2):
        k.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=50, staff_id="S1")
        k.ledger.restock("rice", 5, staff_id="S1")
    k1.clock.advance(60_000)
    k1.ledger.redeem(li, [("rice", 1)], staff_id="S1")
    k2.clock.advance(120_000)
    k2_redeem = k2.ledger.redeem(li, [("rice", 1)], staff_id="S1")[0]
    sync(store, k1)
    sync(store, k2)
    k2.ledger.close()

    got = app_api.client.get("/api/v1/villages/V1/overdrafts", headers=AUTH).json()
    balance = k1.ledger.balance(li) - 50
    assert got == [
        {
            "passbook_id": li,
            "lowest_balance": balance,
            "device_id": "K2",
            "seq": k2_redeem.seq,
            "wall_ms": k2_redeem.wall_ms,
        }
    ]
    assert balance < 0
    st = app_api.client.get(f"/api/v1/passbooks/{li}/statement", headers=AUTH).json()
    assert {x["device_id"] for x in st["lines"]} == {"K1", "K2"}
    assert st["balance"] == balance


def test_dead_letters_newest_first(app_api: Api, k1: Kiosk) -> None:
    populate(k1)
    for n in range(3):
        ingest(app_api.store, k1.topic, b"garbage %d" % n, NOW + n)
    got = app_api.client.get("/api/v1/dead-letters?limit=2", headers=AUTH).json()
    assert [x["received_ms"] for x in got] == [NOW + 2, NOW + 1]
    assert got[0]["payload_head_hex"] == b"garbage 2".hex()
    assert (got[0]["claimed_device"], got[0]["size"]) == ("K1", 9)


def test_database_unreachable_is_503(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    store = CentralStore(open_engine(f"postgresql://postgres@127.0.0.1:{port}/none"))
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS)
    with TestClient(app) as client:
        r = client.get("/api/v1/devices", headers=AUTH)
    assert r.status_code == 503
    assert r.json()["detail"].startswith("central database: ")  # whichever read came first
    store.close()


# --- the enrolment client's errors --------------------------------------------------------


def _answering(status: int, body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(lambda _request: httpx.Response(status, content=body))


@pytest.mark.parametrize(
    ("transport", "message"),
    [
        (_answering(500, b"Internal Server Error"), "answered HTTP 500: Internal Server Error"),
        (_answering(200, b"<html>welcome</html>"), "does not understand"),
        (_answering(200, b'{"device_id": "K7"}'), "does not understand"),
        (
            _answering(422, b'{"detail": [{"loc": ["body", "public_key"], "msg": "bad key"}]}'),
            "rejected the enrolment request: body.public_key: bad key",
        ),
        (
            _answering(403, b'{"detail": "enrolment refused: the token has expired"}'),
            r"^enrolment refused: the token has expired$",
        ),
        (_answering(403, b"Forbidden by proxy"), r"^enrolment refused: Forbidden by proxy$"),
    ],
)
def test_client_errors_say_what_went_wrong(transport: httpx.MockTransport, message: str) -> None:
    with pytest.raises(CentralError, match=message):
        enrol_client.enrol("https://central.test", "tok", "K7", bytes(32), transport=transport)


def test_client_timeout_and_unreachable_central() -> None:
    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(CentralError, match=r"central unreachable at .*: no answer within 2 s"):
        enrol_client.enrol(
            "https://central.test",
            "t",
            "K7",
            bytes(32),
            timeout_s=2,
            transport=httpx.MockTransport(stall),
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CentralError, match=f"central unreachable at http://127.0.0.1:{port}/"):
        enrol_client.enrol(f"http://127.0.0.1:{port}", "t", "K7", bytes(32), timeout_s=2)
    with pytest.raises(CentralError, match=r"central URL .http://\[::1. is not valid"):
        enrol_client.enrol("http://[::1", "t", "K7", bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        enrol_client.enrol("http://127.0.0.1:1", "t", "K7", bytes(31))


def test_client_over_real_http(store: CentralStore) -> None:
    """Uvicorn on a free port: the path a technician's laptop takes."""
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        token = httpx.post(
            f"{url}/api/v1/enrol-tokens",
            headers=AUTH,
            json={"device_id": "K7", "village_id": "V1"},
        ).json()["token"]
        creds = enrol_client.enrol(url, token, "K7", public_bytes(generate_key()))
        assert (creds.device_id, creds.mqtt_username, creds.village_id) == ("K7", "K7", "V1")
    finally:
        server.should_exit = True
        thread.join(10)


def test_enrol_token_ttl_must_be_a_whole_number_not_a_boolean(app_api: Api) -> None:
    """Found by the schemathesis fuzz: JSON `true` was taken as 1 hour."""
    answer = app_api.client.post(
        "/api/v1/enrol-tokens",
        headers=AUTH,
        json={"device_id": "K9", "village_id": "V1", "ttl_hours": True},
    )
    assert answer.status_code == 422
    assert app_api.store.device("K9") is None
    assert app_api.enrol("any", "K9").status_code == 403  # and no token was issued


def test_a_central_on_a_cluster_tells_the_kiosk_to_speak_mqtt_3_1_1(
    store: CentralStore, tmp_path: Path
) -> None:
    """`greenpass central --amqp` enrols kiosks for the cluster's MQTT plugin (3.1.1):
    the answer says so and the kiosk writes it into its `[sync]`."""
    cluster = replace(SETTINGS, mqtt_version="3.1.1")
    app = create_app(store, admin_token=ADMIN, enrolment=cluster, clock=Clock())
    with TestClient(app) as client:
        api = Api(client, store, Clock(), [])
        key = public_bytes(generate_key())
        creds = enrol_client.enrol(
            "https://central.test/", api.token("K7"), "K7", key, transport=api.transport()
        )
    assert creds.mqtt_version == "3.1.1"
    cfg = enrol_client.save_credentials(tmp_path / "sync", creds, tmp_path / "device.key")
    assert cfg.mqtt_version == "3.1.1"


def test_an_mqtt_version_the_kiosk_does_not_speak_is_refused_at_enrolment() -> None:
    answer = {
        "device_id": "K7", "village_id": "V1", "mqtt_username": "K7", "mqtt_password": "x" * 24,
        "broker_url": "mqtts://b:8883", "ca_cert_pem": "", "central_public_key": CENTRAL_KEY.hex(),
        "mqtt_version": "6",
    }  # fmt: skip
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    with pytest.raises(CentralError, match="asks for MQTT '6'"):
        enrol_client.enrol("https://central.test/", "t" * 32, "K7", bytes(32), transport=transport)
