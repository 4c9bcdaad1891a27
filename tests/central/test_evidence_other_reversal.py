"""An evidence pack with a reversal of another kiosk's entry (issue 17): K2 reverses
K1's deposit after central reserved it; the pack holds K1's target as well as K2's
reversal, its totals are net of it, and it verifies offline. And the race left: K1
reversing the same entry offline at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from central import exports, reports, reservations
from central.state import build_state
from central.store import CentralStore
from greenpass.evidence_verify import verify_pack
from greenpass.record.entries import Entry, Kind
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


@dataclass
class Race:
    wrong: Entry  # K1's deposit, reversed at K1 and at K2
    mine: Entry  # K1's own reversal, made offline
    theirs: Entry  # K2's, under central's reservation


def reversed_at_both(
    store: CentralStore, k1: Kiosk, passbook: str, tmp_path: Path, first: str = "owner"
) -> Race:
    """The race (central.reservations): K1 reverses its own deposit offline while K2
    holds central's reservation of it and reverses it too; `first`'s batch arrives
    first. Each batch must be acknowledged ok."""
    k1.clock.advance(60_000)
    wrong = k1.ledger.deposit(passbook, "paper", 1200)
    sync(store, k1)
    k2 = new_kiosk(tmp_path / "k2", "K2", k1.clock)
    enrol(store, k2)
    k2.ledger.enrol("Sun household", staff_id="S1")
    k2.apply(build_state(store, "K2", NOW))
    request = rw.ReserveRequest(
        device_id="K2", request_id="r1", target_device="K1", target_seq=wrong.seq, staff_id="S1"
    )
    reply = reservations.reserve(store.engine, "K2", rw.encode(request), NOW)
    assert reply.status == "reserved" and reply.target is not None
    own = reservations.reserve(
        store.engine, "K1", rw.encode(msgspec.structs.replace(request, device_id="K1")), NOW
    )
    assert (own.status, own.code) == ("refused", "own_entry")
    theirs = k2.ledger.reverse_other(reply.target.other_entry(), staff_id="S1", reason="at K2")
    mine = k1.ledger.reverse(wrong.seq, staff_id="S1", reason="offline at K1")
    for k in (k1, k2) if first == "owner" else (k2, k1):
        sync(store, k)  # each acknowledged ok
        assert store.count_entries(k.device_id) == k.ledger.head()[0]
    k2.ledger.close()
    return Race(wrong, mine, theirs)


@pytest.mark.parametrize("first", ["owner", "holder"])
def test_an_entry_reversed_at_its_own_kiosk_and_at_the_holder_counts_twice_and_is_reported(
    store: CentralStore, k1: Kiosk, tmp_path: Path, first: str
) -> None:
    """Whichever batch comes first, both reversals are stored (refusing K1's would stall
    its sync for good), both count, the village office sees the entry in
    `double_reversals`, and the evidence pack still verifies."""
    ids = populate(k1)
    sync(store, k1)
    before = _balance(store, ids["li"])
    race = reversed_at_both(store, k1, ids["li"], tmp_path, first)
    wrong, mine, theirs = race.wrong, race.mine, race.theirs

    assert wrong.points > 0
    assert _balance(store, ids["li"]) == before + wrong.points + 2 * mine.points
    (double,) = reports.double_reversals(store, "V1")
    assert (double.passbook_id, double.device_id, double.seq) == (ids["li"], "K1", wrong.seq)
    assert double.points == wrong.points
    assert set(double.reversals) == {("K1", mine.seq), ("K2", theirs.seq)}
    k3 = new_kiosk(tmp_path / "k3", "K3", k1.clock)
    enrol(store, k3)
    other = rw.ReserveRequest(
        device_id="K3", request_id="r3", target_device="K1", target_seq=wrong.seq, staff_id="S1"
    )
    refused = reservations.reserve(store.engine, "K3", rw.encode(other), NOW)
    assert (refused.status, refused.code) == ("refused", "already_reversed")

    written = write(store, tmp_path / "pack.zip")
    code, lines = verdict(written.path)
    assert code == 0, lines
    _, totals = verify_pack(written.path, CENTRAL_HEX)
    want = exports.totals_as_api(store, "V1", exports.Period(DAY, DAY, TZ))
    assert totals.as_json() == {k: want[k] for k in totals.as_json()}


def _balance(store: CentralStore, passbook: str) -> int:
    return sum(
        int(line["points"])
        for line in reports.export_rows(store, "V1")
        if line["passbook_id"] == passbook
    )
