"""Faults at their real rate (`make soak`; docs/soak.md): kiosks depositing and syncing
through the production Mosquitto config to two central workers on a PostgreSQL of the
test's own, while the broker restarts and crashes (some losing every session), central
workers and kiosks are SIGKILLed, PostgreSQL crashes, restarts and loses its
connections, links are cut and stalled, and the database's disk fills for a while.
Then every kiosk's ledger is reconciled against central's copy entry by entry, and
every balance at every kiosk against central's.

The counts come from GREENPASS_FAULT_SOAK_* (tests/soak/faults.py `Plan`); the
defaults are a quick run of a few minutes, `FULL` the issue's counts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from central.broker_sync import load_secret
from central.store import CentralStore
from devkit.mqtt_broker import Broker
from edge.ledger.ledger import Ledger
from sync import protocol as p
from sync.keys import generate_key, load_private_key, public_bytes, save_private_key
from tests.soak.faults import Injector, Plan
from tests.soak.fleet import VILLAGE, CentralWorker, SoakKiosk, enrol_kiosk
from tests.soak.postgres import PostgresCluster
from tests.soak.reconcile import (
    AckWatch,
    balance_mismatches,
    central_counts,
    dead_letter_statuses,
    fully_synced,
    log_caught_up,
    reconcile,
)

PLAN = Plan.from_env()


def wait_until(
    what: str, cond: Callable[[], bool], timeout: float, every: Callable[[], None]
) -> float:
    """Seconds until `cond()`; `every()` runs between polls (restarting exited workers)."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        every()
        time.sleep(0.5)
    return time.monotonic() - start


@contextlib.contextmanager
def central_side(
    tmp_path: Path, pg: PostgresCluster, broker: Broker
) -> Iterator[tuple[CentralStore, list[CentralWorker], Path]]:
    home = tmp_path / "central-home"
    home.mkdir()
    (home / "central.password").write_text("central-pw\n")
    save_private_key(home / "central.key", generate_key())
    store = CentralStore.open(pg.url)
    store.create_village(VILLAGE)
    workers = [
        CentralWorker(w, pg.url, home, broker, tmp_path / f"central-{w}.log") for w in ("1", "2")
    ]
    try:
        yield store, workers, home
    finally:
        for w in workers:
            w.stop()
        store.close()


def send_bad_batches(broker: Broker, kiosk: SoakKiosk, n: int) -> Counter[str]:
    """`n` batches that are really bad, on the kiosk's own topic with its login (its
    process stopped meanwhile): forged signatures and garbled bytes. Returns the dead
    letters central should now hold, by status."""
    password = (kiosk.home.folder / "mqtt.password").read_text().strip()
    with Ledger.open(kiosk.db) as ledger:
        rows = list(ledger.outbox.read(0, 5))
    expected: Counter[str] = Counter()
    client = broker.client(kiosk.device_id, password)
    try:
        client.subscribe_wait(p.topic(kiosk.device_id, p.ACK))
        for i in range(n):
            if i % 2 == 0:
                payload, _ = p.encode_batch(kiosk.device_id, rows, bytes(32), generate_key(), 0)
                status = "bad_signature"
            else:
                payload, status = b"\x00garbled batch %d" % i, "rejected"
            client.publish_wait(p.topic(kiosk.device_id, p.BATCH), payload)
            assert p.decode_ack(bytes(client.next_message(timeout=30).payload)).status == status
            expected[status] += 1
    finally:
        client.close()
    return expected


@pytest.mark.soak
@pytest.mark.timeout(PLAN.timeout_s())
def test_faults_at_their_real_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = PLAN
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(PostgresCluster.start_new())
        broker = stack.enter_context(Broker(tmp_path / "broker", [("central", "central-pw")]))
        store, workers, home = stack.enter_context(central_side(tmp_path, pg, broker))
        central_public = public_bytes(load_private_key(home / "central.key"))
        secret = load_secret(home)
        kiosks = [
            enrol_kiosk(store, tmp_path / f"K{n:04d}", f"K{n:04d}", broker, central_public, secret)
            for n in range(1, plan.kiosks + 1)
        ]
        for k in kiosks:
            stack.callback(k.proxy.close)
            stack.callback(k.stop)

        def supervise() -> None:
            for w in workers:
                w.supervise()

        for w in workers:
            w.start()
        for k in kiosks:
            k.start()
        wait_until("the kiosks' first entries at central", lambda: fully_synced(pg, kiosks),
                   120, supervise)  # fmt: skip

        stop_depositing = threading.Event()
        depositors = [
            threading.Thread(
                target=deposit, args=(stop_depositing, every, plan.seed + n),
                name=f"depositor-{n}", daemon=True,
            )
            for n, (deposit, every) in enumerate(
                [(k.deposit_until, plan.deposit_s) for k in kiosks]
                + [(k.deposit_by_page, plan.page_deposit_s) for k in kiosks]
            )
        ]  # fmt: skip
        for t in depositors:
            t.start()
        stack.callback(stop_depositing.set)
        watch = AckWatch(pg, kiosks).start()
        stack.callback(watch.stop)

        def stored() -> int:
            return sum(central_counts(pg).values())

        injector = Injector(plan, broker, pg, workers, kiosks, supervise, stored)
        injector.run()
        stop_depositing.set()
        for t in depositors:
            t.join(30)
        wait_until("full sync after the last fault", lambda: fully_synced(pg, kiosks),
                   plan.sync_timeout_s, supervise)  # fmt: skip
        sync_s = time.monotonic() - injector.last_fault_end
        watch.stop()

        kiosks[0].stop()
        expected_dead = send_bad_batches(broker, kiosks[0], plan.bad_batches)
        kiosks[0].start()
        balances_s = wait_until(
            "every balance at every kiosk equal to central's",
            lambda: not balance_mismatches(store, pg, kiosks), 120, supervise,
        )  # fmt: skip
        log_s = wait_until(
            "the transparency log holding every entry",
            lambda: log_caught_up(pg, kiosks), 60, supervise,
        )  # fmt: skip
        result = reconcile(store, pg, kiosks)
        dead = dead_letter_statuses(store)

        counts = injector.counts
        faults = " ".join(f"{kind}={counts[kind]}" for kind in sorted(counts))
        deposits = sum(k.deposits for k in kiosks)
        refused = sum((k.refused for k in kiosks), Counter[str]())
        page = sum(k.page_deposits for k in kiosks)
        interrupted = sum(k.page_interrupted for k in kiosks)
        with capsys.disabled():
            print(
                f"\nfault soak: {plan}\n"
                f"  faults injected: {faults}\n"
                f"  deposits: {deposits} through the ledger, {page} confirmed on the kiosks' "
                f"pages ({interrupted} cut short); refused {dict(refused)}; "
                f"ack checks during the faults {watch.checks}; workers that exited by "
                f"themselves {sum(len(w.exits) for w in workers)}\n"
                f"  full sync {sync_s:.1f} s after the last fault ended; balances equal "
                f"everywhere {balances_s:.1f} s later, the log {log_s:.1f} s after that; "
                f"dead letters {dict(dead)}\n"
                f"SUMMARY faults {sum(counts.values()) - counts['broker_sessions_lost']} "
                f"({faults}); entries written {result.written}, entries reconciled "
                f"{result.reconciled}, lost {result.lost}, duplicated {result.duplicated}"
            )
        assert watch.violations == [], watch.violations[:10]
        assert injector.stored_while_full == [0] * plan.disk_full
        assert (result.lost, result.duplicated, result.extra, result.problems) == (0, 0, 0, [])
        assert result.reconciled == result.written
        assert dead == expected_dead
        assert [e for k in kiosks for e in k.errors] == []
        assert [w.exits for w in workers] == [[], []], "a worker exited by itself"
        logs = "".join(w.log.read_text(errors="replace") for w in workers)
        assert "Exception in thread" not in logs, "a central thread died"
        if plan.disk_full:
            assert "No space left on device" in logs, "central did not say why it refused"
