"""Who may do what in the reduction registry (issue 14): buyers log in and see and act
on their own units only, and reach nothing else of central; the county issues and sells
the villages' units but never moves an enterprise's; a village account only looks.
Through the API and the console, on SQLite and PostgreSQL, with the audit's names."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text

from central import audit, db, engines, migrations, registry
from central.accounts import Accounts
from central.api import create_app
from central.store import CentralStore
from greenpass import certificate
from greenpass.errors import CentralError, StorageError
from sync.keys import public_key
from tests.central.conftest import SQLITE_ONLY, Kiosk
from tests.central.test_api import ADMIN, SETTINGS
from tests.central.test_evidence import sync
from tests.central.test_registry import IID, KEY, LATER, PERIOD, a_month, blocks

# SQLite only: who may do what; tests/central/test_registry.py runs the registry's
# queries on both.
pytestmark = SQLITE_ONLY

PW = "a long enough password"


@dataclass
class Registry:
    store: CentralStore
    accounts: Accounts
    client: TestClient
    routes: list[APIRoute]

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.accounts.issue_token(name, LATER, actor='t')}"}

    def login(self, name: str) -> TestClient:
        c = self.client
        c.cookies.clear()
        c.get("/login")
        r = c.post(
            "/login",
            data={"name": name, "password": PW, "csrf": c.cookies.get("__Host-gp_csrf") or ""},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return c

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get("/units").text)
        assert found
        return found.group(1)


@pytest.fixture
def reg(store: CentralStore, k1: Kiosk, tmp_path: Path) -> Iterator[Registry]:
    ids = a_month(k1)
    for _day in range(5):  # enough paper that January issues a dozen units or more
        k1.clock.advance(86_400_000)
        k1.ledger.deposit(ids["wang"], "paper", 20_000)
    sync(store, k1)
    for account_id, name in (("acme", "Acme Cement"), ("beta", "Beta Brewery")):
        registry.add_account(store, account_id, name, actor="t", now_ms=LATER)
    accounts = Accounts(store)
    accounts.add("county", "county", PW, LATER, actor="t")
    accounts.add("v1", "village", PW, LATER, village_id="V1", actor="t")
    accounts.add("acme-buyer", "buyer", PW, LATER, registry_account="acme", actor="t")
    accounts.add("beta-buyer", "buyer", PW, LATER, registry_account="beta", actor="t")
    packs = tmp_path / "registry"
    app = create_app(
        store, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: LATER,
        registry_packs=packs, registry_key=KEY,
    )  # fmt: skip
    with TestClient(app, base_url="https://testserver") as client:
        yield Registry(store, accounts, client, list(flat(app.routes)))


def flat(routes: list[Any]) -> Iterator[APIRoute]:
    """Every route of the app. FastAPI 0.16x keeps an included router as one entry
    (`original_router`); the length checks below fail if that changes again."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from flat(route.original_router.routes)


def issued_and_sold(r: Registry) -> None:
    """The county issues January through the API and sells 1-4 to acme, 5-6 to beta."""
    county = r.bearer("county")
    got = r.client.post(
        "/api/v1/registry/issuances", json={"village_id": "V1", "period": PERIOD}, headers=county
    )
    assert got.status_code == 201, got.text
    assert got.json()["issued"].startswith(f"{IID}-1-")
    for serials, to in ((f"{IID}-1-4", "acme"), (f"{IID}-5-6", "beta")):
        moved = r.client.post(
            "/api/v1/registry/transfers", json={"serials": serials, "to": to}, headers=county
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["from_account"] == "village:V1"


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if "id}" in m.group(0) else "V1", path)


def test_a_buyer_reaches_nothing_of_central_but_the_registry(reg: Registry) -> None:
    """Every operator route of the API refuses a buyer's token, and every console page
    but the registry's sends a buyer's browser to its holdings: found from the app's
    own routes, so a route added later is checked too."""
    buyer = reg.bearer("acme-buyer")
    api, pages = [], []
    for route in reg.routes:
        path = route.path
        if path.startswith("/api/v1/") and not path.startswith("/api/v1/registry"):
            if path.startswith("/api/v1/enrol"):
                continue  # a kiosk's enrolment: it takes an enrolment token, not an account's
            api += [(m, path) for m in route.methods]
        elif not route.include_in_schema and not path.startswith(
            ("/units", "/login", "/logout", "/lang", "/docs", "/registry")
        ):
            pages += [(m, path) for m in route.methods if m in ("GET", "POST")]
    assert len(api) >= 25 and len(pages) >= 15
    for method, path in api:
        got = reg.client.request(method, fill(path), headers=buyer, json={})
        assert got.status_code == 403, (method, path, got.status_code, got.text)
        assert "buyer" in got.json()["detail"]
    reg.login("acme-buyer")
    csrf = reg.csrf()
    for method, path in pages:
        got = reg.client.request(method, fill(path), data={"csrf": csrf, "reason": "x"},
                                 follow_redirects=False)  # fmt: skip
        assert got.status_code == 303 and got.headers["location"] == "/units", (method, path)
    home = reg.client.get("/")
    assert home.url.path == "/units" and "acme" in home.text
    # and the buyer can log out
    out = reg.client.post("/logout", data={"csrf": reg.csrf()}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"


def test_a_buyer_sees_and_acts_on_its_own_units_only(reg: Registry) -> None:
    issued_and_sold(reg)
    acme, beta = reg.bearer("acme-buyer"), reg.bearer("beta-buyer")
    mine = reg.client.get("/api/v1/registry", headers=acme).json()
    assert {h["account"] for h in mine["holdings"]} == {"acme"}
    assert [i["issuance_id"] for i in mine["issuances"]] == [IID]
    assert mine["totals"]["held"] == 4 and mine["retirements"] == []

    before = blocks(reg.store)
    for body, path in (
        ({"serials": f"{IID}-5-5", "to": "acme"}, "transfers"),
        ({"serials": f"{IID}-7-7", "to": "acme"}, "transfers"),  # the village's
        ({"serials": f"{IID}-5-6", "beneficiary": "x", "purpose": "y"}, "retirements"),
        ({"serials": f"{IID}-4-5", "beneficiary": "x", "purpose": "y"}, "retirements"),
    ):
        got = reg.client.post(f"/api/v1/registry/{path}", json=body, headers=acme)
        assert got.status_code in (403, 422), (body, got.text)  # 4-5: two holders
    assert blocks(reg.store) == before

    moved = reg.client.post(
        "/api/v1/registry/transfers", json={"serials": f"{IID}-4-4", "to": "beta"}, headers=acme
    )
    assert moved.status_code == 200 and moved.json()["from_account"] == "acme"
    done = reg.client.post(
        "/api/v1/registry/retirements",
        json={"serials": f"{IID}-1-2", "beneficiary": "Acme Cement", "purpose": "2026 offset"},
        headers=acme,
    )
    assert done.status_code == 201, done.text
    rid = done.json()["retirement_id"]
    again = reg.client.post(
        "/api/v1/registry/retirements",
        json={"serials": f"{IID}-2-2", "beneficiary": "Acme", "purpose": "twice"},
        headers=acme,
    )
    assert again.status_code == 409
    doc = reg.client.get(done.json()["certificate"], headers=acme).json()
    assert doc["retirement"]["serials"] == f"{IID}-1-2"
    assert doc["url"] == f"https://testserver/registry#retirement-{rid}"
    assert certificate.signed_by(doc, public_key(bytes.fromhex(doc["central_key"])))
    pdf = reg.client.get(f"/api/v1/registry/retirements/{rid}/certificate.pdf", headers=acme)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    # Another buyer learns nothing of it beyond the public registry.
    assert reg.client.get(done.json()["certificate"], headers=beta).status_code == 404
    theirs = reg.client.get("/api/v1/registry", headers=beta).json()
    assert theirs["retirements"] == [] and theirs["totals"]["held"] == 3
    # The audit names the buyer's account.
    rows = audit.rows(reg.store, limit=20)
    assert any(a.actor == "acme-buyer" and a.action == "registry.retire" for a in rows)
    assert any(a.actor == "acme-buyer" and a.action == "registry.transfer" for a in rows)


def test_the_county_sells_the_villages_units_never_an_enterprises(reg: Registry) -> None:
    issued_and_sold(reg)
    county, v1 = reg.bearer("county"), reg.bearer("v1")
    again = reg.client.post(
        "/api/v1/registry/issuances", json={"village_id": "V1", "period": PERIOD}, headers=county
    )
    assert again.status_code == 409
    before = blocks(reg.store)
    for body, path, who in (
        ({"serials": f"{IID}-1-1", "to": "beta"}, "transfers", county),
        ({"serials": f"{IID}-1-1", "beneficiary": "x", "purpose": "y"}, "retirements", county),
        ({"serials": f"{IID}-7-7", "to": "acme"}, "transfers", v1),
    ):
        got = reg.client.post(f"/api/v1/registry/{path}", json=body, headers=who)
        assert got.status_code == 403, got.text
    for who in (v1, reg.bearer("acme-buyer")):
        got = reg.client.post(
            "/api/v1/registry/issuances", json={"village_id": "V1", "period": "2025-12"},
            headers=who,
        )  # fmt: skip
        assert got.status_code == 403
    assert blocks(reg.store) == before
    seen = reg.client.get("/api/v1/registry", headers=v1).json()
    assert {h["account"] for h in seen["holdings"]} <= {"village:V1", "buffer:V1"}
    assert [i["issuance_id"] for i in seen["issuances"]] == [IID]
    # The county may retire what a village still holds, e.g. for the county's own offset.
    done = reg.client.post(
        "/api/v1/registry/retirements",
        json={"serials": f"{IID}-7-7", "beneficiary": "County office", "purpose": "2026"},
        headers=county,
    )
    assert done.status_code == 201, done.text


def test_the_console_issues_sells_and_retires(reg: Registry) -> None:
    c = reg.login("county")
    page = c.get("/units")
    assert page.status_code == 200 and 'data-testid="issue-form"' in page.text
    got = c.post("/units/issue", data={"csrf": reg.csrf(), "village": "V1", "period": PERIOD})
    assert got.status_code == 200 and IID in got.text and 'data-testid="done"' in got.text
    again = c.post("/units/issue", data={"csrf": reg.csrf(), "village": "V1", "period": PERIOD})
    assert again.status_code == 409 and "issued already" in again.text
    added = c.post("/units/account", data={"csrf": reg.csrf(), "account_id": "gamma",
                                           "name": "Gamma Glass"})  # fmt: skip
    assert added.status_code == 200 and "Gamma Glass" in added.text
    sold = c.post("/units/transfer", data={"csrf": reg.csrf(), "serials": f"{IID}-1-3",
                                           "to": "acme"})  # fmt: skip
    assert sold.status_code == 200 and "acme" in sold.text
    no_csrf = c.post("/units/transfer", data={"serials": f"{IID}-4-4", "to": "acme"})
    assert no_csrf.status_code == 403

    c = reg.login("acme-buyer")
    page = c.get("/units")
    assert f"{IID}-1-3" in page.text and 'data-testid="issue-form"' not in page.text
    assert 'data-testid="account-form"' not in page.text
    refused = c.post("/units/retire", data={"csrf": reg.csrf(), "serials": f"{IID}-4-4",
                                            "beneficiary": "Acme", "purpose": "x"})  # fmt: skip
    assert refused.status_code == 403 and "not yours" in refused.text
    form = {"serials": f"{IID}-1-1", "beneficiary": "Acme Cement", "purpose": "offset"}
    done = c.post("/units/retire", data={"csrf": reg.csrf(), **form})
    # (PostgreSQL's sequence may have skipped the number the refused retirement took.)
    found = re.search(r"已注销 #(\d+) ", done.text)
    assert done.status_code == 200 and found
    cert = f"/units/certificates/{found.group(1)}.pdf"
    assert f'href="{cert}"' in done.text
    pdf = c.get(cert)
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    c = reg.login("beta-buyer")
    assert c.get(cert).status_code == 404
    assert f"{IID}-1-3" not in c.get("/units").text

    c = reg.login("v1")
    page = c.get("/units")
    assert page.status_code == 200 and 'data-testid="retire-form"' not in page.text
    assert "buffer:V1" in page.text


def test_a_buyer_account_names_an_enterprises_registry_account(reg: Registry) -> None:
    a = reg.accounts
    for kwargs, why in (
        ({}, "needs --registry-account"),
        ({"registry_account": "nobody"}, "no registry account"),
        ({"registry_account": "acme", "village_id": "V1"}, "belongs to no village"),
    ):
        with pytest.raises(CentralError, match=why):
            a.add("x", "buyer", PW, LATER, actor="t", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CentralError, match="only a buyer"):
        a.add("x", "county", PW, LATER, registry_account="acme", actor="t")
    issued_and_sold(reg)  # makes village:V1, an issuer's account
    with pytest.raises(CentralError, match="not a buyer's"):
        a.add("x", "buyer", PW, LATER, registry_account="village:V1", actor="t")
    assert a.get("x") is None
    assert a.get("acme-buyer") is not None
    assert a.get("acme-buyer").registry_account == "acme"  # type: ignore[union-attr]


def test_an_older_database_keeps_its_accounts_tokens_and_sessions(
    central_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 10 rebuilds `accounts` on SQLite (other tables refer to it) and alters
    it on PostgreSQL; a central upgraded from 9 keeps every login, token and session."""
    engine = engines.open_engine(central_url)
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:9])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 9)
    migrations.migrate(engine, LATER)
    with engine.begin() as conn:
        conn.execute(insert(db.villages).values(village_id="V1"))
        for name, role, village in (("county", "county", None), ("v1", "village", "V1")):
            conn.execute(text(
                "INSERT INTO accounts (name, role, village_id, password_hash, active, "
                "created_ms, failed_logins) VALUES (:n, :r, :v, 'x', TRUE, 1, 0)"
            ), {"n": name, "r": role, "v": village})  # fmt: skip
        old = hashlib.sha256(b"old-token").hexdigest()
        conn.execute(insert(db.account_tokens).values(token_hash=old, account="v1", created_ms=1))
    monkeypatch.undo()
    engine.dispose()
    with CentralStore.open(central_url, now_ms=LATER) as store:
        accounts = Accounts(store)
        found = accounts.by_token("old-token")
        assert found is not None and found.village_id == "V1" and found.role == "village"
        registry.add_account(store, "acme", "Acme", actor="t", now_ms=LATER)
        accounts.add("acme-buyer", "buyer", PW, LATER, registry_account="acme", actor="t")
        assert [a.name for a in accounts.all()] == ["acme-buyer", "county", "v1"]
        with store.read() as conn:
            versions = list(conn.scalars(select(db.schema_migrations.c.version)))
        assert versions[-1] == migrations.SCHEMA_VERSION >= 10
        # The database still refuses what the roles forbid.
        with pytest.raises(StorageError, match=r"accounts_scope|CHECK"), store.write() as conn:
            conn.execute(text(
                "INSERT INTO accounts (name, role, password_hash, active, created_ms, "
                "failed_logins) VALUES ('b', 'buyer', 'x', TRUE, 1, 0)"
            ))  # fmt: skip
