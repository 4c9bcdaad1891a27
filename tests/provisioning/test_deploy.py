"""The Raspberry Pi deployment files: install, update and roll back into a scratch root.

The install script runs for real with `--root` (no systemctl, apt or venv); the
rollback guard runs the real `greenpass verify` of the older release against the
ledger, so a ledger migrated by a newer release refuses the rollback.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.ledger.ledger import Ledger
from greenpass.record.rules import default_rules

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "provisioning" / "deploy"
INSTALL = DEPLOY / "install.sh"


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--no-systemctl", "--no-apt", "--no-venv",
         *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def give_release_a_greenpass(root: Path, version: str) -> None:
    """The release's venv, as `pip install` would leave it: its own `greenpass` command."""
    bin_dir = root / "opt/greenpass/releases" / version / ".venv/bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "greenpass"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m greenpass "$@"\n')
    script.chmod(0o755)


def test_install_update_and_rollback(tmp_path: Path) -> None:
    root = tmp_path / "root"
    r = install(root, "--version", "v1")
    assert r.returncode == 0, r.stderr
    opt = root / "opt/greenpass"
    assert os.readlink(opt / "current") == "releases/v1"
    assert (opt / "releases/v1/pyproject.toml").exists()
    assert not (opt / "releases/v1/.venv").exists()  # the checkout's own venv is not copied
    for unit in (
        "etc/systemd/system/greenpass-kiosk.service",
        "etc/systemd/user/greenpass-chromium.service",
        "etc/udev/rules.d/99-greenpass.rules",
        "etc/systemd/journald.conf.d/greenpass.conf",
    ):
        assert (root / unit).is_file(), unit
    give_release_a_greenpass(root, "v1")
    assert install(root, "--version", "v2").returncode == 0
    assert os.readlink(opt / "current") == "releases/v2"
    assert os.readlink(opt / "previous") == "releases/v1"

    db = root / "var/lib/greenpass/kiosk.db"
    Ledger.create(db, device_id="K1", village="V1", rules=default_rules()).close()
    r = install(root, "--rollback")
    assert r.returncode == 0, r.stderr
    assert os.readlink(opt / "current") == "releases/v1"
    status = install(root, "--status").stdout
    assert "current:  releases/v1" in status and "previous: releases/v2" in status


def test_rollback_refused_when_the_ledger_schema_is_newer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert install(root, "--version", "v1").returncode == 0
    give_release_a_greenpass(root, "v1")
    assert install(root, "--version", "v2").returncode == 0
    db = root / "var/lib/greenpass/kiosk.db"
    Ledger.create(db, device_id="K1", village="V1", rules=default_rules()).close()
    with sqlite3.connect(db) as conn:  # as if release v2 had migrated the ledger forward
        conn.execute("INSERT INTO schema_migrations(version, name) VALUES (999, 'future')")
    r = install(root, "--rollback")
    assert r.returncode == 1
    assert "refusing to roll back" in r.stderr and "newer than this software" in r.stderr
    assert os.readlink(root / "opt/greenpass/current") == "releases/v2"


def test_rollback_without_a_previous_release(tmp_path: Path) -> None:
    r = install(tmp_path / "root", "--rollback")
    assert r.returncode == 1 and "no previous release" in r.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_kiosk_unit_is_valid() -> None:
    r = subprocess.run(
        ["systemd-analyze", "verify", str(DEPLOY / "greenpass-kiosk.service")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # Only the release's binary may be missing on a development machine.
    problems = [
        line for line in (r.stdout + r.stderr).splitlines()
        if line.strip() and "/opt/greenpass/current/.venv/bin/greenpass" not in line
    ]  # fmt: skip
    assert not problems, problems


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_broker_unit_is_valid_and_runs_what_broker_config_prints() -> None:
    unit = DEPLOY / "greenpass-broker.service"
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
    (exec_start,) = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    folder = "/var/lib/greenpass/broker"
    # The same line `greenpass central broker-config --out FOLDER` prints after "run: ".
    assert (
        exec_start.removeprefix("ExecStart=") == f"/usr/sbin/mosquitto -c {folder}/mosquitto.conf"
    )
    assert f"ReadWritePaths={folder}/data {folder}/dynsec" in unit.read_text()
