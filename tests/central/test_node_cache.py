"""The log's node cache (central.node_cache): bounded, least recently used first, and
shared across reads because a full node never changes — a state push's proofs against
a grown log come out exactly as from a cold read, reading only what is new."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection

from central import tlog, tlog_proofs
from central.node_cache import NodeCache
from central.store import CentralStore
from greenpass import merkle
from tests.central.conftest import NOW, Kiosk
from tests.central.test_tlog import EVERY, KEY, leaves_of, sync


class Reads(tlog_proofs.Nodes):
    """`tlog_proofs.Nodes` counting its queries: leaf blocks and stored-node fetches."""

    def __init__(self, conn: Connection, shared: NodeCache | None = None) -> None:
        super().__init__(conn, shared)
        self.queries = 0

    def leaf(self, index: int) -> bytes:
        self.queries += 1
        return super().leaf(index)

    def fetch(self, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if any(p not in self.cache and p[0] and not p[0] % tlog.STEP for p in pairs):
            self.queries += 1
        return super().fetch(pairs)


def test_the_cache_keeps_the_most_recently_used_up_to_its_limit() -> None:
    cache = NodeCache(limit=3)
    for i in range(3):
        cache[0, i] = bytes([i]) * 32
    assert cache.get((0, 0)) == bytes(32)  # used: now the newest
    cache[0, 3] = b"\x03" * 32
    assert len(cache) == 3
    assert (0, 1) not in cache  # the least recently used went
    assert cache.get((0, 0)) and cache.get((0, 2)) and cache.get((0, 3))
    with pytest.raises(ValueError, match="at least one"):
        NodeCache(limit=0)


def test_proofs_from_the_shared_cache_equal_a_cold_read_as_the_log_grows(
    store: CentralStore, k1: Kiosk
) -> None:
    pid = k1.ledger.enrol("Li household", staff_id="S1").passbook_id
    assert pid is not None
    shared = store.log_nodes
    ranges = ((0, 1), (3, 40), (17, 90), (50, 51))
    sizes: list[int] = []
    cold_total = warm_total = 0
    for step in (60, 45, 70):  # the log grows between reads, as in a storm
        for _ in range(step):
            k1.clock.advance(11 * 60_000)
            k1.ledger.deposit(pid, "paper", 200)
        sync(store, k1)
        tlog.append_pending(store, KEY, EVERY, NOW)
        size = tlog.latest_checkpoint(store)[0]  # type: ignore[index]
        sizes.append(size)
        leaves = list(leaves_of(k1).values())[:size]
        root = merkle.root(leaves)
        with store.read("proving", snapshot=True) as conn:
            for start, end in ranges:
                if end > size:
                    continue
                cold, warm = Reads(conn), Reads(conn, shared)
                proof = warm.prove(merkle.range_proof, start, end, size)
                assert proof == cold.prove(merkle.range_proof, start, end, size)
                assert merkle.root_from_range(start, leaves[start:end], size, proof) == root
                cold_total += cold.queries
                warm_total += warm.queries
                again = Reads(conn, shared)  # the next kiosk's push, same checkpoint
                assert again.prove(merkle.range_proof, start, end, size) == proof
                assert again.queries == 0, (start, end, size)
            if len(sizes) > 1:
                old = sizes[-2]
                proof = Reads(conn, shared).prove(merkle.consistency_proof, old, size)
                assert merkle.verify_consistency(old, size, merkle.root(leaves[:old]), root, proof)
    assert sizes[-1] == len(leaves_of(k1)) == 176
    # Only the grown edge is read again: far fewer queries than a cold read each time.
    assert warm_total * 2 < cold_total, (warm_total, cold_total)
