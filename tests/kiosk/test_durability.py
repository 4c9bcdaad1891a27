"""SIGKILL the kiosk right after it shows "confirmed": the deposit is in the ledger.

The page learns of the confirmation from the event stream; the test kills the
kiosk process the moment that event arrives (before the villager could even
read it), reopens the ledger file, and finds the entry with an intact chain.
Then the kiosk starts again on the same file and keeps working.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from edge.ledger.ledger import Ledger
from simulator.kiosk_home import make_kiosk_home
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk

CATEGORIES = ("paper", "cardboard", "plastic_pet", "metal", "aluminium", "glass", "textiles")


def deposit_then_kill(k: RunningKiosk, card: str, category: str, grams: int) -> None:
    with (
        httpx.Client(base_url=k.url, timeout=20) as stream_client,
        stream_client.stream("GET", "/events") as events,
    ):
        lines = events.iter_lines()
        k.sim("scan", payload=card)
        k.wait_view("villager", lambda v: v["screen"] == "villager")
        assert k.post("/api/category", {"category": category}).status_code == 200
        k.wait_view("empty scale", lambda v: v["hint"] == "place_bag")
        k.sim("scale", action="place", grams=grams)
        for line in lines:
            if line.startswith("data: ") and json.loads(line[6:])["screen"] == "confirmed":
                os.kill(k.proc.pid, signal.SIGKILL)
                break
    k.proc.wait(10)
    k.http.close()


def run_kills(tmp_path: Path, kills: int) -> None:
    home = make_kiosk_home(tmp_path / "K0001", "K0001", "dongcun")
    for n in range(kills):
        k = start_kiosk(home, tmp_path / "kiosk.log")
        card = home.cards[2 + n % 6]["payload"]  # the six households in turn
        grams = 1000 + 37 * n
        category = CATEGORIES[(n // 6) % len(CATEGORIES)]
        try:
            deposit_then_kill(k, card, category, grams)
        finally:
            if k.proc.poll() is None:
                stop_kiosk(k)
        with Ledger.open(home.folder / "kiosk.db") as ledger:
            last = ledger.entry(ledger.head()[0])
            assert (last.kind, last.grams, last.category) == ("deposit", grams, category), n
            assert ledger.verify().ok
    k = start_kiosk(home, tmp_path / "kiosk.log")  # and it starts again on the same file
    try:
        assert k.view()["screen"] == "idle"
    finally:
        stop_kiosk(k)


def test_sigkill_right_after_confirmation_loses_nothing(tmp_path: Path) -> None:
    run_kills(tmp_path, 3)


@pytest.mark.soak
def test_sigkill_after_confirmation_soak(tmp_path: Path) -> None:
    run_kills(tmp_path, int(os.environ.get("GREENPASS_KIOSK_SOAK_KILLS", "60")))
