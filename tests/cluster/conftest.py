"""One three-node RabbitMQ cluster per module (it takes about 40 s to form on two
cores), kiosks speaking MQTT 3.1.1 to it through a `Balancer` each, and central
workers consuming its quorum queues over AMQP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from central.amqp_receiver import AmqpConfig
from central.rabbit import LoginCheck
from central.rabbit_login import PATH
from central.service import CentralService
from central.store import CentralStore
from devkit.mqtt_broker import free_port
from devkit.rabbit_cluster import RabbitCluster
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.record.rules import default_rules
from sync.keys import generate_key, public_bytes
from sync.transport import Backoff, BrokerConfig
from tests.conftest import PIN
from tests.sync.harness import T0, Kiosk, World, wait_for
from tests.tcp_balancer import Balancer

# Passwords of the cluster's users (its definitions file): device logins are not yet
# made by central's enrolment on a cluster (docs/scale.md, what is left).
USERS = {"central": "central-pw", **{f"K{i}": f"k{i}-cluster-pw" for i in range(1, 5)}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    """With central's login check (central.rabbit_login) at a port kept for the test
    that runs `greenpass central --rabbit-http-auth` on it: the nodes try their own
    users first (the definitions' above, central's), so the other tests never need it."""
    folder = tmp_path_factory.mktemp("rabbit")
    login = LoginCheck(
        f"https://127.0.0.1:{free_port()}{PATH}", folder / "tls" / "ca.crt", "localhost"
    )
    with RabbitCluster(folder, USERS, login=login) as running:
        yield running


class ClusterWorld(World):
    """`World` on the cluster: kiosk n reaches node n first (its own balancer), and
    central workers consume over AMQP, worker n starting at node n."""

    def __init__(self, tmp: Path, cluster: RabbitCluster) -> None:
        super().__init__(tmp, None, str(tmp / "central.db"))  # type: ignore[arg-type]
        self.cluster = cluster
        self.balancers: list[Balancer] = []
        self._fronts: dict[str, str] = {}

    def broker_config(
        self,
        user: str,
        password: str,
        client_id: str | None = None,
        *,
        url: str | None = None,
        keepalive_s: int = 30,
    ) -> BrokerConfig:
        return BrokerConfig(
            url=url or self._fronts[user],
            username=user,
            password=password,
            client_id=client_id or f"gp-{user}",
            ca_cert=self.cluster.ca_cert,
            keepalive_s=keepalive_s,
            mqtt_version="3.1.1",
        )

    def start_central(
        self, worker: str = "1", debounce_s: float = 0.2, log: object = None
    ) -> CentralService:
        n = int(worker)
        urls = self.cluster.amqp_urls()
        store = CentralStore.open(self.db_url)
        self.stores.append(store)
        service = CentralService(
            store,
            BrokerConfig("mqtts://unused.invalid:1", "central", "-", "-"),
            self.central_key,
            debounce_s=debounce_s,
            min_interval_s=0.5,
            log=None,
            amqp=AmqpConfig(tuple(urls[n - 1 :] + urls[: n - 1])),
        )
        service.receiver.tick_s = 0.05
        service.receiver.backoff = Backoff(0.05, 0.5)
        service.start()
        wait_for("central connected", service.receiver.connected.is_set, timeout=30)
        self.services.append(service)
        return service

    def kiosk(self, device_id: str) -> Kiosk:
        n = int(device_id[1:])
        ports = [node.mqtt_port for node in self.cluster.nodes]
        front = Balancer(ports[n - 1 :] + ports[: n - 1]).start()
        self.balancers.append(front)
        self._fronts[device_id] = f"mqtts://127.0.0.1:{front.port}"
        key = generate_key()
        token = self.store.create_enrol_token(device_id, self.village, T0, actor="test")
        self.store.enrol(token, device_id, public_bytes(key), T0)
        clock = FixedClock(T0)
        path = self.tmp / f"{device_id}.db"
        ledger = Ledger.create(
            path, device_id=device_id, village=self.village, rules=default_rules(), clock=clock
        )
        ledger.add_staff("S1", name="Staff", role="admin", pin=PIN)
        k = Kiosk(device_id, path, ledger, key, USERS[device_id], clock)
        self.kiosks.append(k)
        return k

    def close(self) -> None:
        super().close()
        for b in self.balancers:
            b.close()


@pytest.fixture
def world(tmp_path: Path, cluster: RabbitCluster) -> Iterator[ClusterWorld]:
    w = ClusterWorld(tmp_path, cluster)
    yield w
    w.close()
