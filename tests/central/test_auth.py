"""Who may call what: account tokens and the bootstrap admin token on the API, role
scoping (403), and the console's login: cookies' flags, CSRF, lockout, escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from central import db
from central.accounts import MAX_FAILED_LOGINS, Accounts
from central.api import create_app
from central.console.i18n import EN, ZH
from central.ingest import ingest
from central.store import CentralStore
from tests.central.conftest import NOW, SQLITE_ONLY, Kiosk, enrol, new_kiosk, populate
from tests.central.test_api import ADMIN, SETTINGS

# SQLite only: sessions, tokens and roles, above the database;
# tests/central/test_accounts.py runs the accounts' queries on both.
pytestmark = SQLITE_ONLY

PW = "a long enough password"
CONSOLE_PAGES = ["/", "/fleet", "/villages/V1"]


@dataclass
class Site:
    store: CentralStore
    accounts: Accounts
    client: TestClient
    kiosk: Kiosk
    passbooks: dict[str, str]

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.accounts.issue_token(name, NOW, actor='test')}"}

    def login(self, name: str, password: str = PW) -> TestClient:
        self.client.get("/login")
        csrf = self.client.cookies.get("__Host-gp_csrf")
        r = self.client.post(
            "/login", data={"name": name, "password": password, "csrf": csrf or ""},
            follow_redirects=False,
        )  # fmt: skip
        assert r.status_code == 303, r.text
        return self.client

    def csrf(self, path: str = "/") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(path).text)
        assert found
        return found.group(1)


@pytest.fixture
def site(store: CentralStore, tmp_path: Path) -> Iterator[Site]:

    store.create_village("V2")
    kiosk = new_kiosk(tmp_path, "K1")
    enrol(store, kiosk)
    passbooks = populate(kiosk)
    assert ingest(store, kiosk.topic, kiosk.batch(), NOW).stored > 0
    accounts = Accounts(store)
    accounts.add("county", "county", PW, NOW, actor="test")
    accounts.add("v1", "village", PW, NOW, village_id="V1", actor="test")
    accounts.add("v2", "village", PW, NOW, village_id="V2", actor="test")
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: NOW)
    # https: the browser sends __Host- and Secure cookies only there.
    with TestClient(app, base_url="https://testserver") as client:
        yield Site(store, accounts, client, kiosk, passbooks)
    kiosk.ledger.close()


def test_a_village_account_sees_only_its_village(site: Site) -> None:
    c, v2 = site.client, site.bearer("v2")
    li = site.passbooks["li"]
    for method, path, body in [
        ("GET", "/api/v1/villages/V1/totals", None),
        ("GET", "/api/v1/villages/V1/overdrafts", None),
        ("GET", "/api/v1/villages/V1/export.csv", None),
        ("GET", "/api/v1/devices?village_id=V1", None),
        ("GET", f"/api/v1/passbooks/{li}/statement", None),
        ("GET", "/api/v1/dead-letters", None),
        ("GET", "/api/v1/villages/NOPE/totals", None),  # 403, not 404: nothing leaks
        ("POST", "/api/v1/devices/K1/revoke", None),
        ("POST", "/api/v1/enrol-tokens", {"device_id": "K9", "village_id": "V1"}),
    ]:
        r = c.request(method, path, headers=v2, json=body)
        assert r.status_code == 403, (method, path, r.text)
    assert c.get("/api/v1/devices", headers=v2).json() == []  # its own village: no kiosks
    assert site.store.device("K1") is not None and site.store.device("K1").status == "active"  # type: ignore[union-attr]
    v1 = site.bearer("v1")
    assert c.get("/api/v1/villages/V1/totals", headers=v1).status_code == 200
    assert [d["device_id"] for d in c.get("/api/v1/devices", headers=v1).json()] == ["K1"]
    assert c.get(f"/api/v1/passbooks/{li}/statement", headers=v1).status_code == 200
    county = site.bearer("county")
    assert c.get("/api/v1/villages/V2/totals", headers=county).status_code == 200
    assert c.get("/api/v1/dead-letters", headers=county).status_code == 200
    # The session cookie is not an API credential.
    site.login("county")
    assert c.get("/api/v1/villages/V1/totals").status_code == 401


def test_the_admin_token_only_bootstraps(store: CentralStore) -> None:
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: NOW)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(app) as c:
        assert c.get("/api/v1/devices", headers=auth).status_code == 200
        accounts = Accounts(store)
        accounts.add("ann", "county", PW, NOW, actor="test")
        r = c.get("/api/v1/devices", headers=auth)
        assert r.status_code == 401 and "account token NAME" in r.json()["detail"]
        accounts.disable("ann", NOW, actor="test")  # no active county account: it works again
        assert c.get("/api/v1/devices", headers=auth).status_code == 200


def test_console_pages_need_a_login(site: Site) -> None:
    for path in CONSOLE_PAGES:
        r = site.client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    r = site.client.get("/fleet", follow_redirects=False)
    assert r.headers["location"] == "/login?next=%2Ffleet"


def test_login_sets_a_secure_strict_http_only_session_cookie(site: Site) -> None:
    c = site.client
    c.get("/login")
    r = c.post(
        "/login",
        data={"name": "v1", "password": PW, "csrf": c.cookies.get("__Host-gp_csrf") or "",
              "next": "//evil.example/"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/"  # never off-site
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "session" in v)
    assert cookie.startswith("__Host-gp_session=")
    flags = {p.strip().lower() for p in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags
    assert not any(f.startswith("domain") for f in flags)
    page = c.get("/")
    assert page.status_code == 200 and "v1" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_forms_without_the_csrf_token_are_refused(site: Site) -> None:
    c = site.client
    c.get("/login")
    r = c.post("/login", data={"name": "v1", "password": PW}, follow_redirects=False)
    assert r.status_code == 403
    r = c.post("/login", data={"name": "v1", "password": PW, "csrf": "forged"})
    assert r.status_code == 403
    site.login("v1")
    for path, data in [("/logout", {}), ("/lang", {"lang": "en"})]:
        r = c.post(path, data=data, follow_redirects=False)
        assert r.status_code == 403, path
        r = c.post(path, data={**data, "csrf": "x" * 32}, follow_redirects=False)
        assert r.status_code == 403, path
    assert c.get("/", follow_redirects=False).status_code == 200  # still logged in
    r = c.post("/logout", data={"csrf": site.csrf()}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/", follow_redirects=False).status_code == 303


def test_repeated_wrong_passwords_lock_the_account(site: Site) -> None:
    c = site.client
    c.get("/login")
    csrf = c.cookies.get("__Host-gp_csrf") or ""
    for _ in range(MAX_FAILED_LOGINS - 1):
        r = c.post("/login", data={"name": "v1", "password": "wrong password", "csrf": csrf})
        assert r.status_code == 401 and "wrong account name or password" in r.text
    r = c.post("/login", data={"name": "v1", "password": "wrong password", "csrf": csrf})
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 900
    r = c.post("/login", data={"name": "v1", "password": PW, "csrf": csrf})
    assert r.status_code == 429 and "locked" in r.text  # the right password too


def test_a_village_account_is_refused_another_village_page(site: Site) -> None:
    c = site.login("v2")
    r = c.get("/villages/V1")
    assert r.status_code == 403 and 'data-testid="forbidden"' in r.text
    assert c.get("/villages/V2").status_code == 200
    assert "K1" not in c.get("/fleet").text


def test_names_are_shown_as_text_never_as_markup(site: Site) -> None:
    with site.store.write() as conn:
        conn.execute(
            insert(db.village_profiles).values(
                village_id="V1", name_zh="<script>alert(1)</script>", name_en="<b>V1</b>"
            )
        )
    page = site.login("county").get("/").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_language_switch_and_catalogues(site: Site) -> None:
    assert set(ZH) == set(EN) and all(ZH.values()) and all(EN.values())
    c = site.login("county")
    assert '<html lang="zh-CN">' in c.get("/").text
    r = c.post("/lang", data={"lang": "en", "next": "/fleet", "csrf": site.csrf()})
    assert r.status_code == 200 and '<html lang="en">' in r.text and "Fleet" in r.text


def test_api_docs_and_console_files_come_from_central(site: Site) -> None:
    docs = site.client.get("/docs").text
    urls = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", docs)
    urls += re.findall(r"""url:\s*['"]([^'"]+)""", docs)
    assert urls and all(u.startswith("/") for u in urls), urls
    for u in (
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/chartjs/chart.umd.min.js",
    ):
        assert site.client.get(u).status_code == 200
    assert site.client.get("/redoc").status_code == 404  # its files come from a CDN: not served
