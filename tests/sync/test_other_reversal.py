"""Reversing another kiosk's entry (issue 17): kiosk B reserves kiosk A's entry at
central over the real Mosquitto, writes the reversal with `ref_device`, and every
ledger and central agree afterwards; a second reversal anywhere is refused at the
request, a forged one at ingest, and a batch made the old way still syncs; the one
race left (the entry's own kiosk reversing it offline at once) does not stall sync."""

from __future__ import annotations

import dataclasses

import pytest

from central import reports
from central.ingest import ingest
from greenpass.errors import Refused
from greenpass.record.entries import Kind
from greenpass.record.targets import OtherEntry
from sync import protocol as p
from tests.sync.harness import Kiosk, World, wait_for


def _deposit(k: Kiosk, passbook: str, grams: int = 900) -> int:
    k.clock.advance(11 * 60_000)
    return k.ledger.deposit(passbook, "paper", grams).seq


def _other(k: Kiosk, seq: int) -> OtherEntry:
    e = next(e for e, _ in k.ledger.iter_entries() if e.seq == seq)
    return OtherEntry(**{f.name: getattr(e, f.name) for f in dataclasses.fields(OtherEntry)})


def _central_balance(world: World, passbook: str) -> int:
    return sum(
        int(line["points"])
        for line in reports.export_rows(world.store, world.village)
        if line["passbook_id"] == passbook
    )


def _elsewhere(k: Kiosk) -> dict[int, str]:
    rows = k.ledger.store.query("SELECT seq, by_device FROM reversed_elsewhere")
    return {int(r["seq"]): str(r["by_device"]) for r in rows}


def _online(*kiosks: Kiosk) -> None:
    """Wait until each kiosk has heard from central that it takes ref_device: in the
    ack of a batch, so a kiosk with no entry at all does not offer it yet."""
    for k in kiosks:
        wait_for(
            f"{k.device_id} knows central takes ref_device",
            lambda k=k: k.uplink is not None and k.uplink.other_reversals,  # type: ignore[misc]
        )


def test_b_reverses_as_entry_once_and_every_ledger_agrees(world: World) -> None:
    a, b, c = world.kiosk("KA"), world.kiosk("KB"), world.kiosk("KC")
    wang = a.ledger.enrol("Wang household", staff_id="S1").passbook_id or ""
    wrong = _deposit(a, wang, 2_000)  # the villager's mistaken deposit, at A
    _deposit(a, wang)
    for k in (b, c):
        k.ledger.enrol(f"{k.device_id} household", staff_id="S1")
    world.start_central()
    for k in (a, b, c):
        k.start(world)
    wait_for("A synced", a.synced)
    _deposit(a, wang)  # a deposit after the first sync: its ack names ref_device_v1
    wait_for("A synced again", a.synced)
    _online(a, b, c)
    wait_for("Wang's points at B", lambda: b.ledger.balance(wang) == a.ledger.balance(wang))
    before = a.ledger.balance(wang)
    target = _other(a, wrong)

    assert b.uplink is not None and c.uplink is not None
    # C's staff look it up and cancel: a look reserves nothing, so B may still take it.
    looked = c.uplink.reserve_reversal("KA", wrong, "S1", peek=True)
    assert (looked.device_id, looked.seq, looked.points) == ("KA", wrong, target.points)
    got = b.uplink.reserve_reversal("KA", wrong, "S1")
    assert (got.device_id, got.seq, got.points, got.grams) == ("KA", wrong, target.points, 2_000)
    assert b.uplink.reserve_reversal("KA", wrong, "S1") == got  # staff retried: same answer
    rev = b.ledger.reverse_other(got, staff_id="S1", reason="wrong passbook")
    assert (rev.kind, rev.ref_device, rev.ref_seq) == (Kind.REVERSAL, "KA", wrong)
    assert (rev.points, rev.grams, rev.co2e_g) == (-target.points, -2_000, -target.co2e_g)
    assert b.ledger.balance(wang) == before - target.points  # at B at once

    # A second reversal: refused at the request, at C and at B, and nothing is written.
    with pytest.raises(Refused) as refused:
        c.uplink.reserve_reversal("KA", wrong, "S1")
    assert refused.value.code == "already_reversed" and "KB" in str(refused.value)
    with pytest.raises(Refused) as looked_late:  # a look says so too
        c.uplink.reserve_reversal("KA", wrong, "S1", peek=True)
    assert looked_late.value.code == "already_reversed"
    head_c = c.ledger.head()[0]
    assert c.ledger.head()[0] == head_c
    with pytest.raises(Refused) as again:  # B's own ledger refuses its second one
        b.ledger.reverse_other(got, staff_id="S1", reason="again")
    assert again.value.code == "already_reversed"

    wait_for("B synced", b.synced)
    assert world.store.count_entries("KB") == b.ledger.head()[0]
    with pytest.raises(Refused) as late:  # once central has the reversal itself
        c.uplink.reserve_reversal("KA", wrong, "S1")
    assert late.value.code == "already_reversed"

    after = before - target.points
    wait_for("A learns it through its state", lambda: a.ledger.balance(wang) == after)
    # A online now refuses to reverse it too, naming B (the state's reversed_elsewhere).
    wait_for("A knows B holds it", lambda: _elsewhere(a) == {wrong: "KB"})
    head_a = a.ledger.head()[0]
    with pytest.raises(Refused) as at_a:
        a.ledger.reverse(wrong, staff_id="S1", reason="again at A")
    assert at_a.value.code == "already_reversed" and at_a.value.details == {"by": "KB"}
    assert a.ledger.head()[0] == head_a
    wait_for("C learns it", lambda: c.ledger.balance(wang) == after)
    assert b.ledger.balance(wang) == after
    assert _central_balance(world, wang) == after
    assert b.ledger.verify().ok


def _a_and_b_online(world: World, grams: int = 900) -> tuple[Kiosk, Kiosk, str, int]:
    """Kiosks A and B synced with central and taking ref_device; Wang enrolled at A with
    a deposit of `grams` (its seq returned) and two more."""
    a, b = world.kiosk("KA"), world.kiosk("KB")
    wang = a.ledger.enrol("Wang household", staff_id="S1").passbook_id or ""
    first = _deposit(a, wang, grams)
    _deposit(a, wang)
    b.ledger.enrol("Li household", staff_id="S1")
    world.start_central()
    a.start(world)
    b.start(world)
    wait_for("A synced", a.synced)
    _deposit(a, wang)
    wait_for("A synced again", a.synced)
    _online(a, b)
    return a, b, wang, first


def test_a_reservation_is_refused_for_own_unknown_and_other_kinds(world: World) -> None:
    _, b, _, _ = _a_and_b_online(world)
    assert b.uplink is not None
    with pytest.raises(Refused) as missing:
        b.uplink.reserve_reversal("KA", 999, "S1")
    assert missing.value.code == "not_found"
    with pytest.raises(Refused) as enrol:
        b.uplink.reserve_reversal("KA", 1, "S1")  # the enrolment
    assert enrol.value.code == "not_reversible"
    assert b.ledger.head()[0] == 1  # nothing written at B but its enrolment


def test_no_answer_is_needs_the_network(world: World) -> None:
    a = world.kiosk("KA")
    world.start_central()
    up = a.start(world)
    wang = a.ledger.enrol("Wang household", staff_id="S1").passbook_id or ""
    _deposit(a, wang)
    wait_for("A synced", a.synced)
    _online(a)
    for service in world.services:
        service.stop()  # central gone: the broker takes the request, nobody answers
    with pytest.raises(Refused) as slow:
        up.reserver.reserve("KX", 1, "S1", timeout_s=0.5)
    assert slow.value.code == "needs_network"
    a.stop()
    with pytest.raises(Refused) as offline:
        up.reserve_reversal("KX", 1, "S1")
    assert offline.value.code == "needs_network"


def test_central_refuses_a_ref_device_reversal_without_reservation(world: World) -> None:
    a, b = world.kiosk("KA"), world.kiosk("KB")
    wang = a.ledger.enrol("Wang household", staff_id="S1").passbook_id or ""
    seq = _deposit(a, wang)
    world.start_central()
    a.start(world)
    wait_for("A synced", a.synced)
    a.stop()
    # B forges the reversal without asking central: its own ledger lets it (the target's
    # fields are right), central must not.
    target = _other(a, seq)
    with pytest.raises(Refused):  # B does not know Wang's points: refused locally first
        b.ledger.reverse_other(target, staff_id="S1", reason="forged")
    pointless = dataclasses.replace(target, points=0, co2e_g=0)
    b.ledger.reverse_other(pointless, staff_id="S1", reason="forged")
    payload, _ = p.encode_batch("KB", list(b.ledger.iter_entries()), bytes(32), b.key, 0)
    before = world.store.count_entries("KB")
    result = ingest(world.store, p.topic("KB", p.BATCH), payload, 1)
    assert result.ack is not None and result.ack.status == "rejected"
    assert "reservation" in result.ack.reason
    assert world.store.count_entries("KB") == before == 0


def test_a_kiosk_that_reversed_offline_what_another_reversed_still_syncs(world: World) -> None:
    """The race (central.reservations): A, offline, reverses its own deposit while B
    reserves and reverses it too. A's batch is not refused (its sync would stall for
    good): both reversals count at central and, through the state, at every kiosk."""
    a, b, wang, wrong = _a_and_b_online(world, 2_000)
    wait_for("Wang's points at B", lambda: b.ledger.balance(wang) == a.ledger.balance(wang))
    before, points = a.ledger.balance(wang), _other(a, wrong).points
    a.stop()  # A's link is down
    a.ledger.reverse(wrong, staff_id="S1", reason="offline at A")
    assert b.uplink is not None
    got = b.uplink.reserve_reversal("KA", wrong, "S1")
    b.ledger.reverse_other(got, staff_id="S1", reason="at B")
    wait_for("B synced", b.synced)
    a.start(world)
    wait_for("A synced after its link came back", a.synced)
    assert a.uplink is not None and a.uplink.stats.rejected == 0

    after = before - 2 * points
    assert _central_balance(world, wang) == after
    wait_for("A learns B's reversal", lambda: a.ledger.balance(wang) == after)
    wait_for("B learns A's", lambda: b.ledger.balance(wang) == after)
    (double,) = reports.double_reversals(world.store, world.village)
    assert (double.device_id, double.seq, double.points) == ("KA", wrong, points)
