"""The soak's processes: central workers and kiosks, each a real `greenpass` process
that can be SIGKILLed and started again, and the depositors that keep each kiosk's
ledger growing meanwhile.

Each kiosk has two depositors. One is a villager at the kiosk's page: through the
kiosk's own HTTP API and simulator controls (scan a card, choose a category, place
the bag, see "confirmed", take it off), as `greenpass simulate scenario` drives it,
so the deposit is written by the kiosk process itself and a kiosk SIGKILL can land
in the middle of one. The other writes deposits (and new households) through the
ledger API on the kiosk's own ledger file from a thread of the test, while the kiosk
process runs on the same file: the kiosk's own two-writer arrangement (its page and
its uplink hold two connections, tests/edge/test_shared_file.py) and that of the
other sync soak (tests/sync/test_chaos.py). It gives the volume a page at walking
pace cannot; the two use different households, as the rules' cooldown is per
household and category.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from central.dynsec import device_password
from central.store import CentralStore
from devkit.mqtt_broker import Broker
from edge.ledger.ledger import Ledger
from greenpass.errors import Refused
from simulator.kiosk_home import HOUSEHOLDS, KioskHome, make_kiosk_home
from simulator.netproxy import NetProxy
from sync.config import SyncConfig
from sync.keys import load_private_key, public_bytes
from tests.kiosk.conftest import RunningKiosk, start_kiosk

ROOT = Path(__file__).resolve().parents[2]
VILLAGE = "V1"
CATEGORIES = ("paper", "cardboard", "plastic_pet", "metal", "aluminium", "glass", "textiles")


class CentralWorker:
    """`greenpass central --worker-id N` (no HTTP); SIGKILLed and started again at will.

    Like systemd's `Restart=always`, `supervise()` starts a worker that exited by
    itself and counts it in `exits` (the soak fails on any)."""

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
    deposits: int = 0  # by the ledger depositor
    page_deposits: int = 0  # confirmed on the kiosk's page
    page_interrupted: int = 0  # page deposits cut short (the kiosk was killed, or slow)
    refused: Counter[str] = field(default_factory=Counter)  # by the rules' reason code
    errors: list[str] = field(default_factory=list)
    passbooks: list[str] = field(default_factory=list)  # the ledger depositor's households

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
        """The depositor's thread: a deposit every ~`every_s`, a new household every 10.
        (Household, category) pairs are used in turn from a queue of at least 84, so
        none comes back within the rules' 20 s cooldown; daily caps are far off."""
        rng = random.Random(seed)
        pairs: deque[tuple[str, str]] = deque()
        with Ledger.open(self.db) as ledger:
            while not stop.wait(rng.uniform(0, 2 * every_s)):
                try:
                    if self.deposits % 10 == 0 or len(pairs) < 12 * len(CATEGORIES):
                        e = ledger.enrol(f"soak household {len(self.passbooks)}", staff_id="wang")
                        assert e.passbook_id is not None
                        self.passbooks.append(e.passbook_id)
                        pairs.extendleft((e.passbook_id, c) for c in CATEGORIES)
                    pb, category = pairs.popleft()
                    pairs.append((pb, category))
                    ledger.deposit(pb, category, rng.randint(400, 1500))
                    self.deposits += 1
                except Refused as exc:
                    self.refused[exc.code] += 1
                except Exception as exc:  # noqa: BLE001 - reported at the end, not lost
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.5)

    def deposit_by_page(self, stop: threading.Event, every_s: float, seed: int) -> None:
        """The page depositor's thread: the households on the kiosk's cards in turn,
        each category in turn, a deposit every ~`every_s` (plus the page's own pace)."""
        rng = random.Random(seed)
        cards = [c["payload"] for c in self.home.cards if c["label"].startswith("villager")]
        n = 0
        while not stop.wait(rng.uniform(0, 2 * every_s)):
            running = self.running
            if running is None:
                continue  # being restarted
            card = cards[n % len(cards)]
            category = CATEGORIES[(n // len(cards)) % len(CATEGORIES)]
            n += 1
            try:
                screen = _page_deposit(running.http, card, category, rng.randint(400, 1500))
            except (httpx.HTTPError, TimeoutError, RuntimeError):  # RuntimeError: the
                self.page_interrupted += 1  # client was closed, as its kiosk was killed
                continue
            except Exception as exc:  # noqa: BLE001 - reported at the end, not lost
                self.errors.append(f"page: {type(exc).__name__}: {exc}")
                continue
            if screen == "confirmed":
                self.page_deposits += 1
            else:
                self.refused[f"page: {screen}"] += 1


def _page_deposit(http: httpx.Client, card: str, category: str, grams: int) -> str:
    """One villager's deposit at the page; returns the screen it ended on."""

    def post(path: str, body: dict[str, object]) -> None:
        http.post(path, json=body).raise_for_status()

    def until(cond: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            view: dict[str, Any] = http.get("/api/view").raise_for_status().json()
            if cond(view):
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page stayed on {view.get('screen')}")
            time.sleep(0.1)

    if until(lambda v: True)["screen"] != "idle":  # the last villager is still on screen
        post("/api/cancel", {})
        until(lambda v: v["screen"] == "idle")
    post("/sim/scan", {"payload": card})
    until(lambda v: v["screen"] == "villager")
    post("/api/category", {"category": category})
    until(lambda v: v["hint"] == "place_bag")
    post("/sim/scale", {"action": "place", "grams": grams})
    screen = str(until(lambda v: v["screen"] in ("confirmed", "refused"))["screen"])
    post("/sim/scale", {"action": "remove"})
    return screen


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
    # Twelve households on cards, for the page depositor (the rules' caps are per
    # household and category and day); a result stays on screen 0.5 s, not 6.
    households = [*HOUSEHOLDS, *(f"page household {n}" for n in range(6))]
    home = make_kiosk_home(
        folder, device_id, VILLAGE, households=households, sync=sync,
        extra_kiosk_keys="result_s = 0.5",
    )  # fmt: skip
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
