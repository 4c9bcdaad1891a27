"""The whole path through the real commands, as an operator and a technician type
them: central with its HTTP API, a token, a kiosk ledger, `sync enrol` over HTTP
(the broker's password file rewritten and reloaded by central), `sync run`, and
the entries arriving — visible in `central devices` and the admin API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.mqtt_broker import Broker, free_port
from tests.sync.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]


def gp(*args: str, env: dict[str, str], stdin: str = "") -> str:
    r = subprocess.run(
        [sys.executable, "-m", "greenpass", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert r.returncode == 0, f"greenpass {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_operator_and_technician_commands_end_to_end(tmp_path: Path, broker: Broker) -> None:
    home = tmp_path / "central-home"
    home.mkdir()
    (home / "central.password").write_text("central-pw\n")  # the broker fixture's central user
    env = {
        **os.environ,
        "GREENPASS_CENTRAL_DB": str(tmp_path / "central.db"),
        "GREENPASS_CENTRAL_HOME": str(home),
        "GREENPASS_DB": str(tmp_path / "kiosk.db"),
    }
    port = free_port()
    central = subprocess.Popen(
        [sys.executable, "-m", "greenpass", "central", "--broker", broker.url,
         "--ca", str(broker.ca_cert), "--broker-dir", str(broker.folder),
         "--http", f"127.0.0.1:{port}", "--debounce", "0.2"],
        env=env, cwd=ROOT, stderr=subprocess.PIPE,
    )  # fmt: skip
    uplink = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for("central's API", lambda: _up(url))
        token = gp("central", "enrol-token", "--device", "KT", "--village", "V9", env=env).strip()
        gp("ledger", "init", "--device-id", "KT", "--village", "V9", env=env)
        gp("ledger", "staff-add", "--id", "wang", "--name", "Wang", "--role", "admin",
           env=env, stdin="2468\n")  # fmt: skip
        out = gp("sync", "enrol", "--central", url, "--token", token, "--out",
                 str(tmp_path / "kt"), env=env)  # fmt: skip
        assert "enrolled KT (village V9)" in out
        assert (tmp_path / "kt" / "mqtt.password").stat().st_mode & 0o777 == 0o600
        gp("ledger", "enrol", "--staff", "wang", "--household", "张家", env=env, stdin="2468\n")
        gp("ledger", "deposit", "--passbook", "KT-00001", "--category", "paper", "--grams", "2500",
           env=env)  # fmt: skip
        uplink = subprocess.Popen(
            [sys.executable, "-m", "greenpass", "sync", "run", "--config",
             str(tmp_path / "kt" / "sync.toml")],
            env=env, cwd=ROOT, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(
            "backlog drained",
            lambda: "backlog     0 entries" in gp("sync", "status", env=env),
            timeout=30,
        )
        devices = gp("central", "devices", env=env)
        assert "KT" in devices and "V9" in devices and "active" in devices
        admin = (home / "admin.token").read_text().strip()
        listed = httpx.get(f"{url}/api/v1/devices", headers={"Authorization": f"Bearer {admin}"})
        assert listed.status_code == 200
        (kt,) = [d for d in listed.json() if d["device_id"] == "KT"]
        assert kt["acked_seq"] == 2  # the enrolment and the deposit (adding staff is no entry)
        totals = httpx.get(
            f"{url}/api/v1/villages/V9/totals", headers={"Authorization": f"Bearer {admin}"}
        ).json()
        assert totals["grams_by_category"] == {"paper": 2500}
        # A used token is refused with one line naming the problem.
        again = subprocess.run(
            [sys.executable, "-m", "greenpass", "sync", "enrol", "--central", url, "--token",
             token, "--out", str(tmp_path / "kt2")],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert again.returncode == 2 and "used" in again.stderr
    finally:
        for proc in (uplink, central):
            if proc is not None:
                proc.terminate()
                proc.wait(10)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False
