"""Central started while PostgreSQL cannot be reached waits for it instead of exiting
(found by the fault soak, tests/soak: a worker started during a PostgreSQL restart
exited with "cannot prepare the central database" and stayed down until something
restarted it). Mistakes still stop it at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from central.db_wait import open_when_reachable, unreachable
from central.store import CentralStore
from devkit.mqtt_broker import free_port
from greenpass.errors import StorageError
from sync.transport import Backoff

ROOT = Path(__file__).resolve().parents[2]
FAST = Backoff(0.01, 0.05)


def nobody_listening() -> str:
    """A PostgreSQL URL on a port where no server listens (as during a restart)."""
    return f"postgresql://central@127.0.0.1:{free_port()}/greenpass?connect_timeout=2"


def not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "central.db"
    path.write_bytes(b"not a database, " * 512)
    return path


def refusal() -> StorageError:
    with pytest.raises(StorageError) as caught:
        CentralStore.open(nobody_listening())
    return caught.value


def test_an_unreachable_server_is_told_apart_from_a_mistake(tmp_path: Path) -> None:
    assert unreachable(refusal())
    with pytest.raises(StorageError) as caught:
        CentralStore.open(not_a_database(tmp_path))
    assert not unreachable(caught.value)


def test_it_waits_for_the_server_and_opens_the_store_once_it_answers(tmp_path: Path) -> None:
    attempts: list[str] = []
    down = refusal()

    def opener(url: str) -> CentralStore:
        attempts.append(url)
        if len(attempts) < 3:
            raise down
        return CentralStore.open(tmp_path / "central.db")

    store = open_when_reachable("postgresql://db", threading.Event(), backoff=FAST, opener=opener)
    assert store is not None and len(attempts) == 3
    store.close()


def test_a_mistake_stops_it_at_once(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        open_when_reachable(str(not_a_database(tmp_path)), threading.Event())


def test_stopped_while_waiting() -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert open_when_reachable(nobody_listening(), stop, backoff=FAST) is None


def test_greenpass_central_waits_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "central.password").write_text("pw\n")
    log = tmp_path / "central.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "greenpass", "central", "--db", nobody_listening(),
             "--home", str(home), "--broker", "mqtts://127.0.0.1:1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while b"trying again" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()  # it used to exit here
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_rabbit_api_without_amqp_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "central.password").write_text("pw\n")
    db = tmp_path / "central.db"
    r = subprocess.run(
        [sys.executable, "-m", "greenpass", "central", "--db", str(db), "--home", str(home),
         "--broker", "mqtts://127.0.0.1:1", "--rabbit-api", "http://127.0.0.1:15672"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "--rabbit-api is a RabbitMQ cluster's: give it with --amqp" in r.stderr
    assert not db.exists()
