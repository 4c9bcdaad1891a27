"""The limits in front of the API (`central.http_guard`): the token buckets as pure logic,
the body limit as an ASGI app fed by hand, and the answers through the real app
(TestClient, SQLite and PostgreSQL). Attacks over real sockets: tests/security/test_http.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from central.api import EnrolmentSettings, create_app
from central.http_guard import (
    UNKNOWN_FIELD,
    BodyLimit,
    HttpLimits,
    SourceBuckets,
    source_of,
)
from central.store import CentralStore
from greenpass.errors import ConfigError
from sync.keys import generate_key, public_bytes
from tests.central.conftest import SQLITE_ONLY

# SQLite only: the HTTP guard's, before any query.
pytestmark = SQLITE_ONLY

ADMIN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
SETTINGS = EnrolmentSettings(
    broker_url="mqtts://central.example:8883",
    ca_cert_pem="",
    central_public_key=public_bytes(generate_key()),
)
KEY_HEX = public_bytes(generate_key()).hex()


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


# --- token buckets ----------------------------------------------------------------------


def test_a_source_gets_its_burst_then_one_attempt_per_refill() -> None:
    clock = Clock()
    buckets = SourceBuckets(per_minute=6, max_sources=100, clock=clock)
    assert [buckets.take("10.0.0.1") for _ in range(6)] == [0.0] * 6
    assert buckets.take("10.0.0.1") == pytest.approx(10.0)  # 6 a minute: one per 10 s
    assert buckets.take("10.0.0.2") == 0.0  # another address has its own bucket
    clock.now += 4
    assert buckets.take("10.0.0.1") == pytest.approx(6.0)  # refused attempts cost nothing
    clock.now += 6
    assert buckets.take("10.0.0.1") == 0.0
    assert buckets.take("10.0.0.1") > 0
    clock.now += 3600  # a long pause refills to the burst, not beyond
    assert [buckets.take("10.0.0.1") for _ in range(7)][-2:] == [0.0, pytest.approx(10.0)]


def test_the_buckets_are_bounded_and_drop_the_least_recently_seen() -> None:
    clock = Clock()
    buckets = SourceBuckets(per_minute=1, max_sources=3, clock=clock)
    for n in range(1, 4):
        buckets.take(f"10.0.0.{n}")
    assert buckets.take("10.0.0.1") > 0  # seen again: now the most recent
    buckets.take("10.0.0.4")  # a fourth source: 10.0.0.2 is dropped, not 10.0.0.1
    assert len(buckets) == 3
    assert buckets.take("10.0.0.1") > 0
    assert buckets.take("10.0.0.2") == 0.0  # forgotten, so a full bucket again
    for n in range(10_000):
        buckets.take(f"10.1.{n // 256}.{n % 256}")
    assert len(buckets) == 3


@pytest.mark.parametrize(
    ("client", "source"),
    [
        (("203.0.113.7", 5000), "203.0.113.7"),
        (("2001:db8:1:2:aaaa::1", 5000), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff::9", 5000), "2001:db8:1:2::/64"),  # the same subscriber
        (("::ffff:203.0.113.7", 5000), "203.0.113.7"),
        (("testclient", 50000), "testclient"),
        (None, ""),
    ],
)
def test_attempts_count_against_the_address_and_an_ipv6_slash_64(
    client: tuple[str, int] | None, source: str
) -> None:
    assert source_of({"type": "http", "client": client}) == source


def test_limits_are_checked() -> None:
    with pytest.raises(ConfigError, match="enrol_per_minute"):
        HttpLimits(enrol_per_minute=0)
    with pytest.raises(ConfigError, match="threads"):
        HttpLimits(threads=0)
    assert HttpLimits().body_limit("/api/v1/enrol") == 4096
    assert HttpLimits().body_limit("/api/v1/enrol/") == 4096
    assert HttpLimits().body_limit("/api/v1/enrol-tokens") == 16384
    # The console's rules forms carry a whole rules file, percent-encoded.
    assert HttpLimits().body_limit("/villages/V1/rules/preview") == 128 * 1024
    assert HttpLimits().body_limit("/villages/V1/rules/apply") == 128 * 1024
    assert HttpLimits().body_limit("/villages/V1/catalogue") == 16384
    assert HttpLimits().body_limit("/villages/V1/rules/apply/x") == 16384


# --- the body limit, fed by hand --------------------------------------------------------


def run_body_limit(
    messages: list[Message], *, headers: list[tuple[bytes, bytes]] = (), limits: HttpLimits
) -> tuple[list[Message], bytes | None, int]:
    """Run `BodyLimit` over an app that reads the whole body; what was sent back, the
    body the app saw (None: never called), and how many messages were read."""
    sent: list[Message] = []
    seen: list[bytes] = []
    reads = 0

    async def app(_scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        if not messages:
            await anyio.sleep_forever()
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "path": "/api/v1/enrol", "headers": list(headers)}
    anyio.run(BodyLimit(app, limits=limits), scope, receive, send)
    return sent, (seen[0] if seen else None), reads


def chunks(*sizes: int, last: bool = True) -> list[Message]:
    out: list[Message] = [
        {"type": "http.request", "body": b"x" * n, "more_body": True} for n in sizes
    ]
    if last:
        out[-1]["more_body"] = False
    return out


def test_a_body_within_the_limit_reaches_the_app_in_one_piece() -> None:
    sent, body, _ = run_body_limit(chunks(1000, 1000, 96), limits=HttpLimits())
    assert body == b"x" * 2096 and sent[0]["status"] == 200


def test_a_declared_length_over_the_limit_is_413_before_anything_is_read() -> None:
    sent, body, reads = run_body_limit(
        chunks(10), headers=[(b"content-length", b"209715200")], limits=HttpLimits()
    )
    assert (sent[0]["status"], body, reads) == (413, None, 0)
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit() -> None:
    stream = chunks(*([1024] * 200), last=False)  # 200 KiB, never finished
    sent, body, reads = run_body_limit(stream, limits=HttpLimits())
    assert (sent[0]["status"], body, reads) == (413, None, 5)  # the 5th KiB passed 4 KiB
    assert b"over 4096 bytes" in sent[1]["body"]


def test_a_body_that_does_not_arrive_in_time_is_408() -> None:
    sent, body, _ = run_body_limit(chunks(100, last=False), limits=HttpLimits(body_timeout_s=0.2))
    assert (sent[0]["status"], body) == (408, None)


def test_a_content_length_that_is_not_a_number_is_400() -> None:
    sent, body, _ = run_body_limit(
        chunks(10), headers=[(b"content-length", b"-5")], limits=HttpLimits()
    )
    assert (sent[0]["status"], body) == (400, None)


# --- through the app -------------------------------------------------------------------


@pytest.fixture
def client(store: CentralStore) -> Iterator[TestClient]:
    app = create_app(
        store, admin_token=ADMIN, enrolment=SETTINGS, limits=HttpLimits(enrol_per_minute=3)
    )
    with TestClient(app) as c:
        yield c


def test_the_fourth_enrolment_attempt_a_minute_is_429(client: TestClient) -> None:
    body = {"token": "not-a-token", "device_id": "K7", "public_key": KEY_HEX}
    assert [client.post("/api/v1/enrol", json=body).status_code for _ in range(3)] == [403] * 3
    r = client.post("/api/v1/enrol", json=body)
    assert r.status_code == 429
    # 3 a minute: one every 20 s, less whatever the first three took on a loaded machine
    # (the bucket's own tests run it on a fixed clock).
    wait = r.headers["retry-after"]
    assert wait in ("19", "20")
    assert r.json() == {
        "detail": f"too many enrolment attempts from this address; try again in {wait} s"
    }
    # Only enrolment is counted: the operator's calls are not.
    assert client.get("/api/v1/devices", headers=AUTH).status_code == 200


def test_a_validation_error_names_the_field_never_the_input(client: TestClient) -> None:
    secret = "S3CRET-" + "t" * 300  # too long for a token
    r = client.post(
        "/api/v1/enrol",
        json={"token": secret, "device_id": "K/7", "public_key": KEY_HEX, "leak-me": "x" * 50},
    )
    assert r.status_code == 422
    assert "S3CRET" not in r.text and "leak-me" not in r.text and "K/7" not in r.text
    problems = r.json()["detail"]
    assert {tuple(p["loc"]) for p in problems} == {
        ("body", "token"),
        ("body", "device_id"),
        ("body", UNKNOWN_FIELD),
    }
    assert all(set(p) == {"loc", "msg", "type"} for p in problems)
    assert {p["type"] for p in problems} == {"string_too_long", "string_pattern_mismatch",
                                              "extra_forbidden"}  # fmt: skip


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    r = client.post(
        "/api/v1/enrol-tokens",
        content=b'{"device_id": "K7", "village_id": ',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert (r.status_code, r.json()) == (400, {"detail": "the body is not JSON"})


def test_bodies_over_their_route_limit_are_413(client: TestClient) -> None:
    big = {"token": "t" * 5000, "device_id": "K7", "public_key": KEY_HEX}
    r = client.post("/api/v1/enrol", json=big)
    assert (r.status_code, r.json()) == (413, {"detail": "the request body is over 4096 bytes"})
    pad = {"device_id": "K7", "village_id": "V1", "x": "y" * 20_000}
    r = client.post("/api/v1/enrol-tokens", json=pad, headers=AUTH)
    assert r.status_code == 413
    ok = {"device_id": "K7", "village_id": "V1", "ttl_hours": 1}
    assert client.post("/api/v1/enrol-tokens", json=ok, headers=AUTH).status_code == 201


def test_the_openapi_document_lists_the_new_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"400", "403", "413", "429"} <= set(paths["/api/v1/enrol"]["post"]["responses"])
    assert "413" in paths["/api/v1/enrol-tokens"]["post"]["responses"]


def test_a_client_that_leaves_mid_body_gets_no_answer_and_the_app_no_call() -> None:
    gone: list[Message] = [*chunks(100, last=False), {"type": "http.disconnect"}]
    sent, body, _ = run_body_limit(gone, limits=HttpLimits())
    assert (sent, body) == ([], None)
