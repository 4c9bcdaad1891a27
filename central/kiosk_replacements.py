"""Lost cards replaced at a kiosk, as central learns them from the kiosk's entries.

A kiosk replaces a lost card offline (`edge.ledger.villagers.replace`) with two entries: an
`enrol` of a new passbook for the same household whose `data.replaces` names the old
one, then a `villager_status` revoking the old one ("replaced by NEW"). Ingest stores
them like any entries and keeps `villagers` from them as usual. `record`, in the same
transaction, does what an operator's `passbook replace` does (`central.passbooks`):

- `passbook_links` old → new: the household's **account** now holds both cards, so the
  state's balances fold the old card's points under the new one, statements show both
  histories, and a redemption made offline elsewhere with the old card counts against
  the account (an overdraft if the points were spent twice, `central.reports`);
- a central revocation of the old card ("replaced by NEW"): no kiosk's later status
  entry, whatever its clock said, makes it active again, and it cannot be reinstated;
- an audit row, `passbook.replace` by `kiosk:<device>`.

No link is made when the replacement cannot be one. The entries are signed ledger and
are stored all the same (nothing valid is refused); an audit row
`passbook.replace_not_linked` says why, for the operator:

- the old passbook is unknown at central or of another village (a kiosk knows a
  passbook only from its own enrolment, synced before this entry, or from central's
  state, so an honest kiosk never sends this);
- it was already replaced, at central or at another kiosk that synced first. The
  household then has two new cards: the first replacement holds the account, this one
  only what is earned or spent with it. Until central's next state this kiosk counted
  the old card's points under its new card; whatever it let the household spend of
  them shows as an overdraft of the new card, like two kiosks spending the same points
  offline. The operator revokes one of the two cards;
- the new passbook is already in a link, or its enrolment did not take (another
  enrolment of that id came first).

Central's re-check of a redemption (`central.recheck_state`) counts a kiosk's own
replacements as the kiosk counted them (`claimed`), linked or not, so a redemption
the kiosk rightly allowed is never refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select

from central import audit, db, passbooks, personal
from central.recheck import DATA, KIND, PASSBOOK
from greenpass.record.entries import Entry, Kind

log = logging.getLogger(__name__)
_ENROL = Kind.ENROL.value


def replaces(e: Entry) -> str | None:
    """The card an `enrol` entry replaces, if it does."""
    return (e.data.get("replaces") or None) if e.kind is Kind.ENROL else None


def record(
    conn: Connection, device_id: str, village_id: str, entries: Iterable[Entry], now_ms: int
) -> None:
    """Link each card replaced by one of `entries` (this batch's new villager entries,
    after `villagers` was kept from them), inside ingest's transaction."""
    for e in entries:
        old = replaces(e)
        if old is None:
            continue
        new = e.passbook_id
        assert new is not None  # ingest refuses an enrolment without a passbook
        actor = f"kiosk:{device_id}"
        why = _why_not(conn, village_id, old, new, (device_id, e.seq))
        about = {"passbook_id": new, "staff_id": e.staff_id, "entry": f"{device_id}:{e.seq}"}
        if why:
            log.warning("%s (entry %s:%d): %s; not linked", actor, device_id, e.seq, why)
            audit.record(
                conn, actor=actor, action="passbook.replace_not_linked", target=old,
                now_ms=now_ms, village_id=village_id, after={**about, "reason": why},
            )  # fmt: skip
            continue
        passbooks.link(conn, old, new, village_id, actor=actor, now_ms=now_ms)
        audit.record(
            conn, actor=actor, action="passbook.replace", target=old, now_ms=now_ms,
            village_id=village_id, before={"passbook_id": old},
            after={**about, "old_status": "revoked"},
        )  # fmt: skip


def _why_not(conn: Connection, village_id: str, old: str, new: str, source: tuple[str, int]) -> str:
    """Why `old → new` cannot be linked; '' if it can. `source`: the enrolment of
    `new` (device, seq)."""
    v = db.villagers
    rows = {
        r.passbook_id: r
        for r in conn.execute(
            select(
                v.c.passbook_id, v.c.village_id, v.c.household_name, v.c.source_device,
                v.c.source_seq,
            ).where(v.c.passbook_id.in_([old, new]))
        )
    }  # fmt: skip
    replaced = rows.get(old)
    # A row without an enrolment behind it (a status change came first, this batch's
    # revocation say) has neither a name from before enrol data version 2 nor a
    # commitment (`central.personal`).
    if (
        replaced is None
        or replaced.village_id != village_id
        or not (replaced.household_name or personal.known(conn, old))
    ):
        return f"passbook {old!r} is unknown at central in village {village_id!r}"
    lk = db.passbook_links
    done = conn.scalar(select(lk.c.new_passbook_id).where(lk.c.old_passbook_id == old))
    if done is not None:
        return f"passbook {old!r} was already replaced by {done!r}"
    other = conn.execute(
        select(lk.c.old_passbook_id, lk.c.new_passbook_id).where(
            (lk.c.old_passbook_id == new) | (lk.c.new_passbook_id == new)
        )
    ).first()
    if other is not None:
        return f"passbook {new!r} is already linked ({other[0]} → {other[1]})"
    made = rows.get(new)
    if made is None or (made.village_id, made.source_device, made.source_seq) != (
        village_id,
        *source,
    ):
        return f"the enrolment of {new!r} did not take (enrolled before)"
    return ""


def claimed(rows: Sequence[tuple[Any, ...]]) -> dict[str, str]:
    """old → new for the cards replaced by enrolments among a batch's `rows`."""
    return {
        r[DATA]["replaces"]: r[PASSBOOK]
        for r in rows
        if r[KIND] == _ENROL and r[DATA].get("replaces")
    }


def replaces_in(data_json: str) -> str | None:
    """The card a stored `enrol` entry's data (JSON text) names as replaced, if any."""
    if '"replaces"' not in data_json:
        return None
    value = json.loads(data_json).get("replaces")
    return value if isinstance(value, str) and value else None
