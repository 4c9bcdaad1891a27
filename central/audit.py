"""The audit of operator changes: who did what, when, and the value before and after.

Every change an operator makes through `central.operations` or `central.passbooks`
(villages, rules, catalogue, revocations, replacements) is written here in the SAME
transaction as the change itself, so a change without its audit row cannot exist.
Accounts (`central.accounts`: add, disable, token, unlock), device revocations,
enrolment tokens and enrolments (`central.store`) call `record` the same way, and so
does ingest for a lost card replaced at a kiosk (`central.kiosk_replacements`, actor
`kiosk:<device>`). No
password, hash or token is ever written here: only that it happened, and to what.
A row's `village_id` is the village it concerns; a county account's rows have none
and are seen only in the county-wide audit (CLI without --village, API without
village_id, the console's county audit page).

`actor` is whoever the caller vouches for: `cli:<unix user>` from the command line,
what the API's auth dependency resolved for a request. `before` and `after` are any
JSON-able values (a summary, not necessarily the whole object: a rules file's version
and its SHA-256, not its text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, insert, select

from central import db

if TYPE_CHECKING:  # only a type here: `central.store` itself imports this module
    from central.store import CentralStore

_json = msgspec.json.Encoder(order="sorted")
MAX_ACTOR = 128  # an account name or "cli:<user>"; longer is a caller's bug


@dataclass(frozen=True)
class AuditRow:
    id: int
    at_ms: int
    actor: str
    action: str  # e.g. village.add, rules.set, catalogue.set, passbook.revoke
    village_id: str | None
    target: str  # what was changed: a village, passbook, device id …
    before: Any
    after: Any


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    now_ms: int,
    village_id: str | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Write one audit row inside the caller's write transaction."""
    conn.execute(
        insert(db.audit_log).values(
            at_ms=now_ms,
            actor=actor[:MAX_ACTOR],
            action=action,
            village_id=village_id,
            target=target,
            before_json=None if before is None else _json.encode(before).decode(),
            after_json=None if after is None else _json.encode(after).decode(),
        )
    )


def rows(
    store: CentralStore,
    *,
    village_id: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditRow]:
    """The newest audit rows first (of one village, or all); `before_id` pages back."""
    a = db.audit_log
    q = select(a).order_by(a.c.id.desc()).limit(limit)
    if village_id is not None:
        q = q.where(a.c.village_id == village_id)
    if before_id is not None:
        q = q.where(a.c.id < before_id)
    with store.read("reading the audit") as conn:
        return [
            AuditRow(
                id=int(r.id),
                at_ms=int(r.at_ms),
                actor=r.actor,
                action=r.action,
                village_id=r.village_id,
                target=r.target,
                before=None if r.before_json is None else msgspec.json.decode(r.before_json),
                after=None if r.after_json is None else msgspec.json.decode(r.after_json),
            )
            for r in conn.execute(q)
        ]
