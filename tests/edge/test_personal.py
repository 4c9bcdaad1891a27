"""The kiosk's side of personal data (issue 21): an enrolment's entry holds a salted
commitment, the name sits only in `villagers`; `verify` catches a name changed behind
the ledger's back; central's state neither blanks a name it has not received yet nor
keeps one it erased; the personal outbox hands out each record until confirmed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge.ledger.central_state import CentralState, VillagerRecord
from edge.ledger.ledger import Ledger
from edge.ledger.personal_outbox import PersonalOutbox
from greenpass.record.personal import household_fields, matches

ROOT = Path(__file__).resolve().parents[2]


def salt_of(ledger: Ledger, passbook: str) -> bytes | None:
    row = ledger.store.conn.execute(
        "SELECT salt FROM villagers WHERE passbook_id = ?", (passbook,)
    ).fetchone()
    return None if row[0] is None else bytes(row[0])


def test_the_chain_holds_a_commitment_and_verify_checks_it(ledger: Ledger) -> None:
    e = ledger.enrol("Zhang household", staff_id="S1")
    assert e.passbook_id is not None
    salt = salt_of(ledger, e.passbook_id)
    assert salt is not None and len(salt) == 16
    assert matches(household_fields("Zhang household"), salt, e.data["personal"])
    other = ledger.enrol("Zhang household", staff_id="S1")  # same name, other salt
    assert other.data["personal"] != e.data["personal"]
    for stored, _ in ledger.iter_entries():
        assert "Zhang" not in repr(stored)
    assert ledger.verify().ok

    # Someone edits the name in the file: the chain is intact, the commitment is not.
    ledger.store.conn.execute(
        "UPDATE villagers SET household_name = 'Somebody' WHERE passbook_id = ?",
        (e.passbook_id,),
    )
    report = ledger.verify()
    assert not report.ok and report.first_bad_seq == e.seq
    assert e.passbook_id in report.problem and "commitment" in report.problem
    path = ledger.store.path
    ledger.close()
    r = subprocess.run(
        [sys.executable, "-m", "greenpass", "verify", str(path)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert r.returncode == 1 and "commitment" in r.stderr, r.stderr


def test_central_state_keeps_a_name_it_lacks_and_drops_an_erased_one(ledger: Ledger) -> None:
    mine = ledger.enrol("Wang household", staff_id="S1").passbook_id
    assert mine is not None
    # Central holds the enrolment but not the name yet: "" must not blank ours.
    state = CentralState(
        version=1,
        included_seq=ledger.head()[0],
        villagers=[
            VillagerRecord(mine, "", "V1", "active"),
            VillagerRecord("K2-00001", "Zhao household", "V1", "active"),
        ],
    )
    assert ledger.apply_state(state)
    v = ledger.villager(mine)
    assert v is not None and v.household_name == "Wang household"
    assert salt_of(ledger, mine) is not None
    # An erasure at central: the name and the salt go, here too.
    erased = CentralState(
        version=2,
        included_seq=ledger.head()[0],
        villagers=[
            VillagerRecord(mine, "", "V1", "active"),
            VillagerRecord("K2-00001", "", "V1", "active"),
        ],
        erased=[mine, "K2-00001"],
    )
    assert ledger.apply_state(erased)
    assert [ledger.villager(p).household_name for p in (mine, "K2-00001")] == ["", ""]  # type: ignore[union-attr]
    assert salt_of(ledger, mine) is None
    assert ledger.verify().ok  # an erased household has nothing left to check
    assert PersonalOutbox(ledger.store).pending(ledger.head()[0], 10) == []


def test_the_personal_outbox(ledger: Ledger) -> None:
    box = PersonalOutbox(ledger.store)
    assert not box.central_accepts() and box.synced_seq() == 0
    a = ledger.enrol("A household", staff_id="S1")
    b = ledger.enrol("B household", staff_id="S1")
    found = box.pending(b.seq, 10)
    assert [(r.seq, r.passbook_id, r.fields) for r in found] == [
        (a.seq, a.passbook_id, {"household_name": "A household"}),
        (b.seq, b.passbook_id, {"household_name": "B household"}),
    ]
    assert [r.seq for r in box.pending(a.seq, 10)] == [a.seq]  # never past the batch
    assert len(box.pending(b.seq, 1)) == 1
    box.mark_synced(a.seq)
    box.mark_synced(a.seq - 1)  # never backwards
    assert [r.seq for r in box.pending(b.seq, 10)] == [b.seq]
    box.set_central_accepts(True)
    assert box.central_accepts()
