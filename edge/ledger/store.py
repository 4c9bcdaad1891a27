"""The ledger's SQLite file: opening, durability settings, transactions, migrations.

Durability is the point of this module. Every write runs in one
`BEGIN IMMEDIATE … COMMIT` with `journal_mode=WAL` and `synchronous=FULL`, so a
method that returns has its data on disk: a kill -9 or a power cut after it
loses nothing. Errors from sqlite3 are translated here, at the boundary, into
`StorageError` with a message a technician can act on.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.ledger.migrations import MIGRATIONS
from greenpass.errors import IntegrityError, StorageError

BUSY_TIMEOUT_MS = 5_000


log = logging.getLogger(__name__)


def _explain(exc: sqlite3.Error, path: str) -> StorageError:
    text = str(exc)
    if "full" in text:
        hint = "the disk is full: free space (old logs, images) — nothing was written"
    elif "readonly" in text or "read-only" in text:
        hint = "the database is read-only: check the file's owner and mode"
    elif "locked" in text or "busy" in text:
        hint = "another process holds the database: stop it or retry"
    elif "unable to open" in text:
        hint = "the database file cannot be opened: check the path and its folder"
    elif "malformed" in text or "not a database" in text:
        hint = "the database file is damaged: run `greenpass verify` and restore from central"
    else:
        hint = "database error"
    return StorageError(f"{path}: {hint} ({text})")


class Store:
    """One SQLite connection with the ledger's settings and schema."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.memory = self.path == ":memory:"
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if not self.memory:
                mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StorageError(f"{self.path}: cannot switch to WAL journal ({mode})")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            # Erased personal data is overwritten, not left in free pages (docs/privacy.md).
            self.conn.execute("PRAGMA secure_delete=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction; rolled back whole on any error."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc
        try:
            yield self.conn
        except sqlite3.Error as exc:
            self._rollback()
            raise _explain(exc, self.path) from exc
        except BaseException:
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _explain(exc, self.path) from exc

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several reads (a deferred transaction)."""
        nested = self.conn.in_transaction
        if not nested:
            self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            if not nested:
                self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        try:
            cur = self.conn.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
        )
        current = self.schema_version()
        known = max(v for v, _, _ in MIGRATIONS)
        if current > known:
            raise IntegrityError(
                f"{self.path}: schema version {current} is newer than this software "
                f"(knows {known}); update greenpass, do not downgrade"
            )
        for version, name, sql in MIGRATIONS:
            if version <= current:
                continue
            with self.write() as conn:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations(version, name) VALUES (?, ?)", (version, name)
                )

    def checkpoint(self) -> None:
        """Copy the WAL into the file and truncate it (after erasing personal data, so
        the old pages do not linger in the WAL). Best effort: a reader holding an old
        snapshot makes it partial, and the next automatic checkpoint finishes it."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("%s: checkpoint after an erasure: %s", self.path, exc)

    def close(self) -> None:
        self.conn.close()


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (triggers keep their inner `;`)."""
    out: list[str] = []
    buf = ""
    for part in sql.split(";"):
        buf += part
        if sqlite3.complete_statement(buf + ";"):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
        else:
            buf += ";"
    if buf.strip():
        out.append(buf.strip())
    return out
