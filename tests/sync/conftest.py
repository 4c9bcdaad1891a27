"""Fixtures for sync tests: a real Mosquitto with the production config and ACL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.mqtt_broker import Broker
from tests.central.conftest import central_url  # noqa: F401 - shared: SQLite and PostgreSQL
from tests.sync.harness import World

BROKER_USERS = (("central", "central-pw"), ("K1", "k1-pw"), ("K2", "k2-pw"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running broker with central, K1 and K2; skipped when mosquitto is missing."""
    with Broker(tmp_path / "broker", BROKER_USERS) as running:
        yield running


@pytest.fixture
def world(tmp_path: Path, broker: Broker, central_url: str) -> Iterator[World]:  # noqa: F811
    """Central on `central_url` (SQLite, then PostgreSQL) and this test's kiosks, over
    the test's Mosquitto; a module may define its own."""
    w = World(tmp_path, broker, central_url)
    yield w
    w.close()
