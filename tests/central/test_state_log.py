"""The log proofs in a kiosk's state (central.log_proofs), on SQLite and PostgreSQL: a
kiosk that names `log_proofs` gets central's newest checkpoint, the consistency proof
from the one it holds and range proofs of its own entries, which its own checker
(sync.log_check) accepts state after state until every entry is proven; a kiosk that
does not name it gets none (an older kiosk would refuse the unknown key)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from central import log_proofs, tlog, tlog_proofs
from central.ingest import ingest
from central.service import CentralService
from central.state import build_state
from central.store import CentralStore
from greenpass import checkpoint, merkle
from greenpass.tlog_leaf import entry_leaf_hash
from sync import protocol
from sync.keys import generate_key
from sync.log_check import LogChecker
from sync.transport import BrokerConfig
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate

KEY = generate_key()
EVERY = tlog.LogSettings(origin="central.test/log", every_entries=1)  # a checkpoint each time


def sync(store: CentralStore, k: Kiosk) -> None:
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def report(store: CentralStore, k: Kiosk, checker: LogChecker | None = None, **kw: object) -> None:
    """The kiosk's status as its uplink publishes it (features named unless given)."""
    size, seq, fault = checker.status() if checker is not None else (0, 0, None)
    fields: dict[str, object] = {
        "features": list(protocol.FEATURES), "log_size": size, "log_seq": seq,
        "log_fault": fault, **kw,
    }  # fmt: skip
    status = protocol.Status(device_id=k.device_id, online=True, **fields)  # type: ignore[arg-type]
    topic = protocol.topic(k.device_id, protocol.STATUS)
    assert store.record_status(topic, protocol.encode_status(status), NOW)


def deposit(k: Kiosk, n: int = 1) -> None:
    pid = k.ledger.villagers()[0].passbook_id
    for _ in range(n):
        k.clock.advance(11 * 60_000)
        k.ledger.deposit(pid, "paper", 700)


def test_proofs_for_a_kiosk_that_takes_them_and_none_for_one_that_does_not(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    populate(k1)
    sync(store, k1)
    assert build_state(store, "K1", NOW).log is None  # no status yet
    report(store, k1)
    assert build_state(store, "K1", NOW).log is None  # no checkpoint yet
    tlog.append_pending(store, KEY, EVERY, NOW)
    n = k1.head_seq

    # A kiosk from before the feature: no `log` key at all in what it decodes.
    k2 = new_kiosk(tmp_path / "k2", "K2")
    enrol(store, k2)
    try:
        report(store, k2, features=[protocol.FEATURE_ITEM_PICTURES])
        old = build_state(store, "K2", NOW)
        assert old.log is None
        assert b"log" not in msgspec.msgpack.encode(old)
    finally:
        k2.ledger.close()

    state = build_state(store, "K1", NOW)
    part = state.log
    assert part is not None
    cp = checkpoint.open_checkpoint(
        part.checkpoint, EVERY.origin, KEY.public_key(), origin=EVERY.origin
    )
    assert cp.size == n and (part.from_size, part.from_seq, part.upto_seq) == (0, 0, n)
    assert part.consistency == []
    (run,) = part.runs  # one sequencer pass: one run, one proof for all of them
    assert (run.index, run.first_seq, run.count) == (0, 1, n)
    leaves = [entry_leaf_hash("K1", e.seq, h) for e, h in k1.ledger.iter_entries()]
    assert merkle.verify_range(0, leaves, n, run.proof, cp.root_hash)
    # Its state decodes as the kiosk's, and the kiosk's checker takes it.
    key = generate_key()
    body = protocol.decode_state(protocol.encode_state(state, key), key.public_key(), "K1")
    assert body.log == part
    checker = LogChecker(k1.ledger, KEY.public_key())
    checker.check(body)
    assert checker.status() == (n, n, None)


def test_successive_states_prove_every_entry_a_few_runs_at_a_time(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    populate(k1)
    sync(store, k1)
    tlog.append_pending(store, KEY, EVERY, NOW)
    report(store, k1)
    checker = LogChecker(k1.ledger, KEY.public_key())
    checker.check(build_state(store, "K1", NOW))
    first = checker.status()
    assert first[2] is None and first[1] == k1.head_seq

    # Twenty sequencer passes later, each with an entry of K1 among K2's: twenty runs.
    k2 = new_kiosk(tmp_path / "k2", "K2")
    enrol(store, k2)
    try:
        k2.ledger.enrol("Zhao household", staff_id="S1")
        for _ in range(log_proofs.RUNS_PER_STATE + 4):
            deposit(k1)
            deposit(k2)
            sync(store, k1)
            sync(store, k2)
            tlog.append_pending(store, KEY, EVERY, NOW)
    finally:
        k2.ledger.close()
    report(store, k1, checker)
    assert log_proofs.wants_proofs(store, "K1", _status(store))
    part = build_state(store, "K1", NOW).log
    assert part is not None and part.from_size == first[0] and part.consistency
    assert len(part.runs) == log_proofs.RUNS_PER_STATE
    assert [r.count for r in part.runs] == [1] * log_proofs.RUNS_PER_STATE
    assert part.upto_seq == k1.head_seq
    checker.check(build_state(store, "K1", NOW))
    size, seq, fault = checker.status()
    assert fault is None and seq == first[1] + log_proofs.RUNS_PER_STATE
    # The kiosk holds the newest checkpoint: no push just for it; its next state (the
    # village's next change) brings the rest.
    report(store, k1, checker)
    assert not log_proofs.wants_proofs(store, "K1", _status(store))
    checker.check(build_state(store, "K1", NOW))
    assert checker.status() == (size, k1.head_seq, None)
    # A kiosk reporting a log fault is not pushed to for proofs.
    deposit(k1)
    sync(store, k1)
    tlog.append_pending(store, KEY, EVERY, NOW)
    report(store, k1, checker)
    assert log_proofs.wants_proofs(store, "K1", _status(store))
    report(store, k1, checker, log_fault=protocol.LogFault(code="log_not_extended"))
    assert not log_proofs.wants_proofs(store, "K1", _status(store))


def test_a_kiosk_behind_gets_its_runs_from_where_it_stands(
    store: CentralStore, k1: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run is cut at the kiosk's proven seq; the entries cap cuts the last."""
    populate(k1)
    sync(store, k1)
    tlog.append_pending(store, KEY, EVERY, NOW)
    n = k1.head_seq
    report(store, k1, log_size=0, log_seq=4)
    part = build_state(store, "K1", NOW).log
    assert part is not None
    (run,) = part.runs
    assert (run.index, run.first_seq, run.count) == (4, 5, n - 4)
    with store.read("test") as conn:
        newest = log_proofs.newest_checkpoint(conn)
        assert newest is not None
        status = protocol.Status(device_id="K1", online=True, log_seq=2)
        monkeypatch.setattr(log_proofs, "ENTRIES_PER_STATE", 3)
        capped = log_proofs.state_log(conn, tlog_proofs.Nodes(conn), newest, "K1", status)
    (run,) = capped.runs
    assert (run.index, run.first_seq, run.count) == (2, 3, 3)


def _status(store: CentralStore) -> protocol.Status:
    d = store.device("K1")
    assert d is not None and d.status_json is not None
    return protocol.decode_status(d.status_json.encode())


def test_central_pushes_a_kiosk_its_proofs_when_its_status_shows_it_behind(
    store: CentralStore, k1: Kiosk
) -> None:
    """Without waiting for its village's next change: its own new entries are in a
    checkpoint it does not hold yet (the state after their ack went out before the log
    had them)."""
    service = CentralService(
        store, BrokerConfig("mqtts://127.0.0.1:1", "central", "x", "gp-central-t"),
        KEY, debounce_s=0, min_interval_s=0, log=None, now_ms=lambda: NOW,
    )  # fmt: skip
    populate(k1)
    sync(store, k1)
    report(store, k1)
    service.village_states("V1")  # what it pushes on connecting: no log yet
    checker = LogChecker(k1.ledger, KEY.public_key())
    status = protocol.topic("K1", protocol.STATUS)

    def hears(**kw: object) -> list[protocol.StateBody]:
        size, seq, fault = checker.status()
        fields: dict[str, object] = {"log_size": size, "log_seq": seq, "log_fault": fault, **kw}
        payload = protocol.encode_status(
            protocol.Status(
                device_id="K1",
                online=True,
                features=list(protocol.FEATURES),
                **fields,  # type: ignore[arg-type]
            )
        )
        service.on_status(status, payload)
        return [protocol.decode_state(o.payload, KEY.public_key(), "K1") for o in service.on_tick()]

    assert hears() == []  # nothing in the log: nothing to push
    tlog.append_pending(store, KEY, EVERY, NOW)
    (state,) = hears()  # K1's entries are in a checkpoint K1 does not hold
    assert state.log is not None and state.log.runs
    checker.check(state)
    assert checker.status()[1] == k1.head_seq
    assert hears() == []  # it holds the newest now
    deposit(k1)
    sync(store, k1)
    tlog.append_pending(store, KEY, EVERY, NOW)
    assert len(hears()) == 1
    assert hears(log_fault=protocol.LogFault(code="log_not_extended")) == []
