"""RabbitMQ 3.10 vs NATS 2.9 as a three-node MQTT cluster: the measurements behind
the choice in docs/scale.md.

    python -m bench.cluster_compare [mosquitto|rabbit|nats …]

For each broker: start three nodes on loopback (devkit/rabbit_cluster.py,
devkit/nats_cluster.py), then with plain paho MQTT 3.1.1 clients over TLS:

- session: a kiosk's persistent session (clean_session=false) made on node 2; 20
  QoS 1 messages for it published on node 1 while it is away; node 2 SIGKILLed; the
  kiosk reconnects to node 3 — how many arrive, how many twice;
- acl: K1 subscribes to K2's down topic and publishes on K2's up topic;
- loop: K1 publishes 1 KiB batches to node 1 with 2 in flight, an MQTT echo on
  node 2 answers each on K1's `down/ack`: batches/s until the last ack;
- startup: seconds from nothing to three nodes serving MQTT.

`mosquitto` runs the loop alone on one Mosquitto with the production config: the
baseline of the same run.
"""

from __future__ import annotations

import queue
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

USERS = {"central": "central-pw", "K1": "k1-pw-0123456789", "K2": "k2-pw-0123456789"}
LOOP_N = 2000


class Cluster(Protocol):
    ca_cert: Path

    def mqtt_url(self, n: int) -> str: ...
    def kill(self, n: int) -> None: ...
    def close(self) -> None: ...


class Client:
    """A paho MQTT 3.1.1 client over TLS, with a queue of what it receives."""

    def __init__(
        self,
        cluster: Cluster,
        node: int,
        user: str,
        *,
        clean: bool = True,
        client_id: str | None = None,
    ) -> None:
        cid = client_id or (f"gp-{user}" if user != "central" else f"central-{time.monotonic_ns()}")
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
            clean_session=clean,
        )  # fmt: skip
        self.c.tls_set(ca_certs=str(cluster.ca_cert))
        self.c.username_pw_set(user, USERS[user])
        self.inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.gone = threading.Event()
        self.connack: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[Any] = queue.Queue()
        self.c.on_message = lambda _c, _u, m: self.inbox.put(m)
        self.c.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.c.on_disconnect = lambda *_a: self.gone.set()
        self.c.on_subscribe = lambda _c, _u, _m, codes, _p: self.subacks.put(codes)
        port = int(cluster.mqtt_url(node).rsplit(":", 1)[1])
        self.c.connect("127.0.0.1", port, keepalive=30)
        sock = self.c.socket()
        if isinstance(sock, socket.socket):  # as sync.transport does: no Nagle delays
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        try:
            rc = self.connack.get(timeout=20)
        except queue.Empty:
            self.c.loop_stop()
            raise RuntimeError(f"{user}: no CONNACK") from None
        if rc.is_failure:
            raise RuntimeError(f"{user} refused: {rc}")

    def sub(self, topic: str) -> list[Any]:
        self.c.subscribe(topic, qos=1)
        try:
            codes: list[Any] = self.subacks.get(timeout=10)
        except queue.Empty:
            return ["no SUBACK"]
        return codes

    def pub(self, topic: str, payload: bytes, timeout: float = 10) -> bool:
        info = self.c.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def drain(self, wait: float) -> list[mqtt.MQTTMessage]:
        out, deadline = [], time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.inbox.get(timeout=left))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def check_session(cluster: Cluster) -> str:
    k2 = Client(cluster, 2, "K2", clean=False)
    k2.sub("gp/v1/dev/K2/down/ack")
    k2.close()
    central = Client(cluster, 1, "central")
    sent = sum(central.pub("gp/v1/dev/K2/down/ack", f"m{i}".encode()) for i in range(20))
    central.close()
    cluster.kill(2)
    t = time.monotonic()
    k2 = Client(cluster, 3, "K2", clean=False)
    connected = time.monotonic() - t
    got: list[bytes] = []
    while len(set(got)) < 20 and time.monotonic() - t < 60:
        got += [bytes(m.payload) for m in k2.drain(0.2)]
    arrived = time.monotonic() - t
    got += [bytes(m.payload) for m in k2.drain(3)]  # any copies after the last
    k2.close()
    return (
        f"{sent} published on node 1, node 2 killed, on node 3: {len(set(got))}/20 arrived, "
        f"{len(got) - len(set(got))} twice; connected after {connected:.1f} s, "
        f"all in after {arrived:.1f} s"
    )


def check_acl(cluster: Cluster, batches: str = "gp/v1/dev/+/up/batch") -> str:
    central = Client(cluster, 1, "central")
    central.sub(batches)
    k1 = Client(cluster, 2, "K1")
    codes = k1.sub("gp/v1/dev/K2/down/#")
    state = "closed" if k1.gone.is_set() else "open"
    sub_line = f"K1 subscribe K2/down: SUBACK {codes}, connection {state}"
    if k1.gone.is_set():
        k1 = Client(cluster, 2, "K1")
    puback = k1.pub("gp/v1/dev/K2/up/batch", b"forged", timeout=5)
    time.sleep(1)
    got = [m for m in central.drain(2) if m.payload == b"forged"]
    pub_line = (
        f"K1 publish K2/up/batch: PUBACK {'yes' if puback else 'no'}, connection "
        f"{'closed' if k1.gone.is_set() else 'open'}, central received {len(got)}"
    )
    k1.close()
    central.close()
    # Client-id takeover: K1's password with K2's client id, while K2 is connected.
    k2 = Client(cluster, 1, "K2")
    try:
        thief: Client | None = Client(cluster, 2, "K1", client_id="gp-K2")
    except RuntimeError:
        thief = None
    time.sleep(1)
    takeover = (
        f"K1 as client id gp-K2: {'refused' if thief is None else 'accepted'}, "
        f"K2 {'disconnected' if k2.gone.is_set() else 'still connected'}"
    )
    for c in (k2, thief):
        if c is not None:
            c.close()
    return sub_line + "; " + pub_line + "; " + takeover


def loop(cluster: Cluster, batches: str = "gp/v1/dev/+/up/batch") -> str:
    echo = Client(cluster, 2, "central")
    echo.sub(batches)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                m = echo.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            echo.c.publish("gp/v1/dev/K1/down/ack", m.payload[:8], qos=1)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    k1 = Client(cluster, 1, "K1")
    k1.sub("gp/v1/dev/K1/down/ack")
    payload = b"x" * 1024
    start = time.monotonic()
    inflight = acks = 0
    for _ in range(LOOP_N):
        k1.c.publish("gp/v1/dev/K1/up/batch", payload, qos=1)
        inflight += 1
        while inflight >= 2:
            k1.inbox.get(timeout=20)
            inflight -= 1
            acks += 1
    while inflight:
        k1.inbox.get(timeout=20)
        inflight -= 1
        acks += 1
    elapsed = time.monotonic() - start
    stop.set()
    t.join()
    k1.close()
    echo.close()
    return f"{acks} batches acked in {elapsed:.1f} s = {acks / elapsed:.0f} batches/s"


def amqp_loop(cluster: Any) -> str:
    """The loop with central's real path on RabbitMQ: an AMQP consumer of the quorum
    queue (`central.amqp_receiver`) answers on `amq.topic`."""
    import pika  # noqa: PLC0415 - RabbitMQ only

    from central.amqp_receiver import declare_queues  # noqa: PLC0415
    from central.rabbit import BATCH_QUEUE, EXCHANGE  # noqa: PLC0415

    conn = pika.BlockingConnection(pika.URLParameters(cluster.amqp_url(2)))
    ch = conn.channel()
    declare_queues(ch)
    ch.queue_purge(BATCH_QUEUE)
    stop = threading.Event()

    def answer() -> None:
        props = pika.BasicProperties(delivery_mode=2)

        def on(c: Any, m: Any, _p: Any, body: bytes) -> None:
            c.basic_publish(EXCHANGE, "gp.v1.dev.K1.down.ack", body[:8], props)
            c.basic_ack(m.delivery_tag)

        ch.basic_qos(prefetch_count=64)
        ch.basic_consume(BATCH_QUEUE, on)
        while not stop.is_set():
            conn.process_data_events(time_limit=0.2)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    k1 = Client(cluster, 1, "K1")
    k1.sub("gp/v1/dev/K1/down/ack")
    payload, inflight, acks = b"x" * 1024, 0, 0
    start = time.monotonic()
    for _ in range(LOOP_N):
        k1.c.publish("gp/v1/dev/K1/up/batch", payload, qos=1)
        inflight += 1
        while inflight >= 2:
            k1.inbox.get(timeout=20)
            inflight, acks = inflight - 1, acks + 1
    while inflight:
        k1.inbox.get(timeout=20)
        inflight, acks = inflight - 1, acks + 1
    elapsed = time.monotonic() - start
    stop.set()
    t.join()
    conn.close()
    k1.close()
    return f"{acks} batches acked in {elapsed:.1f} s = {acks / elapsed:.0f} batches/s"


class _OneMosquitto:
    """The baseline: the loop on one Mosquitto (what a county runs), same clients."""

    def __init__(self, folder: Path) -> None:
        from devkit.mqtt_broker import Broker  # noqa: PLC0415

        self.broker = Broker(folder, list(USERS.items())).start()
        self.ca_cert = self.broker.ca_cert

    def mqtt_url(self, n: int) -> str:
        return self.broker.url

    def kill(self, n: int) -> None:
        self.broker.kill()

    def close(self) -> None:
        self.broker.close()


def run(kind: str, folder: Path) -> None:
    t = time.monotonic()
    cluster: Any
    if kind == "mosquitto":
        cluster = _OneMosquitto(folder)
        try:
            # Central's rights there: the shared subscription only (Mosquitto lets 3.1.1
            # clients use it too).
            shared = "$share/central/gp/v1/dev/+/up/batch"
            print(f"{kind}: loop (MQTT echo, one node): {loop(cluster, shared)}", flush=True)
            print(f"{kind}: acl: {check_acl(cluster, shared)}", flush=True)
        finally:
            cluster.close()
        return
    if kind == "rabbit":
        from devkit.rabbit_cluster import RabbitCluster  # noqa: PLC0415 - one broker per run

        cluster = RabbitCluster(folder, USERS).start()
    else:
        from devkit.nats_cluster import NatsCluster  # noqa: PLC0415

        if shutil.which("nats-server") is None:
            print("nats: skipped: nats-server is not installed")
            return

        cluster = NatsCluster(folder, USERS).start()
    print(f"{kind}: startup: three nodes serving MQTT after {time.monotonic() - t:.1f} s")
    try:
        time.sleep(3)  # JetStream / quorum leaders elected
        print(f"{kind}: loop (MQTT echo): {loop(cluster)}", flush=True)
        if kind == "rabbit":
            print(f"{kind}: loop (AMQP quorum queue): {amqp_loop(cluster)}", flush=True)
        print(f"{kind}: acl: {check_acl(cluster)}", flush=True)
        print(f"{kind}: session: {check_session(cluster)}", flush=True)
    finally:
        cluster.close()


def main() -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average before: {' '.join(load)}")
    for kind in sys.argv[1:] or ["mosquitto", "rabbit", "nats"]:
        with tempfile.TemporaryDirectory(prefix=f"gp-{kind}-") as tmp:
            run(kind, Path(tmp))


if __name__ == "__main__":
    main()
