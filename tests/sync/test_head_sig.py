"""Signed chain heads on the wire and at the kiosk, with no network: a batch carries one
only when asked (never to a central that decodes exactly ten elements), it round-trips,
a malformed one is refused, and the kiosk learns from central's acks when to sign and
remembers it across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from edge.ledger.store import Store
from greenpass.errors import ProtocolError
from greenpass.heads import head_verifies, sign_head
from sync import batch as wire
from sync import protocol as p
from sync.envelope import inflate, pack
from sync.head_signing import HeadSigning
from sync.keys import generate_key
from sync.personal_sender import PersonalSender
from tests.conftest import make_ledger


class _PersonalEraBody(wire._BatchBodyV2, forbid_unknown_fields=True):
    """`BatchBody` as centrals from before signed heads decode it: ten elements, no more."""


@pytest.fixture
def led(tmp_path: Path, clock: FixedClock) -> Ledger:
    led = make_ledger(tmp_path / "k.db", clock)
    pid = led.enrol("Li household", staff_id="S1").passbook_id or ""
    for n in range(6):
        clock.advance(61_000)
        led.deposit(pid, "paper", 500 + n)
    return led


def elements(payload: bytes) -> list[Any]:
    body: list[Any] = msgspec.msgpack.decode(inflate(p.open_envelope(payload, "batch")))
    return body


def decoded(payload: bytes) -> p.Batch:
    return p.decode_batch(p.open_envelope(payload, "batch"))


def test_a_signed_head_round_trips_and_verifies(led: Ledger) -> None:
    key = generate_key()
    rows = list(led.outbox.read(0, 100))
    payload, n = p.encode_batch("K1", rows, bytes(32), key, 5, sign_head=True)
    assert n == len(rows)
    batch = decoded(payload)
    assert batch.entries == rows and len(batch.head_sig) == 64
    last, h = rows[-1][0].seq, rows[-1][1]
    assert batch.last_seq == last and batch.hashes[-1] == h
    assert head_verifies(key.public_key(), "K1", last, h, batch.head_sig)
    assert not head_verifies(generate_key().public_key(), "K1", last, h, batch.head_sig)
    # A batch cut short by its size limit signs the head of its own last entry.
    cut, taken = p.encode_batch("K1", rows, bytes(32), key, 5, max_bytes=150, sign_head=True)
    short = decoded(cut)
    assert taken < len(rows) and short.last_seq == rows[taken - 1][0].seq
    assert head_verifies(key.public_key(), "K1", short.last_seq, rows[taken - 1][1], short.head_sig)


def test_only_a_signed_batch_has_an_eleventh_element(led: Ledger) -> None:
    """msgspec writes an array-like struct's trailing defaults: without a head the body
    must be the shorter struct, or a central from before heads refuses every batch."""
    key = generate_key()
    rows = list(led.outbox.read(0, 100))
    record = p.WirePersonal("K1-00001", {"household_name": "Li household"}, bytes(16))
    plain, _ = p.encode_batch("K1", rows, bytes(32), key, 5)
    with_personal, _ = p.encode_batch("K1", rows, bytes(32), key, 5, personal=[record])
    signed, _ = p.encode_batch("K1", rows, bytes(32), key, 5, sign_head=True)
    both, _ = p.encode_batch("K1", rows, bytes(32), key, 5, personal=[record], sign_head=True)
    assert [len(elements(x)) for x in (plain, with_personal, signed, both)] == [9, 10, 11, 11]
    assert decoded(plain).head_sig == b"" and decoded(with_personal).head_sig == b""
    assert decoded(both).personal == [record] and len(decoded(both).head_sig) == 64
    # What a central from before heads makes of them: the unsigned ones decode, a
    # signed one is refused (hence never sent before its acks say `heads_v1`).
    old = msgspec.msgpack.Decoder(_PersonalEraBody)
    for payload in (plain, with_personal):
        old.decode(inflate(p.open_envelope(payload, "batch")))
    with pytest.raises(msgspec.ValidationError, match="at most length 10"):
        old.decode(inflate(p.open_envelope(signed, "batch")))


@pytest.mark.parametrize("size", [1, 32, 63, 65, 128])
def test_a_head_signature_of_the_wrong_length_is_rejected(led: Ledger, size: int) -> None:
    key = generate_key()
    payload, _ = p.encode_batch("K1", list(led.outbox.read(0, 100)), bytes(32), key, 5)
    body = msgspec.msgpack.decode(inflate(p.open_envelope(payload, "batch")), type=p.BatchBody)
    body.head_sig = bytes(size)
    forged = p.seal("batch", "K1", pack.encode(body), key)
    with pytest.raises(ProtocolError, match=f"head signature of {size} bytes") as exc:
        decoded(forged)
    assert exc.value.code == "rejected"


def ack(status: str, *accepts: str) -> p.Ack:
    return p.Ack(device_id="K1", status=status, acked_seq=1, expected_seq=2, accepts=list(accepts))


def remembered(path: str) -> bool:
    store = Store(path)
    try:
        return HeadSigning(store).enabled()
    finally:
        store.close()


def test_the_kiosk_signs_once_central_says_so_and_remembers_it(led: Ledger) -> None:
    path = led.store.path
    signing = HeadSigning(led.store)
    assert not signing.enabled()  # a new kiosk does not know its central yet
    signing.on_ack(ack("ok", p.ACCEPT_PERSONAL))  # a central from before heads
    assert not signing.enabled()
    signing.on_ack(ack("ok", p.ACCEPT_PERSONAL, p.ACCEPT_HEADS))
    assert signing.enabled()
    signing.on_ack(ack("gap"))  # says nothing about heads either way
    assert signing.enabled()
    assert remembered(path)  # a restarted kiosk reads it back from meta
    # A refusal without `heads_v1` (a central rolled back to before them refused a
    # signed batch): stop signing, so the next batches are taken.
    signing.on_ack(ack("rejected", p.ACCEPT_PERSONAL))
    assert not signing.enabled()
    signing.on_ack(ack("bad_signature", p.ACCEPT_HEADS))
    assert signing.enabled()
    signing.on_ack(ack("ok"))  # an `ok` without it: that central does not take them
    assert not signing.enabled()
    assert not remembered(path)


def test_batches_with_personal_records_keep_their_head(led: Ledger) -> None:
    key = generate_key()
    sender = PersonalSender(led.store, "K1", key)
    sender.outbox.set_central_accepts(True)
    rows = led.outbox.read_fields(0, 100)
    payload, n = p.encode_rows("K1", rows, bytes(32), key, 5, sign_head=True)
    payload, n = sender.encode(rows, n, payload, bytes(32), 5, sign_head=True)
    batch = decoded(payload)
    assert [r.fields["household_name"] for r in batch.personal] == ["Li household"]
    assert head_verifies(key.public_key(), "K1", batch.last_seq, rows[n - 1][1], batch.head_sig)
    assert batch.head_sig == sign_head(key, "K1", batch.last_seq, rows[n - 1][1])
