"""The reduction registry: units issued from verified deposits, transferred, retired
exactly once (issue 14; docs/registry.md). Tables and serials: `central.registry_db`.

**Issue.** A village's month is issued once. Its evidence pack is written first
(`central.evidence`, which also brings the transparency log up to date) and must
verify with central's own key; then, in one transaction, the month's deposits that are
accepted, not reversed, in that pack's checkpoint and never issued are each given
their reduction by the methodology (`central.methodology`), summed, reduced by the
uncertainty deduction, split into units (1 kg CO2e each) for the village's issuer
account and the village's buffer pool. Entries not in the checkpoint are left out and
reported. A reversal that arrives after issuance is covered by retiring units of the
buffer pool (`cover_reversals`, run before every issuance and by `registry reconcile`).

**Transfer, retire.** A run of serials moves, or is retired, only if one account holds
all of it and none is retired; the blocks it crosses are split, never copied.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from central import audit, db, evidence, exports, log_proofs
from central.methodology import Methodology
from central.registry_db import (
    Serials,
    check_period,
    issuance_id,
    registry_accounts,
    registry_blocks,
    registry_issuances,
    registry_issued_entries,
    registry_methodologies,
    registry_retirements,
)
from central.store import CentralStore
from central.tlog import DEFAULT_ORIGIN
from edge.entries import Kind
from greenpass.errors import CentralError, ConfigError, ConflictError
from greenpass.evidence_verify import verify_pack
from sync.keys import public_bytes

BUFFER_PURPOSE = "buffer pool: covers the reversal of"


def issuer_account(village_id: str) -> str:
    return f"village:{village_id}"


def buffer_account(village_id: str) -> str:
    return f"buffer:{village_id}"


@dataclass(frozen=True)
class Issued:
    issuance_id: str
    issued: Serials | None  # to the village's issuer account
    buffer: Serials | None  # to its buffer pool
    entries: int
    gross_g: int
    left_out: list[str]  # device:seq of deposits not in the checkpoint
    pack: Path
    covered: list[str]  # reversals covered from the buffer before this issuance


def _month(period: str) -> tuple[date, date]:
    first = date.fromisoformat(period + "-01")
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)


def _ensure_account(
    conn: Connection, account_id: str, kind: str, village: str | None, now: int
) -> None:
    a = registry_accounts
    if conn.scalar(select(a.c.account_id).where(a.c.account_id == account_id)) is None:
        conn.execute(
            insert(a).values(account_id=account_id, kind=kind, village_id=village,
                             name=account_id, created_ms=now)
        )  # fmt: skip


def add_account(
    store: CentralStore, account_id: str, name: str, *, actor: str, now_ms: int
) -> None:
    """A buyer's account (an enterprise): it may hold, receive and retire units."""
    if not account_id or ":" in account_id or len(account_id) > 64:
        raise ConfigError("an account id is 1-64 characters without ':' (e.g. acme-cement)")
    a = registry_accounts
    with store.write("adding a registry account") as conn:
        if conn.scalar(select(a.c.account_id).where(a.c.account_id == account_id)) is not None:
            raise ConflictError(f"registry account {account_id!r} exists already")
        conn.execute(insert(a).values(account_id=account_id, kind="buyer", village_id=None,
                                      name=name, created_ms=now_ms))  # fmt: skip
        audit.record(conn, actor=actor, action="registry.account", target=account_id,
                     now_ms=now_ms, after={"name": name, "kind": "buyer"})  # fmt: skip


def _keep_methodology(conn: Connection, method: Methodology, now_ms: int) -> None:
    t = registry_methodologies
    known = conn.scalar(select(t.c.text).where(t.c.version == method.version))
    if known is None:
        conn.execute(insert(t).values(version=method.version, text=method.text, added_ms=now_ms))
    elif known != method.text:
        raise ConfigError(
            f"methodology version {method.version!r} was used with another text: a changed "
            "methodology needs a new version"
        )


def _eligible(
    conn: Connection, village_id: str, start_ms: int, end_ms: int, size: int
) -> tuple[list[tuple[str, int, str, int]], list[str]]:
    """(device, seq, category, grams) of the month's issuable deposits, and the names of
    those left out because the checkpoint does not hold them."""
    e, r, ie = db.entries, aliased(db.entries), registry_issued_entries
    reversed_ = exists().where(
        (r.c.device_id == e.c.device_id)
        & (r.c.ref_seq == e.c.seq)
        & (r.c.kind == Kind.REVERSAL.value)
    )
    issued = exists().where((ie.c.device_id == e.c.device_id) & (ie.c.seq == e.c.seq))
    rows = conn.execute(
        select(e.c.device_id, e.c.seq, e.c.category, e.c.grams)
        .where(
            (e.c.village_id == village_id) & (e.c.kind == Kind.DEPOSIT.value)
            & (e.c.wall_ms >= start_ms) & (e.c.wall_ms < end_ms) & ~reversed_ & ~issued
        )
        .order_by(e.c.device_id, e.c.seq)
    ).all()  # fmt: skip
    logged: dict[str, int] = {}
    out, left_out = [], []
    for device_id, seq, category, grams in rows:
        if device_id not in logged:
            logged[device_id] = log_proofs.logged_upto(conn, device_id, size)
        if seq <= logged[device_id]:
            out.append((str(device_id), int(seq), str(category), int(grams)))
        else:
            left_out.append(f"{device_id}:{seq}")
    return out, left_out


def issue(
    store: CentralStore,
    key: Ed25519PrivateKey,
    village_id: str,
    period: str,
    method: Methodology,
    out_dir: Path,
    *,
    actor: str,
    now_ms: int,
    default_tz: ZoneInfo,
) -> Issued:
    check_period(period)
    first, last = _month(period)
    tz = exports.village_tz(store, village_id, default_tz)
    p = exports.Period(first, last, tz)
    assert p.start_ms is not None and p.end_ms is not None
    if now_ms < p.end_ms:
        raise ConfigError(f"{period} has not ended in {village_id}'s time zone: issue it after")
    iid = issuance_id(village_id, period)
    with store.read("checking the issuance") as conn:
        if conn.scalar(select(registry_issuances.c.issuance_id).where(
                registry_issuances.c.issuance_id == iid)) is not None:  # fmt: skip
            raise ConflictError(f"{iid} is issued already: a period is issued once")
    covered = cover_reversals(store, actor=actor, now_ms=now_ms)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Written aside and put in place only once issued: two operators issuing the same
    # month at once must not delete or overwrite the winner's pack.
    pack = out_dir / f".{iid}.{os.getpid()}.{now_ms}.zip"
    final = out_dir / f"{iid}.zip"
    written = evidence.write_pack(
        store, key, village_id, first, last, pack, origin=DEFAULT_ORIGIN,
        default_tz=default_tz, now_ms=now_ms,
    )  # fmt: skip
    report, _ = verify_pack(pack, public_bytes(key.public_key()).hex())
    if report.failed or report.unproven:
        pack.unlink(missing_ok=True)
        raise CentralError(
            f"the evidence pack of {iid} does not verify ({'; '.join(report.lines)}): "
            "nothing issued"
        )
    digest = hashlib.sha256(pack.read_bytes()).hexdigest()
    try:
        with store.write("issuing reduction units") as conn:
            result = _issue_in(conn, iid, village_id, period, method, p, written.size, digest,
                               final.name, actor, now_ms)  # fmt: skip
    except IntegrityError as exc:
        pack.unlink(missing_ok=True)
        raise ConflictError(f"{iid} was issued meanwhile: a period is issued once") from exc
    except BaseException:
        pack.unlink(missing_ok=True)
        raise
    pack.replace(final)
    issued_n, buffer_n, entries, gross, left_out = result
    issued = Serials(iid, 1, issued_n) if issued_n else None
    buffer = Serials(iid, issued_n + 1, issued_n + buffer_n) if buffer_n else None
    return Issued(iid, issued, buffer, entries, gross, left_out, final, covered)


def _issue_in(
    conn: Connection, iid: str, village_id: str, period: str, method: Methodology,
    p: exports.Period, size: int, digest: str, pack_name: str, actor: str, now_ms: int,
) -> tuple[int, int, int, int, list[str]]:  # fmt: skip
    assert p.start_ms is not None and p.end_ms is not None
    _keep_methodology(conn, method, now_ms)
    rows, left_out = _eligible(conn, village_id, p.start_ms, p.end_ms, size)
    reductions = [method.reduction_g(cat, village_id, grams) for _d, _s, cat, grams in rows]
    gross = sum(reductions)
    total, buffer_n, issued_n = method.split(gross)
    if total <= 0:
        raise ConfigError(
            f"nothing to issue for {village_id} in {period}: {len(rows)} issuable deposits "
            f"reduce {gross} g CO2e, less than one unit (1 kg) after deductions"
        )
    conn.execute(
        insert(registry_issuances).values(
            issuance_id=iid, village_id=village_id, period=period, methodology=method.version,
            entries=len(rows), gross_g=gross, units=total, buffer_units=buffer_n,
            checkpoint_size=size, pack_sha256=digest, pack_name=pack_name, made_ms=now_ms,
            actor=actor,
        )
    )  # fmt: skip
    conn.execute(
        insert(registry_issued_entries),
        [{"device_id": d, "seq": s, "issuance_id": iid, "reduction_g": g}
         for (d, s, _c, _g), g in zip(rows, reductions, strict=True)],
    )  # fmt: skip
    _ensure_account(conn, issuer_account(village_id), "issuer", village_id, now_ms)
    _ensure_account(conn, buffer_account(village_id), "buffer", village_id, now_ms)
    blocks = [{"issuance_id": iid, "first": 1, "last": issued_n,
               "account_id": issuer_account(village_id)}] if issued_n else []  # fmt: skip
    if buffer_n:
        blocks.append({"issuance_id": iid, "first": issued_n + 1, "last": total,
                       "account_id": buffer_account(village_id)})  # fmt: skip
    conn.execute(insert(registry_blocks), blocks)
    audit.record(
        conn, actor=actor, action="registry.issue", target=iid, now_ms=now_ms,
        village_id=village_id,
        after={"methodology": method.version, "entries": len(rows), "gross_g": gross,
               "units": total, "buffer_units": buffer_n, "left_out": len(left_out),
               "pack_sha256": digest},
    )  # fmt: skip
    return issued_n, buffer_n, len(rows), gross, left_out


# --- transfer and retire --------------------------------------------------------------------


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
    return rows


def _move(
    conn: Connection, s: Serials, postgres: bool, *, to: str, retirement_id: int | None,
    allow_buffer: bool = False,
) -> str:  # fmt: skip
    """Give units `s` to `to` (or retire them where they are), splitting the blocks they
    cross; returns the account that held them."""
    rows = _locked_blocks(conn, s, postgres)
    holders = {r.account_id for r in rows}
    if len(holders) != 1:
        raise ConfigError(f"{s} are held by several accounts ({', '.join(sorted(holders))})")
    (holder,) = holders
    if any(r.retirement_id is not None for r in rows):
        raise ConflictError(f"{s} include retired units: a unit is retired once")
    if holder.startswith("buffer:") and not allow_buffer:
        raise ConfigError(f"{s} are in the buffer pool: they cover reversals, not trade")
    b = registry_blocks
    conn.execute(
        delete(b).where((b.c.issuance_id == s.issuance_id) & b.c.first.in_([r.first for r in rows]))
    )
    pieces = []
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


def transfer(store: CentralStore, s: Serials, to: str, *, actor: str, now_ms: int) -> str:
    """Move units `s` to account `to`; returns who held them."""
    a = registry_accounts
    with store.write("transferring units") as conn:
        kind = conn.scalar(select(a.c.kind).where(a.c.account_id == to))
        if kind is None:
            raise ConfigError(f"no registry account {to!r} (add it: registry account add)")
        if kind == "buffer":
            raise ConfigError("units are not transferred into a buffer pool")
        holder = _move(conn, s, store.postgres, to=to, retirement_id=None)
        if holder == to:
            raise ConfigError(f"{to} holds {s} already")
        audit.record(conn, actor=actor, action="registry.transfer", target=str(s), now_ms=now_ms,
                     before={"account": holder}, after={"account": to})  # fmt: skip
    return holder


def retire(
    store: CentralStore, s: Serials, *, beneficiary: str, purpose: str, actor: str, now_ms: int
) -> int:
    """Retire units `s` for `beneficiary`; returns the retirement's id (its certificate)."""
    if not beneficiary.strip() or not purpose.strip():
        raise ConfigError("a retirement names its beneficiary and its purpose")
    with store.write("retiring units") as conn:
        return _retire_in(conn, store.postgres, s, beneficiary.strip(), purpose.strip(),
                          actor, now_ms)  # fmt: skip


def _retire_in(
    conn: Connection, postgres: bool, s: Serials, beneficiary: str, purpose: str, actor: str,
    now_ms: int, *, allow_buffer: bool = False,
) -> int:  # fmt: skip
    holder = _locked_blocks(conn, s, postgres)[0].account_id
    rid = conn.execute(
        insert(registry_retirements).values(
            issuance_id=s.issuance_id, first=s.first, last=s.last, account_id=holder,
            beneficiary=beneficiary, purpose=purpose, made_ms=now_ms, actor=actor,
        ).returning(registry_retirements.c.retirement_id)
    ).scalar_one()  # fmt: skip
    _move(conn, s, postgres, to=holder, retirement_id=int(rid), allow_buffer=allow_buffer)
    audit.record(conn, actor=actor, action="registry.retire", target=str(s), now_ms=now_ms,
                 after={"account": holder, "beneficiary": beneficiary, "purpose": purpose,
                        "retirement": int(rid)})  # fmt: skip
    return int(rid)


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
                (r.c.device_id == ie.c.device_id) & (r.c.ref_seq == ie.c.seq)
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
        _retire_in(conn, postgres, s, buffer_account(village_id), f"{BUFFER_PURPOSE} {what}",
                   actor, now_ms, allow_buffer=True)  # fmt: skip
        got += n
    return got


# --- reading ---------------------------------------------------------------------------------


def holdings(conn: Connection, account_id: str | None = None) -> list[dict[str, Any]]:
    b = registry_blocks
    q = select(b.c.account_id, b.c.issuance_id, b.c.first, b.c.last, b.c.retirement_id)
    if account_id is not None:
        q = q.where(b.c.account_id == account_id)
    return [
        {"account": r.account_id, "serials": str(Serials(r.issuance_id, r.first, r.last)),
         "units": int(r.last) - int(r.first) + 1, "retirement": r.retirement_id}
        for r in conn.execute(q.order_by(b.c.account_id, b.c.issuance_id, b.c.first))
    ]  # fmt: skip


def summary(store: CentralStore) -> dict[str, Any]:
    """Everything public: issuances, holdings, retirements (no household, no entry)."""
    i, rt = registry_issuances, registry_retirements
    with store.read("reading the registry", snapshot=True) as conn:
        issuances = [dict(r._mapping) for r in conn.execute(select(i).order_by(i.c.issuance_id))]
        retirements = [
            dict(r._mapping) for r in conn.execute(select(rt).order_by(rt.c.retirement_id))
        ]
        held = holdings(conn)
        units = dict(conn.execute(select(func.sum(i.c.units), func.count())).one()._mapping)
    for r in retirements:
        r["serials"] = str(Serials(r["issuance_id"], r["first"], r["last"]))
    return {"issuances": issuances, "holdings": held, "retirements": retirements,
            "totals": {"units": units}}  # fmt: skip
