"""The operator's console and the API docs in Debian's Chromium, against a real
`greenpass central` process, with every request off this machine blocked: login, a
village account refused another village, charts drawn, Chinese drawn with Noto, no
"undefined"/"NaN"/empty cell, a `<script>` name shown as text. The screenshots are
docs/operator.md's."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from sqlalchemy import insert

from central import db
from central.ingest import ingest
from central.store import CentralStore
from devkit.mqtt_broker import Broker
from edge.ledger.clock import FixedClock
from sync import protocol
from tests.central.conftest import enrol, new_kiosk, populate
from tests.central_process import ROOT, Central, running_central
from tests.ui.cjk import assert_cjk_renders

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Route, ViewportSize

# docs/screenshots only when asked (as the kiosk's pages do): a test run leaves the
# tree clean.
SHOTS = ROOT / (
    "docs/screenshots"
    if os.environ.get("GREENPASS_UPDATE_DOCS_SCREENSHOTS")
    else "build/screenshots"
)
SHOTS.mkdir(parents=True, exist_ok=True)
PW = "operator password 1"
NOTO = "Noto Sans CJK SC"
XSS = "<script>alert(1)</script>"
BROKER_USERS = (("central", "central-pw"),)
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


def _seed(c: Central, folder: Path) -> None:
    """Two villages (one named like an attack), two kiosks with a day's entries and
    statuses (one faulty, one offline), a county and a village operator."""
    now = time.time_ns() // 1_000_000
    with CentralStore.open(c.db) as store:
        store.create_village("V1")
        store.create_village("V2")
        with store.write() as conn:
            conn.execute(
                insert(db.village_profiles),
                [
                    {"village_id": "V1", "name_zh": XSS, "name_en": XSS},
                    {"village_id": "V2", "name_zh": "东村", "name_en": "Dongcun"},
                ],
            )
        k1 = new_kiosk(folder / "k1", "K1", FixedClock(now - 3 * 3_600_000))
        k2 = new_kiosk(folder / "k2", "K2", FixedClock(now - 9 * 3_600_000))
        for k in (k1, k2):
            enrol(store, k)
            populate(k)
            assert ingest(store, k.topic, k.batch(), now).stored > 0
        for k, online, scale, seen, disk, size in [
            (k1, True, "error", now, 8_000_000_000, 16_000_000_000),
            (k2, False, "ok", now - 5 * 3_600_000, 120_000_000, None),  # reports no size
        ]:
            status = protocol.Status(
                device_id=k.device_id, online=online, ts_ms=seen, version="0.1.0",
                backlog=3, oldest_unsynced_ms=seen - 3_600_000, head_seq=k.head_seq,
                free_disk_bytes=disk, disk_bytes=size, scale=scale, scanner="ok",
            )  # fmt: skip
            topic = protocol.topic(k.device_id, protocol.STATUS)
            assert store.record_status(topic, protocol.encode_status(status), seen)
            k.ledger.close()
    pw = folder / "pw"
    pw.write_text(PW + "\n")
    c.gp("central", "account", "add", "county-ops", "--role", "county", "--password-file", str(pw))
    c.gp("central", "account", "add", "dongcun-ops", "--role", "village", "--village", "V2",
         "--password-file", str(pw))  # fmt: skip


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    folder = tmp_path_factory.mktemp("console")
    with Broker(folder / "broker", BROKER_USERS) as broker, running_central(folder, broker) as c:
        _seed(c, folder)
        yield c


class Offline:
    """A browser context that may only reach this machine; what it tried elsewhere."""

    def __init__(self, browser: Browser, viewport: ViewportSize) -> None:
        self.blocked: list[str] = []
        self.context: BrowserContext = browser.new_context(
            viewport=viewport,
            locale="zh-CN",
            ignore_https_errors=True,  # central's development CA
        )
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _route(self, route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")


@pytest.fixture
def offline(browser: Browser) -> Iterator[Offline]:
    o = Offline(browser, DESKTOP)
    yield o
    assert not o.blocked, f"the page tried to leave the machine: {o.blocked}"
    assert not o.dialogs, f"a script ran: {o.dialogs}"
    o.context.close()


def login(page: Page, central: Central, name: str, password: str = PW) -> None:
    page.goto(f"{central.url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("form.login button[type=submit]")


def assert_no_blank_values(page: Page) -> None:
    text = page.inner_text("body")
    for bad in ("undefined", "NaN", "None", "null"):
        assert bad not in text, f"{bad!r} on {page.url}"
    empty = page.eval_on_selector_all(
        "td, th", "cells => cells.filter(c => !c.textContent.trim()).length"
    )
    assert empty == 0, f"{empty} empty cells on {page.url}"


def assert_fits(page: Page) -> None:
    """The page does not scroll sideways: the document is no wider than the window
    (tables and code scroll inside their own boxes)."""
    # After a click's navigation the new page can be there before its stylesheet: an
    # unstyled page is wide (a diff's pre not yet scrolling), so measure it styled.
    page.wait_for_load_state("load")
    width = page.evaluate("document.documentElement.scrollWidth")
    window = page.viewport_size["width"] if page.viewport_size else 0
    if width > window:
        wide = page.evaluate(WIDE_ELEMENTS, window)
        raise AssertionError(f"{page.url} is {width} px wide in a {window} px window: {wide}")


# The elements reaching past the window, not inside a box that scrolls: the culprits.
WIDE_ELEMENTS = """window => {
    const scrolls = e => ["auto", "scroll", "hidden"].includes(getComputedStyle(e).overflowX);
    const out = [];
    for (const e of document.body.querySelectorAll("*")) {
        if (e.getBoundingClientRect().right <= window) continue;
        let inside = false;
        for (let a = e.parentElement; a && a !== document.body && !inside; a = a.parentElement)
            inside = scrolls(a);
        if (!inside) out.push(e.tagName.toLowerCase() + (e.className ? "." + e.className : ""));
    }
    return out.slice(-5);
}"""


def canvas_ink(page: Page, selector: str) -> int:
    """Painted (non-transparent) pixels of a canvas."""
    return int(
        page.eval_on_selector(
            selector,
            """c => {
                const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
                return n;
            }""",
        )
    )


def test_api_docs_render_offline(central: Central, offline: Offline) -> None:
    page = offline.page
    page.goto(f"{central.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    assert "Green Passbook central" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() >= 8  # every route drawn
    page.screenshot(path=SHOTS / "console-docs.png")


def test_county_overview_charts_cjk_and_escaping(central: Central, offline: Offline) -> None:
    page = offline.page
    login(page, central, "county-ops")
    page.wait_for_selector("#chart-co2e[data-drawn='1']")
    assert page.inner_text("h1") == "概览"
    for chart in ("#chart-kg", "#chart-points", "#chart-co2e"):
        assert canvas_ink(page, chart) > 1000, chart
    assert_cjk_renders(page, "header.top", drawn_with=NOTO)
    assert_cjk_renders(page, "table[data-testid=villages] thead", drawn_with=NOTO)
    assert page.get_by_text(XSS).count() == 1  # the village's name, as text
    assert page.locator("table[data-testid=villages] tbody tr").count() == 2
    assert_no_blank_values(page)
    page.screenshot(path=SHOTS / "console-overview.png", full_page=True)
    page.click("text=东村")
    page.wait_for_selector("#chart-kg[data-drawn='1']")
    assert page.url.endswith("/villages/V2")


def test_fleet_alerts_sort_and_filter(central: Central, offline: Offline) -> None:
    page = offline.page
    login(page, central, "county-ops")
    page.goto(f"{central.url}/fleet")
    rows = page.locator("#fleet tbody tr")
    assert rows.count() == 2
    assert "秤故障" in rows.nth(0).inner_text() or "秤故障" in rows.nth(1).inner_text()
    text = page.inner_text("#fleet")
    assert "离线过久" in text and "磁盘不足" in text
    disk = {k: rows.filter(has_text=k).locator("td").nth(6).inner_text() for k in ("K1", "K2")}
    assert disk == {"K1": "8,000 MB (50 %)", "K2": "120 MB"}  # K2 sends no disk size
    assert_cjk_renders(page, "#fleet thead", drawn_with=NOTO)
    assert_no_blank_values(page)
    page.click("#fleet th:first-child")
    page.click("#fleet th:first-child")  # descending
    assert rows.nth(0).inner_text().startswith("K2")
    page.fill("#fleet-filter", "K1")
    assert page.locator("#fleet tbody tr:not([hidden])").count() == 1
    page.fill("#fleet-filter", "")
    page.screenshot(path=SHOTS / "console-fleet.png", full_page=True)


def test_a_village_account_is_refused_another_village(central: Central, offline: Offline) -> None:
    page = offline.page
    login(page, central, "dongcun-ops")
    page.wait_for_selector("table[data-testid=villages]")
    assert page.locator("table[data-testid=villages] tbody tr").count() == 1
    assert XSS not in page.inner_text("main")
    response = page.goto(f"{central.url}/villages/V1")
    assert response is not None and response.status == 403
    assert page.locator("[data-testid=forbidden]").is_visible()
    assert_cjk_renders(page, "[data-testid=forbidden]", drawn_with=NOTO)
    page.screenshot(path=SHOTS / "console-forbidden.png")
    page.goto(f"{central.url}/fleet")
    assert page.locator("[data-testid=empty]").is_visible()  # V2 has no kiosks
    assert_no_blank_values(page)


def test_login_errors_english_and_a_phone(central: Central, browser: Browser) -> None:
    phone = Offline(browser, PHONE)
    page = phone.page
    try:
        login(page, central, "county-ops", "not the password")
        assert "wrong account name or password" in page.inner_text("[data-testid=error]")
        assert_cjk_renders(page, "form.login h1", drawn_with=NOTO)
        page.screenshot(path=SHOTS / "console-login.png")
        login(page, central, "county-ops")
        page.wait_for_selector("#chart-kg[data-drawn='1']")
        assert_fits(page)
        page.screenshot(path=SHOTS / "console-overview-phone.png", full_page=True)
        page.click("[data-testid=lang]")
        page.wait_for_selector("html[lang=en]")
        assert page.inner_text("h1") == "Overview"
        assert_no_blank_values(page)
        page.click("[data-testid=logout]")
        page.wait_for_url("**/login")
        assert not phone.blocked and not phone.dialogs
    finally:
        phone.context.close()
