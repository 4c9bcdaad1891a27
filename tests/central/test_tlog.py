"""Central's transparency log (issue 13), on SQLite and PostgreSQL: every stored entry
becomes a leaf a kiosk can compute from its own ledger, checkpoints are signed C2SP
notes, every inclusion and consistency proof verifies, two workers appending at once
never fork the log, and the public routes serve it all without a login."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select, text

from central import tlog, tlog_proofs
from central.api import create_app
from central.ingest import ingest
from central.store import CentralStore
from greenpass import checkpoint, merkle
from greenpass.errors import ProtocolError
from greenpass.tlog_leaf import entry_leaf_hash
from sync.keys import generate_key
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate
from tests.central.test_api import ADMIN, SETTINGS

KEY = generate_key()
SETTINGS_LOG = tlog.LogSettings(origin="central.test/log", every_entries=5, every_s=3600)
EVERY = tlog.LogSettings(origin="central.test/log", every_entries=1)  # a checkpoint each time


def sync(store: CentralStore, k: Kiosk) -> None:
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def leaves_of(*kiosks: Kiosk) -> dict[tuple[str, int], bytes]:
    """What each kiosk computes for its own entries, from its own ledger."""
    return {
        (e.device_id, e.seq): entry_leaf_hash(e.device_id, e.seq, h)
        for k in kiosks
        for e, h in k.ledger.iter_entries()
    }


def log_size(store: CentralStore) -> int:
    with store.read("the log's size") as conn:
        return int(conn.scalar(select(tlog.tlog_head.c.size)) or 0)


def opened(note: str) -> checkpoint.Checkpoint:
    return checkpoint.open_checkpoint(
        note.encode(), SETTINGS_LOG.origin, KEY.public_key(), origin=SETTINGS_LOG.origin
    )


def test_entries_become_leaves_under_signed_checkpoints(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    populate(k1)
    sync(store, k1)
    assert tlog.latest_checkpoint(store) is None
    n = k1.head_seq
    assert tlog.append_pending(store, KEY, SETTINGS_LOG, NOW) == n
    assert tlog.append_pending(store, KEY, SETTINGS_LOG, NOW) == 0  # nothing new
    found = tlog.latest_checkpoint(store)
    assert found is not None and found[0] == n
    first = opened(found[1])
    mine = leaves_of(k1)
    assert first.size == n and first.root_hash == merkle.root(list(mine.values()))
    # Every entry's inclusion verifies against the checkpoint, with the kiosk's leaf.
    for (device, seq), leaf in mine.items():
        proof = tlog_proofs.inclusion(store, device, seq)
        assert bytes.fromhex(str(proof["leaf_hash"])) == leaf
        path = [bytes.fromhex(p) for p in proof["proof"]]  # type: ignore[union-attr]
        assert merkle.verify_inclusion(leaf, int(proof["index"]), n, path, first.root_hash)  # type: ignore[call-overload]

    # A second kiosk's entries extend the log; the new checkpoint is consistent.
    k2 = new_kiosk(tmp_path / "k2", "K2")
    enrol(store, k2)
    try:
        k2.ledger.enrol("Zhao household", staff_id="S1")
        for _ in range(6):
            k2.clock.advance(11 * 60_000)
            pid = k2.ledger.villagers()[0].passbook_id
            k2.ledger.deposit(pid, "paper", 1500)
        sync(store, k2)
        tlog.append_pending(store, KEY, SETTINGS_LOG, NOW + 1)
        later = tlog.latest_checkpoint(store)
        assert later is not None and later[0] == n + k2.head_seq
        second = opened(later[1])
        proof = [bytes.fromhex(p) for p in tlog_proofs.consistency(store, n, second.size)["proof"]]  # type: ignore[union-attr]
        assert merkle.verify_consistency(n, second.size, first.root_hash, second.root_hash, proof)
        assert not merkle.verify_consistency(n, second.size, bytes(32), second.root_hash, proof)
        assert second.root_hash == merkle.root(
            [*mine.values(), *(v for k, v in leaves_of(k2).items())]
        )
    finally:
        k2.ledger.close()
    # Another key's note is not central's.
    with pytest.raises(ProtocolError):
        checkpoint.open_checkpoint(
            later[1].encode(), SETTINGS_LOG.origin, generate_key().public_key(),
            origin=SETTINGS_LOG.origin,
        )  # fmt: skip


def test_checkpoints_wait_for_enough_entries_or_time(store: CentralStore, k1: Kiosk) -> None:
    k1.ledger.enrol("Li household", staff_id="S1")
    sync(store, k1)
    tlog.append_pending(store, KEY, SETTINGS_LOG, NOW)  # the first: at once
    pid = k1.ledger.villagers()[0].passbook_id
    k1.clock.advance(11 * 60_000)
    k1.ledger.deposit(pid, "paper", 1000)
    sync(store, k1)
    tlog.append_pending(store, KEY, SETTINGS_LOG, NOW + 1000)
    assert tlog.latest_checkpoint(store) == (1, tlog.latest_checkpoint(store)[1])  # type: ignore[index]
    tlog.append_pending(store, KEY, SETTINGS_LOG, NOW + 3_600_000)  # an hour later
    assert tlog.latest_checkpoint(store)[0] == 2  # type: ignore[index]


def test_two_workers_appending_at_once_never_fork_the_log(
    central_url: str, k1: Kiosk, store: CentralStore
) -> None:
    populate(k1)
    for _ in range(30):
        k1.clock.advance(11 * 60_000)
        k1.ledger.deposit(k1.ledger.villagers()[0].passbook_id, "paper", 300)
    sync(store, k1)
    stores = [CentralStore.open(central_url) for _ in range(2)]
    errors: list[BaseException] = []

    def worker(st: CentralStore) -> None:
        try:
            for _ in range(5):
                tlog.append_pending(st, KEY, SETTINGS_LOG, NOW)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(st,)) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for st in stores:
        st.close()
    assert not errors, errors
    with store.read("counting") as conn:
        leaves = conn.scalar(select(func.sum(tlog.tlog_runs.c.count)))
        size = conn.scalar(select(tlog.tlog_head.c.size))
    assert leaves == size == k1.head_seq
    found = tlog.latest_checkpoint(store)
    assert found is not None
    assert opened(found[1]).root_hash == merkle.root(list(leaves_of(k1).values()))


def test_one_worker_plans_an_append_while_the_others_skip_their_turn(
    central_url: str, k1: Kiosk, store: CentralStore
) -> None:
    """Planning hashes every new entry: a second worker's sequencer that planned the
    same append threw its work away, so with N workers the log cost N times its CPU
    (found by `python -m bench.sync_storm --workers 2`). On PostgreSQL the planner holds
    an advisory lock; a sequencer finding it taken skips its turn, and a caller that
    must have the log caught up (an evidence pack) waits for it."""
    if not store.postgres:
        pytest.skip("SQLite's workers rely on the size check alone (one site, one worker)")
    populate(k1)
    sync(store, k1)
    other = CentralStore.open(central_url)  # the other worker, planning now
    try:
        with other.engine.connect() as held:
            held.execute(text("SELECT pg_advisory_lock(7413)"))
            held.commit()
            assert tlog.append_pending(store, KEY, SETTINGS_LOG, NOW, wait=False) == 0
            assert log_size(store) == 0
            done: list[int] = []
            waiting = threading.Thread(
                target=lambda: done.append(tlog.append_pending(store, KEY, SETTINGS_LOG, NOW))
            )
            waiting.start()
            waiting.join(1.0)
            assert waiting.is_alive() and not done  # waits for the planner
            held.execute(text("SELECT pg_advisory_unlock(7413)"))
            held.commit()
        waiting.join(30)
        assert done == [k1.head_seq] and log_size(store) == k1.head_seq
        assert tlog.append_pending(store, KEY, SETTINGS_LOG, NOW, wait=False) == 0  # all in
    finally:
        other.close()


def test_the_public_routes(store: CentralStore, k1: Kiosk) -> None:
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: NOW)
    with TestClient(app, base_url="https://testserver") as c:
        assert c.get("/log/checkpoint").status_code == 404
        assert c.get("/log/proof/inclusion?device=K1&seq=1").status_code == 404
        populate(k1)
        sync(store, k1)
        tlog.append_pending(store, KEY, SETTINGS_LOG, NOW)
        r = c.get("/log/checkpoint")  # no login
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        cp = opened(r.text)
        r = c.get("/log/proof/inclusion", params={"device": "K1", "seq": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        leaf = leaves_of(k1)[("K1", 3)]
        path = [bytes.fromhex(p) for p in body["proof"]]
        assert merkle.verify_inclusion(leaf, body["index"], cp.size, path, cp.root_hash)
        r = c.get("/log/proof/consistency", params={"from": 1, "to": cp.size})
        assert r.status_code == 200 and r.json()["from"] == 1
        for path, status in [
            ("/log/proof/inclusion?device=K1&seq=999", 404),
            ("/log/proof/inclusion?device=K1&seq=1&size=999", 404),
            ("/log/proof/inclusion?device=K%201&seq=1", 422),
            ("/log/proof/inclusion?device=K1&seq=0", 422),
            (f"/log/proof/consistency?from=2&to={cp.size + 5}", 404),
            ("/log/proof/consistency?from=3&to=2", 404),
            ("/log/proof/consistency?from=1", 422),
        ]:
            assert c.get(path).status_code == status, path


def test_a_log_of_hundreds_of_entries_proves_every_one_at_every_checkpoint(
    store: CentralStore, k1: Kiosk
) -> None:
    """Enough leaves (and appends of odd sizes) that the stored levels (4, 8) and the
    nodes hashed up from leaves and from them all serve proofs."""
    pid = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert pid is not None
    sizes = []
    for step in (1, 6, 17, 40, 96, 141):  # appended in passes of these sizes
        for _ in range(step):
            k1.clock.advance(11 * 60_000)
            k1.ledger.deposit(pid, "paper", 200)
        sync(store, k1)
        tlog.append_pending(
            store, KEY, tlog.LogSettings(origin="central.test/log", every_entries=1), NOW
        )
        sizes.append(tlog.latest_checkpoint(store)[0])  # type: ignore[index]
    leaves = list(leaves_of(k1).values())
    assert sizes[-1] == len(leaves) == 302
    for size in sizes:
        root = merkle.root(leaves[:size])
        for index in range(0, size, 7):
            proof = tlog_proofs.inclusion(store, "K1", index + 1, size)
            path = [bytes.fromhex(p) for p in proof["proof"]]  # type: ignore[union-attr]
            assert merkle.verify_inclusion(leaves[index], index, size, path, root), (index, size)
    for old, new in itertools.pairwise(sizes):
        proof = [bytes.fromhex(p) for p in tlog_proofs.consistency(store, old, new)["proof"]]  # type: ignore[union-attr]
        assert merkle.verify_consistency(
            old, new, merkle.root(leaves[:old]), merkle.root(leaves[:new]), proof
        )
    with store.read("counting") as conn:
        stored = conn.scalar(select(func.count()).select_from(tlog.tlog_nodes))
    assert stored == 302 // 16 + 302 // 256  # levels 4 and 8 only

    # A kiosk's state carries range proofs (central.log_proofs): prefetched, a proof
    # reads no stored node one at a time. Only the first base below each node between
    # stored levels was prefetched, and a storm's state pushes made a query per node.
    with store.read("proving ranges") as conn:
        for start, end in ((3, 40), (17, 200), (100, 301)):
            nodes = Counted(conn)
            nodes.prefetch(merkle.range_proof, start, end, 302)
            nodes.late = []
            assert merkle.range_proof(start, end, 302, nodes)
            assert nodes.late == [], (start, end, nodes.late)


class Counted(tlog_proofs.Nodes):
    """`tlog_proofs.Nodes` noting each fetch."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.late: list[set[tuple[int, int]]] = []

    def fetch(self, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        self.late.append(pairs)
        return super().fetch(pairs)


def test_each_leaf_is_its_own_entry_where_kiosks_runs_interleave_in_a_block(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    """A block of 16 leaves (`Nodes.leaf`) holds runs of several kiosks, the first one
    begun in the block before: every leaf recomputed from central's entries is the one
    each kiosk computes for its own entry, in the log's order."""
    k2 = new_kiosk(tmp_path / "k2", "K2")
    enrol(store, k2)
    kiosks = (k1, k2)
    pids = [k.ledger.enrol("Li household", staff_id="S1").passbook_id for k in kiosks]
    settings = tlog.LogSettings(origin="central.test/log", every_entries=1)
    for n, k, pid in itertools.islice(
        zip(itertools.count(), itertools.cycle(kiosks), itertools.cycle(pids)), 14
    ):
        assert pid is not None
        for _ in range((3, 7, 1, 19, 5)[n % 5]):  # runs of several lengths, interleaved
            k.clock.advance(60_000)
            k.ledger.deposit(pid, "paper", 200)
        sync(store, k)
        tlog.append_pending(store, KEY, settings, NOW)
    mine = leaves_of(*kiosks)
    with store.read("the log's runs") as conn:
        runs = conn.execute(
            select(tlog.tlog_runs.c.first_idx, tlog.tlog_runs.c.device_id,
                   tlog.tlog_runs.c.first_seq, tlog.tlog_runs.c.count)
            .order_by(tlog.tlog_runs.c.first_idx)
        ).all()  # fmt: skip
        order = [(str(d), s + i) for _, d, s, c in runs for i in range(int(c))]
        assert len(order) == len(mine) > 64 and len({d for _, d, _, _ in runs}) == 2
        for index, key in enumerate(order):
            assert tlog_proofs.Nodes(conn).leaf(index) == mine[key], (index, key)
