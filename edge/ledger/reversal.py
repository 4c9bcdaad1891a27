"""Reversing an entry: the ledger's only way to correct a mistake (`Ledger.reverse`).

Entries are never changed. A staff member cancels one with a new entry that
carries its negated grams, points, CO2e and stock, with a reason, at most once
(a unique index backs that up). A reversal that would take points already spent,
or stock already handed out, is refused like any other write.

`reverse_other` cancels another kiosk's entry, which this ledger does not hold: central
reserved it for this kiosk and sent its fields (`greenpass.record.targets`); the
reversal names the target by `ref_device` and `ref_seq`.
"""

from __future__ import annotations

import sqlite3

from edge.ledger import accounts
from edge.ledger import queries as q
from edge.ledger.appender import Appender
from edge.ledger.store import Store
from greenpass.errors import Refused
from greenpass.record.entries import Entry, Kind
from greenpass.record.targets import OTHER_REVERSIBLE, OtherEntry


def _neg(value: int | None) -> int | None:
    return None if value is None else -value


def reverse(store: Store, appender: Appender, seq: int, *, staff_id: str, reason: str) -> Entry:
    reason = q.check_reason(reason)
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        target = q.entry(conn, seq)
        q.check_reversible(conn, target)
        _check_points(conn, target.passbook_id, target.points)
        if target.item_id is not None and target.qty is not None and target.qty > 0:
            stock = q.stock(conn, target.item_id)
            if stock < target.qty:
                raise Refused(
                    "out_of_stock",
                    f"reversing removes {target.qty} from stock but only {stock} are left",
                )
        return _negation(conn, appender, target, None, staff_id, reason)


def reverse_other(
    store: Store, appender: Appender, target: OtherEntry, *, staff_id: str, reason: str
) -> Entry:
    """Cancel `target`, another kiosk's entry that central reserved for this one."""
    reason = q.check_reason(reason)
    if target.device_id == appender.device_id:
        raise Refused("not_other", f"entry {target.seq} is this kiosk's own: reverse it here")
    if target.kind not in OTHER_REVERSIBLE:
        raise Refused(
            "not_reversible_here",
            f"a {target.kind} entry moves stock at {target.device_id}: reverse it there",
        )
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        done = conn.execute(
            "SELECT seq FROM entries WHERE kind = 'reversal' AND ref_device = ? AND ref_seq = ?",
            (target.device_id, target.seq),
        ).fetchone()
        if done is not None:
            raise Refused(
                "already_reversed",
                f"entry {target.device_id}#{target.seq} was already reversed by entry {done[0]}",
            )
        _check_points(conn, target.passbook_id, target.points)
        return _negation(conn, appender, target, target.device_id, staff_id, reason)


def _negation(
    conn: sqlite3.Connection, appender: Appender, target: Entry | OtherEntry,
    ref_device: str | None, staff_id: str, reason: str,
) -> Entry:  # fmt: skip
    """Append the reversal of `target`: its negated amounts, the rest as it is."""
    return appender.append(
        conn,
        Kind.REVERSAL,
        appender.now(),
        passbook_id=target.passbook_id,
        category=target.category,
        grams=_neg(target.grams),
        points=-target.points,
        co2e_g=-target.co2e_g,
        item_id=target.item_id,
        qty=_neg(target.qty),
        ref_seq=target.seq,
        ref_device=ref_device,
        staff_id=staff_id,
        reason=reason,
        rules_version=target.rules_version,
    )


def _check_points(conn: sqlite3.Connection, passbook_id: str | None, points: int) -> None:
    if passbook_id is None or points <= 0:
        return
    # The household's: a card replaced since counts under the one that replaced it.
    balance = q.balance(conn, accounts.account_of(conn, passbook_id))
    if balance < points:
        raise Refused(
            "insufficient_points",
            f"reversing takes {points} points but the passbook has {balance} (already spent)",
        )
