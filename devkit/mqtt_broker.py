"""A real Mosquitto for tests, configured by `central.broker` exactly as in production.

    with Broker(tmp_path, [("central", "central-pw"), ("K1", "k1-pw")]) as broker:
        central = broker.client("central", "central-pw")
        central.subscribe_wait("gp/v1/dev/+/up/#")
        k1 = broker.client("K1", "k1-pw")
        assert k1.publish_wait("gp/v1/dev/K1/up/batch", b"x").value == 0
        assert central.next_message().payload == b"x"

The broker is a child process on a free port with its log in the folder; the
log is shown in the assertion message whenever it fails to start. Clients are
paho MQTT v5 clients over TLS with small helpers that wait for SUBACK / PUBACK
and collect received messages.
"""

from __future__ import annotations

import os
import queue
import random
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.broker import BrokerFiles, mosquitto_password_hash, write_broker_config
from central.dynsec import CENTRAL_USER, BrokerAdmin, DeviceLogin, SyncReport
from sync.protocol import device_client_id
from sync.transport import BrokerConfig

START_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0


def mosquitto_binary() -> str:
    """The mosquitto binary; skips the test when absent, fails under CI=true."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    if found is None:
        message = "mosquitto is not installed (Debian: apt-get install mosquitto)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a server a test starts.

    Chosen below the kernel's ephemeral range: a port the kernel hands out (bind to
    port 0) is free only until the next outgoing connection takes it as its own
    source port, and under three test workers with hundreds of client connections
    one did, before Mosquitto could bind it ("Address already in use")."""
    low, _ = _ephemeral_range()
    top = min(low, 65536) - 1
    for _ in range(200):
        port = random.randint(max(1024, top - 20000), top)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:  # no room below the range: the kernel's choice
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen


_HANDED_OUT: set[int] = set()  # this process's, so two servers of one test never share


class BrokerRefused(AssertionError):
    """A test client could not connect; the message says how it was refused."""

    def __init__(self, message: str, reason: ReasonCode | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class MqttTestClient(mqtt.Client):
    """A paho v5 client that remembers SUBACKs, PUBACKs and received messages."""

    def __init__(self, client_id: str) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self._acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.on_subscribe = self._got_ack
        self.on_publish = self._got_puback
        self.on_message = lambda _c, _u, message: self._inbox.put(message)

    def _got_ack(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        with self._acked:
            self._acks[mid] = codes
            self._acked.notify_all()

    def _got_puback(self, _c: Any, _u: Any, mid: int, code: Any, _p: Any) -> None:
        self._got_ack(_c, _u, mid, code, _p)

    def _wait_ack(self, mid: int, what: str, timeout: float) -> Any:
        with self._acked:
            if not self._acked.wait_for(lambda: mid in self._acks, timeout):
                raise AssertionError(f"no {what} for mid {mid} within {timeout} s")
            return self._acks.pop(mid)

    def subscribe_wait(self, topic: str, qos: int = 1, timeout: float = 5.0) -> list[ReasonCode]:
        """Subscribe and return the SUBACK's reason codes."""
        rc, mid = self.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS and mid is not None, f"subscribe failed: {rc}"
        codes: list[ReasonCode] = self._wait_ack(mid, "SUBACK", timeout)
        return codes

    def publish_wait(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        timeout: float = 5.0,
    ) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code (0x87 when the ACL denies)."""
        assert qos == 1, "publish_wait waits for a PUBACK, which only QoS 1 has"
        info = self.publish(topic, payload, qos=qos, retain=retain)
        code: ReasonCode = self._wait_ack(info.mid, "PUBACK", timeout)
        return code

    def next_message(self, timeout: float = 5.0) -> mqtt.MQTTMessage:
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def messages(self, wait: float = 0.5) -> list[mqtt.MQTTMessage]:
        """Everything received so far and during the next `wait` seconds."""
        out: list[mqtt.MQTTMessage] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self._inbox.get(timeout=left))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.disconnect()
        self.loop_stop()


class Broker:
    """A Mosquitto child process running the production config on a free port."""

    def __init__(
        self, folder: Path, users: Sequence[tuple[str, str]], *, port: int | None = None
    ) -> None:
        self.folder = folder
        self.binary = mosquitto_binary()
        self._passwords = dict(users)
        assert CENTRAL_USER in self._passwords, "the test broker needs central's login"
        # Started as root (as in many CI containers), Mosquitto would switch to the
        # `mosquitto` account and could not read the test's private tmp folder.
        run_as = "root" if os.geteuid() == 0 else None
        self.files: BrokerFiles = write_broker_config(
            folder,
            port=port or free_port(),
            central_password_hash=mosquitto_password_hash(self._passwords[CENTRAL_USER]),
            devices=self.device_logins(),
            run_as=run_as,
        )
        self.log = folder / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._clients: list[MqttTestClient] = []

    @property
    def port(self) -> int:
        return self.files.port

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return self.files.ca_cert

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def device_logins(self) -> list[DeviceLogin]:
        """Every device user, keyed by a stand-in public key derived from its password."""
        return [
            DeviceLogin(u, f"key of {u}:{p}".encode(), mosquitto_password_hash(p), p)
            for u, p in self._passwords.items()
            if u != CENTRAL_USER
        ]

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"

    # --- process ---------------------------------------------------------------------

    def start(self) -> Broker:
        assert self._proc is None or self._proc.poll() is not None, "broker already running"
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.files.conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(
                    f"mosquitto exited with {self._proc.returncode}:\n{self.log_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise AssertionError(f"mosquitto not listening after {START_TIMEOUT} s:\n{self.log_text()}")

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file and exits."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash; whatever was not yet autosaved is lost."""
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- users ------------------------------------------------------------------------

    def add_user(self, username: str, password: str, timeout: float = 5.0) -> None:
        """Enrol a device as central does: over $CONTROL, no restart; wait till it works."""
        self._passwords[username] = password
        self.sync()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client(username, password).close()
                return
            except BrokerRefused:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def remove_user(self, username: str) -> None:
        """Revoke a device as central does: deleted over $CONTROL, disconnected at once."""
        del self._passwords[username]
        self.sync()

    def admin_config(self) -> BrokerConfig:
        return BrokerConfig(
            url=self.url,
            username=CENTRAL_USER,
            password=self._passwords[CENTRAL_USER],
            client_id=f"central-admin-{secrets.token_hex(4)}",
            ca_cert=self.ca_cert,
            clean_start=True,
            session_expiry_s=0,
        )

    def sync(self) -> SyncReport:
        """Bring the running broker's logins in step with this broker's users."""
        with BrokerAdmin(self.admin_config()) as admin:
            return admin.sync(self.device_logins())

    # --- clients ---------------------------------------------------------------------

    def client(
        self,
        username: str,
        password: str,
        *,
        client_id: str | None = None,
        tls: bool = True,
        clean_start: bool = True,
        session_expiry: int | None = None,
        port: int | None = None,
    ) -> MqttTestClient:
        """A connected v5 client with its network loop running; `BrokerRefused` if not.

        `port` connects somewhere else with the same TLS settings (e.g. a NetProxy).
        """
        c = connect_client(
            port or self.port,
            self.ca_cert,
            username,
            password,
            client_id=client_id,
            tls=tls,
            clean_start=clean_start,
            session_expiry=session_expiry,
        )
        self._clients.append(c)
        return c

    # --- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()
        self.stop()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect_client(
    port: int,
    ca_cert: Path,
    username: str,
    password: str,
    *,
    client_id: str | None = None,
    tls: bool = True,
    clean_start: bool = True,
    session_expiry: int | None = None,
) -> MqttTestClient:
    """A connected v5 client on 127.0.0.1:`port`; `BrokerRefused` says how it was refused.

    Without `client_id`, a device uses the one id the broker allows it (``gp-D``) and
    central a fresh one (it has none bound, so several workers can log in).
    """
    if client_id is None:
        central = username == CENTRAL_USER
        client_id = f"central-{secrets.token_hex(4)}" if central else device_client_id(username)
    c = MqttTestClient(client_id)
    if tls:
        c.tls_set(ca_certs=str(ca_cert))
    c.username_pw_set(username, password)
    first: queue.Queue[tuple[str, ReasonCode | None]] = queue.Queue()
    c.on_connect = lambda _c, _u, _f, code, _p: first.put(("connack", code))
    c.on_disconnect = lambda _c, _u, _f, code, _p: first.put(("disconnect", code))
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry is not None:
        props.SessionExpiryInterval = session_expiry
    try:
        c.connect("127.0.0.1", port, keepalive=30, clean_start=clean_start, properties=props)
    except (OSError, ssl.SSLError) as exc:  # TLS handshake or TCP refused
        raise BrokerRefused(f"{username}: cannot connect: {exc}") from exc
    c.loop_start()
    try:
        event, code = first.get(timeout=CONNECT_TIMEOUT)
    except queue.Empty:
        event, code = "timeout", None
    if event != "connack" or code is None or code.is_failure:
        c.disconnect()
        c.loop_stop()
        raise BrokerRefused(f"{username}: {event} {code}", code)
    c.on_connect = None
    c.on_disconnect = None
    return c
