"""The village office's goods: catalogue items, their stock, and exchanging points for
them (`Ledger`'s staff actions).

Items are state (a row per item, changed by an admin or by central's catalogue);
stock is never stored: it is the sum of `qty` over the item's entries (restock,
adjust_stock, redeem and their reversals), so it cannot drift from the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.ledger import queries as q
from edge.ledger.active_rules import ActiveRules
from edge.ledger.appender import Appender
from edge.ledger.store import Store
from greenpass.errors import Refused
from greenpass.record.entries import Entry, Kind
from greenpass.record.ids import check_id


def put_item(
    store: Store,
    item_id: str,
    *,
    name_zh: str,
    name_en: str,
    points_price: int,
    staff_id: str,
    active: bool,
) -> None:
    check_id("item_id", item_id, code="bad_item_id")
    if isinstance(points_price, bool) or not isinstance(points_price, int) or points_price <= 0:
        raise Refused("bad_price", f"a price is a positive number of points, got {points_price!r}")
    if not name_zh.strip() or not name_en.strip():
        raise Refused("bad_name", "an item needs a Chinese and an English name")
    with store.write() as conn:
        q.require_staff(conn, staff_id, "admin")
        conn.execute(
            "INSERT INTO catalogue (item_id, name_zh, name_en, points_price, active) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE "
            "SET name_zh = excluded.name_zh, name_en = excluded.name_en, "
            "points_price = excluded.points_price, active = excluded.active",
            (item_id, name_zh.strip(), name_en.strip(), points_price, int(active)),
        )


def restock(store: Store, appender: Appender, item_id: str, qty: int, *, staff_id: str) -> Entry:
    q.check_qty(qty)
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        if q.item(conn, item_id) is None:
            raise Refused("unknown_item", f"no item {item_id!r} in the catalogue")
        return appender.append(
            conn, Kind.RESTOCK, appender.now(), item_id=item_id, qty=qty, staff_id=staff_id
        )


def adjust_stock(
    store: Store, appender: Appender, item_id: str, delta: int, *, staff_id: str, reason: str
) -> Entry:
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise Refused("bad_quantity", f"an adjustment is a non-zero whole number, got {delta!r}")
    reason = q.check_reason(reason)
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        if q.item(conn, item_id) is None:
            raise Refused("unknown_item", f"no item {item_id!r} in the catalogue")
        if q.stock(conn, item_id) + delta < 0:
            raise Refused("out_of_stock", "stock cannot go below zero")
        return appender.append(
            conn,
            Kind.ADJUST_STOCK,
            appender.now(),
            item_id=item_id,
            qty=delta,
            staff_id=staff_id,
            reason=reason,
        )


def redeem(
    store: Store,
    appender: Appender,
    rules: ActiveRules,
    village: str,
    passbook_id: str,
    items: Sequence[tuple[str, int]],
    *,
    staff_id: str,
) -> list[Entry]:
    """Exchange points for goods: one entry per item, all or nothing."""
    cart = q.check_cart(items)
    with store.write() as conn:
        q.require_staff(conn, staff_id, "staff", "admin")
        q.require_villager(conn, passbook_id, village)
        total = 0
        priced: list[tuple[str, int, int]] = []
        for item_id, qty in cart.items():
            item = q.item(conn, item_id)
            if item is None or not item.active:
                raise Refused("unknown_item", f"no item {item_id!r} in the catalogue")
            if item.stock < qty:
                raise Refused(
                    "out_of_stock", f"only {item.stock} of {item.name_en} left, {qty} asked"
                )
            total += item.points_price * qty
            priced.append((item_id, qty, item.points_price))
        balance = q.balance(conn, passbook_id)
        if balance < total:
            raise Refused(
                "insufficient_points", f"needs {total} points, the passbook has {balance}"
            )
        now = appender.now()
        version = rules.current(conn).version
        return [
            appender.append(
                conn,
                Kind.REDEEM,
                now,
                passbook_id=passbook_id,
                item_id=item_id,
                qty=-qty,
                points=-price * qty,
                staff_id=staff_id,
                rules_version=version,
            )
            for item_id, qty, price in priced
        ]
