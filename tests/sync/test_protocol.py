"""The wire protocol with no network: compact batches round-trip exactly, and
every forged, altered, malformed or oversized message is refused with the
status central puts in its ack."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.errors import ConfigError, ProtocolError
from greenpass.record.entries import Entry, Kind
from greenpass.record.targets import OtherEntry
from sync import batch, envelope
from sync import protocol as p
from sync.keys import generate_key, load_or_create_key, load_private_key, public_bytes
from tests.conftest import make_ledger


@pytest.fixture
def busy_ledger(tmp_path: Path, clock: FixedClock) -> Ledger:
    led = make_ledger(tmp_path / "k.db", clock)
    people = [led.enrol(f"Household {n}", staff_id="S1").passbook_id for n in range(5)]
    for n in range(60):
        clock.advance(61_000)
        led.deposit(people[n % 5] or "", ("paper", "glass", "plastic_pet")[n % 3], 500 + 37 * n)
    led.award(people[0] or "", 5, staff_id="S1", reason="平安巡逻 volunteer")
    led.reverse(7, staff_id="S1", reason="double weighed")
    return led


def rows_of(led: Ledger, after: int = 0, limit: int = 500) -> list[tuple[Entry, bytes]]:
    return list(led.outbox.read(after, limit))


def test_batch_round_trips_every_field_and_hash(busy_ledger: Ledger) -> None:
    key = generate_key()
    rows = rows_of(busy_ledger, after=3)
    payload, n = p.encode_batch("K1", rows, busy_ledger.outbox.hash_at(3) or b"", key, 123)
    assert n == len(rows)
    env = p.open_envelope(payload, "batch")
    p.check_signature(env, key.public_key())
    batch = p.decode_batch(env)
    assert (batch.first_seq, batch.last_seq, batch.sent_ms) == (4, rows[-1][0].seq, 123)
    assert batch.entries == rows  # every field and the recomputed hash


def test_a_reversal_of_another_kiosks_entry_round_trips_beside_the_others(
    busy_ledger: Ledger,
) -> None:
    """`ref_device` rides beside the entries (BatchBody.ref_devices) and in the hash;
    a batch without one is the shorter body an older central decodes (issue 17)."""
    key = generate_key()
    plain, _ = p.encode_batch("K1", rows_of(busy_ledger), bytes(32), key, 0)
    body = msgspec.msgpack.decode(p.inflate(p.open_envelope(plain, "batch")))
    assert len(body) <= 11  # no twelfth element: centrals from before ref_device take it
    other = OtherEntry("K9", 4, Kind.AWARD, None, None, None, 0, 0, None, None, None, 0)
    rev = busy_ledger.reverse_other(other, staff_id="S1", reason="wrong kiosk")
    rows = rows_of(busy_ledger)
    payload, n = p.encode_batch("K1", rows, bytes(32), key, 0)
    assert n == len(rows)
    body = msgspec.msgpack.decode(p.inflate(p.open_envelope(payload, "batch")))
    assert body[11] == {len(rows) - 1: "K9"}
    batch = p.decode_batch(p.open_envelope(payload, "batch"))
    assert batch.entries == rows and batch.entries[-1][0] == rev
    assert batch.rows[-1][-1] == "K9" and batch.rows[0][-1] is None


def test_ref_device_on_an_entry_that_is_no_reversal_is_refused(busy_ledger: Ledger) -> None:
    key = generate_key()
    rows = rows_of(busy_ledger)
    forged = [(dataclasses.replace(rows[0][0], ref_device="K9"), rows[0][1]), *rows[1:]]
    payload, _ = p.encode_batch("K1", forged, bytes(32), key, 0)
    with pytest.raises(ProtocolError, match="no reversal"):
        p.decode_batch(p.open_envelope(payload, "batch"))


def test_full_batches_are_compact(busy_ledger: Ledger) -> None:
    rows = rows_of(busy_ledger)
    payload, n = p.encode_batch("K1", rows, bytes(32), generate_key(), 0)
    assert len(payload) / n < 60  # the wire's goal: ≤ 60 B per deposit


def test_size_limit_splits_batches_but_always_takes_one(busy_ledger: Ledger) -> None:
    rows = rows_of(busy_ledger)
    _, n = p.encode_batch("K1", rows, bytes(32), generate_key(), 0, max_bytes=2000)
    assert 1 < n < len(rows)
    _, one = p.encode_batch("K1", rows, bytes(32), generate_key(), 0, max_bytes=10)
    assert one == 1


def test_forged_signature_and_wrong_signer(busy_ledger: Ledger) -> None:
    rows = rows_of(busy_ledger, limit=10)
    kiosk, thief = generate_key(), generate_key()
    payload, _ = p.encode_batch("K1", rows, bytes(32), thief, 0)
    with pytest.raises(ProtocolError) as exc:
        p.check_signature(p.open_envelope(payload, "batch"), kiosk.public_key())
    assert exc.value.code == "bad_signature"
    # A signer may not relabel the envelope: the signature covers the signer's name.
    env = p.open_envelope(p.encode_batch("K1", rows, bytes(32), kiosk, 0)[0], "batch")
    relabelled = msgspec.structs.replace(env, signer="K2")
    with pytest.raises(ProtocolError):
        p.check_signature(relabelled, kiosk.public_key())


def test_altered_entry_breaks_the_chain(busy_ledger: Ledger) -> None:
    key = generate_key()
    rows = rows_of(busy_ledger, limit=20)
    body = msgspec.msgpack.decode(
        zlib.decompress(
            p.open_envelope(p.encode_batch("K1", rows, bytes(32), key, 0)[0], "batch").body
        ),
        type=p.BatchBody,
    )
    body.entries[10].grams = (body.entries[10].grams or 0) + 1000  # the kiosk's disk was edited
    forged = p.seal("batch", "K1", msgspec.msgpack.encode(body), key)
    env = p.open_envelope(forged, "batch")
    p.check_signature(env, key.public_key())  # signed by the real key: the chain still catches it
    with pytest.raises(ProtocolError) as exc:
        p.decode_batch(env)
    assert exc.value.code == "bad_chain"


def test_body_naming_another_device_is_rejected(busy_ledger: Ledger) -> None:
    key = generate_key()
    payload, _ = p.encode_batch("K2", rows_of(busy_ledger, limit=3), bytes(32), key, 0)
    env = msgspec.structs.replace(p.open_envelope(payload, "batch"), signer="K1")
    with pytest.raises(ProtocolError, match="names device 'K2'"):
        p.decode_batch(env)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00garbage", msgspec.msgpack.encode([1, "K1", "batch"]), b"\x93" * 40],
)
def test_malformed_envelopes_are_rejected(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as exc:
        p.open_envelope(payload, "batch")
    assert exc.value.code == "rejected"


def test_oversized_payload_and_decompression_bomb() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        p.open_envelope(b"x" * (p.MAX_PAYLOAD + 1), "batch")
    key = generate_key()
    bomb = p.seal("batch", "K1", bytes(p.MAX_BODY * 4), key)
    assert len(bomb) < p.MAX_PAYLOAD
    env = p.open_envelope(bomb, "batch")
    p.check_signature(env, key.public_key())
    with pytest.raises(ProtocolError, match="inflates beyond"):
        p.decode_batch(env)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        env = p.open_envelope(data, "batch")
        p.decode_batch(env)
    except ProtocolError:
        pass


def test_acks_status_and_state() -> None:
    ack = p.Ack(device_id="K1", status="gap", acked_seq=4, expected_seq=5, reason="x")
    assert p.decode_ack(p.encode_ack(ack)) == ack
    with pytest.raises(ProtocolError):
        p.decode_ack(b'{"device_id":"K1","status":"fine","acked_seq":1,"expected_seq":2}')
    st_ = p.Status(device_id="K1", online=True, backlog=3)
    assert p.decode_status(p.encode_status(st_)) == st_
    central = generate_key()
    state = p.StateBody(
        village="V1",
        device_id="K1",
        version=3,
        included_seq=9,
        issued_ms=1,
        balances={"P1": 10},
        villagers=[p.WireVillager("P1", "Li", "V1", "active")],
    )
    blob = p.encode_state(state, central)
    assert p.decode_state(blob, central.public_key(), "K1") == state
    with pytest.raises(ProtocolError, match="not 'K2'"):
        p.decode_state(blob, central.public_key(), "K2")
    with pytest.raises(ProtocolError) as exc:
        p.decode_state(blob, generate_key().public_key(), "K1")
    assert exc.value.code == "bad_signature"


def test_topics() -> None:
    assert p.topic("K1", p.BATCH) == "gp/v1/dev/K1/up/batch"
    assert p.device_of("gp/v1/dev/K1/up/batch", p.BATCH) == "K1"
    assert p.device_of("gp/v1/dev/K1/x/up/batch", p.BATCH) is None
    assert p.device_of("gp/v1/dev//up/batch", p.BATCH) is None


def test_protocol_names_every_part_of_it() -> None:
    """Batches and envelopes live in their own modules; `sync.protocol` still names
    them, as central's ingest and the benchmarks use it."""
    for name in p.__all__:
        assert hasattr(p, name), name
    assert p.encode_rows is batch.encode_rows and p.Batch is batch.Batch
    assert p.seal is envelope.seal and p.VERSION == envelope.VERSION


def test_private_key_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "device.key"
    key = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_bytes(load_or_create_key(path)) == public_bytes(key)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_private_key(path)


def test_the_status_carries_the_receipt_printer() -> None:
    """The status topic says how the kiosk's receipt printer is (issue 16); a status from
    a kiosk before receipts has none, and decodes."""
    st_ = p.Status(device_id="K1", online=True, printer="paper_out")
    assert p.decode_status(p.encode_status(st_)).printer == "paper_out"
    assert p.decode_status(b'{"v":1,"device_id":"K1","online":true}').printer is None
