"""Green Passbook on a three-node RabbitMQ cluster (docs/scale.md): kiosks on MQTT
3.1.1 spread over the nodes, two central workers consuming its quorum queues over
AMQP, one node SIGKILLed mid-sync; and the per-device rights on the cluster.

Marked `cluster` (the cluster takes about 40 s to form): `make test-cluster`.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import struct
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import pika
import pytest

from central import rabbit_admin
from central.amqp_receiver import AmqpConfig, AmqpReceiver, declare_queues
from central.dynsec import DeviceLogin
from central.rabbit import BATCH_QUEUE
from central.rabbit_admin import RabbitAdmin, key_tag
from devkit.rabbit_cluster import RabbitCluster
from greenpass.errors import TransportError
from greenpass.record.entries import Kind
from sync import enrol as enrol_client
from sync.keys import generate_key, load_private_key, public_bytes
from sync.receiver import Outgoing
from sync.transport import BrokerConfig, Transport
from tests.central_process import running_central
from tests.cluster.conftest import USERS, ClusterWorld
from tests.sync.harness import Kiosk, wait_for

pytestmark = pytest.mark.cluster

PER_KIOSK = 120


def v311(cluster: RabbitCluster, node: int, user: str, client_id: str | None = None) -> Transport:
    t = Transport(
        BrokerConfig(
            url=cluster.mqtt_url(node),
            username=user,
            password=USERS[user],
            client_id=client_id or f"gp-{user}",
            ca_cert=cluster.ca_cert,
            clean_start=True,
            mqtt_version="3.1.1",
        )
    )
    t.connect()
    return t


def queued_batches(cluster: RabbitCluster, node: int) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(cluster.amqp_url(node)))
    try:
        ch = conn.channel()
        declare_queues(ch)  # as central does when it connects
        q = ch.queue_declare(BATCH_QUEUE, passive=True)
        return int(q.method.message_count)
    finally:
        conn.close()


def test_a_device_reads_and_writes_only_its_own_topics(cluster: RabbitCluster) -> None:
    before = queued_batches(cluster, 1)
    # Another kiosk's down topic, every kiosk's, everything: refused (RabbitMQ closes
    # the connection rather than answer SUBACK 0x80).
    for topic in ("gp/v1/dev/K2/down/ack", "gp/v1/dev/+/down/ack", "#", "gp/v1/dev/+/up/batch"):
        t = v311(cluster, 2, "K1")
        try:
            with pytest.raises(TransportError):
                t.subscribe(topic)
        finally:
            t.close()
    # Publishing as another kiosk: the connection is closed, nothing reaches central.
    for forged in ("gp/v1/dev/K2/up/batch", "gp/v1/dev/K2/up/reverse"):
        t = v311(cluster, 3, "K1")
        try:
            with pytest.raises(TransportError):
                t.publish(forged, b"forged", timeout_s=5)
            wait_for("K1 disconnected", lambda t=t: not t.connected)  # type: ignore[misc]
        finally:
            t.close()
    # Its own topics work, on any node.
    for node in (1, 2, 3):
        t = v311(cluster, node, "K1")
        try:
            t.subscribe("gp/v1/dev/K1/down/ack", "gp/v1/dev/K1/down/state")
            t.publish("gp/v1/dev/K1/status", b"{}", timeout_s=5)
            t.publish("gp/v1/dev/K1/up/reverse", b"{}", timeout_s=5)  # refused by central
        finally:
            t.close()
    # K2's session queue is out of reach with K2's client id: it is K2's to declare.
    t = v311(cluster, 1, "K1", client_id="gp-K2")
    try:
        with pytest.raises(TransportError):
            t.subscribe("gp/v1/dev/K1/down/ack")
    finally:
        t.close()
    assert queued_batches(cluster, 1) == before


def test_the_nodes_speak_to_each_other_over_mutual_tls(cluster: RabbitCluster) -> None:
    """The Erlang distribution (queue replication, messages between nodes, the CLI) is
    TLS with a certificate on both sides (central.rabbit.dist_tls_options): a peer
    without one of the cluster's CA is refused, and the cluster still forms and is
    driven by rabbitmqctl over it."""
    status = cluster.ctl(1, "cluster_status", "--formatter", "json")
    running = json.loads(status[status.index("{") :])["running_nodes"]
    assert sorted(running) == sorted(node.name for node in cluster.nodes)
    tls = cluster.folder / "tls"
    for node in cluster.nodes:
        bare = ssl.create_default_context(cafile=str(cluster.ca_cert))
        with (
            pytest.raises(ssl.SSLError, match=r"CERTIFICATE_REQUIRED|certificate required"),
            socket.create_connection(("127.0.0.1", node.dist_port), timeout=10) as s,
            bare.wrap_socket(s, server_hostname="localhost") as t,
        ):
            t.sendall(b"\x00")  # TLS 1.3: the server's refusal comes on first use
            t.recv(1)
        peer = ssl.create_default_context(cafile=str(cluster.ca_cert))
        peer.load_cert_chain(tls / "dist.crt", tls / "dist.key")
        with (
            socket.create_connection(("127.0.0.1", node.dist_port), timeout=10) as s,
            peer.wrap_socket(s, server_hostname="localhost") as t,
        ):
            assert t.version() in ("TLSv1.3", "TLSv1.2")
        # A plain Erlang handshake (OTP 23's send_name, to which a plain node answers
        # "sok": this machine's own RabbitMQ service does) gets no status back.
        name = b"probe@localhost"
        body = b"N" + struct.pack(">QIH", 0x01000000 | 0x7FFFFFFF, 1, len(name)) + name
        with socket.create_connection(("127.0.0.1", node.dist_port), timeout=10) as s:
            s.sendall(struct.pack(">H", len(body)) + body)
            try:
                got = s.recv(64)
            except (ConnectionResetError, TimeoutError):
                got = b""
            assert got[2:3] != b"s", got  # a TLS alert or a close, never a status frame


def deposits(k: Kiosk, n: int) -> None:
    villager = k.ledger.enrol(f"{k.device_id} household", staff_id="S1").passbook_id or ""
    for i in range(n - 1):
        if i % 20 == 0:
            k.clock.advance(86_400_000)  # a new day: daily caps start again
        k.clock.advance(11 * 60_000)
        k.ledger.deposit(villager, "paper", 500 + 10 * (i % 10))


def test_sync_survives_a_node_killed_mid_stream(world: ClusterWorld) -> None:
    cluster = world.cluster
    kiosks = [world.kiosk(f"K{i}") for i in (1, 2, 3)]  # K1 on node 1, K2 on 2, K3 on 3
    for k in kiosks:
        deposits(k, PER_KIOSK)
    workers = [world.start_central("1"), world.start_central("2")]  # on nodes 1 and 2
    # Small batches, so that the kill lands mid-stream; a short ack timeout, so that
    # batches or acks lost with the node are resent soon.
    for k in kiosks:
        k.start(world, max_entries=4, window=2, ack_timeout_s=5)
    total = PER_KIOSK * len(kiosks)
    wait_for("a third stored", lambda: world.store.count_entries() >= total // 3, timeout=60)
    # Counted first: `kill` returns once the node's Erlang VM is gone (~2 s), and the
    # other nodes' kiosks go on syncing meanwhile.
    stored_at_kill = world.store.count_entries()
    cluster.kill(1)  # K1's node, worker 1's, and the quorum queues' first leader
    wait_for("all synced", lambda: all(k.synced() for k in kiosks), timeout=120)
    assert stored_at_kill < total, "the kill came after the stream"
    cluster.start(1)  # back in the cluster: its queue replicas catch up
    for k in kiosks:  # and the cluster goes on taking entries
        deposits(k, 5)
    wait_for("synced after the restart", lambda: all(k.synced() for k in kiosks), timeout=60)
    for k in kiosks:
        head = k.ledger.head()[0]
        assert head == PER_KIOSK + 5
        # Nothing lost, nothing twice: central holds each seq once, all acked.
        assert world.store.count_entries(k.device_id) == head
        assert k.ledger.outbox.acked_seq() == head
        device = world.store.device(k.device_id)
        assert device is not None and device.acked_seq == head
    # Both workers took part: competing consumers on the one queue.
    assert all(w.receiver.handled > 0 for w in workers)
    assert kiosks[0].uplink is not None and kiosks[0].uplink.stats.connects >= 2

    # K2 reverses K1's deposit, reserved at central through the cluster's queue.
    a, b = kiosks[0], kiosks[1]
    first = next(e for e, _ in a.ledger.iter_entries() if e.kind == Kind.DEPOSIT)
    assert b.uplink is not None and first.passbook_id is not None
    wait_for(
        "K1's household's points at K2",
        lambda: b.ledger.balance(first.passbook_id or "") >= first.points,
        timeout=60,
    )
    got = b.uplink.reserve_reversal("K1", first.seq, "S1")
    assert (got.device_id, got.seq, got.points) == ("K1", first.seq, first.points)
    rev = b.ledger.reverse_other(got, staff_id="S1", reason="wrong passbook")
    wait_for("K2's reversal synced", b.synced, timeout=60)
    assert world.store.count_entries("K2") == rev.seq


def test_greenpass_central_consumes_the_cluster_over_amqp(
    world: ClusterWorld, tmp_path: Path
) -> None:
    """The command an operator runs: `greenpass central --amqp …`, one URL per node,
    over TLS (`amqps://`, checked against `--ca`) as between machines; the workers of
    the other tests use plain AMQP on loopback."""
    cluster = world.cluster
    nodes = [cluster.amqps_url(n) for n in range(1, len(cluster.nodes) + 1)]
    front = SimpleNamespace(url=cluster.mqtt_url(1), ca_cert=cluster.ca_cert)
    args = [x for url in nodes for x in ("--amqp", url)]
    with running_central(tmp_path / "proc", front, db_url=world.db_url, args=args):  # type: ignore[arg-type]
        world.central_key = load_private_key(tmp_path / "proc" / "central-home" / "central.key")
        k = world.kiosk("K4")  # a device no other test used: its cluster session is new
        deposits(k, 30)
        up = k.start(world)
        wait_for("K4 synced", k.synced, timeout=60)
        assert world.store.count_entries("K4") == k.ledger.head()[0] == 30
        wait_for("K4's state from that central", lambda: up.stats.states_applied > 0)


def test_central_keeps_the_clusters_logins_from_enrolment_to_revocation(
    world: ClusterWorld, tmp_path: Path
) -> None:
    """`greenpass central --amqp … --rabbit-api … --rabbit-http-auth`: a kiosk enrolled
    over HTTPS gets a login on the cluster (no definitions file names it) and is told to
    speak 3.1.1; it reaches its own topics only, as on Mosquitto; its password with
    another kiosk's client id is refused and that kiosk stays connected (the nodes ask
    central, central.rabbit_login); re-enrolled, its new password replaces the old
    one; revoked, its login is gone and its connection closed at once."""
    cluster = world.cluster
    assert cluster.login is not None
    n = range(1, len(cluster.nodes) + 1)
    args = [x for i in n for x in ("--amqp", f"amqp://127.0.0.1:{cluster.nodes[i - 1].amqp_port}")]
    args += [x for i in n for x in ("--rabbit-api", cluster.api_url(i))]
    args.append("--rabbit-http-auth")  # device users without passwords, and the check
    # Central's HTTPS where the nodes ask it, with a certificate of the cluster's CA.
    tls = tmp_path / "http-tls"
    tls.mkdir()
    for name in ("ca.crt", "server.crt", "server.key"):  # not the CA's key, nor the nodes'
        shutil.copy2(cluster.folder / "tls" / name, tls / name)
    port = int(urlsplit(cluster.login.url).port or 0)
    front = SimpleNamespace(url=cluster.mqtt_url(2), ca_cert=cluster.ca_cert)
    with running_central(
        tmp_path / "proc",
        front,
        db_url=world.db_url,
        args=args,
        port=port,
        http_tls=tls,  # type: ignore[arg-type]
    ) as c:
        key, token = generate_key(), c.token("K5", "V1")
        creds = enrol_client.enrol(c.url, token, "K5", public_bytes(key), ca_file=c.ca)
        assert creds.mqtt_version == "3.1.1"
        assert "K5" not in USERS  # the cluster's definitions never named it
        other = enrol_client.enrol(
            c.url, c.token("K6", "V1"), "K6", public_bytes(generate_key()), ca_file=c.ca
        )

        def login(
            password: str | None = None, user: str = "K5", client_id: str = "gp-K5"
        ) -> Transport | None:
            t = Transport(
                BrokerConfig(
                    url=cluster.mqtt_url(3), username=user,
                    password=password or creds.mqtt_password,
                    client_id=client_id, ca_cert=cluster.ca_cert, clean_start=True,
                    mqtt_version=creds.mqtt_version,
                )
            )  # fmt: skip
            try:
                t.connect()
            except TransportError:
                t.close()
                return None
            return t

        deadline = time.monotonic() + 30  # central makes the login just after its answer
        while (t := login()) is None:
            assert time.monotonic() < deadline, "K5 never got a login on the cluster"
            time.sleep(0.5)
        t.subscribe("gp/v1/dev/K5/down/ack")
        t.publish("gp/v1/dev/K5/status", b"{}", timeout_s=5)
        with pytest.raises(TransportError):  # its rights are a device's, as on Mosquitto
            t.publish("gp/v1/dev/K1/up/batch", b"forged", timeout_s=5)
        t.close()
        first = login()
        assert first is not None

        # K6's own login works; with K5's client id it is refused, and K5 stays on.
        deadline = time.monotonic() + 30
        while (k6 := login(other.mqtt_password, "K6", "gp-K6")) is None:
            assert time.monotonic() < deadline, "K6 never got a login on the cluster"
            time.sleep(0.5)
        k6.close()
        assert login(other.mqtt_password, "K6", "gp-K5") is None, "K6 took K5's client id"
        assert login(creds.mqtt_password, "K5", "K5") is None  # not gp-K5 either
        assert login("not-the-password") is None
        time.sleep(1)  # a takeover would close K5's connection within this
        assert first.connected, "K5 was disconnected by another login"
        first.publish("gp/v1/dev/K5/status", b"{}", timeout_s=5)

        # Re-enrolled with a new key (a replaced SD card): the new password works, the
        # old connection is closed and the old password no longer logs in.
        old_password = creds.mqtt_password
        creds = enrol_client.enrol(
            c.url, c.token("K5", "V1"), "K5", public_bytes(generate_key()), ca_file=c.ca
        )
        assert creds.mqtt_password != old_password
        wait_for("the old connection closed", lambda: not first.connected, timeout=30)
        first.close()
        deadline = time.monotonic() + 30
        while (again := login()) is None:
            assert time.monotonic() < deadline, "K5's new password never worked"
            time.sleep(0.5)
        assert login(old_password) is None, "the old password still logs in"

        r = httpx.post(
            f"{c.url}/api/v1/devices/K5/revoke", headers={"Authorization": f"Bearer {c.admin}"},
            verify=c.verify, timeout=30,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        wait_for("K5 disconnected", lambda: not again.connected, timeout=30)
        again.close()
        assert login() is None, "a revoked device still logs in"


def test_a_central_without_the_login_check_keeps_the_clusters_device_logins_checked(
    cluster: RabbitCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once central checks the cluster's device logins (`--rabbit-http-auth`: users with
    no password), a central started without the flag (a second worker, a `revoke
    --broker`) keeps them so: giving passwords back would undo the client-id binding
    without a word. A re-keyed device stays passwordless too, and a device gone is
    deleted either way."""
    # K7 never connects: closing its connections need not wait for a late listing.
    monkeypatch.setattr(rabbit_admin, "CONNECTIONS_SEEN_S", 0.0)
    urls = [cluster.api_url(i) for i in range(1, len(cluster.nodes) + 1)]
    old, new = public_bytes(generate_key()), public_bytes(generate_key())
    k7 = DeviceLogin("K7", old, "", password="k7-pw")
    with RabbitAdmin(urls, "central", USERS["central"], ca_cert=cluster.ca_cert,
                     passwordless=True) as checked:  # fmt: skip
        assert checked.sync([k7]).created == ["K7"]
        assert checked.device_users()["K7"] == key_tag(old) + "+login"
    with RabbitAdmin(urls, "central", USERS["central"], ca_cert=cluster.ca_cert) as plain:
        report = plain.sync([k7])
        assert plain.passwordless, "the flag's absence gave the devices passwords back"
        assert (report.created, report.updated, report.stuck) == ([], [], [])
        rekeyed = plain.sync([DeviceLogin("K7", new, "", password="k7-new-pw")])
        assert rekeyed.updated == ["K7"]
        assert plain.device_users()["K7"] == key_tag(new) + "+login"
        assert "K7" in plain.sync([]).deleted and "K7" not in plain.device_users()


def test_on_the_cluster_too_ticks_wait_while_batches_queue_but_not_for_ever(
    cluster: RabbitCluster,
) -> None:
    """As on Mosquitto (`tests/sync/test_receiver_acks.py`): while batches queue for an
    AMQP worker its tick (the state pushes) waits, up to `busy_tick_delay_s`; then one
    runs even under load; idle again, the ticks come back at their pace. (Under a
    steady flow pika hands a worker message after message without returning to its
    loop: the overdue tick runs between two messages.) Stopped in the middle of a
    flow, the worker stops at once and leaves the rest in the queue."""
    admin = pika.BlockingConnection(pika.URLParameters(cluster.amqp_url(1)))
    try:
        declare_queues(admin.channel())  # as central does when it connects
        admin.channel().queue_purge(BATCH_QUEUE)  # what earlier tests may have left
    finally:
        admin.close()
    # K1's own rights (central's may not publish on a device's topics): its batches.
    publisher = pika.BlockingConnection(pika.URLParameters(cluster.amqp_url(1, "K1")))
    ch = publisher.channel()
    try:
        for delay_s, expect_ticks_while_busy in ((30.0, False), (0.3, True)):
            handled: list[float] = []
            ticked: list[float] = []

            def on_batch(_topic: str, _payload: bytes) -> list[Outgoing]:
                time.sleep(0.01)
                handled.append(time.monotonic())  # noqa: B023 - used within this round
                return []

            def tick() -> list[Outgoing]:
                ticked.append(time.monotonic())  # noqa: B023
                return []

            worker = AmqpReceiver(
                AmqpConfig((cluster.amqp_url(2),)), on_batch, lambda _t, _b: None,
                tick=tick, tick_s=0.05, busy_tick_delay_s=delay_s,
            )  # fmt: skip
            worker.start()
            try:
                wait_for("a first tick", lambda: bool(ticked))  # noqa: B023
                for n in range(200):  # 2 s of work
                    ch.basic_publish("amq.topic", "gp.v1.dev.K1.up.batch", f"b{n}".encode())
                wait_for("every batch handled", lambda: len(handled) == 200, timeout=30)  # noqa: B023
                busy = [t for t in ticked if handled[1] < t < handled[-2]]
                assert bool(busy) is expect_ticks_while_busy, (delay_s, busy)
                after = len(ticked)
                wait_for("ticks once idle", lambda: len(ticked) >= after + 3)  # noqa: B023
            finally:
                worker.stop()
        # Stopped in the middle of a flow: it stops within a batch or two, not once the
        # queue is empty, and what it did not handle waits in the queue.
        handled, ticked = [], []
        worker = AmqpReceiver(
            AmqpConfig((cluster.amqp_url(2),)), on_batch, lambda _t, _b: None, tick=tick,
            tick_s=0.05,
        )  # fmt: skip
        worker.start()
        wait_for("a first tick", lambda: bool(ticked))
        for n in range(200):
            ch.basic_publish("amq.topic", "gp.v1.dev.K1.up.batch", f"c{n}".encode())
        wait_for("the flow under way", lambda: len(handled) >= 20)
        t0 = time.monotonic()
        worker.stop(timeout_s=30)
        assert worker._thread is not None and not worker._thread.is_alive()
        assert time.monotonic() - t0 < 3, "the worker handled the whole queue before stopping"
        assert len(handled) < 200
        wait_for(
            "the rest back in the queue",
            lambda: queued_batches(cluster, 1) == 200 - len(handled),
            timeout=30,
        )
    finally:
        publisher.close()
