"""`greenpass demo`: central, a broker and simulated kiosks on one machine, in one command.

What it builds, afresh each time, in the demo folder (default `demo-data/`)::

    central.db         central's SQLite database: village dongcun, its rules and
                       goods, the village office's card-signing key (an issuer)
    central-home/      central.key, central.password, admin.token, office-dongcun.key
    broker/            Mosquitto's folder from `central.broker` (TLS with a dev CA,
                       passwd, ACL), exactly what `greenpass central broker-config` writes
    kiosks/K0001/ …    each kiosk: ledger, kiosk.toml, device key, MQTT password, CA
    logs/              mosquitto.log, central.log, K0001.log …
    demo.json          the URLs (`greenpass simulate scenario --demo-dir` reads it)

Then it starts Mosquitto and `greenpass central`, enrols every kiosk through
central's real HTTP enrolment API (`sync.enrol`), starts `greenpass kiosk` for
each, waits until each is online and holds central's state, and prints the URLs.
Children run in their own sessions so Ctrl-C reaches only this process, which
stops them in order: kiosks (they publish "offline"), central, broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from central.broker import BrokerUser, mosquitto_password_hash, write_broker_config
from central.store import CentralStore
from edge.rules import default_rules
from greenpass.errors import GreenPassError
from simulator import scenario
from simulator.kiosk_home import GOODS, STAFF_PIN, Issuer, KioskHome, make_kiosk_home
from sync.enrol import enrol, save_credentials
from sync.keys import load_or_create_key, public_bytes

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_SCENARIO = Path(__file__).parent / "scenarios" / "village-day.toml"
VILLAGE = "dongcun"
OFFICE_KEY_ID = "dongcun-office"
MARKER = ".greenpass-demo"
KIOSK_PORT_OFFSET = 10  # kiosk N serves on base + 10 + N
START_TIMEOUT_S = 30.0
PASSBOOKS_PER_KIOSK = 3
# Each kiosk enrols its own households (K0001: 张 李 王, K0002: 赵 陈 刘 …), so a card's
# label ("villager 张家 …") names one villager however many kiosks run.
SURNAMES = [f"{s}家" for s in "张李王赵陈刘杨黄吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩"]


class DemoError(GreenPassError):
    """The demo could not be set up or one of its processes failed."""


def say(text: str) -> None:
    print(text, flush=True)


# --- ports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    central: int
    broker: int
    kiosks: tuple[int, ...]

    @classmethod
    def choose(cls, base: int, kiosks: int) -> Ports:
        """`base` (central), `base + 1` (broker), `base + 10 + N` (kiosk N); 0: free ports."""
        if base == 0:
            return cls(_free_port(), _free_port(), tuple(_free_port() for _ in range(kiosks)))
        ports = cls(
            base, base + 1, tuple(base + KIOSK_PORT_OFFSET + n for n in range(1, kiosks + 1))
        )
        for port in (ports.central, ports.broker, *ports.kiosks):
            if not 1 <= port <= 65535:
                raise DemoError(f"port {port} is out of range: give a lower --base-port")
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            except OSError as exc:
                raise DemoError(
                    f"port {port} on 127.0.0.1 is in use ({exc.strerror}): stop what uses it, "
                    "or give another --base-port (0: any free ports)"
                ) from exc
        return ports


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- child processes ----------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the demo process dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """One process of the demo, its output in `log`."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops us in order
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout_s`; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _gp(*args: str) -> list[str]:
    return [sys.executable, "-m", "greenpass", *args]


def _wait(what: str, ok: Callable[[], bool], child: Child | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if child is not None and not child.alive():
            raise DemoError(
                f"{child.name} exited with {child.proc.returncode} while {what}; "
                f"the end of {child.log}:\n{child.tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"; the end of {child.log}:\n{child.tail()}" if child else ""
            raise DemoError(f"timed out after {timeout_s:g} s {what}{tail}")
        time.sleep(0.1)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    if found is None:
        raise DemoError(
            "mosquitto is not installed: run scripts/bootstrap (Debian: apt-get install mosquitto)"
        )
    return found


# --- what the demo writes down ------------------------------------------------------------


@dataclass
class KioskInfo:
    url: str
    control: str
    folder: str
    log: str


@dataclass
class DemoInfo:
    """`demo.json`: where everything is; the scenario runner reads `kiosks` from it."""

    folder: str
    village: str
    pid: int
    central: str
    docs: str
    admin_token: str
    broker: str
    staff_pin: str
    kiosks: dict[str, KioskInfo] = field(default_factory=dict)

    def write(self) -> None:
        path = Path(self.folder) / "demo.json"
        path.write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n", "utf-8")


def load_demo_info(folder: Path) -> DemoInfo:
    path = folder / "demo.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kiosks = {name: KioskInfo(**k) for name, k in data.pop("kiosks").items()}
        return DemoInfo(**data, kiosks=kiosks)
    except OSError as exc:
        raise DemoError(f"{path}: no demo there ({exc.strerror}); start `make demo`") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DemoError(f"{path}: not a demo.json this version understands ({exc})") from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_folder(folder: Path) -> None:
    """Refuse a folder with files a demo did not make, or whose demo still runs."""
    if not folder.exists():
        return
    pid = 0
    if (folder / "demo.json").exists():
        with contextlib.suppress(DemoError):
            pid = load_demo_info(folder).pid
    if pid and pid != os.getpid() and _pid_alive(pid):
        raise DemoError(
            f"a demo is already running in {folder} (pid {pid}): stop it first "
            "(Ctrl-C in its terminal), or give another --dir"
        )
    entries = list(folder.iterdir())
    # The one-kiosk demo this replaces left only kiosk-*.db files here.
    ours = (folder / MARKER).exists() or all(p.name.startswith("kiosk-") for p in entries)
    if entries and not ours:
        raise DemoError(
            f"{folder} holds files the demo did not make; give another --dir (the demo "
            "deletes and recreates its folder)"
        )


def fresh_folder(folder: Path) -> None:
    """Empty `folder` for a new demo: only a folder a demo made (or an empty one)."""
    check_folder(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by `greenpass demo`; the next demo recreates it\n", "utf-8")


def _secret_file(path: Path) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        value = secrets.token_urlsafe(24)
        f.write(value + "\n")
    return value


# --- the demo -----------------------------------------------------------------------------


class Demo:
    """Builds the demo folder, runs its processes, stops them in order."""

    def __init__(self, folder: Path, *, kiosks: int = 2, base_port: int = 8700) -> None:
        if not 1 <= kiosks <= 9:
            raise DemoError("--kiosks must be 1 to 9")
        self.folder = folder.resolve()
        self.n_kiosks = kiosks
        self.base_port = base_port
        self.home = self.folder / "central-home"
        self.logs = self.folder / "logs"
        self.broker_dir = self.folder / "broker"
        self.db = self.folder / "central.db"
        self.kiosks: dict[str, Child] = {}
        self.central: Child | None = None
        self.broker: Child | None = None
        self.info: DemoInfo | None = None

    @property
    def device_ids(self) -> list[str]:
        return [f"K{n:04d}" for n in range(1, self.n_kiosks + 1)]

    def children(self) -> list[Child]:
        """Every started process, in the order they are stopped."""
        return [
            *self.kiosks.values(),
            *(c for c in (self.central, self.broker) if c is not None),
        ]

    # --- start ------------------------------------------------------------------------

    def start(self) -> DemoInfo:
        """Everything, up to kiosks online with central's state; stops all on failure."""
        try:
            return self._start()
        except BaseException:
            self.stop(quiet=True)
            raise

    def _start(self) -> DemoInfo:
        mosquitto = mosquitto_binary()
        check_folder(self.folder)  # before the ports: "already running" says more
        ports = Ports.choose(self.base_port, self.n_kiosks)
        fresh_folder(self.folder)
        # At once, so another `greenpass demo` sees this one running (and keeps off).
        DemoInfo(str(self.folder), VILLAGE, os.getpid(), "", "", "", "", STAFF_PIN).write()
        self.logs.mkdir()
        self.home.mkdir(mode=0o700)
        say(f"Green Passbook demo in {self.folder}")
        office = self._central_data(ports)
        self.broker = Child(
            "mosquitto", [mosquitto, "-c", str(self.broker_dir / "mosquitto.conf")],
            self.logs / "mosquitto.log",
        )  # fmt: skip
        _wait("starting the broker", lambda: _listening(ports.broker), self.broker, 10)
        broker_url = f"mqtts://127.0.0.1:{ports.broker}"
        say(f"  broker   {broker_url} (Mosquitto, TLS with the demo CA)")
        central_url = f"http://127.0.0.1:{ports.central}"
        self.central = Child(
            "central",
            _gp("central", "--db", str(self.db), "--home", str(self.home),
                "--broker", broker_url, "--ca", str(self.broker_dir / "tls" / "ca.crt"),
                "--broker-dir", str(self.broker_dir), "--http", f"127.0.0.1:{ports.central}",
                "--debounce", "0.5", "--min-push-interval", "1"),
            self.logs / "central.log",
        )  # fmt: skip
        _wait("starting central", lambda: _http_ok(central_url + "/openapi.json"),
              self.central, START_TIMEOUT_S)  # fmt: skip
        say(f"  central  {central_url} (SQLite {self.db.name}, admin API, enrolment)")
        admin_token = (self.home / "admin.token").read_text(encoding="utf-8").strip()
        homes = [
            self._kiosk_home(n, device, central_url, admin_token, office, ports)
            for n, device in enumerate(self.device_ids, start=1)
        ]
        _share_cards(homes)
        self.info = DemoInfo(
            folder=str(self.folder),
            village=VILLAGE,
            pid=os.getpid(),
            central=central_url,
            docs=central_url + "/docs",
            admin_token=admin_token,
            broker=broker_url,
            staff_pin=STAFF_PIN,
        )
        for home in homes:
            self.info.kiosks[home.device_id] = self._start_kiosk(home)
        self.info.write()
        for device in self.device_ids:
            self._wait_online(device)
        return self.info

    def _central_data(self, ports: Ports) -> Issuer:
        """Central's database and secrets, the village, and the broker folder."""
        central_pw = _secret_file(self.home / "central.password")
        _secret_file(self.home / "admin.token")
        office = load_or_create_key(self.home / f"office-{VILLAGE}.key")
        rules = default_rules()
        now = time.time_ns() // 1_000_000
        with CentralStore.open(self.db, now_ms=now) as store:
            store.create_village(VILLAGE)
            store.set_rules(VILLAGE, rules.text, now_ms=now)
            for item_id, zh, en, price, _stock in GOODS:
                store.put_item(VILLAGE, item_id, name_zh=zh, name_en=en, points_price=price)
            store.add_issuer_key(OFFICE_KEY_ID, VILLAGE, public_bytes(office), now_ms=now)
            users: list[BrokerUser] = store.broker_users(mosquitto_password_hash(central_pw))
        # As `greenpass central broker-config` does, plus: started as root, Mosquitto
        # would switch to the `mosquitto` account and could not read this folder.
        write_broker_config(
            self.broker_dir,
            port=ports.broker,
            users=users,
            hostnames=["localhost"],
            bind="127.0.0.1",
            run_as="root" if os.geteuid() == 0 else None,
        )
        say(
            f"  village  {VILLAGE}: rules {rules.version}, {len(GOODS)} goods, "
            f"cards signed by the office key '{OFFICE_KEY_ID}'"
        )
        return Issuer(OFFICE_KEY_ID, office)

    def _kiosk_home(
        self, n: int, device: str, central_url: str, admin_token: str, office: Issuer, ports: Ports
    ) -> KioskHome:
        """Enrol `device` through central's HTTP API, then build its folder around it."""
        folder = self.folder / "kiosks" / device
        folder.mkdir(parents=True)
        key = load_or_create_key(folder / "device.key")  # made on the device; never leaves it
        r = httpx.post(
            central_url + "/api/v1/enrol-tokens",
            json={"device_id": device, "village_id": VILLAGE, "ttl_hours": 1},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=10,
        )
        if r.status_code != 201:
            raise DemoError(f"central refused an enrolment token for {device}: {r.text}")
        creds = enrol(central_url, r.json()["token"], device, public_bytes(key))
        if creds.village_id != VILLAGE:
            raise DemoError(f"central enrolled {device} for {creds.village_id!r}, not {VILLAGE}")
        # Quicker status and resend than a village kiosk's, for a lively demo.
        sync = replace(
            save_credentials(folder, creds, folder / "device.key"),
            ack_timeout_s=10.0,
            status_every_s=10.0,
        )
        first = (n - 1) * PASSBOOKS_PER_KIOSK
        households = SURNAMES[first : first + PASSBOOKS_PER_KIOSK]
        home = make_kiosk_home(
            folder,
            device,
            VILLAGE,
            ui_port=ports.kiosks[n - 1],
            households=households,
            passbook_prefix=f"DC{n}",
            sync=sync,
            issuer=office,
        )
        passbooks = ", ".join(
            c["label"].removeprefix("villager ") for c in home.cards if c["label"].startswith("vil")
        )
        say(f"  {device}    enrolled with central (MQTT user {creds.mqtt_username}); {passbooks}")
        return home

    def _start_kiosk(self, home: KioskHome) -> KioskInfo:
        ready = home.folder / "ready.url"
        child = Child(
            home.device_id,
            _gp("kiosk", "--config", str(home.config), "--ready-file", str(ready)),
            self.logs / f"{home.device_id}.log",
        )
        self.kiosks[home.device_id] = child
        _wait(f"starting kiosk {home.device_id}", ready.exists, child, START_TIMEOUT_S)
        url = ready.read_text(encoding="utf-8").strip()
        return KioskInfo(url=url, control=url.rstrip("/") + "/sim", folder=str(home.folder),
                         log=str(child.log))  # fmt: skip

    def _wait_online(self, device: str) -> None:
        """Until the kiosk's view says online and its ledger holds a state from central."""
        assert self.info is not None
        k = self.info.kiosks[device]
        child = self.kiosks[device]
        db = Path(k.folder) / "kiosk.db"

        def online() -> bool:
            try:
                view = httpx.get(k.url.rstrip("/") + "/api/view", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return False
            return bool(view.get("status", {}).get("online"))

        _wait(f"waiting for {device} to connect to the broker", online, child, START_TIMEOUT_S)
        _wait(f"waiting for central's state to reach {device}",
              lambda: _ledger_value(db, "SELECT version FROM central_state WHERE id = 1") > 0,
              child, START_TIMEOUT_S)  # fmt: skip
        say(f"  {device}    online, central's state applied")

    # --- after the start --------------------------------------------------------------

    def watch(self, stop: threading.Event) -> int:
        """Until `stop` is set (Ctrl-C) or a process dies: 0, or 1 when one died."""
        while not stop.wait(1.0):
            for child in self.children():
                if not child.alive():
                    say(
                        f"\n{child.name} stopped by itself (exit {child.proc.returncode}); "
                        f"the end of {child.log}:\n{child.tail()}"
                    )
                    return 1
        return 0

    def stop(self, *, quiet: bool = False) -> None:
        """Kiosks first (their uplinks say "offline"), then central, then the broker."""
        for child in self.children():
            code = child.stop()
            if not quiet:
                # A kiosk (uvicorn) re-raises SIGTERM once it has shut down cleanly.
                clean = code in (0, -signal.SIGTERM)
                say(f"  stopped {child.name}" + ("" if clean else f" (exit {code})"))
        self.kiosks.clear()
        self.central = self.broker = None

    def wait_synced(self, timeout_s: float = 60.0) -> None:
        """Until central holds every entry of every kiosk (its acked_seq = the kiosk's head)."""
        assert self.info is not None
        info = self.info

        def synced() -> bool:
            r = httpx.get(
                info.central + "/api/v1/devices",
                headers={"Authorization": f"Bearer {info.admin_token}"},
                timeout=5,
            )
            acked = {d["device_id"]: d["acked_seq"] for d in r.json()}
            return all(
                acked.get(name) == _ledger_value(Path(k.folder) / "kiosk.db",
                                                 "SELECT seq FROM chain_head WHERE id = 1")
                for name, k in info.kiosks.items()
            )  # fmt: skip

        _wait("waiting for central to hold every kiosk's entries", synced, self.central, timeout_s)

    def compare_totals(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Central's village totals (admin API) and the sum of every kiosk's own ledger."""
        assert self.info is not None
        info = self.info
        r = httpx.get(
            f"{info.central}/api/v1/villages/{VILLAGE}/totals",
            headers={"Authorization": f"Bearer {info.admin_token}"},
            timeout=5,
        )
        r.raise_for_status()
        central = {k: v for k, v in r.json().items() if k != "village_id"}
        kiosks = sum_totals(
            [ledger_totals(Path(k.folder) / "kiosk.db") for k in info.kiosks.values()]
        )
        return central, kiosks


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _ledger_value(db: Path, sql: str) -> int:
    """One number from a kiosk's ledger, read-only (the kiosk keeps writing it)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            row = c.execute(sql).fetchone()
    except sqlite3.Error:
        return -1
    return int(row[0]) if row and row[0] is not None else 0


def _share_cards(homes: Sequence[KioskHome]) -> None:
    """Every kiosk's control page lists every card of the village (all signed by the
    office key), so a villager enrolled at one kiosk can be scanned at another."""
    cards: dict[str, dict[str, str]] = {}
    for home in homes:
        for card in home.cards:
            label = card["label"]
            if label.startswith("villager"):
                label = f"{label} ({home.device_id})"
            cards.setdefault(card["payload"], {"label": label, "payload": card["payload"]})
    text = json.dumps(list(cards.values()), ensure_ascii=False, indent=1)
    for home in homes:
        (home.folder / "cards.json").write_text(text, encoding="utf-8")


# --- totals, as central computes them (central.reports.village_totals) --------------------


def ledger_totals(db: Path) -> dict[str, Any]:
    """A kiosk ledger's totals, net of reversals, in the shape of central's totals."""
    sql = (
        "SELECT e.kind, t.kind, e.category, COUNT(*), COALESCE(SUM(e.grams), 0), "
        "COALESCE(SUM(e.points), 0), COALESCE(SUM(e.co2e_g), 0) FROM entries e "
        "LEFT JOIN entries t ON t.seq = e.ref_seq GROUP BY e.kind, t.kind, e.category"
    )
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        rows = c.execute(sql).fetchall()
    grams: dict[str, int] = defaultdict(int)
    deposits = issued = redeemed = co2e = 0
    for own_kind, target_kind, category, n, g, points, co2 in rows:
        kind, sign = (target_kind, -1) if own_kind == "reversal" else (own_kind, 1)
        if kind == "deposit":
            deposits += sign * n
            issued += points
            co2e += co2
            if category is not None:
                grams[category] += g
        elif kind == "award":
            issued += points
        elif kind == "redeem":
            redeemed -= points
    return {
        "grams_by_category": dict(sorted(grams.items())),
        "deposits": deposits,
        "points_issued": issued,
        "points_redeemed": redeemed,
        "co2e_g": co2e,
    }


def sum_totals(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {
        "grams_by_category": {},
        "deposits": 0,
        "points_issued": 0,
        "points_redeemed": 0,
        "co2e_g": 0,
    }
    grams: dict[str, int] = defaultdict(int)
    for part in parts:
        for cat, g in part["grams_by_category"].items():
            grams[cat] += g
        for key in ("deposits", "points_issued", "points_redeemed", "co2e_g"):
            total[key] += part[key]
    total["grams_by_category"] = dict(sorted(grams.items()))
    return total


# --- the command --------------------------------------------------------------------------


def print_urls(info: DemoInfo, *, no_wait: bool = False) -> None:
    lines = ["", "The demo is running. Open:"]
    for name, k in info.kiosks.items():
        lines.append(f"  {name} kiosk page      {k.url}")
        lines.append(f"  {name} control page    {k.control}   (the bag, the cards, the network)")
    lines += [
        f"  central admin API     {info.docs}",
        f"      admin token       {info.admin_token}   (Authorize → Bearer)",
        f"  staff PIN             {info.staff_pin}   (scan a staff card on the control page)",
        f"  a scripted day:       greenpass simulate scenario {BUILTIN_SCENARIO.relative_to(ROOT)}"
        f" --demo-dir {_shown(Path(info.folder))}",
        f"  logs                  {_shown(Path(info.folder) / 'logs')}/",
        "Running the built-in scenario, then stopping."
        if no_wait
        else "Stop everything with Ctrl-C.",
    ]
    say("\n".join(lines))


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def run_demo(folder: Path, *, kiosks: int, base_port: int, no_wait: bool) -> int:
    """`greenpass demo`: start, print, wait for Ctrl-C (or run the scenario), stop."""
    if no_wait and kiosks < 2:
        raise DemoError("--no-wait runs the built-in scenario, which needs --kiosks 2 or more")
    stop = threading.Event()
    watching = False

    def on_signal(_sig: int, _frame: object) -> None:
        # While starting or scripting: stop at once (the `finally` below cleans up).
        if not watching:
            raise KeyboardInterrupt
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    demo = Demo(folder, kiosks=kiosks, base_port=base_port)
    try:
        info = demo.start()
        print_urls(info, no_wait=no_wait)
        if no_wait:
            code = _run_builtin(demo, info)
        else:
            watching = True
            code = demo.watch(stop)
    finally:
        if demo.children():
            say("\nStopping: kiosks, central, broker")
            demo.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    return code


def _run_builtin(demo: Demo, info: DemoInfo) -> int:

    sc = scenario.load(BUILTIN_SCENARIO)
    say(f"\nScenario '{sc.name}' ({BUILTIN_SCENARIO.name})")
    try:
        took = scenario.run(sc, {name: k.url for name, k in info.kiosks.items()})
    except scenario.StepFailed as exc:
        say(f"FAILED {exc}")
        return 1
    say(f"scenario passed: {len(sc.steps)} steps in {took:.1f} s")
    demo.wait_synced()
    central, kiosks = demo.compare_totals()
    if central != kiosks:
        say(f"FAILED: central's totals {central}\n  differ from the kiosks' ledgers {kiosks}")
        return 1
    kg = sum(central["grams_by_category"].values()) / 1000
    say(
        f"central holds every entry; its totals match the kiosks' ledgers: "
        f"{central['deposits']} deposits, {kg:.2f} kg, {central['points_issued']} points "
        f"issued, {central['points_redeemed']} redeemed, "
        f"{central['co2e_g'] / 1000:.2f} kg CO2e avoided"
    )
    return 0
