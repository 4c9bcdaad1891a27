"""Households' personal data at central (issue 21), on SQLite and PostgreSQL: names
travel beside the chain and are checked against the enrolments' commitments; export
gives everything held; erase leaves no name in any table (nor in the SQLite file's
bytes), the ledger intact, the kiosk's copy blanked, and a late record ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, text

from central import audit, db, migrations, passbooks, personal, personal_db, reports
from central.ingest import ingest
from central.state import build_state
from central.store import CentralStore
from edge.ledger.ledger import Ledger
from greenpass.errors import CentralError, ConfigError
from greenpass.record.entries import Kind, check_chain
from greenpass.record.personal import commitment, household_fields
from sync import protocol
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk, populate

NAME = "Li household"


def sync(store: CentralStore, k: Kiosk, *, personal_records: bool = True) -> protocol.Ack:
    first = k.ledger.outbox.acked_seq() + 1
    result = ingest(store, k.topic, k.batch(first, personal=personal_records), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)
    return result.ack


def every_text(store: CentralStore) -> str:
    """Every value of every table, as text: what a name would hide in."""
    out = []
    with store.read("dumping") as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                out.append(repr(tuple(row)))
    return "\n".join(out)


def test_names_travel_beside_the_chain_and_are_checked(store: CentralStore, k1: Kiosk) -> None:
    ids = populate(k1)
    li = ids["li"]
    # A central that has not said it takes personal records gets none: it holds the
    # enrolment (a commitment, no name) and says in its ack that it takes them.
    ack = sync(store, k1, personal_records=False)
    assert protocol.ACCEPT_PERSONAL in ack.accepts
    assert passbooks.household(store, li) == ""
    stored = reports.statement(store, li)[0].entry
    assert stored.kind is Kind.ENROL and set(stored.data) == {"personal", "village"}
    # The kiosk's resend of an entry central holds brings them (the duplicate path).
    dup = ingest(store, k1.topic, k1.batch(1, 1), NOW)
    assert dup.ack is not None and dup.ack.status == "ok"
    assert passbooks.household(store, li) == NAME
    # Central's copy is the kiosk's, entry for entry and hash for hash.
    assert reports.device_chain(store, "K1") == list(k1.ledger.iter_entries())
    assert check_chain(reports.device_chain(store, "K1"), device_id="K1").ok


def test_a_record_that_does_not_match_its_commitment_is_not_taken(
    store: CentralStore, k1: Kiosk
) -> None:
    li = k1.ledger.enrol(NAME, staff_id="S1").passbook_id
    assert li is not None
    sync(store, k1, personal_records=False)
    salt = bytes(k1.ledger.store.conn.execute("SELECT salt FROM villagers").fetchone()[0])
    forged = protocol.WirePersonal(li, {"household_name": "Somebody else"}, salt)
    wrong_salt = protocol.WirePersonal(li, {"household_name": NAME}, bytes(16))
    extra = protocol.WirePersonal(li, {"household_name": NAME, "phone": "1"}, salt)
    unknown = protocol.WirePersonal("K1-09999", {"household_name": NAME}, salt)
    rows = list(k1.ledger.iter_entries())
    payload, _ = protocol.encode_batch(
        "K1", rows, bytes(32), k1.key, NOW, personal=[forged, wrong_salt, extra, unknown]
    )
    result = ingest(store, k1.topic, payload, NOW)
    assert result.ack is not None and result.ack.status == "ok"  # the entries are fine
    assert passbooks.household(store, li) == ""  # none of them taken
    refused = [r for r in audit.rows(store) if r.action == "personal.refused"]
    assert len(refused) == 4 and all(r.actor == "device:K1" for r in refused)
    reasons = json.dumps([r.after for r in refused])
    assert reasons.count("does not match") == 3 and "no enrolment" in reasons
    assert "Somebody" not in every_text(store)


def test_export_gives_everything_held(store: CentralStore, k1: Kiosk) -> None:
    ids = populate(k1)
    sync(store, k1)
    new = passbooks.replace(store, ids["li"], actor="op", now_ms=NOW)
    found = personal.export(store, new)
    cards = {c["passbook_id"]: c for c in found["passbooks"]}
    assert set(cards) == {ids["li"], new}
    assert cards[ids["li"]]["household_name"] == NAME and cards[ids["li"]]["salt_held"]
    li_commit = cards[ids["li"]]["commitment"]
    assert isinstance(li_commit, str) and len(li_commit) == 64
    assert found["replacements"] == [{"old": ids["li"], "new": new, "at_ms": NOW}]
    assert found["balance"] == reports.statement(store, new)[-1].balance
    assert {e["kind"] for e in found["entries"]} >= {"enrol", "deposit", "redeem"}
    assert any(a["action"] == "passbook.replace" for a in found["audit"])
    with pytest.raises(Exception, match="no passbook"):
        personal.export(store, "K1-09999")


def test_erase_leaves_no_name_and_the_ledger_whole(
    store: CentralStore, k1: Kiosk, central_url: str
) -> None:
    ids = populate(k1)
    sync(store, k1)
    # A replacement at central writes the name into an audit row: erase must find it.
    new = passbooks.replace(store, ids["li"], actor="op", now_ms=NOW)
    assert NAME in every_text(store)
    chain_before = reports.device_chain(store, "K1")
    totals_before = reports.village_totals(store, "V1")

    erased = personal.erase(store, new, actor="county-op", now_ms=NOW + 1)
    assert sorted(erased) == sorted([ids["li"], new])
    assert NAME not in every_text(store)
    assert "Wang household" in every_text(store)  # only that household
    if central_url.startswith("sqlite"):
        raw = Path(central_url.removeprefix("sqlite:///")).read_bytes()
        assert NAME.encode() not in raw  # nor in the file's free space or its WAL
    # Points, CO2e and the chain are untouched.
    assert reports.device_chain(store, "K1") == chain_before
    assert reports.village_totals(store, "V1") == totals_before
    assert personal.erased_at(store, new) == NOW + 1
    last = audit.rows(store)[0]
    assert (last.action, last.actor, last.target) == ("passbook.erase", "county-op", new)

    # The kiosk's next state blanks the name and drops the salt of its own enrolment.
    state = build_state(store, "K1", NOW)
    assert state.erased == []  # K1's status has not said it understands erasures
    status = protocol.Status(device_id="K1", online=True, features=list(protocol.FEATURES))
    assert store.record_status(
        protocol.topic("K1", protocol.STATUS), protocol.encode_status(status), NOW
    )
    state = build_state(store, "K1", NOW)
    assert sorted(state.erased) == sorted(erased)
    assert k1.apply(state)
    row = k1.ledger.store.conn.execute(
        "SELECT household_name, salt FROM villagers WHERE passbook_id = ?", (ids["li"],)
    ).fetchone()
    assert tuple(row) == ("", None)
    k1.ledger.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert NAME.encode() not in Path(k1.ledger.store.path).read_bytes()
    assert k1.ledger.verify().ok

    # A copy of the record arriving late (a kiosk that had not synced) is ignored.
    salt = bytes(16)
    late = protocol.WirePersonal(ids["li"], {"household_name": NAME}, salt)
    payload, _ = protocol.encode_batch(
        "K1", list(k1.ledger.iter_entries())[:1], bytes(32), k1.key, NOW, personal=[late]
    )
    assert ingest(store, k1.topic, payload, NOW).ack is not None
    assert NAME not in every_text(store)


def test_migration_6_takes_names_out_of_old_enrolments(store: CentralStore, k1: Kiosk) -> None:
    li = k1.ledger.enrol(NAME, staff_id="S1").passbook_id
    sync(store, k1)
    # As a central before migration 6 held an enrolment of a kiosk before version 2.
    e = db.entries
    with store.write("faking an old row") as conn:
        conn.execute(
            e.update()
            .where(e.c.passbook_id == li)
            .values(data=json.dumps({"household_name": NAME, "village": "V1"}))
        )
        conn.execute(personal_db.personal.delete())
        conn.execute(text("DROP TABLE personal"))
        conn.execute(db.schema_migrations.delete().where(db.schema_migrations.c.version == 6))
    migrations.migrate(store.engine, NOW)
    with store.read("reading") as conn:
        data = json.loads(conn.scalar(select(e.c.data).where(e.c.passbook_id == li)))
    assert data == {"village": "V1"}
    assert passbooks.household(store, li) == NAME  # the name stays where it can be erased


def old_style_enrolment(led: Ledger) -> None:
    """K1-00001 enrolled as a kiosk before version 2 does: the name in the entry."""
    with led.store.write() as conn:
        e = led._appender.append(
            conn, Kind.ENROL, led._appender.now(), passbook_id="K1-00001", staff_id="S1",
            data={"household_name": NAME, "village": "V1"},
        )  # fmt: skip
        conn.execute(
            "INSERT INTO villagers (passbook_id, household_name, village, status, enrolled_seq,"
            " updated_ms) VALUES ('K1-00001', ?, 'V1', 'active', ?, 0)",
            (NAME, e.seq),
        )


def test_an_enrolment_from_before_version_2_is_taken_without_its_name(
    store: CentralStore, k1: Kiosk
) -> None:
    """A kiosk not yet updated sends the name in the enrolment's data: central keeps
    the name in `villagers` (erasable) and stores the entry without it."""
    old_style_enrolment(k1.ledger)
    sync(store, k1)
    assert passbooks.household(store, "K1-00001") == NAME
    stored = reports.statement(store, "K1-00001")[0].entry
    assert stored.data == {"village": "V1"}
    assert NAME not in json.dumps(personal.export(store, "K1-00001")["entries"])
    personal.erase(store, "K1-00001", actor="op", now_ms=NOW)
    assert NAME not in every_text(store)


def test_a_late_enrolment_from_before_version_2_does_not_bring_back_an_erased_name(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    """K2's status change for K1's passbook arrived first (a row with no name), the
    household was erased, then K1's old-style enrolment came with the name: the name
    is not kept."""
    k2 = new_kiosk(tmp_path / "k2", "K2")
    enrol(store, k2)
    try:
        with k2.ledger.store.write() as conn:
            k2.ledger._appender.append(
                conn, Kind.VILLAGER_STATUS, k2.ledger._appender.now(),
                passbook_id="K1-00001", staff_id="S1", reason="moved away",
                data={"status": "inactive"},
            )  # fmt: skip
        ack = ingest(store, k2.topic, k2.batch(), NOW).ack
        assert ack is not None and ack.status == "ok", ack
    finally:
        k2.ledger.close()
    personal.erase(store, "K1-00001", actor="op", now_ms=NOW)
    old_style_enrolment(k1.ledger)
    sync(store, k1)
    assert passbooks.household(store, "K1-00001") == ""
    assert NAME not in every_text(store)


def test_commitments_are_salted(store: CentralStore) -> None:
    fields = household_fields(NAME)
    assert commitment(fields, bytes(16)) != commitment(fields, bytes([1]) * 16)
    with pytest.raises(ValueError, match="16 bytes"):
        commitment(fields, b"short")


def test_another_kiosk_cannot_name_a_household_it_did_not_enrol(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    li = k1.ledger.enrol(NAME, staff_id="S1").passbook_id
    zhao = k1.ledger.enrol("Zhao household", staff_id="S1").passbook_id
    assert li and zhao
    sync(store, k1, personal_records=False)  # Zhao's name not at central yet either
    ingest(store, k1.topic, k1.batch(1, 1), NOW)  # Li's comes (the duplicate path)
    assert passbooks.household(store, li) == NAME
    k2 = new_kiosk(tmp_path / "k2", "K2")
    enrol(store, k2)
    try:
        # K2 enrols the same passbook ids (a stolen or rogue kiosk of the village) and
        # sends names that match its own commitments.
        for pid in (li, zhao):
            k2.ledger.enrol("Mallory", staff_id="S1", passbook_id=pid)
        result = ingest(store, k2.topic, k2.batch(), NOW)
        assert result.ack is not None and result.ack.status == "ok"
        assert passbooks.household(store, li) == NAME
        assert passbooks.household(store, zhao) == ""  # still waiting for K1's record
        refused = [r for r in audit.rows(store) if r.action == "personal.refused"]
        assert {r.target for r in refused} == {li, zhao}
        ingest(store, k1.topic, k1.batch(), NOW)  # K1's record for Zhao still counts
        assert passbooks.household(store, zhao) == "Zhao household"
    finally:
        k2.ledger.close()


def test_a_card_replacing_an_erased_one_is_erased_too(store: CentralStore, k1: Kiosk) -> None:
    li = k1.ledger.enrol(NAME, staff_id="S1").passbook_id
    assert li is not None
    sync(store, k1)
    new, _ = k1.ledger.replace_passbook(li, staff_id="S1")  # at the kiosk, not yet synced
    personal.erase(store, li, actor="op", now_ms=NOW)
    sync(store, k1)  # the replacement and its personal record arrive after the erasure
    assert new.passbook_id is not None
    assert passbooks.household(store, new.passbook_id) == ""
    assert personal.erased_at(store, new.passbook_id) is not None
    assert NAME not in every_text(store)


def test_a_correction_renames_every_card_and_reaches_the_kiosk(
    store: CentralStore, k1: Kiosk
) -> None:
    li = k1.ledger.enrol(NAME, staff_id="S1").passbook_id
    assert li is not None
    sync(store, k1)
    new = passbooks.replace(store, li, actor="op", now_ms=NOW)
    cards = personal.correct(store, new, "  Lee household ", actor="op", now_ms=NOW)
    assert sorted(cards) == sorted([li, new])
    assert {passbooks.household(store, p) for p in cards} == {"Lee household"}
    with store.read("reading") as conn:
        salts = conn.scalars(select(personal_db.personal.c.salt)).all()
    assert salts == [None]  # it opened the commitment to the old name only
    row = audit.rows(store)[0]
    assert row.action == "passbook.correct" and row.after["household_name"] == "Lee household"  # type: ignore[index]
    # The kiosk takes the new name and drops its salt; its ledger still verifies.
    assert k1.apply(build_state(store, "K1", NOW))
    v = k1.ledger.villager(li)
    assert v is not None and v.household_name == "Lee household"
    salt = k1.ledger.store.conn.execute(
        "SELECT salt FROM villagers WHERE passbook_id = ?", (li,)
    ).fetchone()[0]
    assert salt is None and k1.ledger.verify().ok
    with pytest.raises(ConfigError):
        personal.correct(store, li, " ", actor="op", now_ms=NOW)
    personal.erase(store, li, actor="op", now_ms=NOW)
    with pytest.raises(CentralError, match="erased"):
        personal.correct(store, li, "Again", actor="op", now_ms=NOW)
    assert NAME not in every_text(store) and "Lee household" not in every_text(store)


def test_an_erased_household_can_still_replace_a_lost_card(store: CentralStore, k1: Kiosk) -> None:
    ids = populate(k1)
    sync(store, k1)
    li = ids["li"]
    balance = reports.statement(store, li)[-1].balance
    personal.erase(store, li, actor="op", now_ms=NOW)
    new = passbooks.replace(store, li, actor="op", now_ms=NOW + 1)
    assert passbooks.household(store, new) == ""
    assert personal.erased_at(store, new) is not None  # no name will be taken for it
    assert reports.statement(store, new)[-1].balance == balance
    assert NAME not in every_text(store)
