"""The reduction registry: units issued from verified deposits, transferred, retired
exactly once (issue 14; docs/registry.md). Tables and serials: `central.registry_db`.

**Issue.** A village's month is issued once. Its evidence pack is written first
(`central.evidence`, which also brings the transparency log up to date) and must
verify with central's own key; then, in one transaction, the month's deposits that are
accepted, not reversed, in that pack's checkpoint and never issued are each given
their reduction by the methodology (`greenpass.record.methodology`), summed, reduced by the
uncertainty deduction, split into units (1 kg CO2e each) for the village's issuer
account and the village's buffer pool. Entries not in the checkpoint are left out and
reported. A reversal that arrives after issuance is covered by retiring units of the
buffer pool (`cover_reversals`, run before every issuance and by `registry reconcile`).

**Transfer, retire.** A run of serials moves, or is retired, only if one account holds
all of it and none is retired; the blocks it crosses are split, never copied.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, exists, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from central import audit, db, evidence, exports, log_proofs
from central.registry_buffer import cover_reversals
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
from central.registry_units import (
    buffer_account,
    issuer_account,
    retire,
    transfer,
)
from central.store import CentralStore
from central.tlog import DEFAULT_ORIGIN
from greenpass.errors import CentralError, ConfigError, ConflictError
from greenpass.evidence_verify import verify_pack
from greenpass.record.entries import Kind
from greenpass.record.methodology import Methodology
from sync.keys import public_bytes


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
        try:
            # A savepoint: two villages issued at once under a new version both insert it.
            with conn.begin_nested():
                conn.execute(
                    insert(t).values(version=method.version, text=method.text, added_ms=now_ms)
                )
            return
        except IntegrityError:
            known = conn.scalar(select(t.c.text).where(t.c.version == method.version))
    if known != method.text:
        raise ConfigError(
            f"methodology version {method.version!r} was used with another text: a changed "
            "methodology needs a new version"
        )


def _eligible(
    conn: Connection, village_id: str, start_ms: int, end_ms: int, size: int
) -> tuple[list[tuple[str, int, str, int]], list[str], list[str]]:
    """(device, seq, category, grams) of the month's issuable deposits; the names of
    those left out because the checkpoint does not hold them; and of those reversed.
    Both lists go in the issuance (`excluded`): a verifier of its evidence pack, where a
    reversal after the month is not, recomputes the units without them."""
    e, r, ie = db.entries, aliased(db.entries), registry_issued_entries
    reversed_ = exists().where(
        (func.coalesce(r.c.ref_device, r.c.device_id) == e.c.device_id)
        & (r.c.ref_seq == e.c.seq)
        & (r.c.kind == Kind.REVERSAL.value)
    )
    issued = exists().where((ie.c.device_id == e.c.device_id) & (ie.c.seq == e.c.seq))
    rows = conn.execute(
        select(e.c.device_id, e.c.seq, e.c.category, e.c.grams, reversed_.label("rev"))
        .where(
            (e.c.village_id == village_id) & (e.c.kind == Kind.DEPOSIT.value)
            & (e.c.wall_ms >= start_ms) & (e.c.wall_ms < end_ms) & ~issued
        )
        .order_by(e.c.device_id, e.c.seq)
    ).all()  # fmt: skip
    logged: dict[str, int] = {}
    out, left_out, reversed_out = [], [], []
    for device_id, seq, category, grams, rev in rows:
        if rev:
            reversed_out.append(f"{device_id}:{seq}")
            continue
        if device_id not in logged:
            logged[device_id] = log_proofs.logged_upto(conn, device_id, size)
        if seq <= logged[device_id]:
            out.append((str(device_id), int(seq), str(category), int(grams)))
        else:
            left_out.append(f"{device_id}:{seq}")
    return out, left_out, reversed_out


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
    # Issuers of one village queue here (SQLite: the write lock already), so one that
    # lost the race is told so, not that the month had nothing left to issue.
    v = db.villages
    conn.execute(select(v.c.village_id).where(v.c.village_id == village_id).with_for_update())
    i = registry_issuances
    if conn.scalar(select(i.c.issuance_id).where(i.c.issuance_id == iid)) is not None:
        raise ConflictError(f"{iid} was issued meanwhile: a period is issued once")
    _keep_methodology(conn, method, now_ms)
    rows, left_out, reversed_out = _eligible(conn, village_id, p.start_ms, p.end_ms, size)
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
            actor=actor, excluded=json.dumps(sorted([*left_out, *reversed_out])),
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
        units, count = conn.execute(select(func.sum(i.c.units), func.count())).one()
    for r in retirements:
        r["serials"] = str(Serials(r["issuance_id"], r["first"], r["last"]))
    return {"issuances": issuances, "holdings": held, "retirements": retirements,
            "totals": {"issuances": int(count), "units": int(units or 0)}}  # fmt: skip


__all__ = [
    "add_account", "buffer_account", "cover_reversals", "holdings", "issue", "issuer_account",
    "retire", "summary", "transfer",
]  # fmt: skip
