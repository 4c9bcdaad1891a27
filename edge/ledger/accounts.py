"""A household's account at the kiosk: its passbooks linked by the lost cards replaced
here (`passbook_links`, kept in step with the entries by `edge.ledger.villagers.replace`).

Central counts a household's points under its newest passbook, the old cards' too
(`central.passbooks`); the kiosk counts them the same way (`queries.balance`), so the
new card carries the old one's balance before central knows of the replacement and
after. Cards replaced at central are folded by central itself: its snapshot holds them
under the new passbook, and no link is needed here.
"""

from __future__ import annotations

import sqlite3

# The passbooks whose points are counted under ?1: itself and, through this kiosk's
# replacements, every card it replaced; none if ?1 was itself replaced here.
ACCOUNT_CTE = (
    "WITH RECURSIVE account(p) AS ("
    "SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM passbook_links WHERE old_passbook_id = ?1) "
    "UNION SELECT l.old_passbook_id FROM passbook_links l JOIN account a "
    "ON l.new_passbook_id = a.p) "
)


def replaced_by(conn: sqlite3.Connection, passbook_id: str) -> str | None:
    """The passbook that replaced this one at this kiosk, if any."""
    row = conn.execute(
        "SELECT new_passbook_id FROM passbook_links WHERE old_passbook_id = ?", (passbook_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def account_of(conn: sqlite3.Connection, passbook_id: str) -> str:
    """The newest passbook of the household's chain of replacements at this kiosk."""
    seen = {passbook_id}
    while (newer := replaced_by(conn, passbook_id)) is not None and newer not in seen:
        seen.add(newer)
        passbook_id = newer
    return passbook_id


def account_members(conn: sqlite3.Connection, passbook_id: str) -> list[str]:
    """`passbook_id`'s account (see `queries.balance`): itself and the cards it replaced
    here; none if it was itself replaced here."""
    rows = conn.execute(ACCOUNT_CTE + "SELECT p FROM account", (passbook_id,)).fetchall()
    return [r[0] for r in rows]
