"""The whole path through the real commands, as an operator and a technician type
them: central with its HTTP API, a token, a kiosk ledger, `sync enrol` over HTTP
(the broker's password file rewritten and reloaded by central), `sync run`, and
the entries arriving — visible in `central devices` and the admin API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from devkit.mqtt_broker import Broker
from tests.central_process import ROOT, running_central
from tests.sync.harness import wait_for


def test_operator_and_technician_commands_end_to_end(tmp_path: Path, broker: Broker) -> None:
    with running_central(tmp_path, broker, GREENPASS_DB=str(tmp_path / "kiosk.db")) as c:
        url, env = c.url, c.env

        def gp(*args: str, stdin: str = "") -> str:
            return c.gp(*args, stdin=stdin).stdout

        token = c.token("KT", "V9")
        gp("ledger", "init", "--device-id", "KT", "--village", "V9")
        gp("ledger", "staff-add", "--id", "wang", "--name", "Wang", "--role", "admin",
           stdin="2468\n")  # fmt: skip
        out = gp("sync", "enrol", "--central", url, "--central-ca", str(c.ca), "--token", token,
                 "--out", str(tmp_path / "kt"))  # fmt: skip
        assert "enrolled KT (village V9)" in out
        assert (tmp_path / "kt" / "mqtt.password").stat().st_mode & 0o777 == 0o600
        gp("ledger", "enrol", "--staff", "wang", "--household", "张家", stdin="2468\n")
        gp("ledger", "deposit", "--passbook", "KT-00001", "--category", "paper", "--grams", "2500")
        uplink = subprocess.Popen(
            [sys.executable, "-m", "greenpass", "sync", "run", "--config",
             str(tmp_path / "kt" / "sync.toml")],
            env=env, cwd=ROOT, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for(
                "backlog drained",
                lambda: "backlog     0 entries" in gp("sync", "status"),
                timeout=30,
            )
            devices = gp("central", "devices")
            assert "KT" in devices and "V9" in devices and "active" in devices
            auth = {"Authorization": f"Bearer {c.admin}"}
            listed = httpx.get(f"{url}/api/v1/devices", headers=auth, verify=c.verify)
            assert listed.status_code == 200
            (kt,) = [d for d in listed.json() if d["device_id"] == "KT"]
            assert kt["acked_seq"] == 2  # the enrolment and the deposit (adding staff is no entry)
            totals = httpx.get(
                f"{url}/api/v1/villages/V9/totals", headers=auth, verify=c.verify
            ).json()
            assert totals["grams_by_category"] == {"paper": 2500}
            # A used token is refused with one line naming the problem.
            again = c.gp(
                "sync", "enrol", "--central", url, "--central-ca", str(c.ca), "--token", token,
                "--out", str(tmp_path / "kt2"), ok=False,
            )  # fmt: skip
            assert again.returncode == 2 and "used" in again.stderr
        finally:
            uplink.terminate()
            uplink.wait(10)
