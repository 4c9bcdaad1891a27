"""Ingest in two stages (`Ingest.prepare`, then `Ingest.batch` with what it made): the
receiver checks the next batch on a thread of its own while the one before is stored.
What was checked ahead is taken only against the device row it was checked against,
and a refusal is still decided on a fresh read."""

from __future__ import annotations

import pytest

from central import ingest as ingest_module
from central.db import Device
from central.ingest import Ingest
from central.store import CentralStore
from sync import protocol
from sync.keys import generate_key, public_bytes
from tests.central.conftest import NOW, Kiosk, populate


def test_a_prepared_batch_is_stored_without_being_checked_again(
    store: CentralStore, k1: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(k1)
    ing = Ingest(store)
    first = ing.batch(k1.topic, k1.batch(1, 5), NOW)  # the device, as last read
    assert first.ack is not None and first.ack.status == "ok"
    ready = ing.prepare(k1.topic, k1.batch(6))
    assert ready is not None and ready.batch.first_seq == 6
    checks: list[int] = []
    real = ingest_module.checked

    def counted(st: CentralStore, batch: protocol.Batch, dev: Device) -> protocol.Batch:
        checks.append(batch.first_seq)
        return real(st, batch, dev)

    monkeypatch.setattr(ingest_module, "checked", counted)
    result = ing.batch(k1.topic, k1.batch(6), NOW, ready)
    assert result.ack is not None and result.ack.status == "ok"
    assert (result.ack.acked_seq, result.stored) == (k1.head_seq, k1.head_seq - 5)
    assert checks == [] and store.count_entries() == k1.head_seq


def test_a_batch_prepared_before_its_device_was_re_keyed_is_refused_on_a_fresh_read(
    store: CentralStore, k1: Kiosk
) -> None:
    populate(k1)
    ing = Ingest(store)
    assert ing.batch(k1.topic, k1.batch(1, 5), NOW).stored == 5
    payload = k1.batch(6)  # signed with the key the device had
    ready = ing.prepare(k1.topic, payload)
    assert ready is not None
    # Meanwhile the operator re-enrols K1 with a new key (a replaced kiosk).
    token = store.create_enrol_token("K1", "V1", NOW, actor="test")
    store.enrol(token, "K1", public_bytes(generate_key()), NOW)
    result = ing.batch(k1.topic, payload, NOW, ready)
    assert result.ack is not None and result.ack.status == "bad_signature"
    assert result.stored == 0 and store.count_entries() == 5


def test_prepare_leaves_to_the_whole_path_what_it_cannot_vouch_for(
    store: CentralStore, k1: Kiosk
) -> None:
    populate(k1)
    ing = Ingest(store)
    assert ing.prepare(k1.topic, k1.batch(1, 5)) is None  # no device read yet
    assert ing.batch(k1.topic, k1.batch(1, 5), NOW).stored == 5
    forged = k1.batch(6, key=generate_key())
    for topic, payload in [
        (k1.topic, forged),
        (k1.topic, b"\x00not an envelope"),
        ("gp/v1/dev/K1/up/status", k1.batch(6)),
        (protocol.topic("K9", protocol.BATCH), k1.batch(6)),
    ]:
        assert ing.prepare(topic, payload) is None
    # The forged batch, handed on unprepared, is refused as it always was.
    result = ing.batch(k1.topic, forged, NOW, None)
    assert result.ack is not None and result.ack.status == "bad_signature"
    assert store.count_entries() == 5


def test_a_prepared_batch_is_checked_again_when_the_device_was_read_anew_meanwhile(
    store: CentralStore, k1: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prepared against one reading of the device row, stored against another (central
    read every device again on reconnecting): the checks are made again."""
    populate(k1)
    ing = Ingest(store)
    assert ing.batch(k1.topic, k1.batch(1, 5), NOW).stored == 5
    payload = k1.batch(6)
    ready = ing.prepare(k1.topic, payload)
    assert ready is not None
    fresh = store.device("K1")
    assert fresh is not None and fresh is not ready.device
    ing.remember([fresh])
    checks: list[int] = []
    real = ingest_module.checked

    def counted(st: CentralStore, batch: protocol.Batch, dev: Device) -> protocol.Batch:
        checks.append(batch.first_seq)
        assert dev is fresh
        return real(st, batch, dev)

    monkeypatch.setattr(ingest_module, "checked", counted)
    result = ing.batch(k1.topic, payload, NOW, ready)
    assert result.ack is not None and result.ack.status == "ok"
    assert checks == [6] and store.count_entries() == k1.head_seq
