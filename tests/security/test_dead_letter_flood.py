"""One stolen kiosk must not fill central's disk with refused batches.

Every refusal is answered, but central keeps at most `PER_HOUR` dead letters per
sending device per hour, never the same payload twice (a refused batch resent every
minute), and a flood from one device leaves room for every other device's. Runs on
SQLite and PostgreSQL, through `ingest` as the receiver calls it.
"""

from __future__ import annotations

from central import reports
from central.dead_letter_limit import PER_HOUR, WINDOW_MS
from central.ingest import ingest
from central.store import CentralStore
from greenpass.record.entries import Kind
from greenpass.record.rules import default_rules
from tests.central.conftest import (  # noqa: F401 - fixtures: SQLite and PostgreSQL
    NOW,
    Kiosk,
    central_url,
    k1,
    populate,
    store,
)
from tests.central.forge import forged_batch

PAPER = default_rules().categories["paper"]


def kept(central: CentralStore) -> int:
    return len(reports.dead_letters(central, limit=10_000))


def test_a_flood_of_junk_keeps_a_bounded_number_and_answers_every_one(
    store: CentralStore,  # noqa: F811 - the imported fixtures
    k1: Kiosk,  # noqa: F811
) -> None:
    answers = [ingest(store, k1.topic, f"junk {n}".encode() * 50, NOW + n) for n in range(300)]
    assert all(a.ack is not None and a.ack.status != "ok" for a in answers), "unanswered"
    assert kept(store) == PER_HOUR
    # Another device (here: one nobody enrolled) still gets its refusal kept.
    ingest(store, "gp/v1/dev/K9/up/batch", b"from K9", NOW + 400)
    assert kept(store) == PER_HOUR + 1
    # A new hour, a new budget.
    ingest(store, k1.topic, b"junk after an hour", NOW + WINDOW_MS + 1)
    assert kept(store) == PER_HOUR + 2


def test_a_refused_batch_resent_is_kept_once(
    store: CentralStore,  # noqa: F811 - the imported fixtures
    k1: Kiosk,  # noqa: F811
) -> None:
    minted = forged_batch(
        k1,
        {"kind": Kind.DEPOSIT, "passbook_id": "K1-00001", "category": "paper",
         "grams": 1000, "points": 500, "co2e_g": PAPER.co2e_for(1000),
         "rules_version": default_rules().version},
    )  # fmt: skip
    for minute in range(20):  # the kiosk's ack timeout, again and again
        result = ingest(store, k1.topic, minted, NOW + minute * 60_000)
        assert result.ack is not None and result.ack.status == "rejected"
    assert kept(store) == 1
