"""Reversing an entry: the ledger's only way to correct a mistake (`Ledger.reverse`).

Entries are never changed. A staff member cancels one with a new entry that
carries its negated grams, points, CO2e and stock, with a reason, at most once
(a unique index backs that up). A reversal that would take points already spent,
or stock already handed out, is refused like any other write.
"""

from __future__ import annotations

from edge.ledger import accounts
from edge.ledger import queries as q
from edge.ledger.appender import Appender
from edge.ledger.store import Store
from greenpass.errors import Refused
from greenpass.record.entries import Entry, Kind


def _neg(value: int | None) -> int | None:
    return None if value is None else -value


def reverse(store: Store, appender: Appender, seq: int, *, staff_id: str, reason: str) -> Entry:
    reason = q.check_reason(reason)
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        target = q.entry(conn, seq)
        q.check_reversible(conn, target)
        if target.passbook_id is not None and target.points > 0:
            # The household's: a card replaced since counts under the one that replaced it.
            balance = q.balance(conn, accounts.account_of(conn, target.passbook_id))
            if balance < target.points:
                raise Refused(
                    "insufficient_points",
                    f"reversing takes {target.points} "
                    f"points but the passbook has {balance} (already spent)",
                )
        if target.item_id is not None and target.qty is not None and target.qty > 0:
            stock = q.stock(conn, target.item_id)
            if stock < target.qty:
                raise Refused(
                    "out_of_stock",
                    f"reversing removes {target.qty} from stock but only {stock} are left",
                )
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
            staff_id=staff_id,
            reason=reason,
            rules_version=target.rules_version,
        )
