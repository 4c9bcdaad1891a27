"""Batch ingest: what is stored, what is acked, and what is refused into dead letters."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import func, select, text

from central import db, reports
from central.ingest import IngestResult, ingest
from central.store import CentralStore
from greenpass.errors import StorageError
from greenpass.record.entries import check_chain
from sync import protocol
from sync.keys import generate_key
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate


def dead(store: CentralStore) -> list[reports.DeadLetter]:
    return reports.dead_letters(store, 100)


def assert_refused(
    store: CentralStore, result: IngestResult, status: str, reason: str, device: str = "K1"
) -> None:
    """Refused: an ack with that status, one dead letter saying why, nothing stored."""
    assert result.ack is not None
    assert (result.ack.status, result.stored) == (status, 0)
    assert reason in result.ack.reason
    assert "\n" not in result.ack.reason
    assert result.ack.expected_seq == result.ack.acked_seq + 1
    letters = dead(store)
    assert len(letters) == 1
    assert (letters[0].status, letters[0].claimed_device) == (status, device)
    assert reason in letters[0].reason
    assert store.count_entries() == 0


def test_batch_is_stored_acked_and_chains_like_the_kiosk(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    head = k1.head_seq
    result = ingest(store, k1.topic, k1.batch(), NOW)
    assert result.ack is not None
    assert (result.ack.status, result.ack.acked_seq, result.ack.expected_seq) == (
        "ok",
        head,
        head + 1,
    )
    assert (result.device_id, result.village_id, result.stored) == ("K1", "V1", head)
    central_rows = reports.device_chain(store, "K1")
    assert central_rows == k1.rows()  # same entries, same hashes
    report = check_chain(central_rows, device_id="K1", expected_head=k1.ledger.head())
    assert report.ok, report.problem
    dev = store.device("K1")
    assert dev is not None
    assert (dev.acked_seq, dev.last_h.hex(), dev.last_seen_ms) == (head, k1.ledger.head()[1], NOW)
    assert dead(store) == []
    # The kiosk marks its outbox from the ack, as its uplink would.
    assert k1.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def test_villagers_are_kept_from_enrol_and_status_entries(store: CentralStore, k1: Kiosk) -> None:
    ids = populate(k1)
    ingest(store, k1.topic, k1.batch(), NOW)
    with store.read() as conn:
        rows = {r.passbook_id: r for r in conn.execute(select(db.villagers))}
    assert set(rows) == set(ids.values())
    assert rows[ids["li"]].household_name == "Li household"
    assert (rows[ids["zhao"]].status, rows[ids["zhao"]].source_device) == ("revoked", "K1")
    assert rows[ids["li"]].status == "active"


def test_a_later_batch_updates_the_villagers_it_names(store: CentralStore, k1: Kiosk) -> None:
    """Status changes for villagers central already holds, in a batch of their own: the
    rows are updated (each from its own entry), the others left alone."""
    ids = populate(k1)
    ingest(store, k1.topic, k1.batch(), NOW)
    first = k1.head_seq + 1
    k1.clock.advance(60_000)
    k1.ledger.set_villager_status(ids["li"], "inactive", staff_id="S1", reason="moved away")
    k1.ledger.set_villager_status(ids["zhao"], "active", staff_id="S1", reason="card found")
    result = ingest(store, k1.topic, k1.batch(first), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    with store.read() as conn:
        rows = {r.passbook_id: r for r in conn.execute(select(db.villagers))}
    assert (rows[ids["li"]].status, rows[ids["li"]].source_seq) == ("inactive", first)
    assert (rows[ids["zhao"]].status, rows[ids["zhao"]].source_seq) == ("active", first + 1)
    assert rows[ids["li"]].household_name == "Li household"  # kept by a status change
    assert rows[ids["wang"]].status == "active" and rows[ids["wang"]].source_seq == 2


def test_duplicate_batch_is_acked_again_and_not_stored_twice(
    store: CentralStore, k1: Kiosk
) -> None:
    populate(k1)
    payload = k1.batch(1, 5)
    assert ingest(store, k1.topic, payload, NOW).stored == 5
    ingest(store, k1.topic, k1.batch(6), NOW)
    again = ingest(store, k1.topic, payload, NOW + 1)
    assert again.ack is not None
    # A duplicate says where central really is, so the kiosk can skip ahead.
    assert (again.ack.status, again.ack.acked_seq, again.stored) == ("ok", k1.head_seq, 0)
    assert store.count_entries("K1") == k1.head_seq
    assert dead(store) == []


def test_overlapping_batch_stores_only_the_new_tail(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    ingest(store, k1.topic, k1.batch(1, 5), NOW)
    result = ingest(store, k1.topic, k1.batch(3, 9), NOW)
    assert result.ack is not None
    assert (result.ack.status, result.ack.acked_seq, result.stored) == ("ok", 9, 4)
    assert check_chain(reports.device_chain(store, "K1"), device_id="K1").checked == 9


def test_gap_asks_for_the_next_expected_seq_without_a_dead_letter(
    store: CentralStore, k1: Kiosk
) -> None:
    populate(k1)
    ingest(store, k1.topic, k1.batch(1, 3), NOW)
    result = ingest(store, k1.topic, k1.batch(6, 8), NOW)
    assert result.ack is not None
    assert (result.ack.status, result.ack.acked_seq, result.ack.expected_seq) == ("gap", 3, 4)
    assert (result.ack.first_seq, result.ack.last_seq) == (6, 8)
    assert "expected seq 4" in result.ack.reason
    assert store.count_entries() == 3
    assert dead(store) == []


def test_replay_with_altered_content_is_bad_chain(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    populate(k1)
    ingest(store, k1.topic, k1.batch(), NOW)
    # Another history for seq 1..4 under the same id and key: a rewritten ledger.
    other = new_kiosk(tmp_path / "other", "K1")
    other.key = k1.key
    other.ledger.enrol("Forged household", staff_id="S1")
    other.ledger.enrol("Forged household 2", staff_id="S1")
    result = ingest(store, k1.topic, other.batch(1, 2), NOW)
    assert result.ack is not None
    assert (result.ack.status, result.ack.acked_seq) == ("bad_chain", k1.head_seq)
    assert "different content" in result.ack.reason
    assert [d.status for d in dead(store)] == ["bad_chain"]
    assert reports.device_chain(store, "K1") == k1.rows()
    other.ledger.close()


def test_next_batch_that_does_not_chain_on_is_bad_chain(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    k1.ledger.enrol("Li household", staff_id="S1")
    ingest(store, k1.topic, k1.batch(), NOW)
    other = new_kiosk(tmp_path / "other", "K1")
    other.key = k1.key
    other.ledger.enrol("Someone else", staff_id="S1")
    other.ledger.enrol("And another", staff_id="S1")
    result = ingest(store, k1.topic, other.batch(2, 2), NOW)
    assert result.ack is not None
    assert (result.ack.status, result.ack.acked_seq, result.ack.expected_seq) == ("bad_chain", 1, 2)
    assert store.count_entries() == 1
    assert [d.status for d in dead(store)] == ["bad_chain"]
    other.ledger.close()


def test_forged_signature(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    result = ingest(store, k1.topic, k1.batch(key=generate_key()), NOW)
    assert_refused(store, result, "bad_signature", "signature does not verify")


def test_sender_must_be_the_topics_device(store: CentralStore, k1: Kiosk, tmp_path: Path) -> None:
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    k2.ledger.enrol("Li household", staff_id="S1")
    result = ingest(store, k1.topic, k2.batch(), NOW)  # K2's own signed batch on K1's topic
    assert_refused(store, result, "rejected", "sender 'K2'")
    assert result.ack is not None and result.ack.device_id == "K1"
    k2.ledger.close()


def test_unknown_device(store: CentralStore, tmp_path: Path) -> None:
    k9 = new_kiosk(tmp_path, "K9")
    k9.ledger.enrol("Li household", staff_id="S1")
    result = ingest(store, k9.topic, k9.batch(), NOW)
    assert_refused(store, result, "rejected", "not enrolled", device="K9")
    assert result.ack is not None and result.ack.acked_seq == 0
    k9.ledger.close()


def test_revoked_device(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    ingest(store, k1.topic, k1.batch(1, 2), NOW)
    store.revoke_device("K1", NOW, actor="test")
    result = ingest(store, k1.topic, k1.batch(3), NOW)
    assert result.ack is not None
    assert (result.ack.status, result.ack.acked_seq, result.stored) == ("rejected", 2, 0)
    assert "revoked" in result.ack.reason
    assert store.count_entries() == 2
    assert [d.status for d in dead(store)] == ["rejected"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x00 not msgpack at all", "malformed envelope"),
        (b"", "malformed envelope"),
        (msgspec.msgpack.encode([1, "K1", "state", False, b"", b""]), "expected a batch"),
        (msgspec.msgpack.encode([9, "K1", "batch", False, b"", b""]), "version 9"),
    ],
)
def test_malformed_bytes(store: CentralStore, k1: Kiosk, payload: bytes, reason: str) -> None:
    result = ingest(store, k1.topic, payload, NOW)
    assert_refused(store, result, "rejected", reason)
    assert dead(store)[0].payload == payload


def test_oversized_payload_keeps_only_its_head(store: CentralStore, k1: Kiosk) -> None:
    payload = b"\x95" + bytes(protocol.MAX_PAYLOAD + 10)
    result = ingest(store, k1.topic, payload, NOW)
    assert_refused(store, result, "rejected", "exceeds")
    letter = dead(store)[0]
    assert (letter.size, len(letter.payload)) == (len(payload), protocol.MAX_PAYLOAD)


def test_decompression_bomb_signed_by_the_device(store: CentralStore, k1: Kiosk) -> None:
    body = bytes(protocol.MAX_BODY + 1024)
    payload = protocol.seal("batch", "K1", body, k1.key)
    assert len(payload) < 64 * 1024
    env = protocol.open_envelope(payload, "batch")
    assert env.zipped and len(zlib.decompress(env.body)) > protocol.MAX_BODY
    result = ingest(store, k1.topic, payload, NOW)
    assert_refused(store, result, "rejected", "inflates beyond")


def test_enrolment_into_another_village_is_refused(store: CentralStore, tmp_path: Path) -> None:
    store.create_village("V2")
    k3 = new_kiosk(tmp_path, "K3")  # its ledger says village V1
    enrol(store, k3, village="V2")
    k3.ledger.enrol("Li household", staff_id="S1")
    result = ingest(store, k3.topic, k3.batch(), NOW)
    assert_refused(store, result, "rejected", "into village 'V1'", device="K3")
    k3.ledger.close()


def test_topic_without_a_device_gets_no_ack(store: CentralStore) -> None:
    result = ingest(store, "gp/v1/dev/up/batch", b"x", NOW)
    assert result == IngestResult(None, None, None, 0)
    letters = dead(store)
    assert [(d.status, d.claimed_device) for d in letters] == [("rejected", None)]


def test_a_database_failure_raises_and_acks_nothing(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE entries"))
    with pytest.raises(StorageError, match="storing a batch from K1"):
        ingest(store, k1.topic, k1.batch(), NOW)
    dev = store.device("K1")
    assert dev is not None and dev.acked_seq == 0


def test_two_workers_ingesting_the_same_batches_store_each_entry_once(
    store: CentralStore, k1: Kiosk
) -> None:
    led = k1.ledger
    pids = [led.enrol(f"Household {n}", staff_id="S1").passbook_id for n in range(40)]
    for pid in pids:
        k1.clock.advance(1000)
        led.deposit(pid or "", "paper", 1000)
    head = k1.head_seq
    batches = [k1.batch(first, min(first + 9, head)) for first in range(1, head + 1, 10)]
    barrier = threading.Barrier(2)
    acks: list[protocol.Ack | None] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for payload in batches:
                barrier.wait(timeout=30)  # both take the same batch at the same moment
                acks.append(ingest(store, k1.topic, payload, NOW).ack)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(acks) == 2 * len(batches)
    assert all(a is not None and a.status == "ok" for a in acks)
    with store.read() as conn:
        n, distinct = conn.execute(
            select(func.count(), func.count(func.distinct(db.entries.c.seq))).where(
                db.entries.c.device_id == "K1"
            )
        ).one()
    assert (n, distinct) == (head, head)
    assert reports.device_chain(store, "K1") == k1.rows()
    assert dead(store) == []


def test_an_entry_id_another_device_already_used_is_rejected(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    populate(k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    k2.ledger.enrol("Li household", staff_id="S1")
    ingest(store, k2.topic, k2.batch(), NOW)
    stolen = k1.rows(1, 1)[0][0].entry_id
    with store.engine.begin() as conn:  # as if K2 had sent an entry with K1's entry id
        conn.execute(
            db.entries.update().where(db.entries.c.device_id == "K2").values(entry_id=stolen)
        )
    result = ingest(store, k1.topic, k1.batch(), NOW)
    assert result.ack is not None
    assert (result.ack.status, result.ack.acked_seq, result.stored) == ("rejected", 0, 0)
    assert "conflicts with stored entries" in result.ack.reason
    assert store.count_entries("K1") == 0
    assert [d.status for d in dead(store)] == ["rejected"]
    k2.ledger.close()
