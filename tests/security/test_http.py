"""Central's HTTP API as a stranger on the network meets it (issue 11).

Against a real `greenpass central` process (HTTPS with its development CA, SQLite and
PostgreSQL) beside a real Mosquitto, with raw TLS sockets where a polite client would
not do what an attacker does: a 200 MB body, declared or chunked, is refused at once
and central's memory does not grow; a refused or malformed enrolment repeats nothing
of the input and names no other device; a token works once; one address gets a few
attempts a minute; and a flood of requests, or of connections, does not delay the
acks of a kiosk syncing over MQTT meanwhile.
"""

from __future__ import annotations

import itertools
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from central.api import EnrolmentSettings, create_app
from central.http_guard import HttpLimits
from central.store import CentralStore
from devkit.mqtt_broker import Broker, BrokerRefused, MqttTestClient, free_port, mosquitto_binary
from greenpass.errors import CentralError
from sync import enrol as enrol_client
from sync import protocol
from sync.keys import generate_key, public_bytes
from tests.central.conftest import (  # noqa: F401 - central_url and store are fixtures
    SQLITE_ONLY,
    Kiosk,
    central_url,
    new_kiosk,
    store,
)
from tests.central.served import ADMIN, serving
from tests.central_process import ROOT, Central, running_central

# SQLite only: the HTTP guard's, before any query.
pytestmark = SQLITE_ONLY

MiB = 1 << 20
BIG = 200 * MiB
ENROL = "/api/v1/enrol"


@pytest.fixture
def mq(tmp_path: Path) -> Iterator[Broker]:
    mosquitto_binary()  # skips without Mosquitto (fails under CI=true)
    with Broker(tmp_path / "broker", [("central", "central-pw")]) as running:
        yield running


@pytest.fixture
def central(tmp_path: Path, mq: Broker, central_url: str) -> Iterator[Central]:  # noqa: F811
    with running_central(tmp_path / "central", mq, db_url=central_url) as c:
        yield c


# --- a raw TLS client -------------------------------------------------------------------


@dataclass
class Outcome:
    status: int | None  # the answer's status; None when the connection ended without one
    answer: bytes
    sent: int  # body bytes that got into the socket before central closed it
    seconds: float


def port_of(c: Central) -> int:
    return int(c.url.rsplit(":", 1)[1])


def tls_socket(c: Central, source: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(
        ("127.0.0.1", port_of(c)), timeout=10, source_address=(source, 0)
    )
    return ssl.create_default_context(cafile=str(c.ca)).wrap_socket(
        raw, server_hostname="127.0.0.1"
    )


def send_request(c: Central, head: str, body: Iterator[bytes], timeout_s: float = 20) -> Outcome:
    """Send `head`, then `body` as fast as central takes it while reading its answer,
    until central closes the connection, the body is sent and answered, or time is up."""
    s = tls_socket(c)
    began = time.monotonic()
    s.sendall(head.encode())
    s.setblocking(False)
    answer, sent, pending = b"", 0, memoryview(next(body, b""))
    while time.monotonic() - began < timeout_s:
        writing = len(pending) > 0
        readable, writable, _ = select.select([s], [s] if writing else [], [], 0.2)
        if readable or s.pending():
            try:
                data = s.recv(65536)
            except ssl.SSLWantReadError:
                data = None
            except OSError:  # reset: central closed with our bytes unread
                break
            if data == b"":
                break
            answer += data or b""
            if not writing and b"\r\n\r\n" in answer and _complete(answer):
                break
        if writable and writing:
            try:
                n = s.send(pending)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                continue
            except OSError:
                break
            sent += n
            pending = pending[n:] if n < len(pending) else memoryview(next(body, b""))
    took = time.monotonic() - began
    s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    return Outcome(int(m.group(1)) if m else None, answer, sent, took)


def _complete(answer: bytes) -> bool:
    head, _, rest = answer.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    return m is not None and len(rest) >= int(m.group(1))


def plain(size: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        sent += n
        yield b"x" * n


def chunked(size: int, chunk: int = 64 * 1024, *, end: bool = True) -> Iterator[bytes]:
    for part in plain(size, chunk):
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    if end:
        yield b"0\r\n\r\n"


def head(path: str, **headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def rss(pid: int) -> int:
    """Resident memory of process `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# --- bodies -------------------------------------------------------------------------------


def test_a_200_mb_body_is_refused_at_once_and_central_does_not_grow(central: Central) -> None:
    declared = head(ENROL, Content_Length=str(BIG))
    streamed = head(ENROL, Transfer_Encoding="chunked")
    # Polite first (nothing more is sent than is read, so the 413 always arrives), which
    # also warms central up: what is measured afterwards is what the attacks cost.
    for h, body in ((declared, plain(0)), (streamed, chunked(5000, chunk=1000, end=False))):
        polite = send_request(central, h, body)
        assert polite.status == 413, polite.answer
        assert b'{"detail":"the request body is over 4096 bytes"}' in polite.answer
        assert b"connection: close" in polite.answer.lower()
    before = rss(central.pid)
    for _ in range(3):
        for h, body in ((declared, plain(BIG)), (streamed, chunked(BIG))):
            rude = send_request(central, h, body)
            # Central closes after its 413; the attacker may see the 413 or a reset (its
            # unread bytes), but never gets to send more than the kernel's buffers hold.
            assert rude.status in (413, None), rude.answer
            assert rude.seconds < 5, rude
            assert rude.sent < 32 * MiB, rude
    grown = rss(central.pid) - before
    assert grown < 4 * MiB, f"central grew by {grown / MiB:.1f} MiB"
    assert httpx.get(central.url + "/openapi.json", verify=central.verify).status_code == 200


def test_a_malformed_enrolment_repeats_nothing_of_it(central: Central) -> None:
    marker = "ATTACKER-MARKER"
    body = (
        f'{{"token": "{marker}{"t" * 3000}", "device_id": "{marker}/x", '
        f'"public_key": "{marker}", "{marker}-field": 1}}'
    )
    r = httpx.post(
        central.url + ENROL,
        content=body.encode(),
        headers={"content-type": "application/json"},
        verify=central.verify,
    )
    assert r.status_code == 422
    assert marker not in r.text and len(r.content) < 1024
    assert [p["loc"][-1] for p in r.json()["detail"]] == [
        "token", "device_id", "public_key", "(unknown field)",
    ]  # fmt: skip


# --- refusals, replays --------------------------------------------------------------------


def test_a_refused_enrolment_names_no_other_device_and_a_token_works_once(
    central: Central,
) -> None:
    token = central.token("KSECRET42", "V1")
    key = public_bytes(generate_key()).hex()
    with httpx.Client(base_url=central.url, verify=central.verify) as c:
        stolen = c.post(ENROL, json={"token": token, "device_id": "K1", "public_key": key})
        assert stolen.status_code == 403
        assert "KSECRET42" not in stolen.text
        assert stolen.json() == {
            "detail": "enrolment refused: the token is unknown, or was issued for another device id"
        }
        mine = {"token": token, "device_id": "KSECRET42", "public_key": key}
        assert c.post(ENROL, json=mine).status_code == 200
        replayed = c.post(ENROL, json=mine)
        assert (replayed.status_code, replayed.json()) == (
            403,
            {"detail": "enrolment refused: the token has already been used"},
        )
        stolen_again = c.post(ENROL, json={**mine, "device_id": "K1"})
        assert "KSECRET42" not in stolen_again.text


def test_enrolment_over_plain_http_is_not_served(central: Central) -> None:
    """The listener speaks TLS only: a plain request gets no answer at all, let alone
    a password; and the kiosk's client will not send a token over plain HTTP to
    another machine."""
    with socket.create_connection(("127.0.0.1", port_of(central)), timeout=5) as s:
        s.sendall(head(ENROL, Content_Length="2").encode() + b"{}")
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
    assert not got.startswith(b"HTTP/")
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    with pytest.raises(CentralError, match="plain HTTP"):
        enrol_client.enrol(
            "http://central.example", "t", "K1", bytes(32), transport=httpx.MockTransport(record)
        )
    assert sent == []


# --- rate ---------------------------------------------------------------------------------


def test_one_address_gets_a_few_enrolment_attempts_a_minute(central: Central) -> None:
    body = {"token": "guess", "device_id": "K1", "public_key": public_bytes(generate_key()).hex()}

    def attempts(source: str, n: int) -> list[httpx.Response]:
        transport = httpx.HTTPTransport(local_address=source, verify=central.verify)
        with httpx.Client(base_url=central.url, transport=transport) as c:
            return [c.post(ENROL, json=body) for _ in range(n)]

    first = attempts("127.0.0.1", 12)
    assert [r.status_code for r in first] == [403] * 10 + [429] * 2
    assert int(first[-1].headers["retry-after"]) in range(1, 7)  # 10 a minute: one per 6 s
    assert "too many enrolment attempts" in first[-1].json()["detail"]
    # Another address has its own attempts; the operator's API is not limited.
    assert [r.status_code for r in attempts("127.0.0.2", 2)] == [403, 403]
    auth = {"Authorization": f"Bearer {central.admin}"}
    r = httpx.get(central.url + "/api/v1/devices", headers=auth, verify=central.verify)
    assert r.status_code == 200


# --- floods and ingest --------------------------------------------------------------------


@dataclass
class SyncingKiosk:
    """A kiosk enrolled through the API, sending its ledger batch by batch over MQTT."""

    kiosk: Kiosk
    mqtt: MqttTestClient
    sent: int = 0

    def add_entries(self, n: int) -> None:
        pb = self.kiosk.ledger.enrol("Li household", staff_id="S1").passbook_id
        assert pb is not None
        for _ in range(n - 1):
            self.kiosk.clock.advance(30_000)
            self.kiosk.ledger.deposit(pb, "paper", 1000)

    def sync(self, timeout_s: float = 30) -> float:
        """Send what central does not have; seconds until central's ok ack."""
        head_seq = self.kiosk.head_seq
        began = time.monotonic()
        code = self.mqtt.publish_wait(self.kiosk.topic, self.kiosk.batch(self.sent + 1))
        assert code.value == 0, code
        while True:
            left = timeout_s - (time.monotonic() - began)
            assert left > 0, "no ack"
            ack = protocol.parse_ack(self.mqtt.next_message(timeout=left).payload)
            if ack.acked_seq == head_seq:
                assert ack.status == "ok", ack
                self.sent = head_seq
                return time.monotonic() - began


@pytest.fixture
def syncing(central: Central, mq: Broker, tmp_path: Path) -> Iterator[SyncingKiosk]:
    kiosk = new_kiosk(tmp_path / "kiosk", "K1")
    token = central.token("K1", "V1")
    creds = enrol_client.enrol(
        central.url, token, "K1", public_bytes(kiosk.key), ca_file=central.ca
    )
    deadline = time.monotonic() + 15
    while True:  # central passes the new login to the broker just after its answer
        try:
            client = mq.client("K1", creds.mqtt_password, client_id="gp-K1")
            break
        except BrokerRefused:
            assert time.monotonic() < deadline, "the broker never accepted K1's new login"
            time.sleep(0.1)
    client.subscribe_wait(protocol.topic("K1", protocol.ACK))
    k = SyncingKiosk(kiosk, client)
    k.add_entries(3)
    k.sync()
    yield k
    kiosk.ledger.close()


def flood(c: Central, stop: threading.Event, worker: int, counts: dict[int, int]) -> None:
    """Enrolment attempts with wrong tokens, each address its ten allowed ones and more,
    from ever new loopback addresses (a botnet), mixed with oversized bodies."""
    body = {"token": "guess", "device_id": "K9", "public_key": public_bytes(generate_key()).hex()}
    for n in itertools.count():
        if stop.is_set():
            return
        source = f"127.{10 + worker}.{n // 250}.{1 + n % 250}"
        transport = httpx.HTTPTransport(local_address=source, verify=c.verify)
        try:
            with httpx.Client(base_url=c.url, transport=transport, timeout=10) as client:
                for i in range(12):
                    if i % 4 == 3:
                        r = client.post(ENROL, content=b"x" * 8192)
                    else:
                        r = client.post(ENROL, json=body)
                    counts[r.status_code] = counts.get(r.status_code, 0) + 1
        except httpx.HTTPError:
            counts[0] = counts.get(0, 0) + 1


def test_a_flood_of_enrolment_attempts_does_not_delay_ingest(
    central: Central, syncing: SyncingKiosk
) -> None:
    quiet = []
    for _ in range(3):
        syncing.add_entries(2)
        quiet.append(syncing.sync())
    stop = threading.Event()
    counts: dict[int, int] = {}
    workers = [threading.Thread(target=flood, args=(central, stop, w, counts)) for w in range(16)]
    for w in workers:
        w.start()
    try:
        time.sleep(2)  # the flood at full strength
        busy = []
        for _ in range(5):
            syncing.add_entries(2)
            busy.append(syncing.sync())
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert counts.get(403, 0) > 100 and counts.get(413, 0) > 20, counts
    assert max(busy) < 5, f"acks took {busy} s under the flood, {quiet} s before"


def test_a_flood_of_connections_is_turned_away_without_delaying_ingest(
    central: Central, syncing: SyncingKiosk
) -> None:
    """More open connections than --http-max-connections (100): the extra requests get a
    503 at once instead of waiting, ingest carries on, and the API is back afterwards."""
    idle = [tls_socket(central) for _ in range(110)]
    try:
        r = httpx.get(central.url + "/openapi.json", verify=central.verify, timeout=5)
        assert r.status_code == 503
        syncing.add_entries(2)
        assert syncing.sync() < 5
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 10
    while httpx.get(central.url + "/openapi.json", verify=central.verify).status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover"
        time.sleep(0.1)


def test_a_body_that_trickles_in_is_cut_off(
    store: CentralStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A slow-body client holds a connection for at most the body time limit (408)."""
    settings = EnrolmentSettings("mqtts://central.example:8883", "", public_bytes(generate_key()))
    app = create_app(
        store, admin_token=ADMIN, enrolment=settings, limits=HttpLimits(body_timeout_s=1.0)
    )
    with serving(app, tmp_path / "tls") as served:
        port = int(served.url.rsplit(":", 1)[1])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        ctx = ssl.create_default_context(cafile=str(served.ca))
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            began = time.monotonic()
            s.sendall(head(ENROL, Content_Length="200").encode() + b'{"token": ')
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.9 < time.monotonic() - began < 5


def test_plain_http_on_a_network_address_is_refused_at_start(tmp_path: Path, mq: Broker) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "central.password").write_text("central-pw\n")
    r = subprocess.run(
        [sys.executable, "-m", "greenpass", "central", "--db", str(tmp_path / "c.db"),
         "--home", str(home), "--broker", mq.url, "--ca", str(mq.ca_cert),
         "--http", f"0.0.0.0:{free_port()}", "--http-plain"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 2
    assert "--http-plain on '0.0.0.0' would send enrolment passwords" in r.stderr
    assert not (home / "admin.token").exists()
