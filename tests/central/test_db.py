"""Opening central's database: URLs, SQLite settings, recorded migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, select, text

from central import db, migrations
from central.store import CentralStore
from greenpass.errors import ConfigError
from tests.central.conftest import NOW


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
    engine = db.open_engine(f"sqlite:///{tmp_path}/c.db")
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_c: object, _cur: object, statement: str, *_a: object) -> None:
        statements.append(statement)

    with engine.begin() as conn:
        pragmas = [
            conn.exec_driver_sql(f"PRAGMA {p}").scalar()
            for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        ]
    assert pragmas == ["wal", 2, 1, db.BUSY_TIMEOUT_MS]  # synchronous 2 = FULL
    assert "BEGIN IMMEDIATE" in statements
    with engine.connect() as conn:
        conn.execution_options(**{db.READ_ONLY: True})
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
    engine = db.open_engine("postgresql://u@127.0.0.1:1/x")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", ":memory:", "sqlite://", ""]
)
def test_other_urls_are_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        db.open_engine(url)
