"""Engines for central's database (`central.db` holds the schema): a URL or a plain file
path becomes an engine with the settings ingest relies on.

SQLite: WAL, `synchronous=FULL` (an ack is sent only after the commit, so a committed
batch must survive a power cut), foreign keys on, a busy timeout, and SQLAlchemy in
charge of BEGIN (the documented pysqlite recipe). Write transactions start with
`BEGIN IMMEDIATE`, so two writers queue on the lock at BEGIN instead of both reading
and then failing to upgrade. A connection marked `read_only` gets a plain `BEGIN`.

PostgreSQL: `postgresql://` is rewritten to the psycopg 3 driver. A connection taken
from the pool is pinged first unless it was in use within the last `PING_AFTER_IDLE_S`:
after a PostgreSQL restart the pool's old connections are dead, and a ping finds
them before a batch does; but a ping is a round trip, and a drain's batches, one
every few milliseconds, paid one each (a twentieth of the receiver's time, py-spy).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError

from greenpass.errors import ConfigError, StorageError

BUSY_TIMEOUT_MS = 10_000
READ_ONLY = "gp_read_only"  # execution option: this connection only reads (plain BEGIN)
# A PostgreSQL connection back in the pool for less than this is taken as alive: a
# restart within it costs the transactions that find their connection dead, one per
# thread at most (a batch is then not acked and comes again; the pool replaces its
# connections).
PING_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "gp_idle_since"  # in a pooled connection's `info`: time.monotonic() at checkin


def is_postgres(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "postgresql"


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The sqlite3 driver must not open transactions itself: it would start
        # them lazily and DEFERRED, and commit before DDL.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{url}: cannot switch SQLite to WAL journal (got {mode})")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        # Erased personal data is overwritten, not left in free space (central.personal).
        cur.execute("PRAGMA secure_delete = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: Any) -> Engine:
    """SQLAlchemy's pessimistic disconnect handling, as its documentation's custom
    checkout recipe: a ping that fails raises `InvalidatePoolError` (a
    `DisconnectionError`), and the pool then discards the connection, and those
    pooled before it, and tries a fresh one."""
    engine = create_engine(url)
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # just connected, or in use a moment ago
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_conn, None):
                # As pool_pre_ping does: the server went away, so every connection
                # pooled before this one is replaced too, not found dead one by one.
                raise InvalidatePoolError(f"a pooled connection is gone: {exc}") from exc
            raise

    return engine


def open_engine(url: str | Path) -> Engine:
    """An engine for `url`: a file path or `sqlite:///…` (SQLite), or `postgresql://…`."""
    raw = str(url)
    if "://" not in raw:
        if not raw or raw == ":memory:":
            raise ConfigError("central needs a database file or URL, not an in-memory database")
        raw = "sqlite:///" + os.path.abspath(raw)
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {raw!r} is not valid: {exc}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(
                f"database URL {raw!r} names no file; central needs one (sqlite:///path.db)"
            )
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(parsed.render_as_string(hide_password=False))
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return _postgres_engine(parsed.set(drivername="postgresql+psycopg"))
    raise ConfigError(
        f"database URL {raw!r}: central supports a SQLite file (path or sqlite:///…) "
        "or PostgreSQL (postgresql://user@host/db)"
    )
