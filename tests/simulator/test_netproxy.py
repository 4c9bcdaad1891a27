"""The network twin: a TCP proxy that passes bytes intact, and cuts, stalls and
delays the link on command. Checked against a real echo server and a real broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.mqtt_broker import Broker
from simulator.netproxy import ControlError, NetProxy, apply_control, parse_target

ROOT = Path(__file__).resolve().parents[2]


class EchoServer:
    """Echoes every byte back; records when each of its connections ends and how."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.ended: list[str] = []  # "eof" or "reset", one per finished connection
        self.changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by close()
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        how = "eof"
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except ConnectionResetError:
                how = "reset"
        with self.changed:
            self.ended.append(how)
            self.changed.notify_all()

    def wait_ended(self, count: int, timeout: float = 3.0) -> list[str]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.ended) >= count, timeout)
            return list(self.ended)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[NetProxy]:
    with NetProxy("127.0.0.1", echo.port) as running:
        yield running


def connect(proxy: NetProxy, timeout: float = 3.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise AssertionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def link_is_dead(s: socket.socket) -> bool:
    """True when the peer has closed or reset the connection."""
    s.settimeout(2.0)
    try:
        s.sendall(b"ping")
        return s.recv(4) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_bytes_pass_through_intact_both_ways(proxy: NetProxy) -> None:
    payload = os.urandom(4 * 1024 * 1024 + 17)
    with connect(proxy) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        assert recv_exactly(s, len(payload)) == payload
        sender.join()
    assert proxy.bytes_up == proxy.bytes_down == len(payload)
    assert proxy.connections == 1


def test_cut_resets_both_sides_and_refuses_until_restore(echo: EchoServer, proxy: NetProxy) -> None:
    with connect(proxy) as a, connect(proxy) as b:
        a.sendall(b"hello")
        assert recv_exactly(a, 5) == b"hello"
        b.sendall(b"hi")
        assert recv_exactly(b, 2) == b"hi"
        proxy.cut()
        assert proxy.state.open == 0 and proxy.state.cut
        assert echo.wait_ended(2) == ["reset", "reset"]  # the far side saw a reset too
        assert link_is_dead(a) and link_is_dead(b)
    try:  # accepted, then reset at once: connect() itself may already see the reset
        with connect(proxy) as late:
            assert link_is_dead(late)
    except ConnectionResetError:
        pass
    assert proxy.state.refused == 1 and proxy.connections == 2
    proxy.restore()
    with connect(proxy) as again:
        again.sendall(b"back")
        assert recv_exactly(again, 4) == b"back"


def test_stall_holds_bytes_then_delivers_all_in_order(proxy: NetProxy) -> None:
    with connect(proxy) as s:
        proxy.stall()
        chunks = [f"{n:06d}".encode() * 100 for n in range(300)]  # 180 kB
        sender = threading.Thread(target=s.sendall, args=(b"".join(chunks),))
        sender.start()
        s.settimeout(0.4)
        with pytest.raises(TimeoutError):
            s.recv(1)
        assert proxy.bytes_up == 0 and proxy.state.open == 1  # held, still connected
        proxy.resume()
        s.settimeout(3.0)
        assert recv_exactly(s, sum(map(len, chunks))) == b"".join(chunks)
        sender.join()


def test_delay_is_added_each_way_as_latency_not_per_chunk(proxy: NetProxy) -> None:
    with connect(proxy) as s:
        s.sendall(b"warm")
        recv_exactly(s, 4)
        proxy.set_delay(150)
        started = time.monotonic()
        s.sendall(b"x")
        recv_exactly(s, 1)
        round_trip = time.monotonic() - started
        assert round_trip >= 0.3  # 150 ms up + 150 ms down
        # Ten writes in a row share the delay rather than queueing behind each other.
        started = time.monotonic()
        for n in range(10):
            s.sendall(b"%d" % n)
            time.sleep(0.01)
        assert recv_exactly(s, 10) == b"0123456789"
        assert time.monotonic() - started < 0.3 + 0.1 + 0.5
        proxy.set_delay(0)
    assert proxy.state.delay_ms == 0


def test_controls_as_typed_on_the_cli(proxy: NetProxy) -> None:
    assert "link=stalled" in apply_control(proxy, "stall")
    assert "delay=250ms" in apply_control(proxy, " delay 250 ")
    assert "link=cut+stalled" in apply_control(proxy, "CUT")
    assert "link=stalled" in apply_control(proxy, "restore")
    assert "link=up" in apply_control(proxy, "resume")
    for bad in ("delay", "delay -5", "delay x", "explode", "cut now"):
        with pytest.raises(ControlError):
            apply_control(proxy, bad)
    assert parse_target("broker.lan:8883") == ("broker.lan", 8883)
    assert parse_target("[::1]:1883") == ("::1", 1883)
    for bad in ("broker", ":1883", "h:0", "h:99999"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_cli_reads_controls_and_prints_state(echo: EchoServer) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenpass",
            "simulate",
            "netproxy",
            "--target",
            f"127.0.0.1:{echo.port}",
        ],
        input="stall\ndelay 20\nbogus\nresume\ncut\nrestore\nquit\nstall\n",
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("netproxy 127.0.0.1:") and f"-> 127.0.0.1:{echo.port}" in lines[0]
    states = [line for line in lines if line.startswith("link=")]
    assert [s.split()[0] for s in states] == [
        "link=up",
        "link=stalled",
        "link=stalled",
        "link=up",
        "link=cut",
        "link=up",
    ]
    assert "delay=20ms" in states[2]
    assert "not understood: 'bogus'" in result.stderr


def test_mqtt_client_through_the_proxy_sees_the_cut(tmp_path: Path) -> None:
    with (
        Broker(tmp_path / "broker", [("central", "central-pw"), ("K1", "k1-pw")]) as broker,
        NetProxy("127.0.0.1", broker.port) as link,
    ):
        k1 = broker.client("K1", "k1-pw", port=link.port)
        assert k1.subscribe_wait("gp/v1/dev/K1/down/#")[0].value == 1
        assert link.bytes_up > 0 and link.bytes_down > 0  # TLS and MQTT went through it
        link.cut()
        deadline = time.monotonic() + 5
        while k1.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not k1.is_connected(), "the client did not notice the cut"
        link.restore()
        deadline = time.monotonic() + 10  # paho retries after its 1 s back-off
        while not k1.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert k1.is_connected(), "the client did not come back after restore"
