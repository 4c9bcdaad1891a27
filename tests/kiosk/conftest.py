"""A real kiosk process (`greenpass kiosk`, simulated hardware) and a client for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.kiosk_home import KioskHome, make_kiosk_home


@dataclass
class RunningKiosk:
    home: KioskHome
    url: str
    proc: subprocess.Popen[bytes]
    http: httpx.Client

    def view(self) -> dict[str, Any]:
        r = self.http.get("/api/view")
        r.raise_for_status()
        return dict(r.json())

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(path, json=body or {})

    def sim(self, what: str, **body: Any) -> None:
        r = self.http.post(f"/sim/{what}", json=body)
        assert r.status_code == 200, r.text

    def wait_view(
        self, what: str, cond: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        view = self.view()
        while not cond(view):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last view: {view}")
            time.sleep(0.05)
            view = self.view()
        return view

    def scan(self, label_prefix: str) -> None:
        self.sim("scan", payload=self.home.card(label_prefix))


def start_kiosk(home: KioskHome, log: Path) -> RunningKiosk:
    ready = home.folder / "ready.url"
    ready.unlink(missing_ok=True)
    out = log.open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greenpass",
            "kiosk",
            "--config",
            str(home.config),
            "--ready-file",
            str(ready),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"kiosk did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    url = ready.read_text().rstrip("/")
    return RunningKiosk(home, url, proc, httpx.Client(base_url=url, timeout=10))


def stop_kiosk(k: RunningKiosk) -> None:
    k.http.close()
    if k.proc.poll() is None:
        k.proc.send_signal(signal.SIGTERM)
        try:
            k.proc.wait(10)
        except subprocess.TimeoutExpired:
            k.proc.kill()
            k.proc.wait()


@pytest.fixture
def kiosk_home(tmp_path: Path) -> KioskHome:
    return make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun")


@pytest.fixture
def kiosk(kiosk_home: KioskHome, tmp_path: Path) -> Iterator[RunningKiosk]:
    k = start_kiosk(kiosk_home, tmp_path / "kiosk.log")
    try:
        yield k
    finally:
        stop_kiosk(k)


@pytest.fixture(scope="module")
def shared_kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningKiosk]:
    """One kiosk for a whole test module: tests use different villagers and categories."""
    folder = tmp_path_factory.mktemp("kiosk")
    home = make_kiosk_home(folder / "K0001", "K0001", "dongcun", extra_kiosk_keys="result_s = 1.5")
    k = start_kiosk(home, folder / "kiosk.log")
    try:
        yield k
    finally:
        stop_kiosk(k)
