"""Households' personal records the kiosk still has to get to central (`greenpass.record.personal`).

An enrolment's entry carries only a commitment; the name and its salt go beside the
entries, as personal records in a batch (`sync.batch.WirePersonal`), and only to a
central that says in its acks that it takes them: a central from before them refuses
a batch that carries any. Progress is one number, like the outbox: every enrolment
up to `synced_seq` has had its record confirmed by an `ok` ack, or had none to send.
Both numbers live in `meta`. `check_personal` is `greenpass verify`'s check that the
names kept here still match their commitments.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.ledger.store import Store
from greenpass.record.personal import household_fields, matches

_SYNCED = "personal_synced_seq"
_ACCEPTS = "central_accepts_personal"


@dataclass(frozen=True)
class PersonalRecord:
    seq: int  # the enrolment's
    passbook_id: str
    fields: dict[str, str]
    salt: bytes


class PersonalOutbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Read once: the uplink, the only writer of both, keeps them here after.
        self._accepts: bool | None = None
        self._synced: int | None = None

    def _meta(self, key: str) -> str | None:
        row = self.store.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        with self.store.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def central_accepts(self) -> bool:
        if self._accepts is None:
            self._accepts = self._meta(_ACCEPTS) == "1"
        return self._accepts

    def set_central_accepts(self, accepts: bool) -> None:
        if self.central_accepts() != accepts:
            self._set(_ACCEPTS, "1" if accepts else "0")
            self._accepts = accepts

    def synced_seq(self) -> int:
        if self._synced is None:
            self._synced = int(self._meta(_SYNCED) or 0)
        return self._synced

    def mark_synced(self, seq: int) -> None:
        """Central confirmed the records of every enrolment up to `seq`; never backwards."""
        if seq > self.synced_seq():
            self._set(_SYNCED, str(seq))
            self._synced = seq

    def pending(self, upto_seq: int, limit: int) -> list[PersonalRecord]:
        """The records of enrolments after `synced_seq` up to `upto_seq`, oldest first.
        Only this kiosk's own enrolments with their salt: an erased household (no salt)
        or one whose name came from central has none to send."""
        rows = self.store.conn.execute(
            "SELECT e.seq, v.passbook_id, v.household_name, v.salt FROM entries e "
            "JOIN villagers v ON v.passbook_id = e.passbook_id "
            "WHERE e.seq > ? AND e.seq <= ? AND e.kind = 'enrol' AND v.salt IS NOT NULL "
            "ORDER BY e.seq LIMIT ?",
            (self.synced_seq(), upto_seq, limit),
        ).fetchall()
        return [PersonalRecord(r[0], r[1], {"household_name": r[2]}, bytes(r[3])) for r in rows]


def check_personal(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """The first enrolment whose household name (with its salt, kept beside it) no
    longer makes the commitment in its entry — a name edited behind the ledger's back
    — as (seq, problem); None if every one matches. An erased household (no salt) and
    enrolments from before enrol data version 2 have nothing to check."""
    rows = conn.execute(
        "SELECT e.seq, e.passbook_id, json_extract(e.data, '$.personal'), v.household_name, "
        "v.salt FROM entries e JOIN villagers v ON v.passbook_id = e.passbook_id "
        "WHERE e.kind = 'enrol' AND v.salt IS NOT NULL ORDER BY e.seq"
    )
    for seq, passbook_id, committed, name, salt in rows:
        if not matches(household_fields(name), bytes(salt), committed or ""):
            return seq, (
                f"the household name of passbook {passbook_id} does not match the commitment "
                f"in its enrolment (entry seq {seq}): it was changed outside the kiosk"
            )
    return None
