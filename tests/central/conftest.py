"""Fixtures for central: a real database of each dialect per test, and real kiosks.

`central_url` runs every test twice: on a SQLite file in tmp_path, and on PostgreSQL
at 127.0.0.1:5432 in a fresh schema (created here, dropped afterwards). Without a
reachable PostgreSQL the second run is skipped with the reason, except under
`CI=true`, where it fails: CI must not pass by skipping.

A `Kiosk` is a real edge ledger (tests.conftest.make_ledger for K1) with its own
Ed25519 key, enrolled through a real token; its batches are what its uplink sends.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from central.store import CentralStore
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from edge.ledger.personal_outbox import PersonalOutbox
from greenpass.record.entries import Entry
from greenpass.record.rules import default_rules
from sync import protocol
from sync.keys import Ed25519PrivateKey, generate_key, public_bytes
from sync.uplink import to_central_state
from tests.conftest import PIN, make_ledger

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
NOW = 1_767_300_000_000  # central's clock in these tests

_pg_problem: list[str] = []  # why PostgreSQL is unusable, once known


def _pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    if not _pg_problem:
        try:
            return psycopg.connect(PG_DSN, autocommit=True)
        except psycopg.Error as exc:
            _pg_problem.append(str(exc).strip().splitlines()[0] if str(exc) else repr(exc))
    reason = f"PostgreSQL not reachable at 127.0.0.1:5432: {_pg_problem[0]}"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


# For a test whose subject is above the database (the HTTP guard, a CLI's words, a
# page's layout) and whose queries other tests already run on both dialects: SQLite
# only, so `make test` keeps its time for the tests where the dialect matters.
# As a decorator or a module's `pytestmark`: tests/conftest.py deselects the PostgreSQL
# case of each test it marks (a test that does not use `central_url` has none).
SQLITE_ONLY = pytest.mark.sqlite_only


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def central_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "central.db")
        return
    schema = f"gp_test_{secrets.token_hex(6)}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield PG_URL.format(schema=schema)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(central_url: str) -> Iterator[CentralStore]:
    with CentralStore.open(central_url, now_ms=NOW) as st:
        st.create_village("V1")
        yield st


@dataclass
class Kiosk:
    ledger: Ledger
    key: Ed25519PrivateKey
    clock: FixedClock

    @property
    def device_id(self) -> str:
        return self.ledger.device_id

    @property
    def head_seq(self) -> int:
        return self.ledger.head()[0]

    def rows(self, first: int = 1, last: int | None = None) -> list[tuple[Entry, bytes]]:
        return [r for r in self.ledger.iter_entries(first - 1) if last is None or r[0].seq <= last]

    def batch(
        self,
        first: int = 1,
        last: int | None = None,
        *,
        key: Ed25519PrivateKey | None = None,
        personal: bool = True,
        sign_head: bool = False,
    ) -> bytes:
        """The signed batch of entries first..last (default: to the head), with the
        personal records of its enrolments as the uplink sends them to a central that
        takes them (`personal=False`: as to one that does not), and with its signed
        head if `sign_head` (as to a central whose acks said `heads_v1`)."""
        rows = self.rows(first, last)
        prev = self.ledger.outbox.hash_at(first - 1)
        assert prev is not None
        records = (
            [
                protocol.WirePersonal(r.passbook_id, r.fields, r.salt)
                for r in PersonalOutbox(self.ledger.store).pending(
                    rows[-1][0].seq, protocol.MAX_PERSONAL
                )
                if r.seq >= first
            ]
            if personal
            else []
        )
        payload, n = protocol.encode_batch(
            self.device_id, rows, prev, key or self.key, self.clock.wall_ms(),
            max_bytes=1 << 30, personal=records, sign_head=sign_head,
        )  # fmt: skip
        assert n == len(rows)
        return payload

    @property
    def topic(self) -> str:
        return protocol.topic(self.device_id, protocol.BATCH)

    def apply(self, state: protocol.StateBody) -> bool:
        """What the kiosk's downlink does with a state (converted to the edge's type)."""
        return self.ledger.apply_state(to_central_state(state))


def new_kiosk(
    tmp_path: Path, device_id: str, clock: FixedClock | None = None, village: str = "V1"
) -> Kiosk:
    clk = clock or FixedClock()
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{device_id}.db"
    if device_id == "K1":
        ledger = make_ledger(path, clk)
    else:
        ledger = Ledger.create(
            path, device_id=device_id, village=village, rules=default_rules(), clock=clk
        )
        ledger.add_staff("S1", name="Staff One", role="admin", pin=PIN)
    return Kiosk(ledger, generate_key(), clk)


def enrol(store: CentralStore, kiosk: Kiosk, village: str = "V1") -> None:
    token = store.create_enrol_token(kiosk.device_id, village, NOW, actor="test")
    store.enrol(token, kiosk.device_id, public_bytes(kiosk.key), NOW)


def populate(k: Kiosk) -> dict[str, str]:
    """A day at a kiosk: enrolments, deposits, an award, a redemption, a reversal and a
    revoked card. Returns the passbook ids by household."""
    led, step = k.ledger, k.clock.advance
    li = led.enrol("Li household", staff_id="S1").passbook_id
    wang = led.enrol("Wang household", staff_id="S1").passbook_id
    zhao = led.enrol("Zhao household", staff_id="S1").passbook_id
    assert li and wang and zhao
    led.put_item("rice", name_zh="大米", name_en="Rice 1 kg", points_price=50, staff_id="S1")
    led.restock("rice", 10, staff_id="S1")
    for pid, cat, grams in [
        (li, "paper", 2500),
        (li, "aluminium", 1000),
        (wang, "cardboard", 3000),
        (wang, "plastic_pet", 1500),
        (zhao, "glass", 5000),
    ]:
        step(30_000)
        led.deposit(pid, cat, grams)
    step(30_000)
    led.award(wang, 10, staff_id="S1", reason="river clean-up")
    led.redeem(li, [("rice", 1)], staff_id="S1")
    cardboard = next(e for e, _ in led.iter_entries() if e.category == "cardboard")
    led.reverse(cardboard.seq, staff_id="S1", reason="wrong category")
    led.set_villager_status(zhao, "revoked", staff_id="S1", reason="card lost")
    return {"li": li, "wang": wang, "zhao": zhao}


@pytest.fixture
def k1(tmp_path: Path, store: CentralStore) -> Iterator[Kiosk]:
    kiosk = new_kiosk(tmp_path, "K1")
    enrol(store, kiosk)
    yield kiosk
    kiosk.ledger.close()
