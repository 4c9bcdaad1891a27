"""A villager's statement page (issue 16) in Debian's Chromium at a cheap phone's
360×640 viewport, served over HTTPS by uvicorn as `greenpass central --http` serves
it, with every request off this machine blocked: the page fits the screen without
scrolling sideways, the balance is on the first screen, the Chinese is drawn with
Noto, no script runs, the English switch works without a login, and a refused link
is a page in plain words."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from central import operations, reports
from central.api import EnrolmentSettings, create_app
from central.ingest import ingest
from central.store import CentralStore
from greenpass import statement_link as sl
from sync.keys import generate_key, public_bytes
from tests.central.conftest import NOW, enrol, new_kiosk, populate
from tests.central.served import ADMIN, serving
from tests.console.test_console_browser import NOTO, SHOTS, Offline, assert_fits
from tests.ui.cjk import assert_cjk_renders

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ViewportSize

PHONE: ViewportSize = {"width": 360, "height": 640}
CENTRAL = generate_key()
# A long village name: it must wrap, not widen the page.
VILLAGE_ZH = "东山镇绿水村第三村民小组回收点东山镇绿水村第三村民小组"


@dataclass
class Site:
    url: str
    token: str  # a good link to a passbook with a long history
    balance: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("statement")
    with CentralStore.open(folder / "c.db", now_ms=NOW) as store:
        operations.add_village(
            store, "V1", name_zh=VILLAGE_ZH, name_en="Lüshui", actor="test", now_ms=NOW
        )
        k1 = new_kiosk(folder, "K1")
        enrol(store, k1)
        li = populate(k1)["li"]
        for n in range(60):  # more than the page shows
            k1.clock.advance(8 * 3_600_000)  # one of each kind a day: under the caps
            k1.ledger.deposit(li, ("paper", "plastic_pet", "aluminium")[n % 3], 1000 + 7 * n)
        assert ingest(store, k1.topic, k1.batch(), NOW).stored > 0
        k1.ledger.close()
        balance = reports.statement(store, li)[-1].balance
        settings = EnrolmentSettings(
            broker_url="mqtts://central.example:8883", ca_cert_pem="",
            central_public_key=public_bytes(CENTRAL),
        )  # fmt: skip
        app = create_app(store, admin_token=ADMIN, enrolment=settings, clock=lambda: NOW)
        token = sl.sign(CENTRAL, "c", "", li, sl.day_of(NOW) + 30).token
        with serving(app, folder / "tls") as served:
            yield Site(served.url, token, balance)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Offline]:
    o = Offline(browser, PHONE)
    yield o
    assert not o.blocked, f"the page tried to leave the machine: {o.blocked}"
    assert not o.dialogs, f"a script ran: {o.dialogs}"
    o.context.close()


def test_the_statement_fits_a_phone_and_shows_the_balance(site: Site, phone: Offline) -> None:
    page = phone.page
    scripts: list[str] = []
    page.on("console", lambda m: scripts.append(m.text))
    response = page.goto(f"{site.url}/s/{site.token}")
    assert response is not None and response.status == 200
    assert_fits(page)
    balance = page.locator("[data-testid=balance]")
    assert balance.inner_text().split()[0] == str(site.balance)
    box = balance.bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"]  # first screen
    # Large text: the stylesheet, from central itself, applied.
    assert page.evaluate("getComputedStyle(document.body).fontSize") == "20px"
    big = page.eval_on_selector("[data-testid=balance]", "e => getComputedStyle(e).fontSize")
    assert float(big.removesuffix("px")) >= 48
    assert_cjk_renders(page, "section.balance", drawn_with=NOTO)
    assert page.locator("li.entry").count() == 50
    assert page.locator("[data-testid=more]").is_visible()
    assert "Li household" not in page.inner_text("body")
    assert not scripts  # a CSP violation would be reported here
    page.screenshot(path=SHOTS / "statement-phone.png")  # docs/villager.md's

    page.click("[data-testid=switch]")
    page.wait_for_load_state("load")
    assert "Balance" in page.inner_text("body")
    assert_fits(page)
    page.goto(f"{site.url}/s/{site.token}")  # the phone remembers English
    assert "Balance" in page.inner_text("body")


def test_a_refused_link_is_a_plain_page(site: Site, phone: Offline) -> None:
    page = phone.page
    response = page.goto(f"{site.url}/s/{site.token[:-3]}AAA")
    assert response is not None and response.status == 403
    assert_fits(page)
    text = page.inner_text("body")
    assert "这个链接无效" in text and "This link is not valid" in text
    assert_cjk_renders(page, "[data-testid=title]", drawn_with=NOTO)
    page.screenshot(path=SHOTS / "statement-refused.png")
