"""A small world for sync tests: central (store + service) and kiosks (ledger +
uplink) around the real Mosquitto the `broker` fixture runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from central.service import CentralService
from central.store import CentralStore
from central.tlog import LogSettings
from devkit.mqtt_broker import Broker
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.record.rules import default_rules
from sync.keys import Ed25519PrivateKey, generate_key, public_bytes
from sync.transport import Backoff, BrokerConfig
from sync.uplink import Uplink
from tests.conftest import PIN

T0 = 1_764_000_000_000
DEFAULT_LOG = LogSettings()


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Kiosk:
    device_id: str
    path: Path
    ledger: Ledger  # the kiosk's own handle (the UI's)
    key: Ed25519PrivateKey
    password: str
    clock: FixedClock
    uplink: Uplink | None = None

    def start(
        self, world: World, *, url: str | None = None, keepalive_s: int = 30, **kw: object
    ) -> Uplink:
        self.uplink = Uplink(
            Ledger.open(self.path, self.clock),  # its own connection, as in the daemon
            self.key,
            world.broker_config(self.device_id, self.password, url=url, keepalive_s=keepalive_s),
            central_key=world.central_key.public_key(),
            backoff=Backoff(0.05, 0.5),
            poll_s=0.05,
            **kw,  # type: ignore[arg-type]
        )
        self.uplink.start()
        return self.uplink

    def stop(self) -> None:
        if self.uplink is not None:
            self.uplink.stop()
            self.uplink.ledger.close()
            self.uplink = None

    def synced(self) -> bool:
        b = self.ledger.outbox.backlog()
        return b.depth == 0


class World:
    def __init__(self, tmp: Path, broker: Broker, db_url: str, village: str = "V1") -> None:
        self.tmp = tmp
        self.broker = broker
        self.village = village
        self.store = CentralStore.open(db_url)
        self.store.create_village(village)
        self.central_key = generate_key()
        self.db_url = db_url
        self.services: list[CentralService] = []
        self.stores: list[CentralStore] = []
        self.kiosks: list[Kiosk] = []

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
            url=url or self.broker.url,
            username=user,
            password=password,
            client_id=client_id or f"gp-{user}",
            ca_cert=self.broker.ca_cert,
            keepalive_s=keepalive_s,
        )

    def start_central(
        self, worker: str = "1", debounce_s: float = 0.2, log: LogSettings = DEFAULT_LOG
    ) -> CentralService:
        """A central worker with its own database connection, as a separate process has."""
        store = CentralStore.open(self.db_url)
        self.stores.append(store)
        service = CentralService(
            store,
            self.broker_config("central", "central-pw", f"gp-central-{worker}"),
            self.central_key,
            debounce_s=debounce_s,
            min_interval_s=0.5,
            log=log,
        )
        service.receiver.tick_s = 0.05
        service.receiver.backoff = Backoff(0.05, 0.5)
        service.start()
        wait_for("central connected", service.receiver.connected.is_set)
        self.services.append(service)
        return service

    def kiosk(self, device_id: str) -> Kiosk:
        """Enrol a kiosk with central the way provisioning does, and make its ledger."""
        key = generate_key()
        token = self.store.create_enrol_token(device_id, self.village, T0, actor="test")
        enrolment = self.store.enrol(token, device_id, public_bytes(key), T0)
        self.broker.add_user(device_id, enrolment.mqtt_password)
        clock = FixedClock(T0)
        path = self.tmp / f"{device_id}.db"
        ledger = Ledger.create(
            path, device_id=device_id, village=self.village, rules=default_rules(), clock=clock
        )
        ledger.add_staff("S1", name="Staff", role="admin", pin=PIN)
        k = Kiosk(device_id, path, ledger, key, enrolment.mqtt_password, clock)
        self.kiosks.append(k)
        return k

    def close(self) -> None:
        for k in self.kiosks:
            k.stop()
            k.ledger.close()
        for service in self.services:
            service.stop()
        for store in [*self.stores, self.store]:
            store.close()
