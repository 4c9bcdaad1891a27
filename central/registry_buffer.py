"""The registry's buffer pool at work: a deposit reversed after its month was issued
is covered by retiring buffer units (docs/registry.md, "The buffer pool")."""

from __future__ import annotations

from sqlalchemy import Connection, exists, func, select, update

from central import db
from central.registry_db import (
    Serials,
    registry_blocks,
    registry_issuances,
    registry_issued_entries,
)
from central.registry_units import BUFFER_PURPOSE, buffer_account, retire_in
from central.store import CentralStore
from greenpass.record.entries import Kind


def cover_reversals(store: CentralStore, *, actor: str, now_ms: int) -> list[str]:
    """Retire buffer units for every issued deposit reversed since its issuance: as many
    whole units as its reduction, rounded up, from its issuance's pool first, then its
    village's other issuances'. Each in one transaction that first re-reads, locked,
    whether it is still uncovered, so two runs at once never cover one reversal twice.
    Returns what was covered (and any shortfall)."""
    ie, r = registry_issued_entries, db.entries
    with store.read("finding reversals of issued entries") as conn:
        due = conn.execute(
            select(ie.c.device_id, ie.c.seq)
            .where(ie.c.covered_units.is_(None) & exists().where(
                (func.coalesce(r.c.ref_device, r.c.device_id) == ie.c.device_id)
                & (r.c.ref_seq == ie.c.seq)
                & (r.c.kind == Kind.REVERSAL.value)))
        ).all()  # fmt: skip
    done = []
    for device_id, seq in due:
        with store.write("covering a reversal from the buffer pool") as conn:
            q = (
                select(ie.c.issuance_id, ie.c.reduction_g, registry_issuances.c.village_id)
                .join(registry_issuances, registry_issuances.c.issuance_id == ie.c.issuance_id)
                .where((ie.c.device_id == device_id) & (ie.c.seq == seq)
                       & ie.c.covered_units.is_(None))
            )  # fmt: skip
            row = conn.execute(q.with_for_update(of=ie) if store.postgres else q).first()
            if row is None:
                continue  # another run covered it
            need = -(-int(row.reduction_g) // 1000)
            what = f"{device_id}:{seq}"
            got = _draw_buffer(conn, store.postgres, row.village_id, row.issuance_id, need,
                               what, actor, now_ms)  # fmt: skip
            conn.execute(update(ie).where((ie.c.device_id == device_id) & (ie.c.seq == seq))
                         .values(covered_units=got))  # fmt: skip
        short = f" (SHORT by {need - got}: the buffer pool is empty)" if got < need else ""
        done.append(f"{what} reversed after {row.issuance_id}: {got} buffer unit(s) retired{short}")
    return done


def _draw_buffer(
    conn: Connection, postgres: bool, village_id: str, iid: str, need: int, what: str,
    actor: str, now_ms: int,
) -> int:  # fmt: skip
    b, got = registry_blocks, 0
    while got < need:
        row = conn.execute(
            select(b.c.issuance_id, b.c.first, b.c.last)
            .where((b.c.account_id == buffer_account(village_id)) & b.c.retirement_id.is_(None))
            .order_by((b.c.issuance_id != iid), b.c.issuance_id, b.c.first)
            .limit(1)
        ).first()
        if row is None:
            break
        n = min(need - got, int(row.last) - int(row.first) + 1)
        s = Serials(str(row.issuance_id), int(row.first), int(row.first) + n - 1)
        retire_in(conn, postgres, s, buffer_account(village_id), f"{BUFFER_PURPOSE} {what}",
                   actor, now_ms, allow_buffer=True)  # fmt: skip
        got += n
    return got
