"""Central's API served as `greenpass central --http` serves it (`central.http_server`):
HTTPS with its own CA on a real uvicorn, the kiosk's enrolment client verifying it, one
token enrolling once however often and however concurrently it is sent — on SQLite and
PostgreSQL — and plain HTTP only on loopback."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import httpx
import pytest

from central.api import EnrolmentSettings, create_app
from central.http_guard import HttpLimits
from central.http_server import (
    check_plain,
    default_names,
    http_tls,
    make_server,
    split_host_port,
)
from central.store import CentralStore
from greenpass.errors import CentralError, ConfigError
from sync import enrol as enrol_client
from sync.keys import generate_key, public_bytes
from tests.central.conftest import SQLITE_ONLY
from tests.central.served import ADMIN, Served, serving

# SQLite only: the HTTP server's TLS and limits, before any query.
pytestmark = SQLITE_ONLY

SETTINGS = EnrolmentSettings(
    broker_url="mqtts://central.example:8883",
    ca_cert_pem="-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n",
    central_public_key=public_bytes(generate_key()),
)


@pytest.fixture
def served(store: CentralStore, tmp_path: Path) -> Iterator[Served]:
    app = create_app(
        store, admin_token=ADMIN, enrolment=SETTINGS, limits=HttpLimits(enrol_per_minute=100)
    )
    with serving(app, tmp_path / "http-tls") as s:
        yield s


def test_the_kiosk_enrols_over_https_verified_with_centrals_ca(served: Served) -> None:
    token = served.token("K7")
    key = public_bytes(generate_key())
    with pytest.raises(CentralError, match=r"is not trusted: .*--central-ca"):
        enrol_client.enrol(served.url, token, "K7", key)  # the system's CAs do not know it
    plain = served.url.replace("https://", "http://")
    with pytest.raises(CentralError, match=r"central serves HTTPS: use https://"):
        enrol_client.enrol(plain, token, "K7", key, ca_file=served.ca)
    # Neither reached central, so the token is still good.
    creds = enrol_client.enrol(served.url, token, "K7", key, ca_file=served.ca)
    assert (creds.device_id, creds.village_id) == ("K7", "V1")
    assert creds.ca_cert_pem == SETTINGS.ca_cert_pem


def test_the_same_enrolment_sent_again_is_refused(served: Served) -> None:
    body = {"token": served.token("K7"), "device_id": "K7", "public_key": "ab" * 32}
    with served.client() as c:
        first = c.post("/api/v1/enrol", json=body)
        again = c.post("/api/v1/enrol", json=body)
    assert first.status_code == 200 and first.json()["mqtt_password"]
    assert (again.status_code, again.json()) == (
        403,
        {"detail": "enrolment refused: the token has already been used"},
    )


def test_one_token_sent_concurrently_enrols_once(served: Served, store: CentralStore) -> None:
    """Eight identical requests at once, over eight connections: one password is issued."""
    body = {"token": served.token("K7"), "device_id": "K7", "public_key": "cd" * 32}
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []

    def attempt() -> None:
        with served.client() as c:
            c.get("/openapi.json")  # connected and TLS done before the barrier
            barrier.wait(timeout=30)
            answers.append(c.post("/api/v1/enrol", json=body))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [403] * 7, [a.text for a in answers]
    assert {a.json()["detail"] for a in answers if a.status_code == 403} == {
        "enrolment refused: the token has already been used"
    }
    device = store.device("K7")
    assert device is not None and device.public_key == bytes.fromhex("cd" * 32)


def test_plain_http_is_only_for_a_proxy_on_this_machine(store: CentralStore) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.53"):
        check_plain(host)
    for host in ("0.0.0.0", "::", "192.0.2.10", "central.example"):
        with pytest.raises(ConfigError, match="in clear"):
            check_plain(host)
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS)
    with pytest.raises(ConfigError, match=r"--http-plain on '0\.0\.0\.0'"):
        make_server(app, "0.0.0.0", 8443, tls=None)


def test_listen_addresses_and_certificate_names() -> None:
    assert split_host_port("0.0.0.0:8443") == ("0.0.0.0", 8443)
    assert split_host_port(":8443") == ("127.0.0.1", 8443)
    assert split_host_port("[::1]:8443") == ("::1", 8443)
    for bad in ("8443", "host:", "host:http", "host:70000"):
        with pytest.raises(ConfigError, match="HOST:PORT"):
            split_host_port(bad)
    assert default_names("0.0.0.0") == ["localhost", "127.0.0.1"]
    assert default_names("192.0.2.10") == ["localhost", "127.0.0.1", "192.0.2.10"]
    assert default_names("central.example") == ["localhost", "127.0.0.1", "central.example"]


def test_an_operators_certificate_is_used_and_never_replaced(tmp_path: Path) -> None:
    made = http_tls(tmp_path / "dev", ["central.example", "192.0.2.10"])
    operator = tmp_path / "operator"
    operator.mkdir()
    for f in ("ca.crt", "server.crt", "server.key"):  # no ca.key: the operator's CA
        shutil.copy(made.folder / f, operator / f)
    before = (operator / "server.crt").read_bytes()
    assert http_tls(operator, ["central.example"]).server_cert == operator / "server.crt"
    with pytest.raises(ConfigError, match=r"not valid for other\.example"):
        http_tls(operator, ["other.example"])
    assert (operator / "server.crt").read_bytes() == before
    assert not (operator / "ca.key").exists()


def test_the_endpoints_get_fewer_threads_than_the_database_has_connections(
    store: CentralStore, tmp_path: Path
) -> None:
    """So the ingest thread always finds a pooled connection, whatever the API is asked."""
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS, limits=HttpLimits(threads=3))

    @app.get("/threads")
    async def threads() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    with serving(app, tmp_path / "http-tls") as s, s.client() as c:
        assert c.get("/threads").json() == 3
