"""Kiosks' signed chain heads at central (migration 8), on SQLite and PostgreSQL: a batch's
head is verified against the device's key and kept once, in the batch's transaction;
a head that does not verify refuses the batch; batches without one (older kiosks) are
taken as before."""

from __future__ import annotations

import msgspec
from sqlalchemy import select, text

from central import db, migrations, reports
from central.heads import device_heads
from central.ingest import ingest
from central.store import CentralStore
from greenpass.heads import head_verifies, sign_head
from sync import protocol
from sync.envelope import inflate, pack
from sync.keys import generate_key, public_key
from tests.central.conftest import NOW, Kiosk, populate


def kept(store: CentralStore) -> list[tuple[str, int, bytes, int]]:
    with store.read() as conn:
        rows = conn.execute(select(device_heads).order_by(device_heads.c.seq))
        return [(r.device_id, r.seq, bytes(r.sig), r.received_ms) for r in rows]


def stored_h(store: CentralStore, seq: int) -> bytes:
    e = db.entries
    with store.read() as conn:
        h = conn.scalar(select(e.c.h).where((e.c.device_id == "K1") & (e.c.seq == seq)))
    assert h is not None
    return bytes(h)


def send(store: CentralStore, k: Kiosk, payload: bytes, now_ms: int = NOW) -> protocol.Ack:
    result = ingest(store, k.topic, payload, now_ms)
    assert result.ack is not None
    return result.ack


def test_a_batchs_head_is_verified_and_kept_once(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    head = k1.head_seq
    ack = send(store, k1, k1.batch(sign_head=True))
    assert (ack.status, ack.acked_seq) == ("ok", head)
    assert protocol.ACCEPT_HEADS in ack.accepts and protocol.ACCEPT_PERSONAL in ack.accepts
    [(device, seq, sig, received)] = kept(store)
    assert (device, seq, received) == ("K1", head, NOW)
    # Anyone with the device's key and central's copy of the entry can check it.
    dev = store.device("K1")
    assert dev is not None
    assert head_verifies(public_key(dev.public_key), "K1", seq, stored_h(store, seq), sig)
    # The same batch again (its ack was lost): acked as a duplicate, the head kept once.
    again = send(store, k1, k1.batch(sign_head=True), NOW + 5)
    assert (again.status, again.acked_seq) == ("ok", head) and "duplicate" in again.reason
    assert kept(store) == [("K1", head, sig, NOW)]


def test_a_resend_brings_the_head_central_did_not_have(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    assert send(store, k1, k1.batch(1, 5)).status == "ok"  # before the kiosk knew
    assert kept(store) == []
    # An overlap stores the new tail and its head; a duplicate of the first batch, now
    # signed, brings the head of seq 5, whose entry central already holds.
    assert send(store, k1, k1.batch(3, 9, sign_head=True)).status == "ok"
    assert send(store, k1, k1.batch(5, 5, sign_head=True)).status == "ok"
    assert [(d, s) for d, s, _, _ in kept(store)] == [("K1", 5), ("K1", 9)]
    # A batch beyond what central holds is a gap: nothing of it, not its head, is kept.
    gap = send(store, k1, k1.batch(11, sign_head=True))
    assert gap.status == "gap" and len(kept(store)) == 2


def test_a_head_signed_by_another_key_refuses_the_batch(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    # A first batch, so that central checks the next against the device as last read.
    assert send(store, k1, k1.batch(1, 5, sign_head=True)).status == "ok"
    payload = k1.batch(6, sign_head=True)
    body = msgspec.msgpack.decode(
        inflate(protocol.open_envelope(payload, "batch")), type=protocol.BatchBody
    )
    # The envelope is the kiosk's own, only the head is someone else's signature.
    body.head_sig = sign_head(generate_key(), "K1", k1.head_seq, k1.rows()[-1][1])
    forged = protocol.seal("batch", "K1", pack.encode(body), k1.key)
    result = ingest(store, k1.topic, forged, NOW)
    assert result.ack is not None and result.stored == 0
    assert (result.ack.status, result.ack.acked_seq) == ("bad_signature", 5)
    assert "signed head" in result.ack.reason
    assert (result.ack.first_seq, result.ack.last_seq) == (6, k1.head_seq)
    assert protocol.ACCEPT_HEADS in result.ack.accepts
    [letter] = reports.dead_letters(store, 10)
    assert (letter.status, letter.reason) == ("bad_signature", result.ack.reason)
    assert store.count_entries() == 5 and [s for _, s, _, _ in kept(store)] == [5]
    # The kiosk's real batch goes through after, as if nothing happened.
    assert send(store, k1, payload).status == "ok"
    assert [s for _, s, _, _ in kept(store)] == [5, k1.head_seq]


def test_a_head_of_other_entries_is_refused(store: CentralStore, k1: Kiosk) -> None:
    """Signed by the kiosk, but not over this batch's last entry: a head must match."""
    populate(k1)
    payload = k1.batch(sign_head=True)
    body = msgspec.msgpack.decode(
        inflate(protocol.open_envelope(payload, "batch")), type=protocol.BatchBody
    )
    body.head_sig = sign_head(k1.key, "K1", k1.head_seq - 1, k1.rows()[-2][1])
    result = ingest(store, k1.topic, protocol.seal("batch", "K1", pack.encode(body), k1.key), NOW)
    assert result.ack is not None and result.ack.status == "bad_signature"
    assert store.count_entries() == 0 and kept(store) == []


def test_batches_without_a_head_are_taken_as_before(store: CentralStore, k1: Kiosk) -> None:
    populate(k1)
    ack = send(store, k1, k1.batch())  # a kiosk from before heads
    assert (ack.status, ack.acked_seq) == ("ok", k1.head_seq)
    assert store.count_entries() == k1.head_seq and kept(store) == []
    assert protocol.ACCEPT_HEADS in ack.accepts  # so its next software signs


def test_migration_8_adds_the_table_to_a_central_with_entries(
    store: CentralStore, k1: Kiosk
) -> None:
    populate(k1)
    assert send(store, k1, k1.batch(1, 5)).status == "ok"
    with store.write("as a central before migration 8") as conn:
        conn.execute(text("DROP TABLE device_heads"))
        conn.execute(db.schema_migrations.delete().where(db.schema_migrations.c.version == 8))
    migrations.migrate(store.engine, NOW)  # step 8 alone is missing: it runs again
    assert send(store, k1, k1.batch(6, sign_head=True)).status == "ok"
    assert [s for _, s, _, _ in kept(store)] == [k1.head_seq]
    assert store.count_entries() == k1.head_seq
