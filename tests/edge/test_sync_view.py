"""The ledger's side of sync: the outbox (acked_seq) and central's pushed state."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.ledger.central_state import CentralState, ItemRecord, VillagerRecord
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.errors import IntegrityError, Refused, RulesError
from greenpass.record.rules import default_rules
from tests.conftest import make_ledger


def test_outbox_backlog_grows_and_acks_only_move_forward(
    ledger: Ledger, villager: str, clock: FixedClock
) -> None:
    b = ledger.outbox.backlog()
    assert (b.acked_seq, b.head_seq, b.depth) == (0, 1, 1)
    assert b.oldest_unsynced_ms == ledger.entry(1).wall_ms
    for _ in range(3):
        clock.advance(120_000)
        ledger.deposit(villager, "paper", 1000)
    assert ledger.outbox.backlog().depth == 4
    rows = ledger.outbox.read(after_seq=1, limit=2)
    assert [e.seq for e, _ in rows] == [2, 3]
    assert ledger.outbox.hash_at(3) == rows[1][1]
    assert ledger.outbox.hash_at(0) == bytes(32)
    assert ledger.outbox.mark_acked(3, clock.wall_ms())
    assert not ledger.outbox.mark_acked(2, clock.wall_ms())  # a late duplicate ack
    b = ledger.outbox.backlog()
    assert (b.acked_seq, b.depth, b.oldest_unsynced_ms) == (3, 1, ledger.entry(4).wall_ms)
    with pytest.raises(IntegrityError, match="ends at 4"):
        ledger.outbox.mark_acked(9, clock.wall_ms())
    assert ledger.outbox.acked_seq() == 3


def test_acked_seq_survives_reopening(tmp_path: Path, clock: FixedClock) -> None:
    led = make_ledger(tmp_path / "l.db", clock)
    led.enrol("Wang", staff_id="S1")
    led.outbox.mark_acked(1, 5)
    led.close()
    again = Ledger.open(tmp_path / "l.db", clock)
    assert again.outbox.acked_seq() == 1
    again.close()


def state(version: int, included: int = 0, **kw: object) -> CentralState:
    return CentralState(version=version, included_seq=included, **kw)  # type: ignore[arg-type]


def test_state_brings_villagers_and_balances_from_other_kiosks(ledger: Ledger) -> None:
    remote = VillagerRecord("K2-00001", "Zhao household", "V1", "active")
    assert ledger.apply_state(state(1, villagers=[remote], balances={"K2-00001": 40}))
    assert ledger.balance("K2-00001") == 40
    ledger.deposit("K2-00001", "paper", 1000)  # a villager enrolled at another kiosk
    assert ledger.balance("K2-00001") == 40 + ledger.rules.category("paper").points_for(1000)  # type: ignore[union-attr]


def test_older_or_equal_state_is_ignored(ledger: Ledger) -> None:
    assert ledger.apply_state(state(5, balances={"X": 1}))
    assert not ledger.apply_state(state(5, balances={"X": 2}))
    assert not ledger.apply_state(state(4, balances={"X": 3}))
    assert ledger.balance("X") == 1


def test_local_status_change_after_included_seq_wins_but_revocation_always_wins(
    ledger: Ledger, villager: str
) -> None:
    ledger.set_villager_status(villager, "inactive", staff_id="S1", reason="moved away")
    ledger.apply_state(
        state(1, included=1, villagers=[VillagerRecord(villager, "Li", "V1", "active")])
    )
    assert ledger.villager(villager).status == "inactive"  # type: ignore[union-attr]
    ledger.apply_state(state(2, included=2, revoked=[villager, "LOST-1"]))
    assert ledger.villager(villager).status == "revoked"  # type: ignore[union-attr]
    with pytest.raises(Refused) as exc:
        ledger.deposit("LOST-1", "paper", 1000)
    assert exc.value.code == "revoked_passbook"


def test_state_catalogue_rules_and_issuer_keys(ledger: Ledger) -> None:
    ledger.put_item("soap", name_zh="肥皂", name_en="Soap", points_price=10, staff_id="S1")
    rules_text = default_rules().text.replace('version = "', 'version = "central-', 1)
    ok = ledger.apply_state(
        state(
            1,
            catalogue=[ItemRecord("rice", "大米", "Rice", 50)],
            rules_text=rules_text,
            issuer_keys={"office-1": bytes(range(32))},
        )
    )
    assert ok
    assert ledger.rules.version.startswith("central-")
    assert {i.item_id: i.active for i in ledger.catalogue()} == {"rice": True, "soap": False}
    assert ledger.issuer_keys() == {"office-1": bytes(range(32))}


def test_bad_state_changes_nothing(ledger: Ledger, villager: str) -> None:
    with pytest.raises(IntegrityError, match="ends at 1"):
        ledger.apply_state(state(1, included=7, balances={villager: 99}))
    other = default_rules().text.replace('village = "*"', 'village = "V9"')
    with pytest.raises(RulesError, match="V9"):
        ledger.apply_state(state(1, balances={villager: 99}, rules_text=other))
    assert ledger.balance(villager) == 0
    assert ledger.apply_state(state(1, balances={villager: 99}))  # version 1 still unused


JPEG = b"\xff\xd8\xff\xe0" + bytes(200)  # the kiosk checks the magic and the size only


def test_item_pictures_from_central_only_small_jpegs(ledger: Ledger) -> None:
    too_big = b"\xff\xd8\xff" + bytes(32 * 1024)
    assert ledger.apply_state(
        state(
            1,
            catalogue=[
                ItemRecord("rice", "大米", "Rice", 50, picture=JPEG),
                ItemRecord("svg", "图", "SVG", 5, picture=b"<svg onload=alert(1)>"),
                ItemRecord("big", "大", "Big", 5, picture=too_big),
                ItemRecord("oil", "油", "Oil", 70),
            ],
        )
    )
    assert ledger.item_picture("rice") == JPEG
    assert [ledger.item_picture(i) for i in ("svg", "big", "oil", "nope")] == [None] * 4
    tags = {i.item_id: i.picture_tag for i in ledger.catalogue()}
    assert tags["rice"] is not None and tags["oil"] is None and tags["svg"] is None
    # A new picture gives a new tag (the page's URL), a later state without one drops it.
    assert ledger.apply_state(
        state(2, catalogue=[ItemRecord("rice", "大米", "Rice", 50, picture=JPEG + b"x")])
    )
    rice = ledger.item("rice")
    assert rice is not None and rice.picture_tag not in (None, tags["rice"])
    assert ledger.apply_state(state(3, catalogue=[ItemRecord("rice", "大米", "Rice", 50)]))
    assert ledger.item_picture("rice") is None


def test_a_ledger_from_before_pictures_migrates_keeping_its_items(
    tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "old.db"
    with make_ledger(path, clock) as ledger:
        ledger.put_item("soap", name_zh="肥皂", name_en="Soap", points_price=10, staff_id="S1")
        conn = ledger.store.conn
        conn.execute("ALTER TABLE catalogue DROP COLUMN picture")  # as migration 2 left it
        conn.execute("DROP TABLE passbook_links")  # migration 4 came later still
        conn.execute("ALTER TABLE villagers DROP COLUMN salt")  # and migration 5
        conn.execute("DROP TABLE log_check")  # and migration 6
        conn.execute("DROP TABLE log_faults")
        conn.execute("DROP INDEX entries_reversed_once")  # and migration 7
        conn.execute("ALTER TABLE entries DROP COLUMN ref_device")
        conn.execute(
            "CREATE UNIQUE INDEX entries_reversed_once ON entries (ref_seq) WHERE kind = 'reversal'"
        )
        conn.execute("DROP TABLE reversed_elsewhere")  # and migration 8
        conn.execute("DELETE FROM schema_migrations WHERE version >= 3")
    with Ledger.open(path, clock) as ledger:
        soap = ledger.item("soap")
        assert soap is not None and (soap.points_price, soap.picture_tag) == (10, None)
        assert ledger.apply_state(
            state(1, catalogue=[ItemRecord("soap", "肥皂", "Soap", 10, picture=JPEG)])
        )
        assert ledger.item_picture("soap") == JPEG
