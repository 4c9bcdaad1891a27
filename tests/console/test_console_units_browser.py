"""The Reduction units page in Debian's Chromium against a real `greenpass central`:
last month issued from the command line, the county sells part of it in the console,
a buyer logs in on a phone, lands on its holdings, retires part of them and downloads
the certificate — offline, Chinese drawn with Noto, no blank value, no sideways scroll.
The screenshots are docs/operator.md's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from central.ingest import ingest
from central.store import CentralStore
from devkit.mqtt_broker import Broker
from edge.ledger.clock import FixedClock
from tests.central.conftest import enrol, new_kiosk, populate
from tests.central_process import Central, running_central
from tests.console.test_console_browser import (
    BROKER_USERS,
    NOTO,
    PHONE,
    PW,
    SHOTS,
    Offline,
    assert_fits,
    assert_no_blank_values,
    login,
)
from tests.ui.cjk import assert_cjk_renders

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def _last_month() -> tuple[str, int]:
    """Last month as YYYY-MM, and a time on its 3rd day (mid-morning in Shanghai)."""
    first = datetime.now(UTC).replace(day=1, hour=2, minute=0, second=0, microsecond=0)
    last = (first - timedelta(days=1)).replace(day=3)
    return last.strftime("%Y-%m"), int(last.timestamp() * 1000)


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Central, str]]:
    folder = tmp_path_factory.mktemp("units")
    period, then = _last_month()
    with Broker(folder / "broker", BROKER_USERS) as broker, running_central(folder, broker) as c:
        with CentralStore.open(c.db) as store:
            store.create_village("V1")
            k = new_kiosk(folder / "k1", "K1", FixedClock(then))
            enrol(store, k)
            ids = populate(k)
            for _day in range(8):
                k.clock.advance(86_400_000)
                k.ledger.deposit(ids["wang"], "paper", 20_000)
            now = time.time_ns() // 1_000_000
            assert ingest(store, k.topic, k.batch(sign_head=True), now).stored > 0
            k.ledger.close()
        pw = folder / "pw"
        pw.write_text(PW + "\n")
        c.gp("central", "account", "add", "county-ops", "--role", "county",
             "--password-file", str(pw))  # fmt: skip
        c.gp("central", "registry", "account", "add", "acme", "--name", "安可水泥 Acme Cement")
        c.gp("central", "account", "add", "acme-buyer", "--role", "buyer",
             "--registry-account", "acme", "--password-file", str(pw))  # fmt: skip
        c.gp("central", "registry", "issue", "--village", "V1", "--period", period)
        yield c, f"GP-V1-{period.replace('-', '')}"


def test_the_county_sells_and_a_buyer_retires_on_a_phone(
    central: tuple[Central, str], browser: Browser
) -> None:
    c, iid = central
    desk = Offline(browser, {"width": 1280, "height": 900})
    page = desk.page
    try:
        login(page, c, "county-ops")
        page.goto(f"{c.url}/units")
        assert iid in page.inner_text("[data-testid=issuances]")
        page.fill("[data-testid=transfer-form] input[name=serials]", f"{iid}-1-6")
        page.fill("[data-testid=transfer-form] input[name=to]", "acme")
        page.click("[data-testid=transfer-form] button")
        assert "acme" in page.inner_text("[data-testid=done]")
        assert_no_blank_values(page)
        assert_fits(page)
        page.screenshot(path=SHOTS / "console-units-county.png", full_page=True)
        assert not desk.blocked and not desk.dialogs
    finally:
        desk.context.close()

    phone = Offline(browser, PHONE)
    page = phone.page
    try:
        login(page, c, "acme-buyer")
        page.wait_for_url("**/units")
        assert page.inner_text("[data-testid=held]") == "6"
        assert "GP-" in page.inner_text("[data-testid=holdings]")
        assert page.locator("[data-testid=issue-form]").count() == 0
        page.fill("[data-testid=retire-form] input[name=serials]", f"{iid}-1-2")
        page.fill("[data-testid=retire-form] input[name=beneficiary]", "安可水泥")
        page.fill("[data-testid=retire-form] input[name=purpose]", "2026 年度抵消")
        page.click("[data-testid=retire-form] button")
        assert "已注销" in page.inner_text("[data-testid=done]")
        assert page.inner_text("[data-testid=retired]") == "2"
        assert_cjk_renders(page, "h1", drawn_with=NOTO)
        assert_no_blank_values(page)
        assert_fits(page)
        page.screenshot(path=SHOTS / "console-units-buyer-phone.png", full_page=True)
        with page.expect_download() as got:
            page.click("[data-testid=certificate-pdf]")
        pdf = Path(got.value.path())
        assert pdf.read_bytes()[:5] == b"%PDF-"
        # The operators' pages are not a buyer's.
        page.goto(f"{c.url}/fleet")
        page.wait_for_url("**/units")
        assert not phone.blocked and not phone.dialogs
    finally:
        phone.context.close()
