"""Central's view of the village, applied to a kiosk's ledger in one transaction.

Central pushes a state (balances as of this device's `included_seq`, villagers,
catalogue, rules, issuer keys, revoked passbooks). It is applied whole or not at
all, and a state older than or equal to the one already applied is ignored, so a
re-delivered retained message cannot roll the kiosk back.

Merging with what only this kiosk knows follows docs/design.md §3: central's numbers
cover this device up to `included_seq`; this kiosk's own entries after it are
laid on top (balances by `queries.balance`, villager enrolments and status
changes here). A passbook central lists as revoked stays revoked whatever a
local entry says: revocation is a security decision taken centrally.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edge.ledger.store import Store
from greenpass.errors import IntegrityError, RulesError
from greenpass.record.rules import Rules, parse_rules

log = logging.getLogger(__name__)

# Central makes thumbnails under 8 KiB (central.catalogue_file); twice that is refused.
MAX_PICTURE_BYTES = 16 * 1024


@dataclass(frozen=True)
class VillagerRecord:
    passbook_id: str
    household_name: str
    village: str
    status: str  # active / inactive / revoked


@dataclass(frozen=True)
class ItemRecord:
    item_id: str
    name_zh: str
    name_en: str
    points_price: int
    active: bool = True
    picture: bytes | None = None  # a JPEG thumbnail (central's catalogue), or none


@dataclass(frozen=True)
class CentralState:
    version: int
    included_seq: int
    balances: Mapping[str, int] = field(default_factory=dict)
    villagers: Sequence[VillagerRecord] = ()
    catalogue: Sequence[ItemRecord] | None = None  # None: central does not manage it
    rules_text: str | None = None  # None: keep the rules installed here
    issuer_keys: Mapping[str, bytes] = field(default_factory=dict)
    revoked: Sequence[str] = ()
    erased: Sequence[str] = ()  # households whose personal data central erased
    # This kiosk's entries another kiosk holds central's reservation to reverse: seq →
    # that kiosk. Only added to, never cleared (an older central sends none).
    reversed_elsewhere: Mapping[int, str] = field(default_factory=dict)


def state_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT version FROM central_state WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Applied:
    """What `apply_central_state` did: `changed` is False when the state was not newer;
    `rules` are the rules it installed (None: the ones in force stay)."""

    changed: bool
    rules: Rules | None = None


def apply_central_state(store: Store, state: CentralState, *, village: str, now: int) -> Applied:
    """Apply `state` to the ledger in `store` (of `village`) atomically, at wall-clock
    `now` (ms); nothing changes if it is not newer."""
    rules: Rules | None = None
    if state.rules_text is not None:
        rules = parse_rules(state.rules_text, "<rules from central>")
        if rules.village not in ("*", village):
            raise RulesError(
                f"central sent rules {rules.version!r} for village {rules.village!r}, "
                f"this kiosk is {village!r}"
            )
    with store.write() as conn:
        if state_version(conn) >= state.version:
            return Applied(changed=False)
        head = int(conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()[0])
        if not 0 <= state.included_seq <= head:
            raise IntegrityError(
                f"central's state includes seq {state.included_seq} but this ledger ends at "
                f"{head}: the ledger file was replaced or restored; stop and call support"
            )
        conn.execute("INSERT OR REPLACE INTO central_state VALUES (1, ?, ?)", (state.version, now))
        conn.execute("DELETE FROM snapshot_balances")
        conn.executemany("INSERT INTO snapshot_balances VALUES (?, ?)", state.balances.items())
        conn.execute(
            "INSERT OR REPLACE INTO snapshot VALUES (1, ?, ?, ?)",
            (state.version, state.included_seq, now),
        )
        blanked = _villagers(conn, state, now)
        if state.catalogue is not None:
            _catalogue(conn, state.catalogue)
        conn.executemany(
            "INSERT OR REPLACE INTO reversed_elsewhere VALUES (?, ?)",
            state.reversed_elsewhere.items(),
        )
        conn.execute("DELETE FROM issuer_keys")
        conn.executemany("INSERT INTO issuer_keys VALUES (?, ?)", state.issuer_keys.items())
        if rules is not None:
            _install_rules(conn, rules, now)
    if blanked:
        # The erased names are overwritten in the file (secure_delete); the WAL still
        # holds the pages that had them until a checkpoint copies and truncates it.
        store.checkpoint()
    return Applied(changed=True, rules=rules)


def _villagers(conn: sqlite3.Connection, state: CentralState, now: int) -> bool:
    """Merge central's villagers; True if an erasure blanked a name here."""
    # A name central does not have yet (its personal record is still on its way from
    # the kiosk that enrolled it) does not blank the one this kiosk holds; an erasure
    # does, and takes the salt with it, so nothing links the commitment to anyone.
    # Another name from central (a correction there) replaces ours and its salt: the
    # salt opened our commitment to the old name only.
    conn.executemany(
        "INSERT INTO villagers (passbook_id, household_name, village, status, updated_ms) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(passbook_id) DO UPDATE SET "
        "household_name = CASE WHEN excluded.household_name = '' AND salt IS NOT NULL "
        "THEN household_name ELSE excluded.household_name END, "
        "salt = CASE WHEN excluded.household_name NOT IN ('', household_name) "
        "THEN NULL ELSE salt END, "
        "village = excluded.village, status = excluded.status, updated_ms = excluded.updated_ms",
        [(v.passbook_id, v.household_name, v.village, v.status, now) for v in state.villagers],
    )
    # An erased household's cards here include one this kiosk issued to replace an
    # erased card before central knew of it (`passbook_links`).
    erased = conn.executemany(
        "WITH RECURSIVE account(p) AS (SELECT ? UNION "
        "SELECT l.new_passbook_id FROM passbook_links l JOIN account a ON l.old_passbook_id = a.p) "
        "UPDATE villagers SET household_name = '', salt = NULL "
        "WHERE passbook_id IN (SELECT p FROM account) "
        "AND (household_name != '' OR salt IS NOT NULL)",
        [(p,) for p in state.erased],
    )
    blanked = erased.rowcount > 0
    # This kiosk's own status changes that central has not seen yet are newer.
    rows = conn.execute(
        "SELECT passbook_id, json_extract(data, '$.status') FROM entries "
        "WHERE kind = 'villager_status' AND seq > ? ORDER BY seq",
        (state.included_seq,),
    ).fetchall()
    conn.executemany(
        "UPDATE villagers SET status = ?, updated_ms = ? WHERE passbook_id = ?",
        [(status, now, passbook) for passbook, status in rows],
    )
    conn.executemany(
        "INSERT INTO villagers (passbook_id, household_name, village, status, updated_ms) "
        "VALUES (?, '', '', 'revoked', ?) ON CONFLICT(passbook_id) DO UPDATE SET "
        "status = 'revoked', updated_ms = excluded.updated_ms",
        [(p, now) for p in state.revoked],
    )
    return blanked


def _catalogue(conn: sqlite3.Connection, items: Sequence[ItemRecord]) -> None:
    conn.execute("UPDATE catalogue SET active = 0")
    conn.executemany(
        "INSERT INTO catalogue (item_id, name_zh, name_en, points_price, active, picture) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET "
        "name_zh = excluded.name_zh, name_en = excluded.name_en, "
        "points_price = excluded.points_price, active = excluded.active, "
        "picture = excluded.picture",
        [
            (i.item_id, i.name_zh, i.name_en, i.points_price, int(i.active), _picture(i))
            for i in items
        ],
    )


def _picture(item: ItemRecord) -> bytes | None:
    """The item's thumbnail if it is what central makes (a small JPEG), else none: the
    kiosk serves it to its page as image/jpeg, so it must be nothing else."""
    p = item.picture
    if p is None:
        return None
    if len(p) > MAX_PICTURE_BYTES or not p.startswith(b"\xff\xd8\xff"):
        log.warning("item %s: central's picture is not a small JPEG; showing none", item.item_id)
        return None
    return p


def _install_rules(conn: sqlite3.Connection, rules: Rules, now: int) -> None:
    row = conn.execute("SELECT text FROM rules WHERE version = ?", (rules.version,)).fetchone()
    if row is not None and row[0] != rules.text:
        raise RulesError(
            f"central sent rules version {rules.version!r} with content different from the "
            "installed file of that version; central must give changed rules a new version"
        )
    if row is None:
        conn.execute("INSERT INTO rules VALUES (?, ?, ?)", (rules.version, rules.text, now))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'rules_version'", (rules.version,))
