"""A broker exactly as an operator gets it: `greenpass central broker-config`, then the
``run:`` line it printed, run as printed. Two devices, K1 and K2, enrolled as central
enrols them (derived passwords, stored hashes); central's login from its home."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from central.broker_sync import load_secret
from central.dynsec import CENTRAL_USER, device_password
from central.store import CentralStore
from devkit.mqtt_broker import MqttTestClient, connect_client, free_port, mosquitto_binary
from sync.keys import load_or_create_key, public_bytes

ROOT = Path(__file__).resolve().parents[2]
CENTRAL_PW = "central-pw"
VILLAGE = "dongcun"


@dataclass
class ConfiguredBroker:
    """A running broker from broker-config's output, and what it takes to talk to it."""

    folder: Path  # broker-config's --out
    home: Path  # central's home (central.password, broker.secret)
    db: Path
    port: int
    run_line: str
    passwords: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    clients: list[MqttTestClient] = field(default_factory=list)

    @property
    def ca_cert(self) -> Path:
        return self.folder / "tls" / "ca.crt"

    @property
    def log(self) -> Path:
        return self.folder.parent / "mosquitto.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                shlex.split(self.run_line), stdout=log, stderr=subprocess.STDOUT
            )
        wait_listening(self.port, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def client(self, username: str, password: str | None = None, **kw: object) -> MqttTestClient:
        pw = self.passwords[username] if password is None else password
        c = connect_client(self.port, self.ca_cert, username, pw, **kw)  # type: ignore[arg-type]
        self.clients.append(c)
        return c

    def gp(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "GREENPASS_CENTRAL_DB": str(self.db),
            "GREENPASS_CENTRAL_HOME": str(self.home),
        }
        r = subprocess.run(
            [sys.executable, "-m", "greenpass", *args],
            env=env, capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        assert r.returncode == 0, f"greenpass {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
        return r

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mosquitto exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"mosquitto not listening after 10 s:\n{log.read_text()}")


def enrol_devices(db: Path, home: Path, devices: tuple[str, ...]) -> dict[str, str]:
    """Enrol `devices` as the API does; their MQTT passwords, in clear."""
    secret = load_secret(home)
    out = {}
    with CentralStore.open(db) as store:
        store.create_village(VILLAGE)
        for d in devices:
            key = public_bytes(load_or_create_key(home / f"{d}.key"))
            token = store.create_enrol_token(
                d, VILLAGE, int(time.time() * 1000), ttl_s=3600, actor="test"
            )
            done = store.enrol(
                token,
                d,
                key,
                int(time.time() * 1000),
                mqtt_password=lambda dev, k: device_password(secret, dev, k),
            )
            out[d] = done.mqtt_password
    return out


def world_reachable_dir() -> Path:
    """A temporary folder the `mosquitto` account can enter (pytest's is 0700 for root)."""
    path = Path(tempfile.mkdtemp(prefix="gp-security-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[ConfiguredBroker]:
    mosquitto_binary()  # skips (or fails under CI) without mosquitto
    base = world_reachable_dir()
    home, db = tmp_path / "central-home", tmp_path / "central.db"
    home.mkdir()
    (home / "central.password").write_text(CENTRAL_PW + "\n")
    passwords = enrol_devices(db, home, ("K1", "K2", "K3"))
    port = free_port()
    b = ConfiguredBroker(
        base / "broker", home, db, port, "", {CENTRAL_USER: CENTRAL_PW, **passwords}
    )
    out = b.gp("central", "broker-config", "--out", str(b.folder), "--port", str(port))
    (run_line,) = [line for line in out.stdout.splitlines() if line.startswith("run: ")]
    b.run_line = run_line.removeprefix("run: ")
    b.start()
    try:
        yield b
    finally:
        for c in b.clients:
            c.close()
        b.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)
