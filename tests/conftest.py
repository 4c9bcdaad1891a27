"""Fixtures shared by every test: real SQLite files in tmp_path, a clock that moves
only when told (the kiosk's clock is a hardware boundary)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.record.rules import default_rules

PIN = "2468"

DURATIONS = Path(__file__).with_name("durations.json")  # scripts/test-weights writes it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first, so `make test`'s workers (`--dist loadfile
    --no-loadscope-reorder`) never end with one of them running a long file alone.
    Within a file the order stays as written; unknown files keep theirs, at the end."""
    _deselect_postgres_of_sqlite_only(config, items)
    try:
        weight: dict[str, float] = json.loads(DURATIONS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    root = config.rootpath

    def key(item: pytest.Item) -> float:
        try:
            name = item.path.relative_to(root).as_posix()
        except ValueError:
            return 0.0
        return -weight.get(name, 0.0)

    items.sort(key=key)  # stable: a file's tests stay together and in order


def _deselect_postgres_of_sqlite_only(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL case of a test marked `sqlite_only` (tests/central/conftest.py)."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        marked = item.get_closest_marker("sqlite_only") is not None
        (drop if marked and params.get("central_url") == "postgresql" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
