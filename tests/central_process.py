"""A real `greenpass central` process (SQLite, admin and enrolment API) beside the test
broker, and the commands an operator or technician types against it."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from devkit.mqtt_broker import Broker, free_port
from tests.sync.harness import wait_for

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Central:
    url: str
    env: dict[str, str]  # GREENPASS_CENTRAL_DB and _HOME set: `gp("central", …)` finds it
    db: Path | str
    admin: str  # the admin API's bearer token
    ca: Path  # the CA its HTTPS certificate chains to (HOME/http-tls/ca.crt, made by central)
    pid: int

    @property
    def verify(self) -> ssl.SSLContext:
        """For httpx's `verify=`: trust central's CA."""
        return ssl.create_default_context(cafile=str(self.ca))

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
def running_central(
    folder: Path,
    broker: Broker,
    *,
    args: Sequence[str] = (),
    db_url: str | None = None,
    port: int | None = None,
    http_tls: Path | None = None,
    **env: str,
) -> Iterator[Central]:
    """Central on `broker` (whose `central` user's password is central-pw), HTTPS on
    `port` (default: a free one) with its development CA (or the TLS folder
    `http_tls`); `args` are more `greenpass central` flags, `db_url` a database other
    than a SQLite file in `folder`."""
    home = folder / "central-home"
    home.mkdir(parents=True)
    (home / "central.password").write_text("central-pw\n")
    db: Path | str = db_url or folder / "central.db"
    full_env = {
        **os.environ, "GREENPASS_CENTRAL_DB": str(db), "GREENPASS_CENTRAL_HOME": str(home), **env,
    }  # fmt: skip
    port = port or free_port()
    tls_args = ["--http-tls", str(http_tls)] if http_tls else []
    log = folder / "central.log"
    with log.open("wb") as err:  # the child has its own copy of the file
        proc = subprocess.Popen(
            [sys.executable, "-m", "greenpass", "central", "--broker", broker.url,
             "--ca", str(broker.ca_cert),
             "--http", f"127.0.0.1:{port}", *tls_args, "--debounce", "0.2", *args],
            env=full_env, cwd=ROOT, stderr=err,
        )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    ca = (http_tls or home / "http-tls") / "ca.crt"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"central exited with {proc.returncode}:\n{log.read_text()}")
        return _up(url, ca)

    try:
        wait_for("central's API", up)
        admin = (home / "admin.token").read_text().strip()
        yield Central(url, full_env, db, admin, ca, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def _up(url: str, ca: Path) -> bool:
    try:
        verify = ssl.create_default_context(cafile=str(ca))
        return httpx.get(f"{url}/openapi.json", timeout=1, verify=verify).status_code == 200
    except (httpx.HTTPError, OSError, ssl.SSLError):  # OSError: no CA written yet
        time.sleep(0.1)
        return False
