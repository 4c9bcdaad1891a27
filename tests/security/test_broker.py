"""The broker as an attacker with one kiosk's password meets it (issue 11).

Every test runs against a Mosquitto started from `greenpass central broker-config`'s
own ``run:`` line. Each attempt must be refused, and refused without disturbing any
other device or central: a device reads, delays and impersonates nobody.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from central.dynsec import CENTRAL_BATCH_SUBSCRIPTION, CENTRAL_RESERVE_SUBSCRIPTION
from devkit.mqtt_broker import BrokerRefused, connect_client, free_port, mosquitto_binary
from tests.security.conftest import (
    CENTRAL_PW,
    ROOT,
    ConfiguredBroker,
    enrol_devices,
    wait_listening,
    world_reachable_dir,
)

NOT_AUTHORIZED = 0x87


def _gone(client: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while client.is_connected() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.02)
    return not client.is_connected()  # type: ignore[attr-defined]


# --- who may connect ------------------------------------------------------------------


def test_anonymous_plain_wrong_and_unknown_logins_are_refused(configured: ConfiguredBroker) -> None:
    b = configured
    for user, pw in (("", ""), ("K1", "wrong"), ("K9", b.passwords["K1"]), ("central", "K1")):
        with pytest.raises(BrokerRefused):
            b.client(user, pw)
    with pytest.raises(BrokerRefused):
        b.client("K1", tls=False)  # plain MQTT to the TLS port gets no session
    assert b.client("K1").is_connected()


def test_a_device_cannot_take_another_client_id(configured: ConfiguredBroker) -> None:
    b = configured
    k2 = b.client("K2")
    central = b.client("central", client_id="gp-central-1")
    for stolen in ("gp-K2", "gp-central-1", "K2", "central", "anything-else"):
        with pytest.raises(BrokerRefused) as refused:
            b.client("K1", client_id=stolen)
        assert refused.value.reason is not None and refused.value.reason.value == NOT_AUTHORIZED
    time.sleep(0.3)
    assert k2.is_connected(), "K1 knocked K2 off"
    assert central.is_connected(), "K1 knocked central off"
    assert not k2.publish_wait("gp/v1/dev/K2/up/batch", b"still here").is_failure


# --- what a device may publish --------------------------------------------------------


def test_a_device_publishes_only_its_own_batch_and_status(configured: ConfiguredBroker) -> None:
    b = configured
    central = b.client("central")
    central.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)
    central.subscribe_wait("gp/v1/dev/+/status")
    k1 = b.client("K1")
    for topic in (
        "gp/v1/dev/K2/up/batch",
        "gp/v1/dev/K2/up/reverse",
        "gp/v1/dev/K2/status",
        "gp/v1/dev/K1/down/reverse",
        "gp/v1/dev/K2/down/ack",
        "gp/v1/dev/K1/down/ack",
        "gp/v1/dev/K1/down/state",
        "gp/v1/dev/K1/up/junk/1",
        "gp/v1/dev/K1/up",
        "$CONTROL/dynamic-security/v1",
        "anything/else",
    ):
        assert k1.publish_wait(topic, b"x").value == NOT_AUTHORIZED, topic
    assert not k1.publish_wait("gp/v1/dev/K1/up/batch", b"mine").is_failure
    assert not k1.publish_wait("gp/v1/dev/K1/status", b"online", retain=True).is_failure
    got = sorted((m.topic, m.payload) for m in central.messages(0.5))
    assert got == [("gp/v1/dev/K1/status", b"online"), ("gp/v1/dev/K1/up/batch", b"mine")]


def test_a_device_asks_central_to_reserve_only_on_its_own_branch(
    configured: ConfiguredBroker,
) -> None:
    """Reversals of another kiosk's entry (issue 17): K1 publishes its own
    ``up/reverse``, central receives it through its share group and answers on K1's
    ``down/reverse``, which K1 may read and K2 may not."""
    b = configured
    central = b.client("central")
    central.subscribe_wait(CENTRAL_RESERVE_SUBSCRIPTION)
    k1, k2 = b.client("K1"), b.client("K2")
    assert not k1.subscribe_wait("gp/v1/dev/K1/down/reverse")[0].is_failure
    assert k2.subscribe_wait("gp/v1/dev/K1/down/reverse")[0].value == NOT_AUTHORIZED
    assert not k1.publish_wait("gp/v1/dev/K1/up/reverse", b"reserve").is_failure
    assert k2.publish_wait("gp/v1/dev/K1/up/reverse", b"forged").value == NOT_AUTHORIZED
    got = [(m.topic, m.payload) for m in central.messages(0.5)]
    assert got == [("gp/v1/dev/K1/up/reverse", b"reserve")]
    assert not central.publish_wait("gp/v1/dev/K1/down/reverse", b"reserved").is_failure
    assert [m.payload for m in k1.messages(0.5)] == [b"reserved"]
    assert k2.messages(0.2) == []


def test_retained_junk_under_a_devices_own_branch_is_refused(configured: ConfiguredBroker) -> None:
    b = configured
    k1 = b.client("K1")
    junk = bytes(1000 * 1024)
    codes = {
        k1.publish_wait(f"gp/v1/dev/K1/up/junk/{n}", junk, retain=True).value for n in range(20)
    }
    assert codes == {NOT_AUTHORIZED}
    # Nothing was retained: a device that may read its own branch finds none of it.
    k1.subscribe_wait("gp/v1/dev/K1/down/#")
    assert k1.messages(0.3) == []


def test_an_oversized_payload_drops_only_its_sender(configured: ConfiguredBroker) -> None:
    b = configured
    central = b.client("central")
    central.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)
    k1, k2 = b.client("K1"), b.client("K2")
    k1.publish("gp/v1/dev/K1/up/batch", bytes(1_100_000), qos=1)
    assert _gone(k1), "the broker kept a client that sent more than max_packet_size"
    assert central.is_connected() and k2.is_connected()
    assert not k2.publish_wait("gp/v1/dev/K2/up/batch", b"fine").is_failure
    assert [m.payload for m in central.messages(0.5)] == [b"fine"]


def test_a_flood_from_one_device_leaves_the_others_and_central_working(
    configured: ConfiguredBroker,
) -> None:
    b = configured
    central = b.client("central")
    central.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)
    k1, k2 = b.client("K1"), b.client("K2")
    for n in range(3000):  # as fast as paho queues them; not waiting for PUBACKs
        k1.publish("gp/v1/dev/K1/up/batch", f"flood {n}".encode() * 20, qos=1)
        k1.publish("gp/v1/dev/K2/up/batch", b"forged", qos=0)
    assert not k2.publish_wait("gp/v1/dev/K2/up/batch", b"k2 batch", timeout=20).is_failure
    got = central.messages(3.0)
    assert any(m.payload == b"k2 batch" for m in got), "K2's batch was lost in K1's flood"
    assert not any(m.payload == b"forged" for m in got)
    assert central.is_connected() and k2.is_connected()
    assert b.proc is not None and b.proc.poll() is None


# --- what a device may subscribe to ------------------------------------------------------


# Each refused on one broker (a refusal changes nothing there): a broker per filter
# cost two seconds each.
FORBIDDEN_FILTERS = [
    CENTRAL_BATCH_SUBSCRIPTION,
    "$share/central/gp/v1/dev/K2/up/batch",
    "$share/mine/gp/v1/dev/+/up/batch",
    "gp/#",
    "+/#",
    "#",
    "gp/v1/dev/K2/down/#",
    "gp/v1/dev/K2/down/ack",
    "gp/v1/dev/K2/down/reverse",
    "gp/v1/dev/+/down/reverse",
    "gp/v1/dev/+/up/reverse",
    "gp/v1/dev/K1/up/reverse",
    CENTRAL_RESERVE_SUBSCRIPTION,
    "gp/v1/dev/+/down/#",
    "gp/v1/dev/+/status",
    "gp/v1/dev/K1/up/batch",
    "$SYS/#",
    "$CONTROL/dynamic-security/v1/response",
]


def test_a_device_subscribes_only_to_its_own_downlink(configured: ConfiguredBroker) -> None:
    k1 = configured.client("K1")
    allowed = {f: k1.subscribe_wait(f)[0].value for f in FORBIDDEN_FILTERS}
    assert {f: v for f, v in allowed.items() if v != NOT_AUTHORIZED} == {}
    assert not k1.subscribe_wait("gp/v1/dev/K1/down/#")[0].is_failure
    assert k1.is_connected()


def test_a_device_in_centrals_share_group_delays_no_batch(configured: ConfiguredBroker) -> None:
    """The finding: with one intruder in the group, 10 of 20 batches went unacked."""
    b = configured
    workers = [b.client("central") for _ in range(2)]
    for w in workers:
        assert not w.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)[0].is_failure
    intruders = [b.client("K1"), b.client("K3")]
    for intruder in intruders:
        assert intruder.subscribe_wait(CENTRAL_BATCH_SUBSCRIPTION)[0].value == NOT_AUTHORIZED
    k2 = b.client("K2")
    sent = {f"batch {n}".encode() for n in range(20)}
    for payload in sorted(sent):
        assert not k2.publish_wait("gp/v1/dev/K2/up/batch", payload).is_failure
    got = [m.payload for w in workers for m in w.messages(0.5)]
    assert sorted(got) == sorted(sent), "a batch went missing or twice"
    assert all(i.messages(0.1) == [] for i in intruders)


# --- revocation and re-enrolment ----------------------------------------------------------


def test_a_revoked_device_is_dropped_at_once_and_stays_out(configured: ConfiguredBroker) -> None:
    b = configured
    k1, k2 = b.client("K1"), b.client("K2")
    # The states central left retained for both (a state holds the village's names).
    central = b.client("central")
    for device in ("K1", "K2"):
        code = central.publish_wait(f"gp/v1/dev/{device}/down/state", b"state", retain=True)
        assert not code.is_failure, code
    out = b.gp("central", "revoke", "--device", "K2", "--broker-dir", str(b.folder))
    assert "the broker has dropped K2" in out.stdout
    assert _gone(k2), "a revoked device kept its connection"
    with pytest.raises(BrokerRefused):
        b.client("K2")
    assert k1.is_connected(), "revoking K2 dropped K1"
    # K1 still finds its retained state; K2's is gone with it (below, in the broker's
    # saved retained messages: a revoked device can no longer look).
    k1.subscribe_wait("gp/v1/dev/K1/down/state")
    assert [m.payload for m in k1.messages(1.0)] == [b"state"]
    # Survives a broker restart: the plugin saved the change to its file (the broker,
    # started as root, runs as an account that can write it).
    b.stop()
    saved = b"".join(p.read_bytes() for p in (b.folder / "data").glob("*.db"))
    assert b"gp/v1/dev/K1/down/state" in saved
    assert b"gp/v1/dev/K2/down/state" not in saved
    b.start()
    with pytest.raises(BrokerRefused):
        b.client("K2")
    assert b.client("K1").is_connected()
    assert "Error saving" not in b.log_text()


# --- the printed run line, as root and as a normal user -------------------------------------


def test_the_printed_run_line_runs_as_root_as_an_unprivileged_account(
    configured: ConfiguredBroker,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("run as a normal user here; the next test covers that case")
    b = configured
    assert b.proc is not None
    owner = Path(f"/proc/{b.proc.pid}/status").read_text()
    uid_line = next(line for line in owner.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] != "0", "the broker kept root"
    assert (b.folder / "data" / "mosquitto.pid").read_text().strip() == str(b.proc.pid)


def test_the_printed_run_line_works_for_a_normal_user(tmp_path: Path) -> None:
    """broker-config and the printed line, both run by an ordinary account."""
    mosquitto_binary()
    as_user: list[str] = []
    base = tmp_path
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("setpriv (util-linux) is needed to run as another account")
        as_user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        base = world_reachable_dir()
        os.chown(base, 65534, 65534)
    home, out = base / "home", base / "broker"
    port = free_port()
    # A normal user's PATH on Debian: no /usr/sbin, where mosquitto lives.
    env = {**os.environ, "HOME": str(base), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    r = subprocess.run(
        [*as_user, sys.executable, "-m", "greenpass", "central", "--home", str(home),
         "broker-config", "--out", str(out), "--port", str(port)],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("run: ")]
    log = base / "mosquitto.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [*as_user, *line.removeprefix("run: ").split()], stdout=f, stderr=f, env=env
        )
    try:
        wait_listening(port, proc, log)
        central_pw = (home / "central.password").read_text().strip()
        c = connect_client(port, out / "tls" / "ca.crt", "central", central_pw)
        assert c.is_connected()
        c.close()
        assert (out / "data" / "mosquitto.pid").exists()
    finally:
        proc.terminate()
        proc.wait(10)
        if as_user:
            shutil.rmtree(base, ignore_errors=True)


def test_re_enrolment_rotates_the_broker_password(configured: ConfiguredBroker) -> None:
    """Central syncs the broker from its database: a new key means a new password."""
    b = configured
    old = b.client("K3")
    (b.home / "K3.key").unlink()
    new_pw = enrol_devices(b.db, b.home, ("K3",))["K3"]
    assert new_pw != b.passwords["K3"]
    out = b.gp("central", "revoke", "--device", "K1", "--broker-dir", str(b.folder))
    assert "updated 1 (K3)" in out.stdout and "deleted 1 (K1)" in out.stdout
    assert _gone(old), "the old password's session survived the rotation"
    with pytest.raises(BrokerRefused):
        b.client("K3", b.passwords["K3"])
    assert b.client("K3", new_pw).is_connected()
    dynsec = json.loads((b.folder / "dynsec" / "dynamic-security.json").read_text())
    assert {c["username"] for c in dynsec["clients"]} == {"central", "K2", "K3"}
    assert CENTRAL_PW not in (b.folder / "dynsec" / "dynamic-security.json").read_text()
