"""The village state pushed to each kiosk: balances across kiosks, included_seq, versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from central import db
from central.ingest import ingest
from central.state import build_state
from central.store import CentralStore
from greenpass.errors import CentralError
from greenpass.record.rules import default_rules
from sync import protocol
from sync.keys import generate_key, public_bytes
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate


def sync(store: CentralStore, k: Kiosk) -> None:
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def test_balances_of_two_kiosks_of_one_village(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    ids = populate(k1)
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    state = build_state(store, "K2", NOW)
    assert (state.village, state.device_id, state.included_seq) == ("V1", "K2", 0)
    assert state.revoked == [ids["zhao"]]
    assert k2.apply(state)
    li = ids["li"]
    assert k2.ledger.balance(li) == k1.ledger.balance(li)  # learnt from central
    k2.clock.advance(3_600_000)
    k2.ledger.deposit(li, "paper", 1000)  # Li brings paper to the other kiosk
    sync(store, k2)

    s1 = build_state(store, "K1", NOW)
    dev1 = store.device("K1")
    assert dev1 is not None and s1.included_seq == dev1.acked_seq == k1.head_seq
    expected = {
        pid: sum(e.points for k in (k1, k2) for e, _ in k.rows() if e.passbook_id == pid)
        for pid in ids.values()
    }
    assert s1.balances == expected
    assert k1.apply(s1)
    assert k1.ledger.balance(li) == expected[li] == k2.ledger.balance(li)
    assert {v.passbook_id: v.status for v in s1.villagers} == {
        ids["li"]: "active",
        ids["wang"]: "active",
        ids["zhao"]: "revoked",
    }
    k2.ledger.close()


def test_included_seq_follows_the_devices_acked_seq(store: CentralStore, k1: Kiosk) -> None:
    ids = populate(k1)
    ingest(store, k1.topic, k1.batch(1, 6), NOW)
    state = build_state(store, "K1", NOW)
    assert state.included_seq == 6
    # The kiosk's balance = snapshot + its own entries after included_seq: exact.
    assert k1.apply(state)
    for pid in ids.values():
        assert k1.ledger.balance(pid) == sum(e.points for e, _ in k1.rows() if e.passbook_id == pid)


def test_versions_strictly_increase(store: CentralStore, k1: Kiosk, tmp_path: Path) -> None:
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    versions = [build_state(store, k, NOW).version for k in ("K1", "K2", "K1", "K1", "K2")]
    assert versions == sorted(set(versions)) and len(versions) == 5
    store.create_village("V2")
    store.enrol(
        store.create_enrol_token("K7", "V2", NOW, actor="test"),
        "K7",
        public_bytes(generate_key()),
        NOW,
    )
    assert build_state(store, "K7", NOW).version == 1  # a counter per village
    k2.ledger.close()


def test_catalogue_rules_and_issuer_keys(store: CentralStore, k1: Kiosk) -> None:
    state = build_state(store, "K1", NOW)
    assert (state.catalogue, state.rules_text, state.issuer_keys) == (None, None, {})
    store.put_item("V1", "soap", name_zh="肥皂", name_en="Soap", points_price=30)
    store.put_item("V1", "soap", name_zh="肥皂", name_en="Soap bar", points_price=35)
    store.put_item("V1", "rice", name_zh="大米", name_en="Rice", points_price=50, active=False)
    text = default_rules().text
    assert store.set_rules("V1", text)
    assert not store.set_rules("V1", text)
    issuer = public_bytes(generate_key())
    assert store.add_issuer_key("office-1", "V1", issuer)
    assert not store.add_issuer_key("office-1", "V1", issuer)
    state = build_state(store, "K1", NOW)
    assert state.catalogue == [
        protocol.WireItem("rice", "大米", "Rice", 50, False),
        protocol.WireItem("soap", "肥皂", "Soap bar", 35, True),
    ]
    assert state.rules_text == text
    assert state.issuer_keys == {"office-1": issuer}
    # It travels: sealed by central, opened by the kiosk's decoder.
    central_key = generate_key()
    opened = protocol.decode_state(
        protocol.encode_state(state, central_key), central_key.public_key(), "K1"
    )
    assert opened == state
    assert k1.apply(opened)
    assert [i.item_id for i in k1.ledger.catalogue()] == ["rice", "soap"]


def test_refusals(store: CentralStore, k1: Kiosk) -> None:
    text = default_rules().text
    store.set_rules("V1", text)
    with pytest.raises(CentralError, match="different text"):
        store.set_rules("V1", text.replace("cooldown_seconds = 20", "cooldown_seconds = 25"))
    with pytest.raises(CentralError, match="another key"):
        store.add_issuer_key("office-1", "V1", public_bytes(generate_key()))
        store.add_issuer_key("office-1", "V1", public_bytes(generate_key()))
    with pytest.raises(CentralError, match="positive"):
        store.put_item("V1", "soap", name_zh="肥皂", name_en="Soap", points_price=0)
    with pytest.raises(CentralError, match="no device"):
        build_state(store, "K9", NOW)
    store.revoke_device("K1", NOW, actor="test")
    with pytest.raises(CentralError, match="revoked"):
        build_state(store, "K1", NOW)


def test_a_state_reads_one_snapshot(store: CentralStore, k1: Kiosk) -> None:
    """included_seq and the balances come from the same read, so a balance is never
    counted twice by a kiosk: entries after included_seq are not in the balances."""
    populate(k1)
    ingest(store, k1.topic, k1.batch(1, 9), NOW)
    with store.engine.begin() as conn:  # the village counter is its own row, untouched by ingest
        conn.execute(update(db.villages).values(state_version=41))
    state = build_state(store, "K1", NOW)
    assert (state.version, state.included_seq) == (42, 9)
    covered = {e.passbook_id for e, _ in k1.rows(1, 9) if e.passbook_id}
    assert set(state.balances) == covered
