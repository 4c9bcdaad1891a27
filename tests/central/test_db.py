"""Opening central's database: URLs, SQLite settings, recorded migrations."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError

from central import db, engines, migrations
from central.store import CentralStore
from greenpass.errors import ConfigError
from tests.central.conftest import NOW, PG_URL, _pg_admin


def test_reopening_is_idempotent_and_the_version_recorded(central_url: str) -> None:
    with CentralStore.open(central_url, now_ms=NOW) as st:
        assert st.create_village("V1")
        assert not st.create_village("V1")
    with CentralStore.open(central_url, now_ms=NOW + 1) as st:
        assert st.villages() == ["V1"]
        with st.read() as conn:
            rows = conn.execute(select(db.schema_migrations)).all()
        assert [(r.version, r.applied_ms) for r in rows] == [
            (v, NOW) for v, _, _ in migrations.MIGRATIONS
        ]
        assert migrations.migrate(st.engine, NOW + 2) == migrations.SCHEMA_VERSION


def test_sqlite_is_durable_and_writes_begin_immediate(tmp_path: Path) -> None:
    engine = engines.open_engine(f"sqlite:///{tmp_path}/c.db")
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_c: object, _cur: object, statement: str, *_a: object) -> None:
        statements.append(statement)

    with engine.begin() as conn:
        pragmas = [
            conn.exec_driver_sql(f"PRAGMA {p}").scalar()
            for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        ]
    assert pragmas == ["wal", 2, 1, engines.BUSY_TIMEOUT_MS]  # synchronous 2 = FULL
    assert "BEGIN IMMEDIATE" in statements
    with engine.connect() as conn:
        conn.execution_options(**{engines.READ_ONLY: True})
        with conn.begin():
            conn.execute(text("SELECT 1"))
    assert statements[-2:] == ["BEGIN", "SELECT 1"]
    engine.dispose()


def test_a_plain_path_is_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "central.db"
    with CentralStore.open(path) as st:
        assert st.engine.dialect.name == "sqlite" and not st.postgres
    assert path.exists()


def test_postgresql_urls_use_psycopg() -> None:
    engine = engines.open_engine("postgresql://u@127.0.0.1:1/x")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", ":memory:", "sqlite://", ""]
)
def test_other_urls_are_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        engines.open_engine(url)


@pytest.mark.postgres
def test_a_pooled_postgresql_connection_is_pinged_only_after_a_second_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection used a moment ago goes without a ping (a round trip per batch); one
    idle for `PING_AFTER_IDLE_S` is pinged, and when the ping finds it dead the pool
    replaces it and every connection pooled before it, before any is used."""
    _pg_admin().close()  # skips, or fails under CI=true, without a PostgreSQL
    engine = engines.open_engine(PG_URL.format(schema="public"))  # no table is used
    pings: list[object] = []
    real_ping = engine.dialect.do_ping

    def ping(dbapi_conn: object) -> bool:
        pings.append(dbapi_conn)
        return real_ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", ping)

    def backends(n: int) -> list[int]:
        """The server processes of `n` connections taken from the pool at once."""
        with ExitStack() as held:
            conns = [held.enter_context(engine.connect()) for _ in range(n)]
            return [int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) for c in conns]

    def kill(pids: list[int]) -> None:
        with _pg_admin() as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    try:
        monkeypatch.setattr(engines, "PING_AFTER_IDLE_S", 60.0)
        first = backends(2)
        assert set(backends(2)) == set(first) and pings == []  # in use a moment ago: no ping
        kill(first)
        monkeypatch.setattr(engines, "PING_AFTER_IDLE_S", 0.0)  # every connection is idle
        # The first ping finds its connection dead; the pool then replaces the other
        # one too, unpinged, instead of finding it dead as well.
        second = backends(2)
        assert set(second).isdisjoint(first) and len(pings) == 1
        monkeypatch.setattr(engines, "PING_AFTER_IDLE_S", 60.0)
        kill(second)
        # Inside the window a dead connection is used, fails, and is replaced.
        with pytest.raises(DBAPIError) as failed:
            backends(1)
        assert failed.value.connection_invalidated
        assert set(backends(2)).isdisjoint(first + second) and len(pings) == 1
    finally:
        engine.dispose()
