"""`greenpass doctor` names each injected fault with the right fix line."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.kiosk.config import KioskConfig, load_kiosk_config
from edge.ledger import log_record
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from provisioning.doctor import (
    LOG_FAULT_FIX,
    SYNC_FAULT_FIX,
    DoctorOptions,
    check_certificate,
    check_log,
    check_sync_fault,
    healthy,
    run,
)
from provisioning.doctor_finding import Finding
from simulator.kiosk_home import KioskHome, make_kiosk_home
from sync.config import SyncConfig
from sync.protocol import LOG_FAULTS, SYNC_FAULTS
from tests.kiosk.conftest import start_kiosk, stop_kiosk

OK_CLOCK = FixedClock(ok=True)


def by_check(found: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in found}


@pytest.fixture
def home(tmp_path: Path) -> KioskHome:
    return make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun")


def cfg_of(home: KioskHome) -> KioskConfig:
    return load_kiosk_config(home.config)


def test_a_healthy_offline_kiosk(home: KioskHome) -> None:
    found = run(cfg_of(home), DoctorOptions(clock=OK_CLOCK, min_free_mb=1))
    checks = by_check(found)
    assert checks["database"].level == "ok"
    assert checks["chain"].level == "ok" and "entries" in checks["chain"].detail
    assert checks["clock"].level == "ok"
    assert checks["broker"].level == "warn"  # no [sync]: it works, but never syncs
    # This machine's test folders are on a plain (or overlay) disk: a warning, with how.
    enc = checks["encryption"]
    assert enc.level == "warn" and "docs/privacy.md" in enc.fix, enc
    assert healthy(found)


def test_clock_not_synchronised(home: KioskHome) -> None:
    found = by_check(run(cfg_of(home), DoctorOptions(clock=FixedClock(ok=False), min_free_mb=1)))
    assert found["clock"].level == "warn"
    assert "timedatectl" in found["clock"].fix


def test_disk_nearly_full(home: KioskHome) -> None:
    found = run(cfg_of(home), DoctorOptions(clock=OK_CLOCK, min_free_mb=10**9))
    disk = by_check(found)["disk"]
    assert disk.level == "fail" and "journalctl" in disk.fix
    assert not healthy(found)


def test_corrupt_database(home: KioskHome) -> None:
    db = cfg_of(home).kiosk.db
    data = bytearray(db.read_bytes())
    data[4096 : 4096 + 2048] = b"\xa5" * 2048  # a torn page in the middle of the file
    db.write_bytes(bytes(data))
    found = by_check(run(cfg_of(home), DoctorOptions(clock=OK_CLOCK, min_free_mb=1)))
    assert found["database"].level == "fail"
    assert "call the operator" in found["database"].fix


def test_tampered_chain(home: KioskHome) -> None:
    db = cfg_of(home).kiosk.db
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET qty = qty + 1 WHERE seq = (SELECT max(seq) FROM entries)")
    conn.commit()
    conn.close()
    found = by_check(run(cfg_of(home), DoctorOptions(clock=OK_CLOCK, min_free_mb=1)))
    assert found["chain"].level == "fail"
    assert "altered" in found["chain"].fix


def test_scale_unplugged_on_a_running_kiosk(home: KioskHome, tmp_path: Path) -> None:
    k = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        k.sim("scale", action="unplug")
        k.wait_view("unplugged", lambda v: v["status"]["scale"] == "disconnected")
        port = k.url.rsplit(":", 1)[1]
        cfg = load_kiosk_config(_with_port(home, int(port)))
        found = by_check(run(cfg, DoctorOptions(clock=OK_CLOCK, min_free_mb=1)))
    finally:
        stop_kiosk(k)
    assert found["scale"].level == "fail"
    assert "running kiosk" in found["scale"].detail
    assert "plug in the scale" in found["scale"].fix


def _with_port(home: KioskHome, port: int) -> Path:
    text = home.config.read_text(encoding="utf-8").replace("port = 0", f"port = {port}")
    p = home.folder / "doctor.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_every_sync_fault_has_its_fix() -> None:
    """The running kiosk's sync fault (tests/kiosk/test_sync_fault.py shows it live)."""
    assert set(SYNC_FAULT_FIX) == set(SYNC_FAULTS)
    view = {"status": {"sync_fault": {"code": "uplink_crashed", "message": "RuntimeError: x"}}}
    found = check_sync_fault(view)
    assert found.level == "fail" and "uplink_crashed: RuntimeError: x" in found.detail
    assert "journalctl -u greenpass-kiosk" in found.fix
    assert check_sync_fault({"status": {"sync_fault": None}}).level == "ok"


def test_a_log_fault_from_the_ledger_file(home: KioskHome) -> None:
    """The check of central's log (sync.log_check) is read from the file: it is there
    with the kiosk stopped too. A fault fails (log_late only warns), with its fix."""
    assert set(LOG_FAULT_FIX) == set(LOG_FAULTS)
    db = home.folder / "kiosk.db"
    assert check_log(db) == Finding("log", "ok", "no checkpoint of central's log checked yet")
    with Ledger.open(db) as ledger:
        with ledger.store.write() as conn:
            log_record.save_accepted(
                conn, log_record.Accepted("central.test/log", 40, bytes(32), "note", 7, 1, None)
            )
        found = check_log(db)
        assert found.level == "ok" and "size 40" in found.detail and "seq 7" in found.detail
        with ledger.store.write() as conn:
            log_record.raise_fault(
                conn,
                log_record.LogFaultRecord(
                    "log_entry_changed", "K0001: central's log ... entry K0001:3 ...", 3, 41, 5
                ),
            )
        found = check_log(db)
        assert found.level == "fail"
        assert found.detail.startswith("log_entry_changed: K0001:") and "K0001:3" in found.detail
        assert "greenpass sync log --reset" in found.fix
        log_record.reset(ledger.store, 6)
        with ledger.store.write() as conn:
            log_record.raise_fault(
                conn, log_record.LogFaultRecord("log_late", "K0001: late", 8, 40, 7)
            )
    assert check_log(db).level == "warn"


def test_broker_down(tmp_path: Path) -> None:
    sync = SyncConfig(
        broker_url="mqtts://127.0.0.1:1",  # nothing listens on port 1
        password_file=tmp_path / "K0002" / "mqtt.password",
        ca_cert=None,
        key_file=tmp_path / "K0002" / "device.key",
        central_public_key=bytes(32),
    )
    home2 = make_kiosk_home(tmp_path / "K0002", "K0002", "dongcun", sync=sync)
    (home2.folder / "mqtt.password").write_text("secret\n")
    found = by_check(run(cfg_of(home2), DoctorOptions(clock=OK_CLOCK, min_free_mb=1, timeout_s=2)))
    assert found["broker"].level == "fail"
    assert "check the network" in found["broker"].fix
    assert found["log"].level == "ok"  # nothing checked yet
    assert found["backlog"].level == "ok"  # nothing old yet


def test_cli_exit_code_and_json(home: KioskHome, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenpass",
            "doctor",
            "--config",
            str(home.config),
            "--json",
            "--min-free-mb",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(r.stdout)
    assert report["healthy"] is True and r.returncode == 0
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenpass",
            "doctor",
            "--config",
            str(home.config),
            "--min-free-mb",
            str(10**9),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1
    assert "FAIL  disk" in r.stdout and "fix: free space" in r.stdout
    assert r.stdout.rstrip().endswith("NOT healthy: see the fixes above")


def _ca(tmp_path: Path, not_after: dt.datetime) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=400))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / f"ca-{not_after:%Y%m%d}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize(("days_left", "level"), [(-1, "fail"), (10, "warn"), (200, "ok")])
def test_certificate_expiry(tmp_path: Path, days_left: int, level: str) -> None:
    now = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    found = check_certificate(_ca(tmp_path, now + dt.timedelta(days=days_left)), now)
    assert found.level == level
    if level != "ok":
        assert "new CA" in found.fix


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenpass", "doctor", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_no_config_is_a_failed_check_with_its_fix(tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "kiosk.toml"
    r = _doctor("--config", str(missing), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr == ""
    report = json.loads(r.stdout)
    assert report["healthy"] is False
    [config] = report["findings"]
    assert (config["check"], config["level"]) == ("config", "fail")
    assert str(missing) in config["detail"] and "cannot read" in config["detail"]
    assert "greenpass provision" in config["fix"] and "--config" in config["fix"]

    r = _doctor("--config", str(missing))
    assert r.returncode == 1
    assert r.stdout.startswith("FAIL  config") and "fix: provision this kiosk" in r.stdout
    assert r.stdout.rstrip().endswith("NOT healthy: see the fixes above")


def test_a_bad_config_key_is_a_failed_check_naming_it(home: KioskHome) -> None:
    text = home.config.read_text(encoding="utf-8")
    home.config.write_text(text.replace("[kiosk]\n", "[kiosk]\nlanguge = 'en'\n", 1), "utf-8")
    r = _doctor("--config", str(home.config), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    [config] = json.loads(r.stdout)["findings"]
    assert config["level"] == "fail" and "key 'kiosk.languge': unknown key" in config["detail"]
    assert "docs/kiosk.md" in config["fix"]
