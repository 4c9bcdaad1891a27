"""The running demo: `Demo` starts the broker, central and the kiosks, watches them, and
stops them in order; after a scripted day it checks central against the kiosks."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from simulator.demo_folder import (
    VILLAGE,
    DemoError,
    DemoInfo,
    KioskInfo,
    check_folder,
    fresh_folder,
    say,
)
from simulator.demo_procs import Child, Ports, gp, http_ok, listening, mosquitto_binary, wait_until
from simulator.demo_setup import central_data, kiosk_home, share_cards
from simulator.demo_totals import ledger_totals, ledger_value, sum_totals
from simulator.kiosk_home import STAFF_PIN, KioskHome
from sync.enrol import tls_verify

START_TIMEOUT_S = 30.0


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
        office = central_data(self.home, self.db, self.broker_dir, ports)
        self.broker = Child(
            "mosquitto", [mosquitto, "-c", str(self.broker_dir / "mosquitto.conf")],
            self.logs / "mosquitto.log",
        )  # fmt: skip
        wait_until("starting the broker", lambda: listening(ports.broker), self.broker, 10)
        broker_url = f"mqtts://127.0.0.1:{ports.broker}"
        say(f"  broker   {broker_url} (Mosquitto, TLS with the demo CA)")
        # HTTPS, as in production: central makes its development CA in central-home/http-tls
        # on start, and everything here that calls its API verifies it with that CA.
        central_url = f"https://127.0.0.1:{ports.central}"
        central_ca = self.home / "http-tls" / "ca.crt"
        self.central = Child(
            "central",
            gp("central", "--db", str(self.db), "--home", str(self.home),
               "--broker", broker_url, "--ca", str(self.broker_dir / "tls" / "ca.crt"),
               "--http", f"127.0.0.1:{ports.central}",
               "--debounce", "0.5", "--min-push-interval", "1"),
            self.logs / "central.log",
        )  # fmt: skip
        wait_until("starting central", lambda: http_ok(central_url + "/openapi.json", central_ca),
                   self.central, START_TIMEOUT_S)  # fmt: skip
        say(f"  central  {central_url} (SQLite {self.db.name}, admin API, enrolment; "
            f"HTTPS with the demo CA {central_ca.relative_to(self.folder)})")  # fmt: skip
        # The demo operator's API token (demo_setup): admin.token is retired by its account.
        admin_token = (self.home / "demo-operator.token").read_text(encoding="utf-8").strip()
        homes = [
            kiosk_home(self.folder, n, device, central_url, central_ca, admin_token, office, ports)
            for n, device in enumerate(self.device_ids, start=1)
        ]
        share_cards(homes)
        self.info = DemoInfo(
            folder=str(self.folder),
            village=VILLAGE,
            pid=os.getpid(),
            central=central_url,
            central_ca=str(central_ca),
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

    def _start_kiosk(self, home: KioskHome) -> KioskInfo:
        ready = home.folder / "ready.url"
        child = Child(
            home.device_id,
            gp("kiosk", "--config", str(home.config), "--ready-file", str(ready)),
            self.logs / f"{home.device_id}.log",
        )
        self.kiosks[home.device_id] = child
        wait_until(f"starting kiosk {home.device_id}", ready.exists, child, START_TIMEOUT_S)
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

        wait_until(f"waiting for {device} to connect to the broker", online, child, START_TIMEOUT_S)
        wait_until(f"waiting for central's state to reach {device}",
                   lambda: ledger_value(db, "SELECT version FROM central_state WHERE id = 1") > 0,
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
                verify=tls_verify(Path(info.central_ca)),
            )
            acked = {d["device_id"]: d["acked_seq"] for d in r.json()}
            return all(
                acked.get(name) == ledger_value(Path(k.folder) / "kiosk.db",
                                                "SELECT seq FROM chain_head WHERE id = 1")
                for name, k in info.kiosks.items()
            )  # fmt: skip

        wait_until(
            "waiting for central to hold every kiosk's entries", synced, self.central, timeout_s
        )

    def compare_totals(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Central's village totals (admin API) and the sum of every kiosk's own ledger."""
        assert self.info is not None
        info = self.info
        r = httpx.get(
            f"{info.central}/api/v1/villages/{VILLAGE}/totals",
            headers={"Authorization": f"Bearer {info.admin_token}"},
            timeout=5,
            verify=tls_verify(Path(info.central_ca)),
        )
        r.raise_for_status()
        central = {k: v for k, v in r.json().items() if k != "village_id"}
        kiosks = sum_totals(
            [ledger_totals(Path(k.folder) / "kiosk.db") for k in info.kiosks.values()]
        )
        return central, kiosks
