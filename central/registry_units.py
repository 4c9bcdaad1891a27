"""The registry's units held, moved and retired (docs/registry.md): blocks of serials
split, never copied (`central.registry_db`), each change with its issuance locked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from central import audit
from central.registry_db import (
    Serials,
    registry_accounts,
    registry_blocks,
    registry_issuances,
    registry_retirements,
)
from central.store import CentralStore
from greenpass.errors import CentralError, ConfigError, ConflictError

BUFFER_PURPOSE = "buffer pool: covers the reversal of"


class NotYours(CentralError):
    """The caller may not move or retire these units (HTTP 403); nothing changed."""


@dataclass(frozen=True)
class Mandate:
    """Whose units a console or API caller may move or retire: a buyer only its own
    registry account's; the county only those the villages' issuer accounts hold (it
    sells and retires for the villages, and never touches an enterprise's units). The
    command line on central's machine acts with no mandate: it holds the database."""

    account: str | None = None  # a buyer's registry account
    issuers: bool = False  # the county

    def check(self, holder: str, s: Serials) -> None:
        if self.account is not None and holder == self.account:
            return
        if self.issuers and holder.startswith("village:"):
            return
        raise NotYours(f"{s} are not yours to move or retire (held by {holder})")


def issuer_account(village_id: str) -> str:
    return f"village:{village_id}"


def buffer_account(village_id: str) -> str:
    return f"buffer:{village_id}"


def _locked_blocks(conn: Connection, s: Serials, postgres: bool) -> list[Any]:
    """The blocks holding units `s`, checked to cover them all. On PostgreSQL the
    issuance's row is locked first: every change to its blocks queues there, and the
    blocks are read by a statement that starts after the queue, so it sees the blocks
    the one before wrote (READ COMMITTED), never the ones it deleted."""
    if postgres:
        i = registry_issuances
        conn.execute(
            select(i.c.issuance_id).where(i.c.issuance_id == s.issuance_id).with_for_update()
        )
    b = registry_blocks
    q = (
        select(b.c.first, b.c.last, b.c.account_id, b.c.retirement_id)
        .where((b.c.issuance_id == s.issuance_id) & (b.c.first <= s.last) & (b.c.last >= s.first))
        .order_by(b.c.first)
    )
    rows = conn.execute(q).all()
    expected = s.first
    for r in rows:
        if r.first > expected:
            break
        expected = r.last + 1
    if not rows or rows[0].first > s.first or expected <= s.last:
        raise ConfigError(f"{s} are not units of an issuance (no such serials)")
    return list(rows)


def _move(
    conn: Connection, s: Serials, postgres: bool, *, to: str, retirement_id: int | None,
    allow_buffer: bool = False, mandate: Mandate | None = None,
) -> str:  # fmt: skip
    """Give units `s` to `to` (or retire them where they are), splitting the blocks they
    cross; returns the account that held them."""
    rows = _locked_blocks(conn, s, postgres)
    holders = {r.account_id for r in rows}
    if len(holders) != 1:
        raise ConfigError(f"{s} are held by several accounts ({', '.join(sorted(holders))})")
    holder = str(next(iter(holders)))
    if mandate is not None:
        mandate.check(holder, s)
    if any(r.retirement_id is not None for r in rows):
        raise ConflictError(f"{s} include retired units: a unit is retired once")
    if holder.startswith("buffer:") and not allow_buffer:
        raise ConfigError(f"{s} are in the buffer pool: they cover reversals, not trade")
    b = registry_blocks
    conn.execute(
        delete(b).where((b.c.issuance_id == s.issuance_id) & b.c.first.in_([r.first for r in rows]))
    )
    pieces: list[tuple[int, int, str, int | None]] = []
    if rows[0].first < s.first:
        pieces.append((rows[0].first, s.first - 1, holder, None))
    pieces.append((s.first, s.last, to, retirement_id))
    if rows[-1].last > s.last:
        pieces.append((s.last + 1, rows[-1].last, holder, None))
    conn.execute(
        insert(b),
        [{"issuance_id": s.issuance_id, "first": f, "last": la, "account_id": a,
          "retirement_id": rid} for f, la, a, rid in pieces],
    )  # fmt: skip
    return holder


def transfer(
    store: CentralStore, s: Serials, to: str, *, actor: str, now_ms: int,
    mandate: Mandate | None = None,
) -> str:  # fmt: skip
    """Move units `s` to account `to`; returns who held them."""
    a = registry_accounts
    with store.write("transferring units") as conn:
        kind = conn.scalar(select(a.c.kind).where(a.c.account_id == to))
        if kind is None:
            raise ConfigError(f"no registry account {to!r} (add it: registry account add)")
        if kind == "buffer":
            raise ConfigError("units are not transferred into a buffer pool")
        holder = _move(conn, s, store.postgres, to=to, retirement_id=None, mandate=mandate)
        if holder == to:
            raise ConfigError(f"{to} holds {s} already")
        audit.record(conn, actor=actor, action="registry.transfer", target=str(s), now_ms=now_ms,
                     before={"account": holder}, after={"account": to})  # fmt: skip
    return holder


def retire(
    store: CentralStore, s: Serials, *, beneficiary: str, purpose: str, actor: str, now_ms: int,
    mandate: Mandate | None = None,
) -> int:  # fmt: skip
    """Retire units `s` for `beneficiary`; returns the retirement's id (its certificate)."""
    if not beneficiary.strip() or not purpose.strip():
        raise ConfigError("a retirement names its beneficiary and its purpose")
    with store.write("retiring units") as conn:
        return retire_in(conn, store.postgres, s, beneficiary.strip(), purpose.strip(),
                          actor, now_ms, mandate=mandate)  # fmt: skip


def retire_in(
    conn: Connection, postgres: bool, s: Serials, beneficiary: str, purpose: str, actor: str,
    now_ms: int, *, allow_buffer: bool = False, mandate: Mandate | None = None,
) -> int:  # fmt: skip
    holder = _locked_blocks(conn, s, postgres)[0].account_id
    rid = conn.execute(
        insert(registry_retirements).values(
            issuance_id=s.issuance_id, first=s.first, last=s.last, account_id=holder,
            beneficiary=beneficiary, purpose=purpose, made_ms=now_ms, actor=actor,
        ).returning(registry_retirements.c.retirement_id)
    ).scalar_one()  # fmt: skip
    _move(conn, s, postgres, to=holder, retirement_id=int(rid), allow_buffer=allow_buffer,
          mandate=mandate)  # fmt: skip
    audit.record(conn, actor=actor, action="registry.retire", target=str(s), now_ms=now_ms,
                 after={"account": holder, "beneficiary": beneficiary, "purpose": purpose,
                        "retirement": int(rid)})  # fmt: skip
    return int(rid)
