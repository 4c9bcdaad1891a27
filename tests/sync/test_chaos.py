"""Chaos, each reconciled to 0 lost / 0 duplicated: kiosk SIGKILLed during sync,
broker restarted and killed mid-batch, central killed and restarted, the link
cut and stalled through the loopback proxy, batches duplicated, reordered and
replayed by hand, two central workers sharing the subscription."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from central import reports
from devkit.mqtt_broker import Broker
from greenpass.record.entries import check_chain
from simulator.netproxy import NetProxy
from sync import protocol as p
from sync.config import SyncConfig, write_sync_config
from sync.keys import generate_key, public_bytes, save_private_key
from tests.sync.harness import Kiosk, World, wait_for

KILLS = int(os.environ.get("GREENPASS_SYNC_KILLS", "12"))


@pytest.fixture
def world(tmp_path: Path, broker: Broker) -> Iterator[World]:
    w = World(tmp_path, broker, str(tmp_path / "central.db"))
    yield w
    w.close()


def backlog(k: Kiosk, days: int, per_day: int = 40) -> None:
    """Deposits over `days` days (two categories, inside the daily caps)."""
    person = k.ledger.enrol(f"{k.device_id} household", staff_id="S1").passbook_id or ""
    for _ in range(days):
        k.clock.advance(86_400_000)
        for n in range(per_day):
            k.clock.advance(60_000)
            k.ledger.deposit(person, ("paper", "cardboard")[n % 2], 500 + n)


def reconciled(world: World, k: Kiosk) -> None:
    """Central holds exactly the kiosk's chain: every entry once, hashes equal."""
    head = k.ledger.head()[0]
    assert world.store.count_entries(k.device_id) == head
    central = reports.device_chain(world.store, k.device_id)
    assert [e.seq for e, _ in central] == list(range(1, head + 1))
    assert check_chain(central, device_id=k.device_id, expected_head=k.ledger.head()).ok
    assert central == list(k.ledger.iter_entries())
    assert k.ledger.outbox.acked_seq() == head


def test_broker_restarted_and_killed_mid_batch(world: World) -> None:
    """Every outage is seen, on both ends: each connects once more per outage."""
    k = world.kiosk("KA")
    backlog(k, days=40)
    central = world.start_central()
    up = k.start(world, max_entries=10, ack_timeout_s=2.0)
    outages = [
        ("restart", world.broker.stop),  # SIGTERM: Mosquitto saves its sessions, then exits
        ("SIGKILL", world.broker.kill),  # no clean shutdown: in-flight and unsaved state is gone
    ]
    for n, (what, down) in enumerate(outages, start=1):
        # Back and syncing on both ends first. Without this wait the kill used to land
        # while the kiosk was still reconnecting after the restart, and the two
        # outages were one to the kiosk (connects == 2).
        wait_for(
            f"kiosk and central connected before the {what}",
            lambda n=n: up.stats.connects == n and central.receiver.connects == n,  # type: ignore[misc]
        )
        acks = up.stats.acks
        wait_for(f"acks before the {what}", lambda acks=acks: up.stats.acks > acks)  # type: ignore[misc]
        backlog(k, days=1)  # the kiosk goes on taking deposits, so the outage hits them
        down()
        assert not k.synced()  # a live backlog: nothing is acked while the broker is down
        world.broker.start()
    wait_for("synced", k.synced, timeout=60)
    reconciled(world, k)
    assert up.stats.connects == central.receiver.connects == len(outages) + 1
    # Mosquitto kept the kiosk's session through both (the SIGKILLed broker reloaded
    # what the restart saved); test_broker_lost_every_session is the other case.
    assert up.stats.new_sessions == 1


def test_broker_lost_every_session(world: World) -> None:
    """A broker back without its saved state (a crash before its first save, a new
    disk) has no session for anyone: kiosk and central subscribe again, and every
    batch whose ack was lost is sent again."""
    k = world.kiosk("KA")
    backlog(k, days=20)
    central = world.start_central()
    up = k.start(world, max_entries=10, ack_timeout_s=2.0)
    wait_for("acks", lambda: up.stats.acks > 0)
    backlog(k, days=1)
    world.broker.kill()
    for saved in world.broker.files.data_dir.iterdir():
        saved.unlink()
    assert not k.synced()
    world.broker.start()
    wait_for("synced", k.synced, timeout=60)
    reconciled(world, k)
    assert (up.stats.connects, up.stats.new_sessions) == (2, 2)
    assert central.receiver.connects == 2


def test_link_cut_stalled_and_slow_through_the_proxy(world: World) -> None:
    k = world.kiosk("KA")
    backlog(k, days=8)
    world.start_central()
    with NetProxy("127.0.0.1", world.broker.port) as proxy:
        up = k.start(
            world,
            url=f"mqtts://127.0.0.1:{proxy.port}",
            keepalive_s=2,  # a dead link is noticed within ~3 s
            max_entries=15,
            ack_timeout_s=2.0,
        )
        wait_for("acks through the proxy", lambda: up.stats.acks >= 3)
        proxy.cut()
        time.sleep(0.5)
        proxy.restore()
        wait_for("acks after the cut", lambda: up.stats.acks >= 8, timeout=30)
        proxy.stall()
        time.sleep(3)  # longer than the ack timeout: the kiosk resends, central re-acks
        proxy.resume()
        proxy.set_delay(150)
        wait_for("synced over a slow link", k.synced, timeout=90)
        assert proxy.connections >= 2
    reconciled(world, k)


def kiosk_files(world: World, k: Kiosk) -> Path:
    folder = k.path.parent / f"{k.device_id}-cfg"
    folder.mkdir()
    save_private_key(folder / "device.key", k.key)
    (folder / "mqtt.password").write_text(k.password + "\n")
    (folder / "mqtt.password").chmod(0o600)
    cfg = SyncConfig(
        broker_url=world.broker.url,
        password_file=folder / "mqtt.password",
        ca_cert=world.broker.ca_cert,
        key_file=folder / "device.key",
        central_public_key=public_bytes(world.central_key),
        ack_timeout_s=2.0,
    )
    write_sync_config(folder / "sync.toml", cfg)
    return folder / "sync.toml"


def kill_kiosk_during_sync(world: World, kills: int) -> None:
    k = world.kiosk("KA")
    backlog(k, days=6)
    cfg = kiosk_files(world, k)
    world.start_central()
    rng = random.Random(4)
    cmd = [sys.executable, "-m", "greenpass.cli", "sync", "run", "--db", str(k.path)]
    for i in range(kills):
        before = world.store.count_entries("KA")
        proc = subprocess.Popen([*cmd, "--config", str(cfg)], stderr=subprocess.DEVNULL)
        if i == 0:
            # The first kill hits a working sync: once central has stored something of
            # it (how long a start takes varies tenfold on a loaded machine); the rest
            # hit any moment, the start included.
            wait_for("the uplink storing", lambda: world.store.count_entries("KA") > before,  # noqa: B023
                     timeout=60)  # fmt: skip
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        backlog(k, days=1, per_day=10)  # the kiosk keeps taking deposits between crashes
    # The killed uplinks made progress (the kills hit a working sync, not a cold start).
    assert 0 < world.store.count_entries("KA") < k.ledger.head()[0]
    # The broker published the dead kiosk's last will; central recorded it.
    wait_for(
        "last will: offline",
        lambda: '"online":false' in (world.store.device("KA").status_json or ""),  # type: ignore[union-attr]
    )
    proc = subprocess.Popen([*cmd, "--config", str(cfg)], stderr=subprocess.PIPE)
    try:
        wait_for("synced after the kills", k.synced, timeout=120)
    finally:
        proc.terminate()
        proc.wait(10)
    reconciled(world, k)


def test_kiosk_sigkilled_at_random_moments_during_sync(world: World) -> None:
    kill_kiosk_during_sync(world, KILLS)


@pytest.mark.soak
def test_kiosk_sigkill_soak(world: World) -> None:
    """`make soak`: hundreds of kills (GREENPASS_SYNC_SOAK_KILLS, default 300)."""
    kill_kiosk_during_sync(world, int(os.environ.get("GREENPASS_SYNC_SOAK_KILLS", "300")))


def test_central_killed_and_restarted(world: World, tmp_path: Path) -> None:
    k = world.kiosk("KA")
    backlog(k, days=12)
    home = tmp_path / "central-home"
    home.mkdir()
    (home / "central.password").write_text("central-pw\n")
    save_private_key(home / "central.key", world.central_key)
    db = world.store.engine.url.database
    cmd = [
        sys.executable, "-m", "greenpass.cli", "central", "--db", str(db), "--home", str(home),
        "--broker", world.broker.url, "--ca", str(world.broker.ca_cert), "--debounce", "0.2",
    ]  # fmt: skip
    up = k.start(world, max_entries=10, ack_timeout_s=2.0)
    rng = random.Random(9)
    for _ in range(4):
        before = world.store.count_entries("KA")
        central = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        # Killed in the middle of ingest: once this central has stored something (how
        # long it takes to start varies tenfold on a loaded machine), at a random moment.
        wait_for("central storing", lambda: world.store.count_entries("KA") > before,  # noqa: B023
                 timeout=60)  # fmt: skip
        time.sleep(rng.uniform(0.0, 0.5))
        central.send_signal(signal.SIGKILL)
        central.wait()
        backlog(k, days=1, per_day=20)  # the kiosk goes on taking deposits meanwhile
    assert 0 < world.store.count_entries("KA") < k.ledger.head()[0]
    central = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    try:
        wait_for("synced after central crashes", k.synced, timeout=60)
    finally:
        central.terminate()
        central.wait(10)
    assert up.stats.acks > 0
    reconciled(world, k)


def test_duplicated_reordered_and_replayed_batches(world: World) -> None:
    k = world.kiosk("KA")
    backlog(k, days=1, per_day=30)
    world.start_central()
    rows = list(k.ledger.outbox.read(0, 100))
    batches = []
    for first in (1, 11, 21):
        chunk = rows[first - 1 : first + 9]
        payload, n = p.encode_batch(
            "KA", chunk, k.ledger.outbox.hash_at(first - 1) or b"", k.key, 0
        )
        assert n == 10
        batches.append(payload)
    client = world.broker.client("KA", k.password)
    client.subscribe_wait(p.topic("KA", p.ACK))

    def send(payload: bytes) -> p.Ack:
        client.publish_wait(p.topic("KA", p.BATCH), payload)
        return p.decode_ack(client.next_message(timeout=10).payload)

    assert send(batches[1]).status == "gap"  # reordered: 11..20 before 1..10
    ack = send(batches[0])
    assert (ack.status, ack.acked_seq) == ("ok", 10)
    assert send(batches[0]).status == "ok"  # duplicated
    assert (send(batches[2]).status, send(batches[1]).acked_seq) == ("gap", 20)
    ack = send(batches[2])
    assert (ack.status, ack.acked_seq) == ("ok", 30)
    for payload in batches:  # replayed, all of it, later
        assert send(payload).status == "ok"
    assert world.store.count_entries("KA") == 30
    central = reports.device_chain(world.store, "KA")
    assert central == rows[:30]


def test_forged_and_foreign_batches_through_the_broker_are_dead_lettered(world: World) -> None:
    k = world.kiosk("KA")
    backlog(k, days=1, per_day=5)
    world.start_central()
    rows = list(k.ledger.outbox.read(0, 10))
    thief = generate_key()
    forged, _ = p.encode_batch("KA", rows, bytes(32), thief, 0)
    client = world.broker.client("KA", k.password)
    client.subscribe_wait(p.topic("KA", p.ACK))
    client.publish_wait(p.topic("KA", p.BATCH), forged)
    assert p.decode_ack(client.next_message(timeout=10).payload).status == "bad_signature"
    client.publish_wait(p.topic("KA", p.BATCH), b"\x00not a batch")
    assert p.decode_ack(client.next_message(timeout=10).payload).status == "rejected"
    assert world.store.count_entries("KA") == 0
    reasons = [d.status for d in reports.dead_letters(world.store, 10)]
    assert sorted(reasons) == ["bad_signature", "rejected"]


@pytest.fixture
def any_db_world(tmp_path: Path, broker: Broker, central_url: str) -> Iterator[World]:
    w = World(tmp_path, broker, central_url)
    yield w
    w.close()


def test_two_central_workers_share_the_load_and_store_nothing_twice(any_db_world: World) -> None:
    world = any_db_world
    kiosks = [world.kiosk(f"K{n}") for n in range(4)]
    for k in kiosks:
        backlog(k, days=3)
    one = world.start_central("1")
    other = world.start_central("2")
    for k in kiosks:
        k.start(world, max_entries=10, window=3)
    wait_for("all synced", lambda: all(k.synced() for k in kiosks), timeout=90)
    for k in kiosks:
        reconciled(world, k)
    assert one.receiver.handled > 0 and other.receiver.handled > 0
