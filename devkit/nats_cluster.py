"""A three-node NATS 2.9 cluster (JetStream, the MQTT gateway over TLS) on loopback.

Only for the broker comparison in `bench.cluster_compare` (docs/scale.md): RabbitMQ
was chosen, so nothing in central speaks NATS. Each node is a child process with
its own ports and JetStream store; users and their subject permissions mirror the
MQTT rights of docs/broker.md (MQTT `gp/v1/dev/K1/up/batch` is the NATS subject
`gp.v1.dev.K1.up.batch`).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import pytest

from central.devca import DevCA
from devkit.mqtt_broker import free_port

START_TIMEOUT = 60.0


def _q(s: str) -> str:
    return json.dumps(s)


class NatsCluster:
    def __init__(self, folder: Path, users: Mapping[str, str], *, size: int = 3) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.skip("nats-server is not installed")
        self.binary = binary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.users = dict(users)
        self.tls = DevCA.create(folder / "tls")
        self.ports = [(free_port(), free_port(), free_port()) for _ in range(size)]
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def ca_cert(self) -> Path:
        return self.tls.ca_cert

    def mqtt_url(self, n: int) -> str:
        return f"mqtts://127.0.0.1:{self.ports[n - 1][2]}"

    def _user(self, name: str, password: str) -> str:
        if name == "central":
            perms = '{publish: ">", subscribe: ">"}'
        else:
            own = f"gp.v1.dev.{name}"
            # The MQTT gateway's own subjects ($MQTT.…) are used on the device's behalf.
            perms = (
                f"{{publish: {{allow: [{_q(own + '.up.batch')}, {_q(own + '.status')}, "
                f'"$MQTT.>"]}}, subscribe: {{allow: [{_q(own + ".down.>")}, '
                f'"$MQTT.sub.>"]}}}}'
            )
        return f"{{user: {_q(name)}, password: {_q(password)}, permissions: {perms}}}"

    def _config(self, n: int) -> str:
        client, route, mqtt = self.ports[n - 1]
        d = self.folder / f"node{n}"
        routes = ", ".join(f"nats-route://127.0.0.1:{r}" for _, r, _ in self.ports)
        users = ",\n      ".join(self._user(u, p) for u, p in self.users.items())
        return f"""
server_name: n{n}
listen: 127.0.0.1:{client}
jetstream {{ store_dir: {_q(str(d / "js"))}, max_memory_store: 64MB, max_file_store: 1GB }}
cluster {{ name: gp, listen: 127.0.0.1:{route}, routes: [{routes}] }}
mqtt {{
  listen: 127.0.0.1:{mqtt}
  tls {{ cert_file: {_q(str(self.tls.server_cert))}, key_file: {_q(str(self.tls.server_key))} }}
  stream_replicas: 3
}}
accounts {{
  GP {{
    jetstream: enabled
    users: [
      {users}
    ]
  }}
}}
"""

    def start(self, *which: int) -> NatsCluster:
        todo = list(which) or list(range(1, len(self.ports) + 1))
        for n in todo:
            d = self.folder / f"node{n}"
            d.mkdir(exist_ok=True)
            (d / "nats.conf").write_text(self._config(n))
            with (d / "nats.log").open("ab") as log:
                self._procs[n] = subprocess.Popen(
                    [self.binary, "-c", str(d / "nats.conf")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
        for n in todo:
            self._wait(n)
        return self

    def _wait(self, n: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._procs[n].poll() is not None:
                log = (self.folder / f"node{n}" / "nats.log").read_text(errors="replace")
                raise AssertionError(f"nats node {n} exited:\n{log[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.ports[n - 1][2]), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"nats node {n} not serving MQTT")

    def kill(self, n: int) -> None:
        proc = self._procs.pop(n, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)

    def close(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
