"""The re-checks that need earlier entries: reversal targets, stock, balances (docs/design.md §6).

Run inside ingest's transaction, which holds the device's row, on the entries central
is about to store (`rows`), so each sees the entries already stored and those before
it in the same batch. Each reads the database only when the batch holds an entry it
applies to: a batch of deposits costs nothing here.

- **Reversals**: the target is an earlier entry of the same kiosk (`ref_seq` is that
  kiosk's seq, so it is in the same village too), of a kind that can be reversed, not
  already reversed, and the reversal carries exactly its negated grams, points, CO2e
  and stock, with the same passbook, category, item and rules version. A reversal of
  another kiosk's entry (`ref_device`) must match central's reservation of that entry
  for this kiosk (`central.reservations`). No kiosk reverses an entry twice; a kiosk's
  own reversal of an entry another kiosk reserved (or reversed) while it was offline
  is stored, counted and reported (`central.reports.double_reversals`), never
  refused: refusing would stall that kiosk's sync for good.
- **Stock** is kept per kiosk (the sum of `qty` over the kiosk's own entries, as the
  kiosk counts it): no entry may take it below zero.
- **Balances**: a redemption may spend at most what the kiosk could have known, which
  is its own entries for the passbook plus, from each other kiosk of the village, at
  most the best prefix of that kiosk's entries central could have put in a snapshot
  (docs/design.md §3). Two kiosks spending the same points offline both pass, and the
  overdraft is flagged in reports (`central.reports.overdrafts`), never refused; a
  redemption of points the passbook never had anywhere is refused. The passbook's
  points are its household's account: every card linked by replacements, and the
  cards this kiosk replaced itself, counted as it counted them even where central
  could not link them (`central.kiosk_replacements`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, case, func, select

from central import db, kiosk_replacements, passbooks, reservations
from central.recheck import (
    CATEGORY,
    CO2E,
    GRAMS,
    ITEM,
    KIND,
    PASSBOOK,
    POINTS,
    QTY,
    REF,
    REF_DEVICE,
    RULES,
    SEQ,
    refuse,
)
from greenpass.record.entries import REVERSIBLE, Kind
from greenpass.record.targets import OTHER_REVERSIBLE
from sync import protocol

_e = db.entries
# What a reversal carries of its target (the amounts in `_NEGATED` negated), in this
# order: read from a stored row by name, from a batch row by position.
_TARGET_FIELDS = ("passbook_id", "category", "grams", "points", "co2e_g", "item_id", "qty",
                  "rules_version")  # fmt: skip
_TARGET_AT = (PASSBOOK, CATEGORY, GRAMS, POINTS, CO2E, ITEM, QTY, RULES)
_NEGATED = frozenset({"grams", "points", "co2e_g", "qty"})
_REVERSIBLE = frozenset(k.value for k in REVERSIBLE)
_OTHER_REVERSIBLE = frozenset(k.value for k in OTHER_REVERSIBLE)


def check_against_ledger(
    conn: Connection, device_id: str, village_id: str, batch: protocol.Batch, skip: int
) -> None:
    """Refuse the batch if an entry from `skip` on does not fit what came before it."""
    rows = batch.rows[skip:]
    kinds = {r[KIND] for r in rows}
    if Kind.REVERSAL in kinds:
        _reversals(conn, device_id, batch, skip)
    taken = {r[ITEM] for r in rows if r[QTY] is not None and r[QTY] < 0}
    if taken:
        _stock(conn, device_id, rows, taken)
    if Kind.REDEEM in kinds:
        _balances(conn, device_id, village_id, rows)


def _negated(name: str, value: Any) -> Any:
    return -value if name in _NEGATED and value is not None else value


def _reversals(conn: Connection, device_id: str, batch: protocol.Batch, skip: int) -> None:
    rows, first_new = batch.rows[skip:], batch.first_seq + skip
    revs = [r for r in rows if r[KIND] == Kind.REVERSAL]
    own_older = sorted({r[REF] for r in revs if r[REF_DEVICE] is None and 1 <= r[REF] < first_new})
    others = {(r[REF_DEVICE], r[REF]) for r in revs if r[REF_DEVICE] is not None}
    stored: dict[int, tuple[str, tuple[Any, ...]]] = {}  # seq → kind, _TARGET_FIELDS
    if own_older:
        cols = [_e.c.seq, _e.c.kind, *(_e.c[f] for f in _TARGET_FIELDS)]
        mine = _e.c.device_id == device_id
        for row in conn.execute(select(*cols).where(mine & _e.c.seq.in_(own_older))):
            stored[int(row[0])] = (row[1], tuple(row[2:]))
    # (device, seq) of a target → (device, seq) of the reversal that cancelled it, at any
    # kiosk: its own reversals and others' (`ref_device`) alike (central.reservations).
    done = reservations.reversed_already(conn, {(device_id, s) for s in own_older} | others)
    theirs = reservations.reserved_for(conn, device_id, others)
    for r in revs:
        seq, ref, owner = r[SEQ], r[REF], r[REF_DEVICE]
        target: tuple[str, tuple[Any, ...]] | None = None
        if owner is None:
            name = str(ref)
            if first_new <= ref < seq:
                t = batch.rows[ref - batch.first_seq]
                target = (t[KIND], tuple(t[n] for n in _TARGET_AT))
            elif 1 <= ref < first_new:
                target = stored.get(ref)
            if target is None:
                raise refuse(seq, f"reverses entry {ref}, which does not exist before it")
        else:
            name = f"{owner}#{ref}"
            target = theirs.get((owner, ref))
            if target is None:
                raise refuse(
                    seq, f"reverses entry {name} without central's reservation for this kiosk"
                )
        kind, values = target
        if kind not in (_REVERSIBLE if owner is None else _OTHER_REVERSIBLE):
            raise refuse(seq, f"reverses entry {name} ({kind}), which cannot be reversed")
        key = (owner or device_id, ref)
        own = [s for d, s in done.get(key, ()) if d == device_id]
        if own:
            raise refuse(seq, f"entry {name} was already reversed by entry {own[0]}")
        for field, n, value in zip(_TARGET_FIELDS, _TARGET_AT, values, strict=True):
            want = _negated(field, value)
            if r[n] != want:
                raise refuse(
                    seq, f"a reversal of entry {name} must have {field} {want!r}, got {r[n]!r}"
                )
        done.setdefault(key, []).append((device_id, seq))


def _stock(
    conn: Connection, device_id: str, rows: Sequence[tuple[Any, ...]], items: set[str]
) -> None:
    q = (
        select(_e.c.item_id, func.coalesce(func.sum(_e.c.qty), 0))
        .where((_e.c.device_id == device_id) & _e.c.item_id.in_(items))
        .group_by(_e.c.item_id)
    )
    stock: dict[str, int] = {item: 0 for item in items}
    stock.update((item, int(n)) for item, n in conn.execute(q))
    for r in rows:
        item, qty = r[ITEM], r[QTY]
        if item not in stock or qty is None:
            continue
        before = stock[item]
        stock[item] = before + qty
        if qty < 0 and before + qty < 0:
            raise refuse(
                r[SEQ],
                f"takes {-qty} of {item!r} from stock, but this kiosk had only {before}",
            )


def _balances(
    conn: Connection, device_id: str, village_id: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    redeemed = {r[PASSBOOK] for r in rows if r[KIND] == Kind.REDEEM}
    # A replaced card's points are the household's account (central.passbooks): the
    # new passbook may spend what the old one earned, and the old one what is left.
    # This kiosk's own replacements count as it counted them, whether central could
    # link them or not (central.kiosk_replacements): those in this batch, and those
    # stored, found from the enrolment of each new card below.
    replaced = passbooks.links(conn, village_id)
    replaced.update(kiosk_replacements.claimed(rows))
    own_enrol = case(
        ((_e.c.kind == Kind.ENROL.value) & (_e.c.device_id == device_id), _e.c.data), else_=None
    )
    found: list[tuple[str, int, str, int]] = []  # device, seq, passbook, points
    read: set[str] = set()
    while todo := set(account := passbooks.members(redeemed, replaced)) - read:
        read |= todo
        q = select(_e.c.device_id, _e.c.seq, _e.c.passbook_id, _e.c.points, own_enrol).where(
            (_e.c.village_id == village_id) & _e.c.passbook_id.in_(todo)
        )
        for device, seq, member, points, data in conn.execute(q):
            found.append((device, int(seq), member, int(points)))
            old = None if data is None else kiosk_replacements.replaces_in(data)
            if old is not None and replaced.get(old) != member:
                replaced[old] = member  # its account changed: read the old card's too
    found.sort()
    own: dict[str, int] = defaultdict(int)  # this kiosk's entries: all of them count
    others: dict[str, int] = defaultdict(int)  # the best snapshot of every other kiosk
    running: dict[tuple[str, str], int] = defaultdict(int)
    best: dict[tuple[str, str], int] = defaultdict(int)  # 0: a snapshot without any
    for device, _, member, points in found:
        passbook = account[member]
        if device == device_id:
            own[passbook] += points
            continue
        key = (passbook, device)
        running[key] += points
        best[key] = max(best[key], running[key])
    for (passbook, _), points in best.items():
        others[passbook] += points
    for r in rows:
        if r[PASSBOOK] not in account:
            continue
        passbook = account[r[PASSBOOK]]
        if r[KIND] == Kind.REDEEM:
            could_have = own[passbook] + others[passbook]
            if could_have + r[POINTS] < 0:
                raise refuse(
                    r[SEQ],
                    f"redeems {-r[POINTS]} points of {r[PASSBOOK]!r}, more than it ever had "
                    f"where this kiosk could know ({could_have})",
                )
        own[passbook] += r[POINTS]
