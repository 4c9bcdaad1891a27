"""The broker config from `central.broker`, proved against a real Mosquitto 2.0.

Who may connect (TLS only, right password only), what each user may publish,
subscribe to and receive (a device only its own branch, central every branch),
the shared subscription central's workers use, enrolment and revocation without a
restart, and what survives a broker restart. The attacker's view of the same
rules is tests/security/test_broker.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

from central.broker import (
    CENTRAL_BATCH_SUBSCRIPTION,
    CENTRAL_USER,
    check_device_id,
    mosquitto_password_hash,
    write_broker_config,
)
from central.devca import DevCA
from central.dynsec import BrokerAdmin, DeviceLogin, dynsec_password
from devkit.mqtt_broker import Broker, BrokerRefused
from greenpass.errors import ConfigError
from sync import protocol
from sync.receiver import STATUS_SUBSCRIPTION

NOT_AUTHORIZED = 0x87

# --- files, without a broker --------------------------------------------------------


def test_password_hash_is_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    line = mosquitto_password_hash("s3cret", salt=b"0123456789ab", iterations=7)
    _, kind, iterations, salt, digest = line.split("$")
    assert (kind, iterations) == ("7", "7")
    assert base64.b64decode(salt) == b"0123456789ab"
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"s3cret", b"0123456789ab", 7)
    assert len(base64.b64decode(digest)) == 64
    # Byte for byte against the real tool, when installed: same salt, same line.
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd not installed; format checked against the source only")
    pwfile = tmp_path / "pw"
    subprocess.run([tool, "-b", "-c", str(pwfile), "K9", "pässwörd"], check=True)
    user, theirs = pwfile.read_text().strip().split(":", 1)
    their_salt = base64.b64decode(theirs.split("$")[3])
    assert user == "K9" and len(their_salt) == 12
    assert mosquitto_password_hash("pässwörd", salt=their_salt) == theirs


def test_bad_salts_and_reserved_names_are_refused() -> None:
    with pytest.raises(ValueError, match="12-byte salt"):
        mosquitto_password_hash("pw", salt=b"short")
    for reserved in (CENTRAL_USER, "central-1", "Central", "CENTRAL-admin"):
        with pytest.raises(ConfigError, match="reserved"):
            check_device_id(reserved)
    for bad in ("K1/up", "K+", "#", "a:b", "", "$SYS", "K 1"):
        with pytest.raises(ConfigError):
            check_device_id(bad)
    assert check_device_id("K0001") == "K0001"


def test_config_folder_has_the_promised_files_and_modes(tmp_path: Path) -> None:
    k1 = DeviceLogin("K1", b"k1 key", mosquitto_password_hash("k1-pw"))
    files = write_broker_config(
        tmp_path / "b",
        port=18883,
        central_password_hash=mosquitto_password_hash("pw"),
        devices=[k1],
        run_as="root" if os.geteuid() == 0 else None,
    )
    conf = files.conf.read_text()
    for line in (
        "per_listener_settings false",
        "allow_anonymous false",
        f"plugin_opt_config_file {files.dynsec}",
        "listener 18883 127.0.0.1",
        "require_certificate false",
        "tls_version tlsv1.2",
        "persistence true",
        f"pid_file {files.pid_file}",
        "max_queued_messages 100000",
        "max_queued_bytes 536870912",
        "max_packet_size 1048576",
        "persistent_client_expiration 30d",
        "log_dest stderr",
    ):
        assert f"\n{line}\n" in conf, line
    assert "\nplugin /" in conf and "mosquitto_dynamic_security.so" in conf
    assert "\npassword_file" not in conf and "\nacl_file" not in conf
    assert "log_dest file" not in conf and conf.count("\nlistener ") == 1
    assert stat.S_IMODE(files.dynsec.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "b/tls/server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "b/tls/ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(files.data_dir.stat().st_mode) == 0o700
    doc = json.loads(files.dynsec.read_text())
    assert doc["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    clients = {c["username"]: c for c in doc["clients"]}
    assert set(clients) == {"central", "K1"}
    assert clients["K1"]["clientid"] == "gp-K1" and "clientid" not in clients["central"]
    # The stored $7$ hash moves into the plugin's file unchanged.
    assert {k: clients["K1"][k] for k in ("password", "salt", "iterations")} == dynsec_password(
        k1.password_hash
    )
    roles = {r["rolename"]: r["acls"] for r in doc["roles"]}
    k1_rights = {(a["acltype"], a["topic"]) for a in roles["gp-device-K1"]}
    assert ("publishClientSend", "gp/v1/dev/K1/up/batch") in k1_rights
    assert ("subscribeLiteral", "gp/v1/dev/K1/down/#") in k1_rights
    assert not any("%" in t or "+" in t or "$" in t for _, t in k1_rights)


def test_dev_ca_is_reused_and_server_cert_renewed_for_new_names(tmp_path: Path) -> None:
    first = DevCA.create(tmp_path)
    ca, server = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    again = DevCA.create(tmp_path)
    assert again.ca_cert.read_bytes() == ca and again.server_cert.read_bytes() == server
    wider = DevCA.create(tmp_path, hostnames=("localhost", "central.lan"), ips=("127.0.0.1",))
    assert wider.ca_cert.read_bytes() == ca  # kiosks keep trusting the same CA
    assert wider.server_cert.read_bytes() != server
    (tmp_path / "ca.key").write_text("garbage")
    fresh = DevCA.create(tmp_path)
    assert fresh.ca_cert.read_bytes() != ca


def test_operator_ca_files_are_used_and_never_overwritten(tmp_path: Path) -> None:
    DevCA.create(tmp_path, hostnames=("broker.lan",), ips=())
    (tmp_path / "ca.key").unlink()  # what an operator's CA looks like: no key here
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    DevCA.create(tmp_path, hostnames=("broker.lan",), ips=())
    with pytest.raises(ConfigError, match="no CA key"):
        DevCA.create(tmp_path, hostnames=("other.lan",), ips=())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# --- who may connect ------------------------------------------------------------------


def test_right_password_connects_wrong_and_unknown_are_refused(broker: Broker) -> None:
    assert broker.client("K1", "k1-pw").is_connected()
    with pytest.raises(BrokerRefused) as wrong:
        broker.client("K1", "k2-pw")
    assert wrong.value.reason is not None and wrong.value.reason.is_failure
    with pytest.raises(BrokerRefused):
        broker.client("K9", "k1-pw")
    with pytest.raises(BrokerRefused):
        broker.client("", "")


def test_plain_mqtt_to_the_tls_port_gets_no_session(broker: Broker) -> None:
    with pytest.raises(BrokerRefused):
        broker.client("K1", "k1-pw", tls=False)


def test_tls_below_1_2_is_refused(broker: Broker) -> None:
    def handshake(version: ssl.TLSVersion) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(broker.ca_cert))
        ctx.set_ciphers("ALL:@SECLEVEL=0")  # so only the broker can be the one refusing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is, on purpose
            ctx.minimum_version = ctx.maximum_version = version
        with (
            socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return str(tls.version())

    assert handshake(ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|protocol version"):
        handshake(ssl.TLSVersion.TLSv1_1)


# --- what each user may publish and receive ----------------------------------------------


def test_device_cannot_publish_as_another_device(broker: Broker) -> None:
    central = broker.client("central", "central-pw")
    assert not central.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)[0].is_failure
    assert not central.subscribe_wait("gp/v1/dev/+/status")[0].is_failure
    k1 = broker.client("K1", "k1-pw")
    assert k1.publish_wait("gp/v1/dev/K2/up/batch", b"forged").value == NOT_AUTHORIZED
    assert k1.publish_wait("gp/v1/dev/K2/status", b"forged").value == NOT_AUTHORIZED
    assert k1.publish_wait("gp/v1/dev/K1/down/ack", b"self-ack").value == NOT_AUTHORIZED
    assert not k1.publish_wait("gp/v1/dev/K1/up/batch", b"mine").is_failure
    assert not k1.publish_wait("gp/v1/dev/K1/status", b"online").is_failure
    got = [(m.topic, m.payload) for m in central.messages(0.5)]
    assert got == [("gp/v1/dev/K1/up/batch", b"mine"), ("gp/v1/dev/K1/status", b"online")]


def test_device_receives_only_its_own_downlink(broker: Broker) -> None:
    central = broker.client("central", "central-pw")
    k1 = broker.client("K1", "k1-pw")
    k2 = broker.client("K2", "k2-pw")
    # Subscriptions are checked: a filter reaching past the device's own branch is
    # refused outright, and only its own downlink is granted.
    assert k1.subscribe_wait("gp/v1/dev/+/down/#")[0].value == NOT_AUTHORIZED
    assert k1.subscribe_wait("gp/v1/dev/+/up/#")[0].value == NOT_AUTHORIZED
    assert not k1.subscribe_wait("gp/v1/dev/K1/down/#")[0].is_failure
    assert not k2.subscribe_wait("gp/v1/dev/K2/down/#")[0].is_failure
    for device in ("K1", "K2"):
        assert not central.publish_wait(f"gp/v1/dev/{device}/down/ack", device).is_failure
    assert not k2.publish_wait("gp/v1/dev/K2/up/batch", b"k2 batch").is_failure
    assert [(m.topic, m.payload) for m in k1.messages(0.5)] == [("gp/v1/dev/K1/down/ack", b"K1")]
    assert [m.payload for m in k2.messages(0.1)] == [b"K2"]


def test_shared_subscription_gives_each_batch_to_exactly_one_worker(broker: Broker) -> None:
    workers = [broker.client("central", "central-pw") for _ in range(2)]
    for worker in workers:
        assert not worker.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)[0].is_failure
    senders = {d: broker.client(d, f"{d.lower()}-pw") for d in ("K1", "K2")}
    sent = set()
    for n in range(20):
        device = ("K1", "K2")[n % 2]
        payload = f"{device}-{n}".encode()
        assert not senders[device].publish_wait(f"gp/v1/dev/{device}/up/batch", payload).is_failure
        sent.add(payload)
    got = [{m.payload for m in w.messages(0.5)} for w in workers]
    assert got[0] | got[1] == sent
    assert not got[0] & got[1], "a batch went to both workers"
    assert got[0] and got[1], "one worker got nothing: not shared"


def test_a_device_cannot_join_centrals_share_group(broker: Broker) -> None:
    central = broker.client("central", "central-pw")
    k1 = broker.client("K1", "k1-pw")
    k2 = broker.client("K2", "k2-pw")
    central.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)
    # Refused at SUBSCRIBE: K2 never becomes a member, so no batch is routed to it
    # and lost; central gets every one.
    assert k2.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)[0].value == NOT_AUTHORIZED
    for n in range(6):
        k1.publish_wait("gp/v1/dev/K1/up/batch", f"b{n}")
    assert sorted(m.payload for m in central.messages(0.5)) == [f"b{n}".encode() for n in range(6)]
    assert k2.messages(0.1) == []


def test_batches_far_above_256_kib_pass(broker: Broker) -> None:
    central = broker.client("central", "central-pw")
    central.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)
    k1 = broker.client("K1", "k1-pw")
    big = bytes(range(256)) * 1200  # 300 KiB
    assert not k1.publish_wait("gp/v1/dev/K1/up/batch", big).is_failure
    assert central.next_message().payload == big


# --- enrolment and revocation without a restart --------------------------------------------


def test_enrolled_device_gets_in_without_restart(broker: Broker) -> None:
    pid = broker.pid
    with pytest.raises(BrokerRefused):
        broker.client("K3", "k3-pw")
    broker.add_user("K3", "k3-pw")
    assert broker.pid == pid, "the broker was restarted"
    central = broker.client("central", "central-pw")
    central.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)
    k3 = broker.client("K3", "k3-pw")
    assert not k3.publish_wait("gp/v1/dev/K3/up/batch", b"hello").is_failure
    assert central.next_message().topic == "gp/v1/dev/K3/up/batch"
    assert k3.publish_wait("gp/v1/dev/K1/up/batch", b"x").value == NOT_AUTHORIZED


def test_revoked_device_is_disconnected_and_stays_out(broker: Broker) -> None:
    k1 = broker.client("K1", "k1-pw")
    k2 = broker.client("K2", "k2-pw")
    assert k2.is_connected()
    broker.remove_user("K2")
    deadline = time.monotonic() + 5
    while k2.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not k2.is_connected(), "a revoked device kept its connection"
    k2.close()
    with pytest.raises(BrokerRefused):
        broker.client("K2", "k2-pw")
    assert k1.is_connected(), "the reload dropped a device that was not revoked"
    assert not k1.publish_wait("gp/v1/dev/K1/up/batch", b"still here").is_failure


# --- what survives a restart -----------------------------------------------------------------


def test_restart_keeps_retained_state_and_queued_acks(broker: Broker) -> None:
    k1 = broker.client("K1", "k1-pw", clean_start=False, session_expiry=3600)
    assert not k1.subscribe_wait("gp/v1/dev/K1/down/#")[0].is_failure
    k1.close()  # the kiosk goes offline; its session waits for it
    central = broker.client("central", "central-pw")
    assert not central.publish_wait("gp/v1/dev/K1/down/ack", b"ack 41").is_failure
    assert not central.publish_wait("gp/v1/dev/K1/down/state", b"v7", retain=True).is_failure
    central.close()

    broker.restart()

    back = broker.client("K1", "k1-pw", clean_start=False, session_expiry=3600)
    got = sorted((m.topic, m.payload) for m in back.messages(1.0))
    assert got == [("gp/v1/dev/K1/down/ack", b"ack 41"), ("gp/v1/dev/K1/down/state", b"v7")]
    back.close()
    fresh = broker.client("K1", "k1-pw")  # reinstalled: a clean session, same bound id
    fresh.subscribe_wait("gp/v1/dev/K1/down/state")
    state = fresh.next_message()
    assert state.payload == b"v7" and state.retain


def test_central_may_subscribe_to_what_its_receiver_subscribes_to(broker: Broker) -> None:
    central = broker.client("central", "central-pw")
    for topic_filter in (protocol.SHARED_BATCH_SUBSCRIPTION, STATUS_SUBSCRIPTION):
        assert not central.subscribe_wait(topic_filter)[0].is_failure, topic_filter


def test_admins_syncing_at_once_each_read_only_their_own_answers(broker: Broker) -> None:
    """Several central workers keep the logins at once, and every admin connection
    reads every answer on the plugin's response topic: each took the others' for its
    own ("the broker answered 1 of 100 commands") until commands carried ids."""
    broker.add_user("K3", "k3-pw")
    admins = {user: BrokerAdmin(broker.admin_config()) for user in ("K1", "K2", "K3")}
    errors: list[BaseException] = []

    def ask(user: str, admin: BrokerAdmin) -> None:
        try:
            for _ in range(30):
                (answer,) = admin.run([{"command": "getClient", "username": user}])
                assert answer["data"]["client"]["username"] == user, answer
                big = admin.run([{"command": "listClients", "count": -1}] * 3)
                assert len(big) == 3
        except BaseException as exc:  # noqa: BLE001 - reported below, from this thread
            errors.append(exc)

    with admins["K1"], admins["K2"], admins["K3"]:
        threads = [threading.Thread(target=ask, args=item) for item in admins.items()]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    assert not errors, errors
