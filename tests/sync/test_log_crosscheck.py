"""Kiosks cross-check central's log (issue 13) over a real Mosquitto, central on SQLite
and PostgreSQL: a kiosk follows an honest central's checkpoints one after another with
no fault; then central rewrites history (an entry's hash changed, the log rebuilt from
its database and signed again) and the kiosk reports it in its status, naming itself
and the checkpoint, and once reset, the entry central changed. Sync goes on."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, update

from central import db, tlog
from central.console.fleet import kiosk_rows
from central.console.settings import Alerts
from edge.ledger.log_record import fault_history, reset
from sync import protocol as p
from sync.log_check import LogChecker
from tests.sync.harness import Kiosk, World, wait_for

EVERY = tlog.LogSettings(every_entries=1)  # a checkpoint after every sequencer pass


def deposit(k: Kiosk, pid: str, n: int = 1) -> None:
    for _ in range(n):
        k.clock.advance(11 * 60_000)
        k.ledger.deposit(pid, "paper", 1200)


def held(world: World, k: Kiosk) -> tuple[int, int, p.LogFault | None]:
    """What the kiosk's ledger file says of its check (read on the test's own handle)."""
    return LogChecker(k.ledger, world.central_key.public_key()).status()


def reported(world: World, device_id: str) -> p.Status:
    """The kiosk's status as central holds it."""
    d = world.store.device(device_id)
    assert d is not None and d.status_json is not None
    return p.decode_status(d.status_json.encode())


def newest_size(world: World) -> int:
    found = tlog.latest_checkpoint(world.store)
    return 0 if found is None else found[0]


def test_a_kiosk_follows_an_honest_log_and_catches_a_rewritten_one(world: World) -> None:
    world.start_central(log=EVERY)
    k = world.kiosk("K1")
    pid = k.ledger.enrol("Wang household", staff_id="S1").passbook_id
    assert pid is not None
    deposit(k, pid, 3)
    up = k.start(world, status_every_s=0.3)

    # Honest: every checkpoint is accepted and every entry proven, with no fault.
    sizes = []
    for more in (0, 2, 1):
        deposit(k, pid, more)
        head = k.ledger.head()[0]

        def proven(head: int = head) -> bool:
            return held(world, k)[1] == head

        wait_for("the kiosk to prove all its entries", proven)
        size, _, fault = held(world, k)
        assert fault is None and size == head  # the log holds K1's entries only
        sizes.append(size)

        def heard(size: int = size) -> bool:
            status = reported(world, "K1")
            return (status.log_size, status.log_seq) == (size, size)

        wait_for("central to hear of it", heard)
        assert reported(world, "K1").log_fault is None
    assert sizes == sorted(set(sizes)) and len(sizes) == 3  # successive checkpoints

    # Central rewrites history: K1:2 gets another hash, and the log is built again from
    # the database and signed, as a dishonest (or restored) central would.
    with world.store.write("rewriting history") as conn:
        e = db.entries
        conn.execute(
            update(e)
            .where((e.c.device_id == "K1") & (e.c.seq == 2))
            .values(h=hashlib.sha256(b"rewritten").digest())
        )
        for table in (tlog.tlog_nodes, tlog.tlog_runs, tlog.tlog_progress, tlog.tlog_checkpoints):
            conn.execute(delete(table))
        conn.execute(update(tlog.tlog_head).values(size=0, edge=b""))
    applied = up.stats.states_applied
    deposit(k, pid)  # the village changes: a state with the new log comes
    head = k.ledger.head()[0]
    wait_for("the kiosk to find the rewrite", lambda: held(world, k)[2] is not None)
    fault = held(world, k)[2]
    assert fault is not None and fault.code == "log_not_extended", fault
    assert fault.message.startswith("K1: ") and fault.size == newest_size(world)
    assert f"size {sizes[-1]}" in fault.message  # the checkpoint it had accepted
    wait_for("central to hear of it", lambda: reported(world, "K1").log_fault is not None)
    assert reported(world, "K1").log_fault == fault
    # The console's fleet view raises it.
    (row,) = kiosk_rows(world.store, None, Alerts(), world.services[0].now_ms())
    assert "log" in row.alerts
    # Sync goes on: the entry is acked, and states are still applied.
    wait_for("the deposit at central", k.synced)
    wait_for("a state applied after the fault", lambda: up.stats.states_applied > applied)
    assert held(world, k)[2] == fault  # the fault stands

    # A technician resets the check: the kiosk takes the rebuilt log as new, proves its
    # entries from seq 1, and finds the one central changed.
    cleared = reset(k.ledger.store, k.clock.wall_ms())
    assert cleared is not None and cleared.code == "log_not_extended"
    wait_for(
        "the kiosk to find the changed entry",
        lambda: (f := held(world, k)[2]) is not None and f.code == "log_entry_changed",
    )
    fault = held(world, k)[2]
    assert fault is not None and fault.seq == 1  # K1's entries are one run in the rebuilt log
    assert f"K1:1–{head}" in fault.message
    with k.ledger.store.read() as kiosk_db:
        codes = [f.code for f in fault_history(kiosk_db)]
    assert codes == ["log_not_extended", "log_entry_changed"]
    wait_for(
        "central to hear of it",
        lambda: (f := reported(world, "K1").log_fault) is not None and f.code == fault.code,
    )
