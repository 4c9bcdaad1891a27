"""Signed chain heads over a real Mosquitto: the uplink signs none until central's acks
say it takes them, then every batch carries the head of its last entry, which central
keeps (one row per batch), and a restarted kiosk goes on signing."""

from __future__ import annotations

from sqlalchemy import select

from central.heads import device_heads
from greenpass.heads import head_verifies
from tests.sync.harness import Kiosk, World, wait_for


def heads_at_central(world: World) -> dict[int, bytes]:
    with world.store.read() as conn:
        return {r.seq: bytes(r.sig) for r in conn.execute(select(device_heads))}


def deposit_and_sync(world: World, k: Kiosk, passbook: str) -> int:
    k.clock.advance(61_000)
    seq = k.ledger.deposit(passbook, "paper", 700).seq
    wait_for(f"entry {seq} acked", k.synced)
    wait_for(f"head {seq} at central", lambda: seq in heads_at_central(world))
    return seq


def test_every_batch_carries_a_head_once_central_says_so(world: World) -> None:
    world.start_central()
    k = world.kiosk("K1")
    zhang = k.ledger.enrol("Zhang household", staff_id="S1").passbook_id or ""
    uplink = k.start(world)
    wait_for("the enrolment acked", k.synced)
    # The first batch went before the kiosk knew, unsigned; its ack said `heads_v1`. The
    # resend of that entry which brings the household's name brings its head too.
    wait_for("the kiosk signs", uplink.heads.enabled)
    wait_for("the name's resend", lambda: uplink.personal.outbox.synced_seq() >= 1)
    wait_for("head 1 at central", lambda: 1 in heads_at_central(world))
    seqs = [1, *(deposit_and_sync(world, k, zhang) for _ in range(3))]
    k.stop()
    # A restarted kiosk remembers that its central takes them.
    assert k.start(world).heads.enabled()
    seqs.append(deposit_and_sync(world, k, zhang))
    kept = heads_at_central(world)  # one per batch, each the kiosk's own signature
    assert sorted(kept) == seqs == [1, 2, 3, 4, 5]
    hashes = {e.seq: h for e, h in k.ledger.iter_entries()}
    for seq, sig in kept.items():
        assert head_verifies(k.key.public_key(), "K1", seq, hashes[seq], sig)
