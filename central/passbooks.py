"""Passbooks at central: revocation, reinstatement, and replacing a lost card.

**Revoke** records a central decision in `passbook_revocations`. The village's next
state lists the passbook in `revoked` (and with status `revoked` among the villagers);
a kiosk then refuses the card whatever its own entries say (`edge.ledger.central_state`).
A central revocation holds until an operator reinstates it: a kiosk's later
`villager_status` entry cannot undo it, because the state is built from this table
as well as from `villagers` (`central.state`).

**Reinstate** lifts it, and also makes a passbook a kiosk had revoked active again
(central's `villagers` row, stamped with central's time, as a newer status change).

**Replace** (a lost card): the old passbook is revoked ("replaced by NEW"), a new
passbook id is made for the same household (a `villagers` row written by central,
`source_device = "central"`), and `passbook_links` says old → new. The new id has a
`.R` in it, which a kiosk never makes (`<device>-<n>`; device ids have no dot).

A kiosk replaces a lost card offline with two entries (an `enrol` whose
`data.replaces` names the old card, and its revocation); central makes the same link
and revocation when it ingests them (`central.kiosk_replacements`).

A household's points are its **account**: every passbook linked by replacements.
Balances in the state (`fold_balances`), central's re-check of a redemption
(`central.recheck_state`), statements and overdrafts (`central.reports`) count the
account as one, under its newest passbook. Entries are never rewritten: the old
card's history stays under its own id and is shown with the new one. A redemption
made offline with the old card before a kiosk learnt of the replacement counts
against the account and shows up as an overdraft if the points were spent twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, insert, select, update

from central import audit, db, personal_db
from greenpass.errors import CentralError, ConfigError

if TYPE_CHECKING:  # a type only: the store opens through modules that import this one
    from central.store import CentralStore

CENTRAL_SOURCE = "central"  # `villagers.source_device` of rows central writes itself
MAX_REASON = 200


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or not reason.isprintable():
        raise ConfigError(f"a reason is 1 to {MAX_REASON} printable characters", key="reason")
    return reason


def _villager(conn: Connection, passbook_id: str) -> tuple[str, str, str]:
    """(village, household name, status) of a passbook central knows, or a refusal."""
    v = db.villagers
    row = conn.execute(
        select(v.c.village_id, v.c.household_name, v.c.status).where(v.c.passbook_id == passbook_id)
    ).first()
    if row is None:
        raise CentralError(
            f"no passbook {passbook_id!r} at central (its enrolment has not been synced)"
        )
    return row.village_id, row.household_name, row.status


def _central_revocation(conn: Connection, passbook_id: str) -> str | None:
    """The reason of the passbook's standing central revocation, if any."""
    r = db.passbook_revocations
    return conn.scalar(
        select(r.c.reason).where((r.c.passbook_id == passbook_id) & r.c.lifted_ms.is_(None))
    )


def _replaced_by(conn: Connection, passbook_id: str) -> str | None:
    lk = db.passbook_links
    return conn.scalar(select(lk.c.new_passbook_id).where(lk.c.old_passbook_id == passbook_id))


def _touch(conn: Connection, village_id: str, now_ms: int) -> None:
    """A state push follows: the central service watches `changed_ms`."""
    v = db.villages
    conn.execute(
        update(v).where(v.c.village_id == village_id).values(changed_ms=db.village_changed(now_ms))
    )


def _put_revocation(
    conn: Connection, passbook_id: str, village_id: str, reason: str, actor: str, now_ms: int
) -> None:
    r = db.passbook_revocations
    values = {
        "village_id": village_id,
        "revoked_ms": now_ms,
        "revoked_by": actor,
        "reason": reason,
        "lifted_ms": None,
        "lifted_by": None,
    }
    if conn.execute(update(r).where(r.c.passbook_id == passbook_id).values(**values)).rowcount:
        return
    conn.execute(insert(r).values(passbook_id=passbook_id, **values))


def revoke(store: CentralStore, passbook_id: str, *, reason: str, actor: str, now_ms: int) -> bool:
    """Revoke a passbook at every kiosk of its village; False if central already had."""
    reason = _reason(reason)
    with store.write("revoking a passbook") as conn:
        village, _, status = _villager(conn, passbook_id)
        if _central_revocation(conn, passbook_id) is not None:
            return False
        _put_revocation(conn, passbook_id, village, reason, actor, now_ms)
        _touch(conn, village, now_ms)
        audit.record(
            conn, actor=actor, action="passbook.revoke", target=passbook_id, now_ms=now_ms,
            village_id=village, before={"status": status},
            after={"status": "revoked", "reason": reason},
        )  # fmt: skip
        return True


def reinstate(store: CentralStore, passbook_id: str, *, actor: str, now_ms: int) -> bool:
    """Make a revoked passbook active again; False if it was not revoked."""
    r, v = db.passbook_revocations, db.villagers
    with store.write("reinstating a passbook") as conn:
        village, _, status = _villager(conn, passbook_id)
        new = _replaced_by(conn, passbook_id)
        if new is not None:
            raise CentralError(
                f"passbook {passbook_id!r} was replaced by {new!r}; its card stays refused"
            )
        central = _central_revocation(conn, passbook_id)
        if central is None and status != "revoked":
            return False
        conn.execute(
            update(r)
            .where((r.c.passbook_id == passbook_id) & r.c.lifted_ms.is_(None))
            .values(lifted_ms=now_ms, lifted_by=actor)
        )
        if status == "revoked":  # revoked at a kiosk: central's newer change undoes it
            conn.execute(
                update(v)
                .where(v.c.passbook_id == passbook_id)
                .values(status="active", updated_ms=now_ms, source_device=CENTRAL_SOURCE,
                        source_seq=0)
            )  # fmt: skip
        _touch(conn, village, now_ms)
        audit.record(
            conn, actor=actor, action="passbook.reinstate", target=passbook_id, now_ms=now_ms,
            village_id=village, before={"status": "revoked", "reason": central or "at a kiosk"},
            after={"status": "active"},
        )  # fmt: skip
        return True


def replace(store: CentralStore, old: str, *, actor: str, now_ms: int) -> str:
    """Replace a lost card: revoke `old`, make a new passbook for its household with
    the account's balance and history; returns the new passbook id."""
    vl, lk = db.villagers, db.passbook_links
    with store.write("replacing a passbook") as conn:
        village, household, status = _villager(conn, old)
        done = _replaced_by(conn, old)
        if done is not None:
            raise CentralError(f"passbook {old!r} was already replaced by {done!r}")
        erased = personal_db.erased_in(conn, old)
        if not household and not erased:
            raise CentralError(
                f"passbook {old!r}: its enrolment has not reached central yet (only a status "
                "change has); replace it once the kiosk that enrolled it has synced"
            )
        n = int(
            conn.scalar(select(func.count()).select_from(lk).where(lk.c.village_id == village)) or 0
        )
        while True:
            n += 1
            new = f"{village[:50]}.R{n:05d}"
            if conn.scalar(select(vl.c.passbook_id).where(vl.c.passbook_id == new)) is None:
                break
        conn.execute(
            insert(vl).values(
                passbook_id=new, village_id=village, household_name=household, status="active",
                updated_ms=now_ms, source_device=CENTRAL_SOURCE, source_seq=0,
            )
        )  # fmt: skip
        link(conn, old, new, village, actor=actor, now_ms=now_ms)
        if erased:  # a household whose name was erased gets its card, still nameless
            personal_db.mark_erased(conn, new, village, f"replaces erased {old}", now_ms)
        audit.record(
            conn, actor=actor, action="passbook.replace", target=old, now_ms=now_ms,
            village_id=village, before={"passbook_id": old, "status": status},
            after={"passbook_id": new, "household_name": household, "old_status": "revoked"},
        )  # fmt: skip
        return new


def link(conn: Connection, old: str, new: str, village_id: str, *, actor: str, now_ms: int) -> None:
    """Inside the caller's transaction: revoke `old` at central ("replaced by NEW") and
    record `old → new`. For `replace`, and for a replacement made at a kiosk
    (`central.kiosk_replacements`); the caller has checked that neither is linked yet."""
    _put_revocation(conn, old, village_id, f"replaced by {new}", actor, now_ms)
    conn.execute(
        insert(db.passbook_links).values(
            old_passbook_id=old, new_passbook_id=new, village_id=village_id,
            replaced_ms=now_ms, replaced_by=actor,
        )
    )  # fmt: skip
    _touch(conn, village_id, now_ms)


# --- accounts: passbooks linked by replacements ----------------------------------------


def links(conn: Connection, village_id: str | None = None) -> dict[str, str]:
    """old passbook → the passbook that replaced it (of one village, or all)."""
    lk = db.passbook_links
    q = select(lk.c.old_passbook_id, lk.c.new_passbook_id)
    if village_id is not None:
        q = q.where(lk.c.village_id == village_id)
    return {old: new for old, new in conn.execute(q)}


def account_of(passbook_id: str, replaced: Mapping[str, str]) -> str:
    """The newest passbook of the household's chain of replacements."""
    seen = {passbook_id}
    while passbook_id in replaced:
        passbook_id = replaced[passbook_id]
        if passbook_id in seen:  # pragma: no cover - links are made old → fresh id only
            break
        seen.add(passbook_id)
    return passbook_id


def members(passbook_ids: Iterable[str], replaced: Mapping[str, str]) -> dict[str, str]:
    """Every passbook in the accounts of `passbook_ids` → its account."""
    wanted = {account_of(p, replaced) for p in passbook_ids}
    out = {p: account_of(p, replaced) for p in replaced}
    out.update({p: p for p in wanted})
    return {p: a for p, a in out.items() if a in wanted}


def fold_balances(balances: Mapping[str, int], replaced: Mapping[str, str]) -> dict[str, int]:
    """Balances per passbook with each replaced passbook's folded into its account's."""
    out: dict[str, int] = {}
    for pid, points in balances.items():
        acc = account_of(pid, replaced)
        out[acc] = out.get(acc, 0) + points
    return out


def revoked_at_central(conn: Connection, village_id: str) -> set[str]:
    r = db.passbook_revocations
    return set(
        conn.scalars(
            select(r.c.passbook_id).where((r.c.village_id == village_id) & r.c.lifted_ms.is_(None))
        )
    )


def revocations(store: CentralStore, village_id: str) -> list[dict[str, object]]:
    """The village's standing central revocations: who, when, why (for reports)."""
    r = db.passbook_revocations
    with store.read("listing revocations") as conn:
        return [
            dict(row._mapping)
            for row in conn.execute(
                select(r.c.passbook_id, r.c.revoked_ms, r.c.revoked_by, r.c.reason)
                .where((r.c.village_id == village_id) & r.c.lifted_ms.is_(None))
                .order_by(r.c.passbook_id)
            )
        ]


def household(store: CentralStore, passbook_id: str) -> str:
    """The household name central knows for a passbook."""
    with store.read("reading a passbook") as conn:
        return _villager(conn, passbook_id)[1]


def village_of(store: CentralStore, passbook_id: str) -> str:
    """The village of a passbook central knows (CentralError if none)."""
    with store.read("reading a passbook") as conn:
        return _villager(conn, passbook_id)[0]


def search(
    store: CentralStore, village_id: str, query: str, limit: int = 50
) -> list[dict[str, str]]:
    """The village's passbooks whose id starts with, or whose household name holds,
    `query` (for the console's search), with central's view of their status."""
    v = db.villagers
    query = query.strip()
    if not query:
        return []
    like = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    q = (
        select(v.c.passbook_id, v.c.household_name, v.c.status)
        .where(v.c.village_id == village_id)
        .where(
            v.c.passbook_id.like(f"{like}%", escape="\\")
            | v.c.household_name.like(f"%{like}%", escape="\\")
        )
        .order_by(v.c.passbook_id)
        .limit(limit)
    )
    with store.read("searching passbooks") as conn:
        revoked = revoked_at_central(conn, village_id)
        return [
            {
                "passbook_id": r.passbook_id,
                "household_name": r.household_name,
                "status": "revoked" if r.passbook_id in revoked else r.status,
            }
            for r in conn.execute(q)
        ]


def status(store: CentralStore, passbook_id: str) -> dict[str, str | None]:
    """A passbook's village, household, status as the kiosks will see it, the reason of
    a standing central revocation and the passbook that replaced it (for the console)."""
    with store.read("reading a passbook") as conn:
        village, name, kiosk_status = _villager(conn, passbook_id)
        reason = _central_revocation(conn, passbook_id)
        return {
            "village_id": village,
            "household_name": name,
            "status": "revoked" if reason is not None else kiosk_status,
            "reason": reason,
            "replaced_by": _replaced_by(conn, passbook_id),
        }
