"""Fixtures shared by every test: real SQLite files in tmp_path, a clock that moves
only when told (the kiosk's clock is a hardware boundary)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edge.clock import FixedClock
from edge.ledger import Ledger
from edge.rules import default_rules
from tests.ui.chromium import chromium_path, launch_chromium, unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

PIN = "2468"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def make_ledger(path: Path | str, clock: FixedClock) -> Ledger:
    ledger = Ledger.create(path, device_id="K1", village="V1", rules=default_rules(), clock=clock)
    ledger.add_staff("S1", name="Staff One", role="admin", pin=PIN)
    return ledger


@pytest.fixture
def ledger(tmp_path: Path, clock: FixedClock) -> Iterator[Ledger]:
    led = make_ledger(tmp_path / "ledger.db", clock)
    yield led
    led.close()


@pytest.fixture
def villager(ledger: Ledger) -> str:
    entry = ledger.enrol("Li household", staff_id="S1")
    assert entry.passbook_id is not None
    return entry.passbook_id


# --- the browser tests' session (tests/ui, tests/console): one Playwright, one Chromium ---


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of the system Chromium (skips, or fails under CI, when absent)."""
    return chromium_path()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, started once per session for every browser test."""
    try:
        # Imported here so that the rest of the suite runs without Playwright installed.
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError as exc:
        unavailable(f"Playwright is not installed ({exc}); run scripts/bootstrap")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium_executable: str) -> Iterator[Browser]:
    """One headless system Chromium for the whole session."""
    b = launch_chromium(playwright, chromium_executable)
    yield b
    b.close()
