"""The reduction registry's tables (migration 9) and its serial numbers (docs/registry.md).

A unit is 1 kg CO2e of issuable reduction (`greenpass.record.methodology`). An issuance numbers
its units 1..N; `GP-<village>-<YYYYMM>-<first>-<last>` names a run of them. Who holds
which units is a set of **blocks** — (issuance, first, last) held by one account,
retired or not — that never overlap and together cover every unit of every issuance
exactly once: a transfer or retirement splits blocks, never copies them. The primary
keys carry the invariants the database itself can hold:

- `registry_issuances` (village, period) is unique: a period is issued once;
- `registry_issued_entries` (device, seq) is the key: an entry feeds one issuance;
- `registry_blocks` (issuance, first) is the key, and every change to a block happens
  with its rows locked (SQLite: the write lock; PostgreSQL: FOR UPDATE), so a unit is
  held by one account and retired at most once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from central import db, engines
from greenpass.errors import ConfigError

m = db.metadata
_ID = 64

registry_accounts = Table(
    "registry_accounts",
    m,
    Column("account_id", String(_ID), primary_key=True),
    Column("kind", String(16), nullable=False),  # issuer (a village), buyer, buffer
    Column("village_id", String(_ID), ForeignKey("villages.village_id")),
    Column("name", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    CheckConstraint("kind IN ('issuer', 'buyer', 'buffer')", name="registry_accounts_kind"),
)
registry_methodologies = Table(
    "registry_methodologies",
    m,
    Column("version", String(_ID), primary_key=True),
    Column("text", Text, nullable=False),  # as used: a version's text never changes
    Column("added_ms", BigInteger, nullable=False),
)
registry_issuances = Table(
    "registry_issuances",
    m,
    Column("issuance_id", String(128), primary_key=True),  # GP-<village>-<YYYYMM>
    Column("village_id", String(_ID), ForeignKey("villages.village_id"), nullable=False),
    Column("period", String(7), nullable=False),  # YYYY-MM, the units' vintage
    Column(
        "methodology", String(_ID), ForeignKey("registry_methodologies.version"), nullable=False
    ),
    Column("entries", BigInteger, nullable=False),
    Column("gross_g", BigInteger, nullable=False),  # baseline − pathway, before deductions
    Column("units", BigInteger, nullable=False),  # all numbered units: issued + buffer
    Column("buffer_units", BigInteger, nullable=False),
    Column("checkpoint_size", BigInteger, nullable=False),
    Column("pack_sha256", String(64), nullable=False),
    Column("pack_name", Text, nullable=False),
    # JSON list of "device:seq": the month's deposits not issued (reversed, or not yet in
    # the checkpoint), so its units can be recomputed from the pack alone
    Column("excluded", Text, nullable=False),
    Column("made_ms", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    UniqueConstraint("village_id", "period", name="registry_issuances_once"),
)
registry_issued_entries = Table(
    "registry_issued_entries",
    m,
    Column("device_id", String(_ID), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column(
        "issuance_id", String(128), ForeignKey("registry_issuances.issuance_id"), nullable=False
    ),
    Column("reduction_g", BigInteger, nullable=False),
    Column("covered_units", BigInteger),  # once reversed: buffer units retired to cover it
    PrimaryKeyConstraint("device_id", "seq", name="registry_issued_entries_pk"),
    Index("registry_issued_by_issuance", "issuance_id"),
)
registry_retirements = Table(
    "registry_retirements",
    m,
    Column("retirement_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column(
        "issuance_id", String(128), ForeignKey("registry_issuances.issuance_id"), nullable=False
    ),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("account_id", String(_ID), ForeignKey("registry_accounts.account_id"), nullable=False),
    Column("beneficiary", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("made_ms", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
)
registry_blocks = Table(
    "registry_blocks",
    m,
    Column(
        "issuance_id", String(128), ForeignKey("registry_issuances.issuance_id"), nullable=False
    ),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("account_id", String(_ID), ForeignKey("registry_accounts.account_id"), nullable=False),
    Column("retirement_id", BigInteger, ForeignKey("registry_retirements.retirement_id")),
    PrimaryKeyConstraint("issuance_id", "first", name="registry_blocks_pk"),
    CheckConstraint('"first" >= 1 AND "last" >= "first"', name="registry_blocks_range"),
    Index("registry_blocks_account", "account_id"),
)
TABLES = [
    registry_accounts, registry_methodologies, registry_issuances, registry_issued_entries,
    registry_retirements, registry_blocks,
]  # fmt: skip


def migrate_v9(conn: Connection) -> None:
    m.create_all(conn, tables=TABLES, checkfirst=False)


def migrate_v10(conn: Connection) -> None:
    """Buyers' logins: `accounts` gains the role ``buyer`` and its ``registry_account``.
    PostgreSQL changes the constraints in place; SQLite cannot, so the table is copied
    into a new one (`central.migrations.migrate` runs migrations with SQLite's foreign keys off
    and checks them all before it commits)."""
    checks = {
        str(c.name): str(c.sqltext)
        for c in db.accounts.constraints
        if isinstance(c, CheckConstraint)
    }
    if engines.is_postgres(conn):
        conn.execute(text(
            "ALTER TABLE accounts ADD COLUMN registry_account VARCHAR(64) "
            "REFERENCES registry_accounts (account_id)"
        ))  # fmt: skip
        for name in ("accounts_role", "accounts_scope"):
            conn.execute(text(f"ALTER TABLE accounts DROP CONSTRAINT {name}"))
            conn.execute(text(f"ALTER TABLE accounts ADD CONSTRAINT {name} CHECK ({checks[name]})"))
        return
    columns = [c.name for c in db.accounts.c if c.name != "registry_account"]
    conn.execute(text(f"""CREATE TABLE accounts_v10 (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        role VARCHAR(16) NOT NULL,
        village_id VARCHAR(64) REFERENCES villages (village_id),
        password_hash TEXT NOT NULL,
        active BOOLEAN NOT NULL,
        created_ms BIGINT NOT NULL,
        disabled_ms BIGINT,
        failed_logins INTEGER DEFAULT '0' NOT NULL,
        locked_until_ms BIGINT,
        registry_account VARCHAR(64) REFERENCES registry_accounts (account_id),
        CONSTRAINT accounts_role CHECK ({checks["accounts_role"]}),
        CONSTRAINT accounts_scope CHECK ({checks["accounts_scope"]})
    )"""))  # fmt: skip
    listed = ", ".join(columns)
    conn.execute(text(f"INSERT INTO accounts_v10 ({listed}) SELECT {listed} FROM accounts"))
    conn.execute(text("DROP TABLE accounts"))
    conn.execute(text("ALTER TABLE accounts_v10 RENAME TO accounts"))


# --- serials -----------------------------------------------------------------------------

_PERIOD = re.compile(r"(2\d{3})-(0[1-9]|1[0-2])")  # a month of this millennium
_SERIALS = re.compile(r"GP-(.+)-(\d{6})-([1-9]\d*)-([1-9]\d*)")


def check_period(period: str) -> str:
    if not _PERIOD.fullmatch(period):
        raise ConfigError(f"a period is a month, YYYY-MM; got {period!r}")
    return period


def issuance_id(village_id: str, period: str) -> str:
    return f"GP-{village_id}-{period.replace('-', '')}"


@dataclass(frozen=True)
class Serials:
    """Units `first`..`last` (both included) of one issuance."""

    issuance_id: str
    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.issuance_id}-{self.first}-{self.last}"

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def parse_serials(text: str) -> Serials:
    """`GP-<village>-<YYYYMM>-<first>-<last>`, e.g. GP-dongcun-202611-1-250."""
    found = _SERIALS.fullmatch(text.strip())
    if found is None:
        raise ConfigError(
            f"{text!r} is not a serial range: GP-<village>-<YYYYMM>-<first>-<last>, "
            "e.g. GP-dongcun-202611-1-250"
        )
    village, month, first, last = found.groups()
    if int(last) < int(first):
        raise ConfigError(f"{text!r}: the last serial is before the first")
    return Serials(f"GP-{village}-{month}", int(first), int(last))
