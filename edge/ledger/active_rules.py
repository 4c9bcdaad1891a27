"""The rules in force in a ledger file, and installing new ones.

The active version lives in the file (`meta.rules_version`), not in a `Ledger`
object: the kiosk's UI and its sync uplink each hold a `Ledger` on the same file,
and the uplink installs the rules central pushes (`edge.ledger.central_state`). So every
write that prices an entry or stamps its rules version reads the version inside
its own transaction and prices with the rules in force when it commits. A
version's text never changes (a reused version with other text is refused), so
each version is parsed once per `Ledger`.
"""

from __future__ import annotations

import sqlite3

from edge.ledger.store import Store
from greenpass.errors import IntegrityError, RulesError
from greenpass.record.rules import Rules, parse_rules

VERSION_SQL = "SELECT value FROM meta WHERE key = 'rules_version'"


class ActiveRules:
    """Parsed rules by version, for one ledger file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._by_version: dict[str, Rules] = {}
        self._last: Rules | None = None

    def get(self, conn: sqlite3.Connection, version: str) -> Rules:
        """The rules of `version` (parsed from the file the first time)."""
        last = self._last
        if last is not None and last.version == version:
            return last
        rules = self._by_version.get(version)
        if rules is None:
            row = conn.execute("SELECT text FROM rules WHERE version = ?", (version,)).fetchone()
            if row is None:
                raise IntegrityError(f"{self.path}: active rules {version!r} are missing")
            rules = self._by_version[version] = parse_rules(row[0], f"<rules {version}>")
        self._last = rules
        return rules

    def current(self, conn: sqlite3.Connection) -> Rules:
        """The rules in force as `conn` sees the file now (one indexed read)."""
        row = conn.execute(VERSION_SQL).fetchone()
        if row is None:
            raise IntegrityError(f"{self.path}: no active rules version in meta")
        return self.get(conn, row[0])

    def remember(self, rules: Rules) -> None:
        """Rules just installed in the file (saves parsing their text again)."""
        self._by_version[rules.version] = rules
        self._last = rules

    def install(self, store: Store, rules: Rules, village: str, now_ms: int) -> bool:
        """Make `rules` active. False if already active; a reused version with other text
        is refused, because entries name their rules by version."""
        if rules.village not in ("*", village):
            raise RulesError(
                f"rules {rules.version!r} are for village {rules.village!r}, not {village!r}"
            )
        with store.write() as conn:
            row = conn.execute(
                "SELECT text FROM rules WHERE version = ?", (rules.version,)
            ).fetchone()
            if row is not None and row[0] != rules.text:
                raise RulesError(
                    f"rules version {rules.version!r} is already installed with "
                    "different content; give the new file a new version"
                )
            if row is None:
                conn.execute(
                    "INSERT INTO rules VALUES (?, ?, ?)", (rules.version, rules.text, now_ms)
                )
            if conn.execute(VERSION_SQL).fetchone()[0] == rules.version:
                return False
            conn.execute("UPDATE meta SET value = ? WHERE key = 'rules_version'", (rules.version,))
        self.remember(rules)
        return True
