"""A three-node RabbitMQ 3.10 cluster on loopback, for the cluster tests and bench.

    with RabbitCluster(tmp_path, {"central": "central-pw", "K1": "k1-pw"}) as cluster:
        url = cluster.mqtt_url(1)          # mqtts://127.0.0.1:PORT of node 1
        cluster.kill(1); cluster.start(1)  # SIGKILL a node, bring it back

Every node is a child process of the test with its own node name, ports, data and
log folders, Erlang cookie (in the folder's HOME) and its own `epmd` on a free port:
the machine's RabbitMQ service (and its epmd) are never touched. Users, their
rights and the MQTT plugin's settings come from `central.rabbit` — what an operator
deploys is what is tested.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import pytest

from central.devca import DevCA
from central.rabbit import (
    LoginCheck,
    RabbitNode,
    advanced_config,
    cluster_definitions,
    dist_erl_args,
    dist_tls_options,
    enabled_plugins,
    node_config,
)
from devkit.mqtt_broker import free_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
# A node boots in 5-10 s alone; on two shared cores three at once take longer.
START_TIMEOUT = 120.0


def rabbit_available() -> None:
    """Skip when RabbitMQ is absent (fail under CI=true: bootstrap installs it)."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        message = "RabbitMQ is not installed (Debian: apt-get install rabbitmq-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class RabbitCluster:
    def __init__(
        self,
        folder: Path,
        users: Mapping[str, str],
        *,
        size: int = 3,
        login: LoginCheck | None = None,
    ) -> None:
        rabbit_available()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.users = dict(users)
        self.tls = DevCA.create(folder / "tls")
        # The nodes' Erlang distribution over mutual TLS (central.rabbit.dist_tls_options).
        self.tls.issue_peer(folder / "tls" / "dist.crt", folder / "tls" / "dist.key")
        self.dist_options = folder / "tls" / "dist.config"
        self.dist_options.write_text(
            dist_tls_options(
                self.tls.ca_cert, folder / "tls" / "dist.crt", folder / "tls" / "dist.key"
            )
        )
        tag = secrets.token_hex(3)
        self.nodes = [
            RabbitNode(
                name=f"gp{i}-{tag}@localhost",
                amqp_port=free_port(),
                mqtt_port=free_port(),
                dist_port=free_port(),
                api_port=free_port(),
                amqps_port=free_port(),
            )
            for i in range(1, size + 1)
        ]
        self.epmd_port = free_port()
        (folder / "home").mkdir(exist_ok=True)
        cookie = folder / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        # With `login`, device logins are checked by central (central.rabbit_login).
        self.login = login
        (folder / "enabled_plugins").write_text(enabled_plugins(login))
        (folder / "rabbitmq-env.conf").write_text("")
        (folder / "definitions.json").write_text(cluster_definitions(self.users))
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._started = [False] * size
        self._epmd: subprocess.Popen[bytes] | None = None

    @property
    def ca_cert(self) -> Path:
        return self.tls.ca_cert

    def mqtt_url(self, n: int) -> str:
        return f"mqtts://127.0.0.1:{self.nodes[n - 1].mqtt_port}"

    def api_url(self, n: int) -> str:
        """Node `n`'s management API (central keeps the devices' logins through it)."""
        return f"http://127.0.0.1:{self.nodes[n - 1].api_port}"

    def amqp_url(self, n: int, user: str = "central") -> str:
        return f"amqp://{user}:{self.users[user]}@127.0.0.1:{self.nodes[n - 1].amqp_port}/%2F"

    def amqps_url(self, n: int) -> str:
        """Node `n`'s AMQP over TLS, without a login (as `greenpass central --amqp` takes)."""
        return f"amqps://127.0.0.1:{self.nodes[n - 1].amqps_port}"

    def amqp_urls(self, user: str = "central") -> list[str]:
        return [self.amqp_url(n, user) for n in range(1, len(self.nodes) + 1)]

    def _env(self, n: int) -> dict[str, str]:
        node, d = self.nodes[n - 1], self.folder / f"node{n}"
        return {
            **os.environ,
            "HOME": str(self.folder / "home"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": dist_erl_args(self.dist_options),
            "RABBITMQ_CTL_ERL_ARGS": dist_erl_args(self.dist_options),
        }

    # --- processes ---------------------------------------------------------------------

    def start(self, *which: int) -> RabbitCluster:
        """Start nodes (all by default) and wait until each serves MQTT. Node 1 first on
        a fresh cluster: 3.10's classic peer discovery joins whoever is up, and two
        nodes booting at once with nobody up may each form a cluster of one."""
        if self._epmd is None:
            self._epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            todo = list(which) or list(range(1, len(self.nodes) + 1))
            if not which and not (self.folder / "node1" / "mnesia").exists():
                self._spawn(1)
                self._wait(1)
                todo.remove(1)
            for n in todo:
                self._spawn(n)
            for n in todo:
                self._wait(n)
        except BaseException:
            self.close()  # no node or epmd left behind by a failed start
            raise
        return self

    def _spawn(self, n: int) -> None:
        d = self.folder / f"node{n}"
        d.mkdir(exist_ok=True)
        (d / "rabbitmq.conf").write_text(
            node_config(
                self.nodes,
                n,
                tls=(self.tls.ca_cert, self.tls.server_cert, self.tls.server_key),
                definitions=self.folder / "definitions.json" if n == 1 else None,
                login=self.login,
            )
        )
        (d / "advanced.config").write_text(advanced_config(self.login))
        with (d / "console.log").open("ab") as log:
            self._procs[n] = subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")],
                env=self._env(n),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: kill() ends beam and its children
            )

    def _wait(self, n: int, *, retry: bool = True) -> None:
        proc, port = self._procs[n], self.nodes[n - 1].mqtt_port
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = self.log_tail(n)
                if retry and "eaddrinuse" in log and not self._started[n - 1]:
                    # Another process took a port `free_port` offered: new ones, once.
                    node = self.nodes[n - 1]
                    self.nodes[n - 1] = RabbitNode(
                        node.name, free_port(), free_port(), free_port(), free_port(), free_port()
                    )
                    self._spawn(n)
                    self._wait(n, retry=False)
                    return
                raise AssertionError(f"rabbit node {n} exited:\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    self._started[n - 1] = True  # its ports are its own from now on
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"rabbit node {n} not serving MQTT:\n{self.log_tail(n)}")

    def log_tail(self, n: int, lines: int = 40) -> str:
        text = ""
        for f in sorted((self.folder / f"node{n}").rglob("*.log")):
            text += f"--- {f.name}\n" + "\n".join(
                f.read_text(errors="replace").splitlines()[-lines:]
            )
        return text

    def kill(self, n: int) -> None:
        """SIGKILL node `n` (beam and its helpers): a crashed machine."""
        self._end(n, signal.SIGKILL)

    def _end(self, n: int, sig: signal.Signals) -> None:
        proc = self._procs.pop(n, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # The start script may end before the Erlang VM it started: until the VM is gone
        # its port still answers, and a restarted node would seem up at once.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def ctl(self, n: int, *args: str) -> str:
        """rabbitmqctl against node `n` (slow: each call boots an Erlang VM)."""
        r = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.nodes[n - 1].name, *args],
            env=self._env(n), capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, f"rabbitmqctl {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def close(self) -> None:
        # SIGTERM all at once: stopping one by one makes the last wait for the others.
        for n in list(self._procs):
            proc = self._procs[n]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for n in list(self._procs):
            self._end(n, signal.SIGKILL) if self._wait_exit(n) else None
        if self._epmd is not None:
            self._epmd.kill()
            self._epmd.wait()
            self._epmd = None

    def _wait_exit(self, n: int) -> bool:
        try:
            self._procs[n].wait(30)
            self._procs.pop(n)
            return False
        except subprocess.TimeoutExpired:
            return True

    def pids(self) -> list[int]:
        """The running nodes' processes (each `rabbitmq-server`, its Erlang VM below)."""
        return [p.pid for p in self._procs.values()]

    def __enter__(self) -> RabbitCluster:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
