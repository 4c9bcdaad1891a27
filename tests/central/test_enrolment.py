"""Enrolment tokens, devices, broker users and kiosk status."""

from __future__ import annotations

import threading

import pytest

from central.store import CentralStore
from greenpass.errors import CentralError
from sync import protocol
from sync.keys import generate_key, public_bytes
from tests.central.conftest import NOW

KEY = public_bytes(generate_key())


def test_token_enrols_a_device_once_and_returns_a_password(store: CentralStore) -> None:
    token = store.create_enrol_token("K1", "V1", NOW, actor="test")
    assert len(token) >= 32
    got = store.enrol(token, "K1", KEY, NOW + 5)
    assert (got.device_id, got.village_id, got.mqtt_username, got.re_enrolled) == (
        "K1",
        "V1",
        "K1",
        False,
    )
    dev = store.device("K1")
    assert dev is not None
    assert (dev.public_key, dev.status, dev.acked_seq, dev.last_h) == (KEY, "active", 0, bytes(32))
    assert (
        dev.mqtt_password_hash.startswith("$7$") and got.mqtt_password not in dev.mqtt_password_hash
    )
    with pytest.raises(CentralError, match="already been used"):
        store.enrol(token, "K1", KEY, NOW + 6)


def test_only_the_token_hash_is_stored(store: CentralStore) -> None:
    token = store.create_enrol_token("K1", "V1", NOW, actor="test")
    with store.read() as conn:
        dump = " ".join(str(r) for r in conn.exec_driver_sql("SELECT * FROM enrol_tokens"))
    assert token not in dump


@pytest.mark.parametrize(
    ("token_device", "ttl_s", "at", "device", "reason"),
    [
        ("K1", 60, NOW + 60_000, "K1", "expired"),
        ("K1", 60, NOW, "K2", r"^enrolment refused: the token is unknown, or was issued for"),
    ],
)
def test_token_misuse_is_refused(
    store: CentralStore, token_device: str, ttl_s: int, at: int, device: str, reason: str
) -> None:
    token = store.create_enrol_token(token_device, "V1", NOW, ttl_s=ttl_s, actor="test")
    with pytest.raises(CentralError, match=reason):
        store.enrol(token, device, KEY, at)
    assert store.device(device) is None


def test_unknown_token_and_bad_key(store: CentralStore) -> None:
    with pytest.raises(CentralError, match="unknown"):
        store.enrol("not-a-token", "K1", KEY, NOW)
    token = store.create_enrol_token("K1", "V1", NOW, actor="test")
    with pytest.raises(CentralError, match="32 bytes"):
        store.enrol(token, "K1", b"short", NOW)
    store.enrol(token, "K1", KEY, NOW)  # the refusal did not use the token up


def test_revoked_device_cannot_enrol_again(store: CentralStore) -> None:
    store.enrol(store.create_enrol_token("K1", "V1", NOW, actor="test"), "K1", KEY, NOW)
    token = store.create_enrol_token("K1", "V1", NOW, actor="test")  # issued before the revocation
    assert store.revoke_device("K1", NOW + 1, actor="test")
    assert not store.revoke_device("K1", NOW + 2, actor="test")
    with pytest.raises(CentralError, match="revoked"):
        store.enrol(token, "K1", KEY, NOW + 3)
    with pytest.raises(CentralError, match="revoked"):
        store.create_enrol_token("K1", "V1", NOW, actor="test")
    dev = store.device("K1")
    assert dev is not None and (dev.status, dev.revoked_ms) == ("revoked", NOW + 1)


def test_re_enrolling_replaces_key_and_password_but_keeps_the_chain(store: CentralStore) -> None:
    first = store.enrol(store.create_enrol_token("K1", "V1", NOW, actor="test"), "K1", KEY, NOW)
    old = store.device("K1")
    new_key = public_bytes(generate_key())
    again = store.enrol(
        store.create_enrol_token("K1", "V1", NOW, actor="test"), "K1", new_key, NOW + 9
    )
    dev = store.device("K1")
    assert old is not None and dev is not None
    assert again.re_enrolled and again.mqtt_password != first.mqtt_password
    assert (dev.public_key, dev.enrolled_ms) == (new_key, NOW + 9)
    assert dev.mqtt_password_hash != old.mqtt_password_hash


@pytest.mark.parametrize("device", ["central", "a/b", "", "x" * 65, "-lead", "sp ace", "a.b"])
def test_token_for_a_bad_device_id_is_refused(store: CentralStore, device: str) -> None:
    with pytest.raises(CentralError):
        store.create_enrol_token(device, "V1", NOW, actor="test")


def test_token_for_an_unknown_village_is_refused(store: CentralStore) -> None:
    with pytest.raises(CentralError, match="no village 'V9'"):
        store.create_enrol_token("K1", "V9", NOW, actor="test")


def test_one_token_used_concurrently_enrols_once(store: CentralStore) -> None:
    token = store.create_enrol_token("K1", "V1", NOW, actor="test")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait(timeout=30)
        try:
            store.enrol(token, "K1", public_bytes(generate_key()), NOW)
            outcomes.append("ok")
        except CentralError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes)[-1] == "ok" and outcomes.count("ok") == 1, outcomes
    assert all("already been used" in o for o in outcomes if o != "ok")


def test_broker_logins_are_the_active_devices(store: CentralStore) -> None:
    for device in ("K2", "K1", "K3"):
        store.enrol(store.create_enrol_token(device, "V1", NOW, actor="test"), device, KEY, NOW)
    store.revoke_device("K3", NOW, actor="test")
    logins = store.broker_logins()
    assert [(u.device_id, u.public_key) for u in logins] == [("K1", KEY), ("K2", KEY)]
    assert all(u.password_hash.startswith("$7$") and u.password is None for u in logins)
    assert [d.device_id for d in store.devices("V1")] == ["K1", "K2", "K3"]
    assert store.devices("V9") == []


def test_status_is_recorded_only_for_its_own_active_device(store: CentralStore) -> None:
    store.enrol(store.create_enrol_token("K1", "V1", NOW, actor="test"), "K1", KEY, NOW)
    status = protocol.Status(device_id="K1", online=True, backlog=3, acked_seq=7)
    payload = protocol.encode_status(status)
    topic = protocol.topic("K1", protocol.STATUS)
    assert store.record_status(topic, payload, NOW + 1)
    dev = store.device("K1")
    assert dev is not None and dev.last_seen_ms == NOW + 1 and dev.status_json is not None
    assert protocol.decode_status(dev.status_json.encode()) == status
    assert not store.record_status(protocol.topic("K2", protocol.STATUS), payload, NOW)
    other = protocol.encode_status(protocol.Status(device_id="K2", online=True))
    assert not store.record_status(protocol.topic("K2", protocol.STATUS), other, NOW)  # unknown
    assert not store.record_status(topic, other, NOW)  # K2's status on K1's topic
    assert not store.record_status(topic, b"{nonsense", NOW)
    store.revoke_device("K1", NOW, actor="test")
    assert not store.record_status(topic, payload, NOW + 2)


def test_no_token_starts_with_a_dash(store: CentralStore) -> None:
    """`greenpass provision --token -abc…` would read the token as an option."""
    tokens = [store.create_enrol_token(f"K{n}", "V1", NOW, actor="test") for n in range(300)]
    assert not [t for t in tokens if t.startswith("-")]
