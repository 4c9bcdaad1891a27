"""Households' personal data at central: kept beside the ledger, checked against the
commitments in the enrolments, exported and erased on request (docs/privacy.md).

The name itself is `villagers.household_name` (what the console, exports and the
state push show). The table `personal` (`central.personal_db`) holds per passbook the commitment
its enrolment carries (`greenpass.record.personal`; None for enrolments from before version 2,
which carried the name itself) and the salt that opens it, as a kiosk sent it in a
batch's personal records. A record whose name and salt do not make the commitment is
not taken: the name would not be the one the kiosk enrolled.

**Correct** sets another name on every card of the account and drops the salts (they
opened the commitment to the old name). **Erase** blanks the name, drops the salt and
marks the passbook erased, for every passbook of the household's account (cards
linked by replacements): entries, points and CO2e stay under the pseudonymous ids,
and the commitments then link to nobody.
It also takes the name out of the audit rows that named it and out of any dead letter
whose payload carried it, and a kiosk's personal record arriving later for an erased
passbook is ignored, so the name does not come back.

Enrolments from before version 2 carried the name in their chained data; migration 6
takes it out of central's copy (`entries.data`), which central does not re-hash (the
chain was checked at ingest and each entry's hash is stored), so statements and the
API stop showing it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BindParameter,
    Connection,
    bindparam,
    exists,
    insert,
    select,
    update,
)

from central import audit, db, passbooks
from central.db import Device
from central.personal_db import personal
from greenpass.errors import CentralError, ConfigError
from greenpass.record.entries import Entry, Kind
from greenpass.record.ids import ID_RE
from greenpass.record.personal import LEGACY_NAME_KEY, PERSONAL_KEY, is_commitment, matches
from sync.batch import WirePersonal

if TYPE_CHECKING:
    from central.store import CentralStore

ERASED = "erased"  # what an erased household's name fields say in an audit row
_ID = ID_RE  # a passbook id, as greenpass.record.ids.check_id takes it


# --- ingest -------------------------------------------------------------------------------


def known(conn: Connection, passbook_id: str) -> bool:
    """Whether central holds a row for the passbook here: its enrolment's commitment,
    or an erasure."""
    found = conn.scalar(select(personal.c.passbook_id).where(personal.c.passbook_id == passbook_id))
    return found is not None


def stored_data(kind: str, data: dict[str, str]) -> dict[str, str]:
    """An entry's data as central stores it: an enrolment keeps no name (a kiosk of
    before version 2 put it there; `villagers` has it)."""
    if kind == Kind.ENROL.value and LEGACY_NAME_KEY in data:
        return {k: v for k, v in data.items() if k != LEGACY_NAME_KEY}
    return data


def record_commitments(conn: Connection, dev: Device, enrolments: Sequence[Entry]) -> None:
    """Keep the commitment of each enrolment that took (after `villagers` was kept from
    this batch): the first enrolment of a passbook in the device's village, not one of
    a passbook central already has a name or a commitment for, whatever another
    kiosk's entry claims. A card that replaces an erased one is erased from the start."""
    fresh = {
        e.passbook_id: e
        for e in enrolments
        if e.passbook_id and is_commitment(e.data.get(PERSONAL_KEY))
    }
    if not fresh:
        return
    ids = sorted(fresh)
    takes = set(conn.scalars(_TAKES_IN, {"b_ids": ids, "b_village": dev.village_id}))
    replaced = sorted({e.data["replaces"] for e in fresh.values() if e.data.get("replaces")})
    erased = set(conn.scalars(_ERASED_IN, {"b_ids": replaced})) if replaced else set()
    rows = []
    for pid, e in fresh.items():
        if pid not in takes:
            continue
        row: dict[str, Any] = {
            "passbook_id": pid, "village_id": dev.village_id,
            "commitment": e.data[PERSONAL_KEY], "enrolled_by": dev.device_id,
            "erased_ms": None, "erased_by": None,
        }  # fmt: skip
        if e.data.get("replaces") in erased:
            row.update(erased_ms=e.wall_ms, erased_by=f"replaces erased {e.data['replaces']}")
        rows.append(row)
    if rows:
        conn.execute(_INSERT, rows)


# Built once: a reconnect storm's batches each carry an enrolment, and there this and
# `ingest_rows.apply_villagers` took a quarter of the receiver's time (py-spy), much of
# it building their statements.
_ids: BindParameter[list[str]] = bindparam("b_ids", expanding=True)
_v = db.villagers
# The passbooks whose enrolment takes: nameless in the device's village (`villagers`,
# kept from this batch first) and with no row here yet. One statement, not two: a
# storm's every batch carries an enrolment, and each statement is a round trip.
_TAKES_IN = select(_v.c.passbook_id).where(
    _v.c.passbook_id.in_(_ids)
    & (_v.c.village_id == bindparam("b_village"))
    & (_v.c.household_name == "")
    & ~exists().where(personal.c.passbook_id == _v.c.passbook_id)
)
_ERASED_IN = select(personal.c.passbook_id).where(
    personal.c.passbook_id.in_(_ids) & personal.c.erased_ms.is_not(None)
)
_INSERT = insert(personal)
_HELD_ROWS_IN = select(personal).where(personal.c.passbook_id.in_(_ids))


def keep_erased(conn: Connection, passbook_ids: Iterable[str]) -> None:
    """An erased household's name stays erased, whatever a late enrolment from before
    version 2 (which carries the name) tried to fill in."""
    ids = list(passbook_ids)
    if not ids:
        return
    erased = select(personal.c.passbook_id).where(
        personal.c.passbook_id.in_(ids) & personal.c.erased_ms.is_not(None)
    )
    vl = db.villagers
    conn.execute(update(vl).where(vl.c.passbook_id.in_(erased)).values(household_name=""))


def accept(
    conn: Connection, dev: Device, records: Sequence[WirePersonal], now_ms: int
) -> tuple[int, list[str]]:
    """Take a batch's personal records (after its entries, in its transaction): how
    many were taken, and what was refused, one line each (the entries are kept)."""
    if not records:
        return 0, []
    ids = [r.passbook for r in records if _ID.fullmatch(r.passbook)]
    held = {r.passbook_id: r for r in conn.execute(_HELD_ROWS_IN, {"b_ids": ids})}
    take: list[dict[str, Any]] = []
    refused: list[str] = []
    for r in records:
        row = held.get(r.passbook)
        if not _ID.fullmatch(r.passbook):
            refused.append(f"{r.passbook[:64]!r}: not a passbook id")
        elif row is None or row.commitment is None or row.enrolled_by != dev.device_id:
            refused.append(f"{r.passbook}: no enrolment with a commitment by this device")
        elif row.erased_ms is not None:
            continue  # erased on request: a late copy from a kiosk does not bring it back
        elif set(r.fields) != {"household_name"} or not matches(r.fields, r.salt, row.commitment):
            refused.append(f"{r.passbook}: personal data does not match its enrolment's commitment")
        else:
            take.append({
                "b_pid": r.passbook, "b_salt": r.salt, "b_now": now_ms,
                "b_name": r.fields["household_name"].strip()[:64],
            })  # fmt: skip
    if take:  # in record order, as one statement per record would have been
        conn.execute(_TAKE_SALT, take)
        conn.execute(_TAKE_NAME, take)
    return len(take), refused


# Built once and run as one executemany per batch: a drain's first batches carry up to
# MAX_PERSONAL records each, and two Core statements built per record were half of
# ingest's time on them.
_TAKE_SALT = (
    update(personal)
    .where(personal.c.passbook_id == bindparam("b_pid"))
    .values(salt=bindparam("b_salt"), received_ms=bindparam("b_now"))
)
_TAKE_NAME = (
    update(db.villagers)
    .where(db.villagers.c.passbook_id == bindparam("b_pid"))
    .values(household_name=bindparam("b_name"))
)


# --- a household's request ----------------------------------------------------------------


def _account(conn: Connection, passbook_id: str) -> list[str]:
    vl = db.villagers
    if conn.scalar(select(vl.c.passbook_id).where(vl.c.passbook_id == passbook_id)) is None:
        raise CentralError(f"no passbook {passbook_id!r}")
    return sorted(passbooks.members([passbook_id], passbooks.links(conn)))


def export(store: CentralStore, passbook_id: str) -> dict[str, Any]:
    """Everything central holds about the household of `passbook_id` (PIPL art. 45)."""
    from central import reports  # noqa: PLC0415 - reports imports passbooks, as this does

    vl, lk = db.villagers, db.passbook_links
    with store.read("exporting a household's data") as conn:
        account = _account(conn, passbook_id)
        cards = []
        for pid in account:
            v = conn.execute(select(vl).where(vl.c.passbook_id == pid)).one()
            p = conn.execute(select(personal).where(personal.c.passbook_id == pid)).one_or_none()
            cards.append({
                "passbook_id": pid,
                "village_id": v.village_id,
                "household_name": v.household_name,
                "status": v.status,
                "enrolled_by_device": v.source_device,
                "commitment": None if p is None else p.commitment,
                "salt_held": p is not None and p.salt is not None,
                "erased_ms": None if p is None else p.erased_ms,
            })  # fmt: skip
        replaced = [
            {"old": r.old_passbook_id, "new": r.new_passbook_id, "at_ms": r.replaced_ms}
            for r in conn.execute(select(lk).where(lk.c.old_passbook_id.in_(account)))
        ]
        a = db.audit_log
        audit_rows = [
            {"at_ms": r.at_ms, "actor": r.actor, "action": r.action, "target": r.target}
            for r in conn.execute(select(a).where(a.c.target.in_(account)).order_by(a.c.id))
        ]
    lines = reports.statement(store, passbook_id)
    return {
        "passbook_id": passbook_id,
        "purpose": "green passbook points for sorted recyclables (docs/privacy.md)",
        "passbooks": cards,
        "replacements": replaced,
        "balance": lines[-1].balance if lines else 0,
        "entries": [
            {
                "device_id": x.entry.device_id,
                "seq": x.entry.seq,
                "kind": x.entry.kind.value,
                "passbook_id": x.entry.passbook_id,
                "wall_ms": x.entry.wall_ms,
                "category": x.entry.category,
                "grams": x.entry.grams,
                "points": x.entry.points,
                "co2e_g": x.entry.co2e_g,
                "item_id": x.entry.item_id,
                "qty": x.entry.qty,
                "balance": x.balance,
            }
            for x in lines
        ],
        "audit": audit_rows,
    }


def correct(
    store: CentralStore, passbook_id: str, name: str, *, actor: str, now_ms: int
) -> list[str]:
    """Correct the household's name on every card of its account; returns the cards.
    The enrolments' commitments stay (they are in the chain) but their salts go: they
    opened a commitment to the old name, and now open nothing. Kiosks take the new
    name, and drop their salt, with the next state."""
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise ConfigError("a household name is 1 to 64 printable characters", key="household_name")
    vl = db.villagers
    with store.write("correcting a household's name") as conn:
        account = _account(conn, passbook_id)
        rows = conn.execute(
            select(vl.c.village_id, vl.c.household_name).where(vl.c.passbook_id.in_(account))
        ).all()
        if any(
            conn.scalars(
                select(personal.c.erased_ms).where(
                    personal.c.passbook_id.in_(account) & personal.c.erased_ms.is_not(None)
                )
            )
        ):
            raise CentralError(f"passbook {passbook_id!r}: the household's data was erased")
        before = sorted({r.household_name for r in rows})
        conn.execute(update(vl).where(vl.c.passbook_id.in_(account)).values(household_name=name))
        conn.execute(update(personal).where(personal.c.passbook_id.in_(account)).values(salt=None))
        villages = {r.village_id for r in rows}
        v = db.villages
        conn.execute(
            update(v)
            .where(v.c.village_id.in_(villages))
            .values(changed_ms=db.village_changed(now_ms))
        )
        audit.record(
            conn, actor=actor, action="passbook.correct", target=passbook_id, now_ms=now_ms,
            village_id=min(villages) if villages else None,
            before={"passbooks": account, LEGACY_NAME_KEY: ", ".join(before)},
            after={"passbooks": account, LEGACY_NAME_KEY: name},
        )  # fmt: skip
    return account


def erased_at(store: CentralStore, passbook_id: str) -> int | None:
    """When the passbook's personal data was erased (ms), or None."""
    with store.read("reading an erasure") as conn:
        found = conn.scalar(
            select(personal.c.erased_ms).where(personal.c.passbook_id == passbook_id)
        )
    return None if found is None else int(found)


def erase(store: CentralStore, passbook_id: str, *, actor: str, now_ms: int) -> list[str]:
    """Erase the household's personal data (every card of its account); returns the
    passbooks erased. Points, entries and CO2e stay under the pseudonymous ids."""
    vl = db.villagers
    with store.write("erasing a household's personal data") as conn:
        account = _account(conn, passbook_id)
        villages = set(conn.scalars(select(vl.c.village_id).where(vl.c.passbook_id.in_(account))))
        conn.execute(update(vl).where(vl.c.passbook_id.in_(account)).values(household_name=""))
        have = set(
            conn.scalars(select(personal.c.passbook_id).where(personal.c.passbook_id.in_(account)))
        )
        for pid in account:
            values = {"salt": None, "erased_ms": now_ms, "erased_by": actor}
            if pid in have:
                conn.execute(update(personal).where(personal.c.passbook_id == pid).values(values))
            else:
                village = conn.scalar(select(vl.c.village_id).where(vl.c.passbook_id == pid))
                conn.execute(insert(personal).values(passbook_id=pid, village_id=village, **values))
        _scrub_audit(conn, account)
        _scrub_dead_letters(conn, set(account))
        # Kiosks get the blank name with the next state push.
        v = db.villages
        conn.execute(
            update(v)
            .where(v.c.village_id.in_(villages))
            .values(changed_ms=db.village_changed(now_ms))
        )
        audit.record(
            conn, actor=actor, action="passbook.erase", target=passbook_id, now_ms=now_ms,
            village_id=min(villages) if villages else None,
            before={"passbooks": account, "household_name": ERASED},
            after={"passbooks": account, "household_name": ""},
        )  # fmt: skip
    _flush_sqlite(store)
    return account


def _flush_sqlite(store: CentralStore) -> None:
    """SQLite overwrites what an erasure removed (`secure_delete`, set at connect), but
    the WAL still holds the old pages until a checkpoint copies and truncates it."""
    if store.engine.dialect.name == "sqlite":
        raw = store.engine.raw_connection()  # outside any transaction: a checkpoint must be
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def _scrub_audit(conn: Connection, account: list[str]) -> None:
    """Audit rows about these passbooks keep who did what, not the name."""
    a = db.audit_log
    for row in conn.execute(
        select(a.c.id, a.c.before_json, a.c.after_json).where(a.c.target.in_(account))
    ):
        values = {}
        for col in ("before_json", "after_json"):
            text = getattr(row, col)
            if text and LEGACY_NAME_KEY in text:
                values[col] = json.dumps(_redact(json.loads(text)), ensure_ascii=False)
        if values:
            conn.execute(update(a).where(a.c.id == row.id).values(values))


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ERASED if k == LEGACY_NAME_KEY else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _scrub_dead_letters(conn: Connection, account: set[str]) -> None:
    """A refused batch is kept as it arrived; one that carried this household's name
    (a personal record, or an enrolment from before version 2) loses its payload."""
    from central import dead_letter_payload  # noqa: PLC0415 - decoding only when erasing

    d = db.dead_letters
    for row in conn.execute(select(d.c.id, d.c.payload)):
        if dead_letter_payload.names_any(bytes(row.payload), account):
            conn.execute(
                update(d)
                .where(d.c.id == row.id)
                .values(payload=b"", reason=d.c.reason + " (payload erased: personal data)")
            )


__all__ = [
    "ERASED",
    "PERSONAL_KEY",
    "accept",
    "correct",
    "erase",
    "erased_at",
    "export",
    "keep_erased",
    "known",
    "record_commitments",
    "stored_data",
]
