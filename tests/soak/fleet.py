"""The soak's processes: central workers and kiosks, each a real `greenpass` process
that can be SIGKILLed and started again, and the depositors that keep each kiosk's
ledger growing meanwhile.

Deposits are written through the ledger API on the kiosk's own ledger file, from a
thread of the test (one per kiosk), while the `greenpass kiosk` process — page and
uplink — runs on the same file: the two-writer arrangement of the kiosk itself (its
page and its uplink hold two connections, tests/edge/test_shared_file.py) and of the
other sync soak (tests/sync/test_chaos.py). So a kiosk SIGKILL hits the uplink in
the middle of sending, acking or applying state, and depositing never stops.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from central.dynsec import device_password
from central.store import CentralStore
from edge.ledger import Ledger
from greenpass.errors import Refused
from simulator.kiosk_home import KioskHome, make_kiosk_home
from simulator.netproxy import NetProxy
from sync.config import SyncConfig
from sync.keys import load_private_key, public_bytes
from tests.kiosk.conftest import RunningKiosk, start_kiosk
from tests.mqtt_broker import Broker

ROOT = Path(__file__).resolve().parents[2]
VILLAGE = "V1"
CATEGORIES = ("paper", "cardboard", "plastic_pet", "metal", "aluminium", "glass", "textiles")


class CentralWorker:
    """`greenpass central --worker-id N` (no HTTP); SIGKILLed and started again at will.

    Like systemd's `Restart=always`, `supervise()` starts a worker that exited by
    itself (e.g. it found the database down at start) and counts it in `exits`."""

    def __init__(self, worker_id: str, db_url: str, home: Path, broker: Broker, log: Path) -> None:
        self.worker_id = worker_id
        self.log = log
        self.cmd = [
            sys.executable, "-m", "greenpass", "central", "--db", db_url, "--home", str(home),
            "--broker", broker.url, "--ca", str(broker.ca_cert), "--worker-id", worker_id,
            "--debounce", "0.2", "--min-push-interval", "1",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []
        self.lock = threading.Lock()  # held by a fault between its kill and its start

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def supervise(self) -> None:
        if not self.lock.acquire(blocking=False):
            return  # a fault is killing it, and will start it
        try:
            if self.proc is not None and (rc := self.proc.poll()) is not None:
                self.exits.append(rc)
                self.start()
        finally:
            self.lock.release()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class SoakKiosk:
    """One kiosk: its folder, its process, the proxy its uplink goes through, and what
    its depositor did."""

    home: KioskHome
    proxy: NetProxy
    log: Path
    running: RunningKiosk | None = None
    deposits: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by the rules' reason code
    errors: list[str] = field(default_factory=list)
    passbooks: list[str] = field(default_factory=list)

    @property
    def device_id(self) -> str:
        return self.home.device_id

    @property
    def db(self) -> Path:
        return self.home.folder / "kiosk.db"

    def start(self) -> None:
        self.running = start_kiosk(self.home, self.log)

    def kill(self) -> None:
        if self.running is not None:
            self.running.http.close()
            self.running.proc.send_signal(signal.SIGKILL)
            self.running.proc.wait(10)
            self.running = None

    def stop(self) -> None:
        if self.running is not None:
            self.running.http.close()
            self.running.proc.terminate()
            try:
                self.running.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.running.proc.kill()
                self.running.proc.wait()
            self.running = None

    def deposit_until(self, stop: threading.Event, every_s: float, seed: int) -> None:
        """The depositor's thread: a deposit every ~`every_s`, a new household every 10,
        each household's categories in turn (the rules' 20 s cooldown and daily caps are
        per household and category, and the soak runs on today's clock)."""
        rng = random.Random(seed)
        n = 0
        with Ledger.open(self.db) as ledger:
            self.passbooks = [v.passbook_id for v in ledger.villagers()]
            while not stop.wait(rng.uniform(0, 2 * every_s)):
                try:
                    if n % 10 == 9:
                        e = ledger.enrol(f"soak household {len(self.passbooks)}", staff_id="wang")
                        assert e.passbook_id is not None
                        self.passbooks.append(e.passbook_id)
                    pb = self.passbooks[n % len(self.passbooks)]
                    category = CATEGORIES[(n // len(self.passbooks)) % len(CATEGORIES)]
                    n += 1
                    ledger.deposit(pb, category, rng.randint(200, 1500))
                    self.deposits += 1
                except Refused as exc:
                    self.refused[exc.code] += 1
                except Exception as exc:  # noqa: BLE001 - reported at the end, not lost
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.5)


def enrol_kiosk(
    store: CentralStore,
    folder: Path,
    device_id: str,
    broker: Broker,
    central_public_key: bytes,
    secret: bytes,
) -> SoakKiosk:
    """A kiosk folder whose uplink goes to the broker through a proxy of its own,
    enrolled with central as provisioning does (token, key, derived MQTT password);
    central's broker sync gives the broker its login."""
    proxy = NetProxy("127.0.0.1", broker.port).start()
    sync = SyncConfig(
        broker_url=f"mqtts://127.0.0.1:{proxy.port}",
        password_file=folder / "mqtt.password",
        ca_cert=broker.ca_cert,
        key_file=folder / "device.key",
        central_public_key=central_public_key,
        ack_timeout_s=3.0,
        status_every_s=5.0,
    )
    home = make_kiosk_home(folder, device_id, VILLAGE, sync=sync)
    key = load_private_key(folder / "device.key")
    now = time.time_ns() // 1_000_000
    token = store.create_enrol_token(device_id, VILLAGE, now, actor="soak")
    enrolment = store.enrol(
        token, device_id, public_bytes(key), now,
        mqtt_password=lambda d, k: device_password(secret, d, k),
    )  # fmt: skip
    (folder / "mqtt.password").write_text(enrolment.mqtt_password + "\n", encoding="utf-8")
    (folder / "mqtt.password").chmod(0o600)
    return SoakKiosk(home, proxy, folder / "kiosk.log")
