"""A kiosk (its own process, simulated hardware) online with a test Mosquitto, for the
page tests of what sync reports; central's side is forged or written by the test.

    from tests.ui import synced_fixtures
    broker, kiosk = synced_fixtures.broker, synced_fixtures.kiosk
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.mqtt_broker import Broker
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk
from tests.kiosk.synced import BROKER_USERS, DEVICE, synced_home
from tests.ui.kiosk_pages import UI_KIOSK_KEYS


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path / "broker", BROKER_USERS) as running:
        yield running


@pytest.fixture
def kiosk(broker: Broker, tmp_path: Path) -> Iterator[RunningKiosk]:
    """Replaces tests/ui/conftest.py's module-wide kiosk: this one is online."""
    home = synced_home(
        tmp_path / DEVICE, broker.url, broker.ca_cert, extra_kiosk_keys=UI_KIOSK_KEYS
    )
    k = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        k.wait_view("online", lambda v: v["status"]["online"] is True, timeout=20)
        yield k
    finally:
        stop_kiosk(k)
