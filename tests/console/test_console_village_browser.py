"""A village's console pages in Debian's Chromium against a real `greenpass central`:
a catalogue item edited in the console is what the API serves, a second operator's
stale save is refused with both values shown, a rules file is read from disk, diffed
and confirmed, a malformed one names its key and line, a passbook revoked in the
console is in the state central pushes. No "undefined"/"NaN"/empty value on any of
these pages. The screenshots are docs/operator.md's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import insert

from central import db, operations
from central.accounts import Accounts
from central.state import build_state
from central.store import CentralStore
from devkit.mqtt_broker import Broker
from greenpass.record.rules import DEFAULT_RULES_PATH
from tests.central_process import Central, running_central
from tests.console import test_console_browser
from tests.console.test_console_browser import (
    BROKER_USERS,
    DESKTOP,
    NOTO,
    PHONE,
    SHOTS,
    XSS,
    Offline,
    _seed,
    assert_fits,
    assert_no_blank_values,
    login,
)
from tests.ui.cjk import assert_cjk_renders

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

V1 = "/villages/V1"
offline = test_console_browser.offline  # the fixture: a desktop context kept on this machine


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    folder = tmp_path_factory.mktemp("console-village")
    with Broker(folder / "broker", BROKER_USERS) as broker, running_central(folder, broker) as c:
        _seed(c, folder)
        with CentralStore.open(c.db) as store, store.write() as conn:
            # A refused message, as the ingest writes one, for the Dead letters page.
            conn.execute(
                insert(db.dead_letters).values(
                    received_ms=_now(), topic="gp/v1/K9/up/batch", claimed_device="K9",
                    status="unknown_device", reason="no enrolled device K9", payload=b"{}",
                    size=2,
                )
            )  # fmt: skip
        yield c


def _now() -> int:
    return time.time_ns() // 1_000_000


def _api_items(central: Central) -> dict[str, dict[str, Any]]:
    """The village's items as `GET /api/v1/villages/V1/catalogue` serves them."""
    with CentralStore.open(central.db) as store:
        token = Accounts(store).issue_token("county-ops", _now(), actor="test")
    r = httpx.get(
        f"{central.url}/api/v1/villages/V1/catalogue",
        headers={"Authorization": f"Bearer {token}"},
        verify=central.verify,
    )
    assert r.status_code == 200, r.text
    return {i["id"]: i for i in r.json()["items"]}


def _save_item(page: Page, item: str, **fields: str) -> None:
    form = page.locator(f"[data-testid=item-{item}]")
    for name, value in fields.items():
        form.locator(f"input[name={name}]").fill(value)
    with page.expect_navigation():  # else the last page's "saved" would be waited for
        form.locator("button[type=submit]").click()


def test_catalogue_edit_reaches_the_api_and_a_stale_save_loses_nothing(
    central: Central, browser: Browser
) -> None:
    one, two = Offline(browser, DESKTOP), Offline(browser, PHONE)
    try:
        page = one.page
        login(page, central, "county-ops")
        page.click(f"a.village-name[href='{V1}']")  # from the Overview's village name
        page.wait_for_selector("[data-testid=village-nav]")
        assert page.get_by_text(XSS).count() >= 1  # the village's name, as text
        page.click(f"[data-testid=village-nav] a[href='{V1}/catalogue']")
        _save_item(page, "new", item_id="rice", name_zh="大米", name_en="Rice 1 kg", points="50")
        page.wait_for_selector("[data-testid=saved]")
        _save_item(page, "new", item_id="soap", name_zh="肥皂", name_en=XSS, points="30")
        page.wait_for_selector("[data-testid=saved]")
        _save_item(page, "rice", points="55", name_en="Rice 1 kg bag")
        page.wait_for_selector("[data-testid=saved]")
        items = _api_items(central)
        assert items["rice"]["points"] == 55 and items["rice"]["name_en"] == "Rice 1 kg bag"
        assert items["soap"]["name_en"] == XSS
        assert page.locator("[data-testid=item-soap] input[name=name_en]").input_value() == XSS
        assert_cjk_renders(page, "[data-testid=village-nav]", drawn_with=NOTO)
        assert_no_blank_values(page)
        page.screenshot(path=SHOTS / "console-village-catalogue.png", full_page=True)

        # Two operators read the same version; the second to save is told, not obeyed.
        login(two.page, central, "county-ops")
        two.page.goto(f"{central.url}{V1}/catalogue")
        page.reload()
        _save_item(page, "rice", points="60")
        page.wait_for_selector("[data-testid=saved]")
        _save_item(two.page, "rice", points="65", name_zh="大米（我的）")
        two.page.wait_for_selector("[data-testid=stale]")
        stale = two.page.inner_text("[data-testid=stale]")
        assert "大米（我的）" in stale and "60" in stale  # mine and theirs
        assert two.page.locator("[data-testid=item-rice] input[name=points]").input_value() == "65"
        assert_fits(two.page)
        assert_no_blank_values(two.page)
        two.page.screenshot(path=SHOTS / "console-village-catalogue-stale.png", full_page=True)
        items = _api_items(central)
        assert items["rice"]["points"] == 60
        for o in (one, two):
            assert not o.blocked and not o.dialogs
    finally:
        one.context.close()
        two.context.close()


def test_rules_from_a_file_diffed_confirmed_and_a_bad_one_refused(
    central: Central, offline: Offline, tmp_path: Path
) -> None:
    page = offline.page
    login(page, central, "county-ops")
    page.goto(f"{central.url}{V1}/rules")
    good = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    bad = good.replace("cooldown_seconds = 20", 'cooldown_seconds = "twenty"')
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    page.set_input_files("#rules-file", str(tmp_path / "bad.toml"))
    page.wait_for_function("document.getElementById('rules-text').value.includes('twenty')")
    page.click("[data-testid=preview-button]")
    error = page.inner_text("[data-testid=error]")
    line = 1 + next(n for n, x in enumerate(bad.splitlines()) if "twenty" in x)
    assert f"rules.toml:{line}" in error and "cooldown_seconds" in error
    assert "twenty" in page.locator("#rules-text").input_value()  # the text is kept
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        assert_fits(page)
    page.screenshot(path=SHOTS / "console-village-rules-error.png", full_page=True)
    with CentralStore.open(central.db) as store:
        assert operations.rules(store, "V1").version is None  # nothing changed

    page.fill("#rules-text", good)
    page.click("[data-testid=preview-button]")
    page.wait_for_selector("[data-testid=diff]")
    page.click("[data-testid=confirm]")
    page.wait_for_selector("[data-testid=applied]")
    newer = good.replace("cooldown_seconds = 20", "cooldown_seconds = 30").replace(
        'version = "cn-default-2026.11"', 'version = "cn-default-2026.12"'
    )
    page.fill("#rules-text", newer)
    page.click("[data-testid=preview-button]")
    page.wait_for_selector("pre[data-testid=diff]")
    diff = page.inner_text("pre[data-testid=diff]")
    assert "-cooldown_seconds = 20" in diff and "+cooldown_seconds = 30" in diff
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        assert_fits(page)
    # On the phone, the diff's long lines scroll inside its own box.
    assert page.eval_on_selector("pre[data-testid=diff]", "p => p.scrollWidth > p.clientWidth")
    page.set_viewport_size(DESKTOP)
    assert_no_blank_values(page)
    page.screenshot(path=SHOTS / "console-village-rules-diff.png", full_page=True)
    page.click("[data-testid=confirm]")
    page.wait_for_selector("[data-testid=applied]")
    assert "cn-default-2026.12" in page.inner_text("[data-testid=rules-version]")
    with CentralStore.open(central.db) as store:
        assert operations.rules(store, "V1").text == newer  # byte for byte


def test_long_words_on_the_rules_page_wrap_on_a_phone(central: Central, browser: Browser) -> None:
    """A long version in the diff's heading and a long key in a refusal break rather
    than widen the page; nothing is applied (previews only)."""
    phone = Offline(browser, PHONE)
    try:
        page = phone.page
        login(page, central, "county-ops")
        page.goto(f"{central.url}{V1}/rules")
        good = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
        long_version = "v" + "x" * 63  # the longest a version may be
        page.fill("#rules-text", good.replace('"cn-default-2026.11"', f'"{long_version}"'))
        page.click("[data-testid=preview-button]")
        page.wait_for_selector("[data-testid=confirm]")
        assert long_version in page.inner_text("[data-testid=preview] h2")
        assert_fits(page)
        page.goto(f"{central.url}{V1}/rules")
        page.fill("#rules-text", good.replace("cooldown_seconds", "cooldown_" + "s" * 200))
        page.click("[data-testid=preview-button]")
        assert "s" * 200 in page.inner_text("[data-testid=error]")
        assert_fits(page)
        assert not phone.blocked and not phone.dialogs
    finally:
        phone.context.close()


def test_a_revocation_in_the_console_is_in_the_state_pushed(
    central: Central, offline: Offline
) -> None:
    page = offline.page
    login(page, central, "county-ops")
    page.goto(f"{central.url}{V1}/passbooks")
    page.fill("input[name=q]", "Li")
    page.click("form.search button")
    page.wait_for_selector("[data-testid=passbooks]")
    assert_no_blank_values(page)
    page.screenshot(path=SHOTS / "console-village-passbooks.png", full_page=True)
    page.click("[data-testid=passbooks] tbody tr:first-child a")
    page.wait_for_selector("[data-testid=statement]")
    passbook = page.url.rsplit("/", 1)[1]
    page.fill("form.revoke input[name=reason]", "card lost at the market")
    page.click("[data-testid=revoke]")
    page.wait_for_selector("[data-testid=done]")
    assert "card lost at the market" in page.inner_text("[data-testid=status]")
    assert_cjk_renders(page, "[data-testid=status]", drawn_with=NOTO)
    assert_no_blank_values(page)
    page.screenshot(path=SHOTS / "console-village-passbook.png", full_page=True)
    with CentralStore.open(central.db) as store:
        assert passbook in build_state(store, "K1", _now()).revoked
    page.goto(f"{central.url}{V1}/audit")
    text = page.inner_text("[data-testid=audit]")
    assert "passbook.revoke" in text and "county-ops" in text
    assert_no_blank_values(page)
    page.screenshot(path=SHOTS / "console-village-audit.png", full_page=True)


def test_overdrafts_dead_letters_and_scoping(central: Central, offline: Offline) -> None:
    page = offline.page
    login(page, central, "county-ops")
    for path, shot in [(f"{V1}/overdrafts", "overdrafts"), ("/dead-letters", "dead-letters")]:
        response = page.goto(f"{central.url}{path}")
        assert response is not None and response.status == 200, path
        assert_no_blank_values(page)
        page.screenshot(path=SHOTS / f"console-village-{shot}.png", full_page=True)
    assert "no enrolled device K9" in page.inner_text("[data-testid=dead-letters]")
    page.click("[data-testid=lang]")
    page.wait_for_selector("html[lang=en]")
    assert page.inner_text("h1") == "Dead letters"
    page.click("[data-testid=logout]")
    login(page, central, "dongcun-ops")
    page.wait_for_selector("[data-testid=user]")
    for path in (f"{V1}/catalogue", f"{V1}/passbooks", "/dead-letters"):
        response = page.goto(f"{central.url}{path}")
        assert response is not None and response.status == 403, path
    response = page.goto(f"{central.url}/villages/V2/catalogue")
    assert response is not None and response.status == 200
    assert page.locator("[data-testid=empty]").is_visible()
    assert_no_blank_values(page)


def test_every_page_fits_a_phone(central: Central, browser: Browser) -> None:
    """Every console page, in both languages, on a 390 px phone: no sideways scrolling
    (wide tables scroll inside their card)."""
    phone = Offline(browser, PHONE)
    try:
        page = phone.page
        page.goto(f"{central.url}/login")
        assert_fits(page)
        login(page, central, "county-ops")
        page.wait_for_selector("[data-testid=user]")
        page.goto(f"{central.url}{V1}/passbooks?q=Li")
        statement = page.get_attribute("[data-testid=passbooks] tbody tr:first-child a", "href")
        assert statement
        pages = ["/", "/fleet", "/exports", "/audit", "/dead-letters", V1, f"{V1}/catalogue",
                 f"{V1}/rules", f"{V1}/passbooks?q=Li", statement, f"{V1}/overdrafts",
                 f"{V1}/audit"]  # fmt: skip
        for lang in ("zh-CN", "en"):
            for path in pages:
                response = page.goto(f"{central.url}{path}")
                assert response is not None and response.status == 200, path
                assert page.get_attribute("html", "lang") == lang
                assert_fits(page)
            page.click("[data-testid=lang]")
            page.wait_for_selector("html[lang=en]" if lang == "zh-CN" else "html[lang=zh-CN]")
        page.goto(f"{central.url}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
        assert_fits(page)
        page.goto(f"{central.url}/")
        page.click("[data-testid=logout]")
        page.wait_for_url("**/login")
        login(page, central, "dongcun-ops")
        page.wait_for_selector("[data-testid=user]")
        response = page.goto(f"{central.url}{V1}/catalogue")
        assert response is not None and response.status == 403
        assert_fits(page)
        assert not phone.blocked and not phone.dialogs
    finally:
        phone.context.close()
