"""State pushes survive a database that fails for a while (found by the fault soak,
tests/soak): a push that could not read the database is made later, not dropped.

The failure is real: another connection renames a table the state is built from
(`item_pictures`), so central's reads fail with SQLite's "no such table", and renames
it back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from central.service import CentralService
from central.store import CentralStore
from greenpass.errors import StorageError
from sync import protocol as p
from sync.keys import generate_key
from sync.receiver import Outgoing
from sync.transport import BrokerConfig
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate


@contextmanager
def unreadable(db: Path) -> Iterator[None]:
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE item_pictures RENAME TO item_pictures_away")
    try:
        yield
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE item_pictures_away RENAME TO item_pictures")


@pytest.fixture
def kiosks(tmp_path: Path) -> Iterator[dict[str, Kiosk]]:
    made = {device: new_kiosk(tmp_path, device) for device in ("K1", "K2")}
    yield made
    for k in made.values():
        k.ledger.close()


@pytest.fixture
def service(tmp_path: Path, kiosks: dict[str, Kiosk]) -> Iterator[CentralService]:
    with CentralStore.open(tmp_path / "central.db", now_ms=NOW) as store:
        store.create_village("V1")
        for k in kiosks.values():
            enrol(store, k)
        broker = BrokerConfig("mqtts://127.0.0.1:1", "central", "pw", "gp-central-1")
        # Never started: the test calls what the receiver's thread would.
        yield CentralService(store, broker, generate_key(), debounce_s=0, min_interval_s=0)


STATES = {p.topic("K1", p.STATE), p.topic("K2", p.STATE)}


def topics(out: list[Outgoing]) -> set[str]:
    return {o.topic for o in out}


def test_states_not_pushed_on_connect_are_pushed_once_the_database_is_back(
    service: CentralService, tmp_path: Path
) -> None:
    with unreadable(tmp_path / "central.db"):
        with pytest.raises(StorageError, match="item_pictures"):
            service.all_states()  # central has just connected to the broker
        assert service.on_tick() == []  # still unreadable: still due
    # Before the fix they waited for the village's next change.
    assert topics(service.on_tick()) == STATES
    assert service.on_tick() == []  # and pushed once


def test_a_village_push_that_failed_stays_due(
    service: CentralService, kiosks: dict[str, Kiosk], tmp_path: Path
) -> None:
    assert topics(service.all_states()) == STATES  # connected
    k1 = kiosks["K1"]
    populate(k1)
    out = service.on_batch(k1.topic, k1.batch())  # stored: K1's village changed
    assert topics(out) == {p.topic("K1", p.ACK)}
    with unreadable(tmp_path / "central.db"):
        assert service.on_tick() == []
    # Before the fix the push was dropped: the kiosks waited for the village's next change.
    assert topics(service.on_tick()) == STATES
