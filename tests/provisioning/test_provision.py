"""From a bare folder to a working kiosk, by the technician's commands, against a real
central and Mosquitto: provision (key, enrolment, ledger, config), calibrate the
simulated scale, check the hardware, make a first deposit that arrives centrally.
Token misuse and a revoked device are refused with clear words."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from central.store import CentralStore
from devkit.mqtt_broker import Broker
from edge.kiosk.cards import make_card
from greenpass.errors import ConfigError
from provisioning import provision as prov
from provisioning.calibrate import detect_scale
from provisioning.provision import ProvisionRequest, parse_qr
from simulator.kiosk_home import KioskHome, make_kiosk_home
from simulator.scale import SimulatedScale
from simulator.serial_scanner import SimulatedSerialScanner
from sync.keys import load_private_key
from tests.central_process import Central, running_central
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk
from tests.ports import wait_opened
from tests.sync.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def central(tmp_path: Path, broker: Broker) -> Iterator[Central]:
    with running_central(tmp_path, broker) as c:
        yield c


def provision(
    c: Central,
    folder: Path,
    token: str,
    *,
    device: str = "K9",
    village: str = "V9",
    ok: bool = True,
) -> subprocess.CompletedProcess[str]:
    return c.gp(
        "provision", "--device-id", device, "--village", village, "--central", c.url,
        "--central-ca", str(c.ca), "--token", token, "--config-dir", str(folder),
        "--db", str(folder / "kiosk.db"), "--backend", "sim", "--ui-port", "0", ok=ok,
    )  # fmt: skip


def test_bare_folder_to_first_deposit_at_central(tmp_path: Path, central: Central) -> None:
    folder = tmp_path / "k9"
    out = provision(central, folder, central.token("K9", "V9")).stdout
    assert "provisioned K9 for village V9" in out
    assert (folder / "device.key").stat().st_mode & 0o777 == 0o600
    assert (folder / "mqtt.password").stat().st_mode & 0o777 == 0o600
    config = folder / "kiosk.toml"
    assert "[sync]" in config.read_text()

    cal = central.gp(
        "calibrate", "--config", str(config), "--known-mass", "5000", "--check-mass", "2000"
    )
    assert "calibrated and saved in the scale's firmware" in cal.stdout
    assert "check: 2000 g read as" in cal.stdout and "PASS" in cal.stdout

    env_db = {**central.env, "GREENPASS_DB": str(folder / "kiosk.db")}
    for args, stdin in (
        (("ledger", "staff-add", "--id", "li", "--name", "Li", "--role", "admin"), "2468\n"),
        (
            ("ledger", "enrol", "--staff", "li", "--household", "张家", "--passbook", "K9-0001"),
            "2468\n",
        ),
    ):
        r = subprocess.run([sys.executable, "-m", "greenpass", *args], input=stdin, env=env_db,
                           capture_output=True, text=True, check=False, cwd=ROOT)  # fmt: skip
        assert r.returncode == 0, r.stderr
    card = make_card(
        "passbook", "V9", "K9-0001", key_id="K9", key=load_private_key(folder / "device.key")
    )

    home = KioskHome(folder, config, "K9", "V9", [])
    k: RunningKiosk = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        k.wait_view("online", lambda v: v["status"]["online"] is True, timeout=30)
        k.sim("scan", payload=card)
        k.wait_view("villager", lambda v: v["screen"] == "villager")
        k.post("/api/category", {"category": "paper"})
        k.wait_view("empty", lambda v: v["hint"] == "place_bag")
        k.sim("scale", action="place", grams=2500)
        k.wait_view("confirmed", lambda v: v["screen"] == "confirmed")
        auth = {"Authorization": f"Bearer {central.admin}"}

        def arrived() -> bool:
            totals = httpx.get(
                f"{central.url}/api/v1/villages/V9/totals", headers=auth, verify=central.verify
            ).json()
            return totals.get("grams_by_category") == {"paper": 2500}

        wait_for("the deposit at central", arrived, timeout=30)
    finally:
        stop_kiosk(k)


def test_token_misuse_is_refused(tmp_path: Path, central: Central) -> None:
    token = central.token("K9", "V9")
    provision(central, tmp_path / "a", token)
    again = provision(central, tmp_path / "b", token, ok=False)
    assert again.returncode == 2 and "used" in again.stderr
    assert not (tmp_path / "b" / "kiosk.toml").exists()

    other = provision(
        central, tmp_path / "c", central.token("K8", "V8"), device="K8", village="V9", ok=False
    )
    assert other.returncode == 2 and "token was for village 'V8'" in other.stderr
    assert not (tmp_path / "c" / "kiosk.toml").exists()

    with CentralStore.open(central.db) as store:
        expired = store.create_enrol_token(
            "K7", "V9", int(time.time() * 1000) - 7_200_000, ttl_s=60, actor="test"
        )
    late = provision(central, tmp_path / "d", expired, device="K7", ok=False)
    assert late.returncode == 2 and "expired" in late.stderr

    wrong = provision(central, tmp_path / "e", "not-a-token", device="K6", ok=False)
    assert wrong.returncode == 2 and "refused" in wrong.stderr

    gone = central.gp(
        "provision", "--device-id", "K5", "--village", "V9", "--central", "http://127.0.0.1:1",
        "--token", "x", "--config-dir", str(tmp_path / "f"), ok=False,
    )  # fmt: skip
    assert gone.returncode == 2 and "unreachable" in gone.stderr

    # Central's HTTPS is checked: without its CA, or over plain HTTP to another machine,
    # nothing is sent (the token still works afterwards).
    token = central.token("K4", "V9")
    untrusted = central.gp(
        "provision", "--device-id", "K4", "--village", "V9", "--central", central.url,
        "--token", token, "--config-dir", str(tmp_path / "g"), ok=False,
    )  # fmt: skip
    assert untrusted.returncode == 2 and "not trusted" in untrusted.stderr
    assert "--central-ca" in untrusted.stderr
    plain = central.gp(
        "provision", "--device-id", "K4", "--village", "V9", "--central",
        "http://central.example:8443", "--token", token, "--config-dir", str(tmp_path / "g"),
        ok=False,
    )  # fmt: skip
    assert plain.returncode == 2 and "plain HTTP" in plain.stderr
    provision(central, tmp_path / "g", token, device="K4")


def test_a_revoked_device_cannot_connect(tmp_path: Path, central: Central, broker: Broker) -> None:
    folder = tmp_path / "k9"
    provision(central, folder, central.token("K9", "V9"))
    config = str(folder / "kiosk.toml")
    ok = central.gp("doctor", "--config", config, "--json", "--min-free-mb", "1", ok=False)
    assert broker_level(ok.stdout) == "ok"
    central.gp("central", "revoke", "--device", "K9", "--broker-dir", str(broker.folder))
    bad = central.gp("doctor", "--config", config, "--json", "--min-free-mb", "1", ok=False)
    assert bad.returncode == 1
    assert broker_level(bad.stdout) == "fail"


def broker_level(doctor_json: str) -> str:
    (found,) = [f for f in json.loads(doctor_json)["findings"] if f["check"] == "broker"]
    return str(found["level"])


def test_provisioning_qr_code() -> None:
    fields = parse_qr("GPPROV1 central=https://c.example token=abc device=K1 village=dongcun")
    assert fields == {
        "central_url": "https://c.example",
        "token": "abc",
        "device_id": "K1",
        "village": "dongcun",
    }
    with pytest.raises(ValueError, match="not a provisioning code"):
        parse_qr("GP1:P:dongcun:K1-0001:K1:AAAA")
    with pytest.raises(ValueError, match="unexpected field 'colour=red'"):
        parse_qr("GPPROV1 central=https://c.example colour=red")


def test_hwcheck_on_the_simulated_kiosk(tmp_path: Path) -> None:
    home = make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun", printer=True)
    r = subprocess.run(
        [sys.executable, "-m", "greenpass", "hwcheck", "--config", str(home.config),
         "--timeout", "10"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for line in ("green LED", "amber LED", "red LED", "buzzer", "button", "scanner"):
        assert f"ok    {line}" in r.stdout
    assert "read the passbook card of K0001-0006" in r.stdout
    # A test receipt on the (simulated) printer, drawn where hwcheck says.
    assert "ok    printer    test receipt printed" in r.stdout
    drawn = home.folder / "kiosk-receipts" / "receipt-0001.png"
    assert f"the simulated printer drew it: {drawn}" in r.stdout and drawn.stat().st_size > 0


def test_provision_from_a_scanned_qr_code_and_a_file(tmp_path: Path, central: Central) -> None:
    with SimulatedSerialScanner() as scanner:
        proc = subprocess.Popen(
            [sys.executable, "-m", "greenpass", "provision", "--scan", "--scanner-port",
             str(scanner.path), "--scan-timeout", "20", "--central-ca", str(central.ca),
             "--config-dir", str(tmp_path / "q"),
             "--db", str(tmp_path / "q" / "kiosk.db"), "--backend", "sim"],
            env=central.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_opened(proc.pid, scanner.path)  # a fixed 1 s lost the scans on a loaded machine
        scanner.scan("GP1:P:V9:K9-0001:K9:" + "A" * 103)  # a passbook, not a provisioning code
        token = central.token("KQ", "V9")
        scanner.scan(f"GPPROV1 central={central.url} token={token} device=KQ village=V9")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "that code was not it" in out
    assert "provisioned KQ for village V9" in out

    spec = tmp_path / "k8.toml"
    spec.write_text(
        f'device_id = "KF"\nvillage = "V9"\ncentral_url = "{central.url}"\n'
        f'token = "{central.token("KF", "V9")}"\ncentral_ca = "{central.ca}"\n'
        f'config_dir = "{tmp_path / "f"}"\n'
        f'db = "{tmp_path / "f" / "kiosk.db"}"\nbackend = "sim"\n',
        encoding="utf-8",
    )
    assert "provisioned KF" in central.gp("provision", "--file", str(spec)).stdout
    spec.write_text('device_id = "KG"\ncolour = "red"\n', encoding="utf-8")
    bad = central.gp("provision", "--file", str(spec), ok=False)
    assert bad.returncode == 2 and "unknown key 'colour'" in bad.stderr


def test_detect_finds_the_scale_and_its_protocol(tmp_path: Path) -> None:
    with SimulatedScale("mtsics", link=tmp_path / "ttyScale") as sim:
        sim.place(0)
        found = detect_scale([str(tmp_path / "nothing-here"), str(sim.port)], ("gpfw", "mtsics"))
    assert found == (str(sim.port), "mtsics")


def test_a_wrong_clock_is_refused_before_the_token_is_used(
    tmp_path: Path, central: Central
) -> None:
    token = central.token("KC", "V9")
    req = ProvisionRequest(
        device_id="KC", village="V9", central_url=central.url, token=token,
        central_ca=central.ca, config_dir=tmp_path / "kc", db=tmp_path / "kc" / "kiosk.db",
        backend="sim",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="clock is 60 min ahead of central's"):
        prov.provision(req, now_s=time.time() + 3600)
    assert not (tmp_path / "kc" / "kiosk.toml").exists()
    assert prov.provision(req).device_id == "KC"  # the token was not spent by the refusal
