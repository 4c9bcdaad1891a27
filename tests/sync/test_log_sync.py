"""Central's service keeps its transparency log by itself (issue 13): entries synced
over a real Mosquitto are in a signed checkpoint a tick later, with the leaves the
kiosk computes from its own ledger."""

from __future__ import annotations

from central import tlog
from greenpass import checkpoint, merkle
from greenpass.tlog_leaf import entry_leaf_hash
from tests.sync.harness import World, wait_for


def test_synced_entries_reach_a_signed_checkpoint(world: World) -> None:
    world.start_central()
    k = world.kiosk("K1")
    pid = k.ledger.enrol("Wang household", staff_id="S1").passbook_id
    assert pid is not None
    for _ in range(3):
        k.clock.advance(11 * 60_000)
        k.ledger.deposit(pid, "paper", 1200)
    k.start(world)
    wait_for("the backlog at central", k.synced)
    head = k.ledger.head()[0]

    def logged() -> bool:
        found = tlog.latest_checkpoint(world.store)
        return found is not None and found[0] == head

    wait_for("a checkpoint of every entry", logged)
    found = tlog.latest_checkpoint(world.store)
    assert found is not None
    origin = tlog.DEFAULT_ORIGIN
    cp = checkpoint.open_checkpoint(
        found[1].encode(), origin, world.central_key.public_key(), origin=origin
    )
    leaves = [entry_leaf_hash("K1", e.seq, h) for e, h in k.ledger.iter_entries()]
    assert cp.root_hash == merkle.root(leaves)
