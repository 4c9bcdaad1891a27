"""Central's schema migrations: numbered steps recorded in `schema_migrations`, so
reopening a database is a no-op and a later version only adds steps.

Steps 1 to 4 make `central.db`'s own tables (`db.STEPS`); each later one belongs to
the module whose tables it makes (the Overview's rollup, personal data, the
transparency log, device heads, the registry, state pushes), so this module imports
them all and none of them imports it. Never edit a released step: append the next number.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from central import db, heads, personal_db, pushes, registry_db, reservations, rollup, tlog
from central.db import schema_migrations
from central.engines import is_postgres
from greenpass.errors import StorageError


def _v5(conn: Connection) -> None:
    rollup.overview_rollup.create(conn, checkfirst=False)
    rollup.rebuild(conn, ref_device=False)  # from the entries already stored


def _v6(conn: Connection) -> None:
    personal_db.migrate_v6(conn)


def _v7(conn: Connection) -> None:
    tlog.migrate_v7(conn)


def _v8(conn: Connection) -> None:
    heads.migrate_v8(conn)


def _v9(conn: Connection) -> None:
    registry_db.migrate_v9(conn)


def _v10(conn: Connection) -> None:
    registry_db.migrate_v10(conn)


def _v11(conn: Connection) -> None:
    reservations.migrate_v11(conn)


def _v12(conn: Connection) -> None:
    pushes.migrate_v12(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    *db.STEPS,
    (5, "overview rollup", _v5),
    (6, "personal data", _v6),
    (7, "transparency log", _v7),
    (8, "device heads", _v8),
    (9, "reduction registry", _v9),
    (10, "registry buyers' logins", _v10),
    (11, "cross-kiosk reversals", _v11),
    (12, "state pushes claimed by one worker", _v12),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _driver_sql(conn: Connection, sql: str) -> None:
    """`sql` on the driver's connection, outside any transaction."""
    conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]


def _migrate(conn: Connection, now_ms: int) -> int:
    if is_postgres(conn):
        # Two central workers starting together must not both create the tables.
        conn.execute(text("SELECT pg_advisory_xact_lock(7412)"))
    schema_migrations.create(conn, checkfirst=True)
    done = set(conn.scalars(select(schema_migrations.c.version)))
    before = max(done, default=0)
    if before > SCHEMA_VERSION:
        raise StorageError(
            f"the central database has schema version {before}, newer than this "
            f"software's {SCHEMA_VERSION}: upgrade the software"
        )
    for version, name, step in MIGRATIONS:
        if version not in done:
            step(conn)
            conn.execute(
                insert(schema_migrations).values(version=version, name=name, applied_ms=now_ms)
            )
    return before


def migrate(engine: Engine, now_ms: int) -> int:
    """Bring the schema to `SCHEMA_VERSION`; returns the version found before."""
    try:
        with engine.connect() as conn:
            sqlite = not is_postgres(conn)
            if sqlite:
                # A migration that rebuilds a table (SQLite cannot alter a constraint)
                # must drop the old one while other tables refer to it: SQLite allows
                # that only with foreign keys off, which it ignores inside a transaction.
                _driver_sql(conn, "PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    before = _migrate(conn, now_ms)
                    if sqlite and before < SCHEMA_VERSION:  # a migration ran
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise StorageError(
                                f"migrating the central database broke references: {broken[:3]}"
                            )
                    return before
            finally:
                if sqlite:
                    _driver_sql(conn, "PRAGMA foreign_keys = ON")
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot prepare the central database: {exc}") from exc
