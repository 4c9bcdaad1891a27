"""Schemathesis against the API's own OpenAPI document: generated requests (valid and
invalid) never get a 5xx, and every answer matches the documented status codes,
content types and schemas. SQLite only, a few examples per operation: seconds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.openapi import from_asgi
from schemathesis.schemas import BaseSchema

from central.api import EnrolmentSettings, create_app
from central.api_models import DEVICE_ID_PATTERN, ID_PATTERN
from central.engines import open_engine
from central.http_guard import HttpLimits
from central.ingest import ingest
from central.store import CentralStore
from greenpass import statement_link
from sync.keys import generate_key, public_bytes
from tests.central.conftest import NOW, enrol, new_kiosk, populate

ADMIN = "admin-token-for-fuzzing-0123456789"
SETTINGS = EnrolmentSettings(
    broker_url="mqtts://central.example:8883",
    ca_cert_pem="",
    central_public_key=public_bytes(generate_key()),
)


OPERATOR_WRITES = r"^/api/v1/(villages/[^/]+(/rules|/catalogue)?|passbooks/[^/]+/[a-z]+)$"


def _published_schema() -> BaseSchema:
    """The OpenAPI document as the app serves it. It depends on code only, so an app over
    a store that is never connected serves it; requests go to `api` below. (Loading it
    lazily from a fixture, `schemathesis.pytest.from_fixture`, fails under pytest 9:
    schemathesis 4.32 reads `request.node._nodeid`, which pytest 9 no longer has.)"""
    unused = CentralStore(open_engine("postgresql://unused@127.0.0.1:1/unused"))
    app = create_app(unused, admin_token=ADMIN, enrolment=SETTINGS)
    # Auth through schemathesis' config (not a header added to each call), so it knows
    # which requests it sent without the token and expects a 401 for them.
    config = SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"AdminToken": {"bearer": ADMIN}}},
            # The operator's writes carry a rules file, names and a time zone whose
            # validity no schema states (TOML, printable text, IANA zones): a
            # schema-valid body that is not one is refused with 422, naming why.
            "operations": [
                {
                    "include-path-regex": OPERATOR_WRITES,
                    "include-method": ["PUT", "POST"],
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
                        },
                        # A rules text may be 15,000 characters, but escaped in JSON it
                        # can pass the route's body limit, which refuses it with 413
                        # before anything is parsed: a rejection, as it should be.
                        "negative_data_rejection": {
                            "expected-statuses": [
                                "400",
                                "401",
                                "403",
                                "404",
                                "405",
                                "406",
                                "409",
                                "413",
                                "415",
                                "422",
                                "428",
                                "429",
                                "5xx",
                            ]
                        },
                    },
                }
            ],
        }
    )
    return from_asgi("/openapi.json", app, config=config)


schema = _published_schema()

# Under pytest-xdist schemathesis folds the per-operation cases into one test and fuzzes
# far less (seen: 1 test in 8 s instead of 24 in 28 s): `make test` runs this file alone.
pytestmark = pytest.mark.serial


@dataclass(frozen=True)
class Target:
    app: FastAPI
    real_ids: dict[str, tuple[re.Pattern[str], str]]  # parameter → (valid form, an id that exists)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Target]:
    """The app over a SQLite store with one synced kiosk, so reports have rows."""
    with CentralStore.open(tmp_path / "central.db", now_ms=NOW) as store:
        store.create_village("V1")
        kiosk = new_kiosk(tmp_path, "K1")
        enrol(store, kiosk)
        passbooks = populate(kiosk)
        assert ingest(store, kiosk.topic, kiosk.batch(), NOW).stored > 0
        kiosk.ledger.close()
        link = statement_link.sign(
            kiosk.key, "d", "K1", passbooks["li"], statement_link.day_of(NOW) + 30
        )
        # Enough enrolment attempts that the fuzzer reaches the endpoint, not only its 429.
        limits = HttpLimits(enrol_per_minute=100_000)
        app = create_app(
            store, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: NOW, limits=limits,
            registry_packs=tmp_path / "registry", registry_key=generate_key(),
        )  # fmt: skip
        yield Target(
            app,
            {
                "village_id": (re.compile(ID_PATTERN), "V1"),
                "device_id": (re.compile(DEVICE_ID_PATTERN), "K1"),
                "passbook_id": (re.compile(r"^.{1,64}$", re.DOTALL), passbooks["li"]),
                # A statement link that opens a page (GET /s/{token}), signed by the kiosk.
                "token": (re.compile(r"^.+$", re.DOTALL), link.token),
            },
        )


def aim(case: Case[Any], real_ids: dict[str, tuple[re.Pattern[str], str]]) -> None:
    """Swap about half of the generated valid ids (by length, so a shrunk example keeps
    its choice) for ones that exist: random ids only ever reach the 404 paths. Invalid
    ids stay, so a negative case stays negative."""
    for params in (case.path_parameters, case.body if isinstance(case.body, dict) else None):
        for name, (valid, real) in real_ids.items():
            value = params.get(name) if params else None
            if params and isinstance(value, str) and valid.fullmatch(value) and len(value) % 2 == 0:
                params[name] = real


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_openapi(case: Case[Any], api: Target) -> None:
    aim(case, api.real_ids)
    case.call_and_validate(app=api.app)
