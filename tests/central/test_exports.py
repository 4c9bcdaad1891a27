"""Exports for people (central.exports, central.api_exports, the console's Exports page):
local date ranges, XLSX cells, names in both languages, scoping, and CSV/XLSX injection."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import insert

from central import db, reports
from central.accounts import Accounts
from central.api import create_app
from central.ingest import ingest
from central.store import CentralStore
from edge.ledger.clock import FixedClock
from greenpass.record.rules import default_rules
from tests.central.conftest import NOW, enrol, new_kiosk
from tests.central.test_api import ADMIN, SETTINGS

PW = "a long enough password"
SHANGHAI = ZoneInfo("Asia/Shanghai")
EVIL = "=cmd|' /C calc'!A0"


def ms(year: int, month: int, day: int, hour: int, minute: int) -> int:
    """Epoch ms of a Shanghai local date-time."""
    return int(datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).timestamp() * 1000)


# The 29th at noon, the 30th at 23:30 (15:30 UTC: still the 30th in Shanghai), and
# 00:30 on the 31st (16:30 UTC on the 30th).
DEPOSITS = [
    (ms(2025, 12, 29, 12, 0), "paper", 1000),
    (ms(2025, 12, 30, 23, 30), "glass", 5000),
    (ms(2025, 12, 31, 0, 30), "aluminium", 1000),
]


@dataclass
class Site:
    store: CentralStore
    client: TestClient
    tokens: dict[str, dict[str, str]]
    passbook: str

    def get(self, path: str, who: str = "county") -> bytes:
        r = self.client.get(path, headers=self.tokens[who])
        assert r.status_code == 200, r.text
        return bytes(r.content)


@pytest.fixture
def site(store: CentralStore, tmp_path: Path) -> Iterator[Site]:
    store.create_village("V2")
    kiosk = new_kiosk(tmp_path, "K1", FixedClock(DEPOSITS[0][0] - 3_600_000))
    enrol(store, kiosk)
    passbook = kiosk.ledger.enrol(EVIL, staff_id="S1").passbook_id
    assert passbook
    for when, category, grams in DEPOSITS:
        kiosk.clock.advance(when - kiosk.clock.wall_ms())
        kiosk.ledger.deposit(passbook, category, grams)
    assert ingest(store, kiosk.topic, kiosk.batch(), NOW).stored == 4
    accounts = Accounts(store)
    accounts.add("county", "county", PW, NOW, actor="test")
    accounts.add("v1", "village", PW, NOW, village_id="V1", actor="test")
    accounts.add("v2", "village", PW, NOW, village_id="V2", actor="test")
    tokens = {
        name: {"Authorization": f"Bearer {accounts.issue_token(name, NOW, actor='test')}"}
        for name in ("county", "v1", "v2")
    }
    app = create_app(store, admin_token=ADMIN, enrolment=SETTINGS, clock=lambda: NOW)
    with TestClient(app, base_url="https://testserver") as client:
        yield Site(store, client, tokens, passbook)
    kiosk.ledger.close()


def sheet(content: bytes, name: str) -> Worksheet:
    ws = load_workbook(io.BytesIO(content))[name]
    assert isinstance(ws, Worksheet)
    return ws


def records(ws: Worksheet) -> list[dict[str, object]]:
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]  # type: ignore[arg-type]


def csv_records(content: bytes) -> list[dict[str, str]]:
    text = content.decode("utf-8")
    assert text.startswith("\ufeff")  # so Excel reads the Chinese as UTF-8
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_xlsx_entries_have_local_times_both_names_and_integers(site: Site) -> None:
    ws = sheet(
        site.get("/api/v1/villages/V1/entries.xlsx?from=2025-12-30&to=2025-12-30"), "entries"
    )
    [row] = records(ws)  # the 23:30 deposit: neither the 29th's nor 00:30 on the 31st
    glass = default_rules().category("glass")
    assert glass is not None
    assert row["Time"] == datetime(2025, 12, 30, 23, 30)
    assert ws["A2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert (row["Kind"], row["Kiosk"], row["Passbook"]) == ("deposit", "K1", site.passbook)
    assert (row["Category key"], row["Category (Chinese)"]) == ("glass", glass.name_zh)
    assert row["Category (English)"] == glass.name_en
    assert row["Grams"] == 5000 and isinstance(row["Grams"], int) and row["kg"] == 5.0
    assert isinstance(row["Points"], int) and row["Points"] > 0
    assert isinstance(row["CO2e g"], int) and row["Clock OK"] == "yes"
    about_sheet = sheet(site.get("/api/v1/villages/V1/entries.xlsx?from=2025-12-30"), "about")
    about = {str(row[0]): row[1] for row in about_sheet.iter_rows(values_only=True)}
    assert about["time zone"] == "Asia/Shanghai" and about["from"] == "2025-12-30"


def test_date_ranges_are_whole_local_days(site: Site) -> None:
    def grams(query: str) -> object:
        body = site.client.get(f"/api/v1/villages/V1/totals{query}", headers=site.tokens["v1"])
        assert body.status_code == 200, body.text
        return body.json()["grams_by_category"]

    assert grams("?from=2025-12-30&to=2025-12-30") == {"glass": 5000}
    assert grams("?from=2025-12-31") == {"aluminium": 1000}
    assert grams("?to=2025-12-29") == {"paper": 1000}
    assert grams("") == {"aluminium": 1000, "glass": 5000, "paper": 1000}
    assert grams("?from=2025-12-30") == grams("?from=2025-12-30&to=2026-01-01")
    r = site.client.get(
        "/api/v1/villages/V1/totals?from=2025-12-31&to=2025-12-30", headers=site.tokens["v1"]
    )
    assert r.status_code == 200 and r.json()["grams_by_category"] == {}  # an empty range
    # The village's own time zone, once set: in UTC, 00:30 on the 31st in Shanghai is the 30th.
    with site.store.write() as conn:
        conn.execute(insert(db.village_profiles).values(village_id="V1", timezone="UTC"))
    assert grams("?from=2025-12-30&to=2025-12-30") == {"aluminium": 1000, "glass": 5000}


def test_totals_files(site: Site) -> None:
    rows = records(sheet(site.get("/api/v1/villages/V1/totals.xlsx?from=2025-12-30"), "totals"))
    by_key = {r["Category key"]: r for r in rows if r["Category key"]}
    assert set(by_key) == {"aluminium", "glass"}
    glass = by_key["glass"]
    assert (glass["Deposits"], glass["Grams"], glass["kg"]) == (1, 5000, 5.0)
    whole = rows[-1]
    assert (whole["Category (Chinese)"], whole["Category (English)"]) == ("合计", "All")
    assert whole["Grams"] == 6000 and whole["Deposits"] == 2
    assert whole["CO2e g"] == sum(int(r["CO2e g"]) for r in rows[:-1])  # type: ignore[call-overload]
    assert whole["Points issued"] == sum(r["Points issued"] for r in rows[:-1])  # type: ignore[misc]
    zh = csv_records(site.get("/api/v1/villages/V1/totals.csv?to=2025-12-29&lang=zh-CN"))
    assert (
        zh[0]["类别代码"] == "paper" and zh[0]["克"] == "1000" and zh[-1]["类别（英文）"] == "All"
    )


def test_a_formula_in_a_name_stays_text(site: Site) -> None:
    [row] = csv_records(site.get("/api/v1/villages/V1/entries.csv?to=2025-12-29&lang=en"))[:1]
    assert row["Kind"] == "enrolment" and row["Household"] == "'" + EVIL
    ws = sheet(site.get("/api/v1/villages/V1/entries.xlsx"), "entries")
    households = [c for c in ws["F"][1:] if c.value is not None]
    assert households and all(c.value == EVIL and c.data_type == "s" for c in households)
    statement = csv_records(site.get(f"/api/v1/passbooks/{site.passbook}/statement.csv"))
    assert all(not r["Passbook"].startswith("=") for r in statement)


def test_statement_keeps_the_balance_from_before_the_range(site: Site) -> None:
    url = f"/api/v1/passbooks/{site.passbook}/statement.xlsx?from=2025-12-31"
    [row] = records(sheet(site.get(url, "v1"), "statement"))
    whole = reports.statement(site.store, site.passbook)
    assert row["Category key"] == "aluminium" and row["Balance"] == whole[-1].balance
    assert row["Time"] == datetime(2025, 12, 31, 0, 30)


def test_a_village_account_gets_only_its_village(site: Site) -> None:
    c, v2 = site.client, site.tokens["v2"]
    for path in (
        "/api/v1/villages/V1/totals.xlsx",
        "/api/v1/villages/V1/entries.csv?from=2025-12-30",
        f"/api/v1/passbooks/{site.passbook}/statement.csv",
        "/api/v1/villages/V1/totals?from=2025-12-30",
        "/api/v1/villages/V1/export.csv?from=2025-12-30",
    ):
        assert c.get(path, headers=v2).status_code == 403, path
        assert c.get(path, headers=site.tokens["v1"]).status_code == 200, path
    assert c.get("/api/v1/villages/V2/entries.xlsx", headers=v2).status_code == 200
    assert c.get("/api/v1/villages/V1/entries.csv").status_code == 401
    assert (
        c.get("/api/v1/villages/V9/entries.csv", headers=site.tokens["county"]).status_code == 404
    )


def test_the_raw_csv_keeps_its_columns_and_takes_a_range(site: Site) -> None:
    rows = list(csv.DictReader(io.StringIO(site.get("/api/v1/villages/V1/export.csv").decode())))
    assert list(rows[0]) == list(reports.EXPORT_COLUMNS) and len(rows) == 4
    ranged = site.get("/api/v1/villages/V1/export.csv?from=2025-12-30&to=2025-12-30").decode()
    [row] = list(csv.DictReader(io.StringIO(ranged)))
    assert row["category"] == "glass" and int(row["wall_ms"]) == DEPOSITS[1][0]


def login(c: TestClient, name: str) -> None:
    c.cookies.clear()  # a new browser
    c.get("/login")
    form = {"name": name, "password": PW, "csrf": c.cookies.get("__Host-gp_csrf") or ""}
    assert c.post("/login", data=form, follow_redirects=False).status_code == 303


def test_the_console_exports_page(site: Site) -> None:
    c = site.client
    login(c, "v2")
    page = c.get("/exports")
    assert page.status_code == 200 and 'action="/exports/download"' in page.text
    assert 'value="V2"' in page.text and 'value="V1"' not in page.text
    assert c.get("/exports/download?village=V1&what=totals&fmt=csv").status_code == 403
    login(c, "county")
    r = c.get("/exports/download?village=V1&what=entries&fmt=xlsx&from=2025-12-30&to=2025-12-30")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    [row] = records(sheet(r.content, "entries"))
    assert row["类别代码"] == "glass" and row["时间"] == datetime(2025, 12, 30, 23, 30)
    blank = c.get("/exports/download?village=V1&what=totals&fmt=csv&from=&to=")
    assert blank.status_code == 200 and len(csv_records(blank.content)) == 4  # 3 and "all"
    bad = c.get("/exports/download?village=V1&what=totals&fmt=csv&from=30.12.2025")
    assert bad.status_code == 422 and 'data-testid="error"' in bad.text
    nobody = c.get("/exports/download?what=statement&fmt=csv&passbook=NOPE")
    assert nobody.status_code == 404 and 'data-testid="error"' in nobody.text
