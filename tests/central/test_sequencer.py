"""The log's sequencer as its own process (`central.sequencer`, what `greenpass central`
runs): it appends what ingest stored and signs checkpoints, stops when told (as soon as
it is told, not after its one-second wait), does not outlive a central that was
SIGKILLed, and a child killed outright does not keep central from stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from central import tlog
from central.sequencer import Sequencer
from central.store import CentralStore
from sync.keys import generate_key, save_private_key
from tests.central.conftest import Kiosk, populate
from tests.central.test_evidence import sync

SETTINGS = tlog.LogSettings(origin="central.test/log", every_entries=1, every_s=3600)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent has not reaped it


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


def test_the_child_appends_and_signs_then_stops(
    store: CentralStore, k1: Kiosk, central_url: str
) -> None:
    populate(k1)
    sync(store, k1)
    key = generate_key()
    seq = Sequencer(central_url, key, SETTINGS)
    seq.start()
    child = seq._proc
    assert child is not None and child.pid != os.getpid()

    def covered() -> bool:
        newest = tlog.latest_checkpoint(store)
        return newest is not None and newest[0] == k1.head_seq

    wait_for(covered)
    began = time.monotonic()
    seq.stop()
    assert not child.is_alive()
    assert child.exitcode == 0, "it ended by itself, not killed"
    assert time.monotonic() - began < 10


def test_a_sequencer_killed_outright_does_not_hang_centrals_stop(central_url: str) -> None:
    """It once stopped through a `multiprocessing.Event`: a child SIGKILLed while
    holding that Event's lock held it for ever, and central hung in `stop`."""
    seq = Sequencer(central_url, generate_key(), SETTINGS)
    seq.start()
    child = seq._proc
    assert child is not None and child.pid is not None
    wait_for(lambda: alive(child.pid or 0))
    time.sleep(0.5)  # inside its loop
    os.kill(child.pid, signal.SIGKILL)
    began = time.monotonic()
    seq.stop(timeout=10)
    assert time.monotonic() - began < 10
    assert not child.is_alive()


def test_the_child_ends_with_a_killed_central(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    CentralStore.open(str(db)).close()
    save_private_key(tmp_path / "central.key", generate_key())
    script = (
        "import sys, time\nfrom pathlib import Path\n"
        "from central.sequencer import Sequencer\n"
        "from central.tlog import LogSettings\n"
        "from sync.keys import load_private_key\n"
        f"s = Sequencer({str(db)!r}, load_private_key(Path({str(tmp_path / 'central.key')!r})), "
        "LogSettings())\n"
        "s.start()\n"
        "print(s._proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    wait_for(lambda: not alive(child), 15)
