"""`[hardware] backend` beyond the real drivers: found by name, never by naming the
simulator in production code, and a clear ConfigError when it is not there."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from edge.kiosk.devices import BACKENDS_GROUP, find_backend
from greenpass.cli import COMMANDS_GROUP, plugin_commands
from greenpass.errors import ConfigError
from simulator.kiosk import open_simulated_devices
from simulator.kiosk_home import make_kiosk_home

ROOT = Path(__file__).resolve().parents[2]


def test_a_backend_nobody_installed_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        find_backend("sim", installed=lambda: [], registered={})
    assert err.value.key == "hardware.backend"
    assert "no backend 'sim' here" in str(err.value) and "entry point 'sim'" in str(err.value)
    assert 'backend = "real"' in str(err.value)


def test_an_installed_backend_whose_package_is_gone_is_a_config_error() -> None:
    gone = EntryPoint("sim", "no_such_simulator.kiosk:open_simulated_devices", BACKENDS_GROUP)
    with pytest.raises(ConfigError) as err:
        find_backend("sim", installed=lambda: [gone], registered={})
    assert err.value.key == "hardware.backend"
    assert "cannot be loaded (No module named 'no_such_simulator')" in str(err.value)


def test_the_entry_point_and_the_registry_find_the_simulator() -> None:
    ep = EntryPoint("sim", "simulator.kiosk:open_simulated_devices", BACKENDS_GROUP)
    assert find_backend("sim", installed=lambda: [ep], registered={}) is open_simulated_devices
    # Imported here, the simulator has registered itself: no installed metadata needed.
    assert find_backend("sim", installed=lambda: []) is open_simulated_devices


def test_pyproject_declares_what_production_code_looks_up() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert (
        f'[project.entry-points."{BACKENDS_GROUP}"]\nsim = "simulator.kiosk:open_simulated_devices"'
        in text
    )
    assert (
        f'[project.entry-points."{COMMANDS_GROUP}"]\nsimulator = "simulator.cli:register"' in text
    )


def test_a_command_plugin_whose_package_is_gone_is_left_out() -> None:
    gone = EntryPoint("simulator", "no_such_simulator.cli:register", COMMANDS_GROUP)
    here = EntryPoint("simulator", "simulator.cli:register", COMMANDS_GROUP)
    assert plugin_commands(lambda: [gone]) == []
    assert len(plugin_commands(lambda: [here])) == 1


def test_greenpass_kiosk_on_a_sim_config_without_the_simulator(tmp_path: Path) -> None:
    """The kiosk as a process with `simulator/` unimportable (a package of that name
    that fails, first on the path): the command still starts, and says what is wrong,
    whether or not the installed metadata still lists the simulator's entry point."""
    home = make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun")
    shadow = tmp_path / "shadow" / "simulator"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("simulator/ deleted")\n')
    path = os.pathsep.join([str(shadow.parent), str(ROOT), os.environ.get("PYTHONPATH", "")])
    r = subprocess.run(
        [sys.executable, "-m", "greenpass", "kiosk", "--config", str(home.config)],
        env={**os.environ, "PYTHONPATH": path},
        cwd=tmp_path,  # `-m` puts the working folder first on the path
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    assert "key 'hardware.backend'" in r.stderr and "no backend 'sim' here" in r.stderr
    assert "Traceback" not in r.stderr
