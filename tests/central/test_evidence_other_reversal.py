"""An evidence pack with a reversal of another kiosk's entry (issue 17): K2 reverses
K1's deposit after central reserved it; the pack holds K1's target as well as K2's
reversal, its totals are net of it, and it verifies offline."""

from __future__ import annotations

from pathlib import Path

from central import exports, reservations
from central.ingest import ingest
from central.state import build_state
from central.store import CentralStore
from greenpass.evidence_verify import verify_pack
from greenpass.record.entries import Kind
from sync import reserve_wire as rw
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate
from tests.central.test_evidence import CENTRAL_HEX, DAY, TZ, entry_lines, sync, verdict, write


def test_a_pack_with_a_cross_kiosk_reversal_verifies(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    ids = populate(k1)
    k1.clock.advance(60_000)
    wrong = k1.ledger.deposit(ids["li"], "paper", 1200)
    sync(store, k1)
    k2 = new_kiosk(tmp_path / "k2", "K2", k1.clock)
    enrol(store, k2)
    k2.ledger.enrol("Sun household", staff_id="S1")
    k2.apply(build_state(store, "K2", NOW))  # Li's points, as K2 learns them
    request = rw.ReserveRequest(
        device_id="K2", request_id="r1", target_device="K1", target_seq=wrong.seq, staff_id="S1"
    )
    reply = reservations.reserve(store.engine, "K2", rw.encode(request), NOW)
    assert reply.status == "reserved" and reply.target is not None
    rev = k2.ledger.reverse_other(reply.target.other_entry(), staff_id="S1", reason="wrong kiosk")
    assert rev.ref_device == "K1"
    sync(store, k2)

    written = write(store, tmp_path / "pack.zip")
    code, lines = verdict(written.path)
    assert code == 0, lines
    lines_in = entry_lines(written.path)
    assert {("K1", wrong.seq), ("K2", rev.seq)} <= {(r["device_id"], r["seq"]) for r in lines_in}
    reversal = next(r for r in lines_in if r["device_id"] == "K2" and r["kind"] == Kind.REVERSAL)
    assert reversal["ref_device"] == "K1"
    assert all("ref_device" not in r for r in lines_in if r is not reversal)
    _, totals = verify_pack(written.path, CENTRAL_HEX)
    want = exports.totals_as_api(store, "V1", exports.Period(DAY, DAY, TZ))
    assert {k: v for k, v in totals.as_json().items()} == {k: want[k] for k in totals.as_json()}


def test_a_kiosks_own_reversal_of_an_entry_another_reserved_is_refused(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    """The one race left open (docs/design.md §3): K1 reverses its own entry offline
    while K2 holds the reservation. Central keeps K2's; K1's batch is refused."""
    ids = populate(k1)
    wrong = k1.ledger.deposit(ids["li"], "paper", 1200)
    sync(store, k1)
    k2 = new_kiosk(tmp_path / "k2", "K2", k1.clock)
    enrol(store, k2)
    request = rw.ReserveRequest(
        device_id="K2", request_id="r1", target_device="K1", target_seq=wrong.seq, staff_id="S1"
    )
    assert reservations.reserve(store.engine, "K2", rw.encode(request), NOW).status == "reserved"
    again = reservations.reserve(store.engine, "K2", rw.encode(request), NOW)
    assert again.status == "reserved"  # the same kiosk asking again
    other = rw.ReserveRequest(
        device_id="K1", request_id="r2", target_device="K1", target_seq=wrong.seq, staff_id="S1"
    )
    own = reservations.reserve(store.engine, "K1", rw.encode(other), NOW)
    assert (own.status, own.code) == ("refused", "own_entry")
    k1.ledger.reverse(wrong.seq, staff_id="S1", reason="offline")
    first = k1.ledger.outbox.acked_seq() + 1
    result = ingest(store, k1.topic, k1.batch(first), NOW)
    assert result.ack is not None and result.ack.status == "rejected"
    assert f"entry {wrong.seq} is reserved for reversal by kiosk K2" in result.ack.reason
    assert store.count_entries("K1") == first - 1
