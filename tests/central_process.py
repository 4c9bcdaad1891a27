"""A real `greenpass central` process (SQLite, admin and enrolment API) beside the test
broker, and the commands an operator or technician types against it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.mqtt_broker import Broker, free_port
from tests.sync.harness import wait_for

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Central:
    url: str
    env: dict[str, str]  # GREENPASS_CENTRAL_DB and _HOME set: `gp("central", …)` finds it
    db: Path
    admin: str  # the admin API's bearer token

    def gp(self, *args: str, stdin: str = "", ok: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "greenpass", *args], input=stdin, env=self.env,
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        if ok:
            assert r.returncode == 0, f"greenpass {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
        return r

    def token(self, device: str, village: str) -> str:
        return self.gp(
            "central", "enrol-token", "--device", device, "--village", village
        ).stdout.strip()


@contextlib.contextmanager
def running_central(folder: Path, broker: Broker, **env: str) -> Iterator[Central]:
    """Central on `broker` (whose `central` user's password is central-pw), HTTP on a free port."""
    home = folder / "central-home"
    home.mkdir(parents=True)
    (home / "central.password").write_text("central-pw\n")
    db = folder / "central.db"
    full_env = {
        **os.environ, "GREENPASS_CENTRAL_DB": str(db), "GREENPASS_CENTRAL_HOME": str(home), **env,
    }  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenpass", "central", "--broker", broker.url,
         "--ca", str(broker.ca_cert), "--broker-dir", str(broker.folder),
         "--http", f"127.0.0.1:{port}", "--debounce", "0.2"],
        env=full_env, cwd=ROOT, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("central's API", lambda: _up(url))
        yield Central(url, full_env, db, (home / "admin.token").read_text().strip())
    finally:
        proc.terminate()
        proc.wait(10)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False
