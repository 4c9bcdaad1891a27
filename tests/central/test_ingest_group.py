"""Several prepared batches in one transaction (`Ingest.batches`): the receiver hands
central the batches waiting together, and they are stored with one commit, each as it
would be alone. A transaction that fails is redone a batch at a time; on PostgreSQL a
device another worker holds ends the transaction before it instead of being waited
for while this one holds other rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select, text

from central import db
from central.ingest import Ingest, IngestResult, Prepared
from central.store import CentralStore
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate
from tests.central.test_rollup import rebuilt_rows, rollup_rows
from tests.sync.harness import wait_for


@pytest.fixture
def k2(tmp_path: Path, store: CentralStore) -> Iterator[Kiosk]:
    kiosk = new_kiosk(tmp_path / "k2", "K2")
    enrol(store, kiosk)
    yield kiosk
    kiosk.ledger.close()


def known(store: CentralStore, *kiosks: Kiosk) -> Ingest:
    """An `Ingest` that has stored each kiosk's first two entries (so it knows them)."""
    ing = Ingest(store)
    for k in kiosks:
        populate(k)
        assert ing.batch(k.topic, k.batch(1, 2), NOW).stored == 2
    return ing


def prepared(
    ing: Ingest, k: Kiosk, first: int, last: int | None = None
) -> tuple[str, bytes, Prepared | None]:
    payload = k.batch(first, last)
    ready = ing.prepare(k.topic, payload)
    assert ready is not None
    return k.topic, payload, ready


def commits(store: CentralStore) -> list[int]:
    seen: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: seen.append(1))
    return seen


def statuses(results: list[IngestResult]) -> list[tuple[str | None, str, int]]:
    return [(r.device_id, r.ack.status if r.ack else "-", r.stored) for r in results]


def test_batches_waiting_together_are_stored_in_one_transaction_each_as_alone(
    store: CentralStore, k1: Kiosk, k2: Kiosk
) -> None:
    ing = known(store, k1, k2)
    items = [
        prepared(ing, k1, 3, 8),
        prepared(ing, k2, 3, 6),
        prepared(ing, k1, 9),  # the same kiosk again: placed after its batch before
        prepared(ing, k2, 7),
    ]
    seen = commits(store)
    results = list(ing.batches(items, NOW))
    assert len(seen) == 1
    assert statuses(results) == [
        ("K1", "ok", 6),
        ("K2", "ok", 4),
        ("K1", "ok", k1.head_seq - 8),
        ("K2", "ok", k2.head_seq - 6),
    ]
    assert store.count_entries() == k1.head_seq + k2.head_seq
    # The rollup written once for all four is what the entries make it.
    assert rollup_rows(store) == rebuilt_rows(store)
    with store.read() as conn:
        names = set(conn.scalars(select(db.villagers.c.household_name)))
    assert names == {"Li household", "Wang household", "Zhao household"}


def test_a_batch_not_prepared_keeps_its_place_between_two_transactions(
    store: CentralStore, k1: Kiosk, k2: Kiosk
) -> None:
    ing = known(store, k1, k2)
    items = [
        prepared(ing, k1, 3, 4),
        prepared(ing, k2, 3, 4),
        (k2.topic, k2.batch(5, 6), None),
        prepared(ing, k1, 5, 6),
        prepared(ing, k2, 7),
    ]
    seen = commits(store)
    results = list(ing.batches(items, NOW))
    assert statuses(results) == [
        ("K1", "ok", 2),
        ("K2", "ok", 2),
        ("K2", "ok", 2),
        ("K1", "ok", 2),
        ("K2", "ok", k2.head_seq - 6),
    ]
    assert len(seen) == 3


def test_a_refusal_in_a_transaction_of_several_redoes_each_alone(
    store: CentralStore, k1: Kiosk, k2: Kiosk
) -> None:
    ing = known(store, k1, k2)
    items = [prepared(ing, k1, 3), prepared(ing, k2, 3)]
    # K2 is revoked after its batch was checked: the transaction finds it under the
    # lock, is rolled back, and each batch is decided alone, K2's on a fresh read.
    assert store.revoke_device("K2", NOW, actor="test")
    results = list(ing.batches(items, NOW))
    assert statuses(results) == [("K1", "ok", k1.head_seq - 2), ("K2", "rejected", 0)]
    assert store.count_entries() == k1.head_seq + 2
    assert rollup_rows(store) == rebuilt_rows(store)


@pytest.mark.postgres
def test_a_device_another_worker_holds_ends_the_transaction_before_it(
    central_url: str, store: CentralStore, k1: Kiosk, k2: Kiosk
) -> None:
    if not store.postgres:
        pytest.skip("SQLite's writer holds the whole database: no row is held apart")
    ing = known(store, k1, k2)
    items = [prepared(ing, k1, 3), prepared(ing, k2, 3)]
    results: list[IngestResult] = []
    with store.engine.connect() as other:
        tx = other.begin()
        other.execute(text("SELECT 1 FROM devices WHERE device_id = 'K2' FOR UPDATE"))
        worker = threading.Thread(target=lambda: results.extend(ing.batches(items, NOW)))
        worker.start()
        # K1's batch is committed while K2's row is held: it did not wait for it.
        wait_for("K1's batch stored", lambda: len(results) == 1, timeout=10)
        assert statuses(results) == [("K1", "ok", k1.head_seq - 2)]
        assert worker.is_alive()  # K2's batch, alone now, waits for the row
        tx.rollback()
    worker.join(10)
    assert statuses(results)[1:] == [("K2", "ok", k2.head_seq - 2)]
    assert store.count_entries() == k1.head_seq + k2.head_seq
