"""Receipts on the touchscreen, in a real Chromium against a real kiosk with a simulated
printer: a receipt that could not be printed is said in plain words (the points stand),
the staff menu shows the printer's fault, and staff reprint the last receipt."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from simulator.kiosk_home import KioskHome, make_kiosk_home
from tests.kiosk.conftest import RunningKiosk
from tests.kiosk.test_receipts import receipts, wait_receipts
from tests.ui.cjk import assert_cjk_renders
from tests.ui.kiosk_pages import UI_KIOSK_KEYS, assert_fits, shot, text, wait_screen
from tests.ui.test_kiosk_staff import CJK, open_task, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> KioskHome:
    folder = tmp_path_factory.mktemp("ui-receipts") / "K0001"
    return make_kiosk_home(folder, "K0001", "dongcun", extra_kiosk_keys=UI_KIOSK_KEYS, printer=True)


def test_paper_out_is_said_and_staff_reprint(
    page: Page, kiosk: RunningKiosk, screenshot_dir: Path
) -> None:
    kiosk.sim("printer", action="paper_out")
    kiosk.scan("villager 张家")
    wait_screen(page, "villager")
    page.click("[data-cat=cardboard]")
    kiosk.wait_view("weighing", lambda v: v["hint"] == "place_bag")
    kiosk.sim("scale", action="place", grams=3250)
    wait_screen(page, "confirmed")
    # The deposit is confirmed as always; then the receipt's failure is said under it.
    page.wait_for_selector("#receipt-failed")
    assert text(page, "#earned") == "+32 分"
    assert text(page, "#receipt-failed") == "小票没有打印出来。积分已经记上了，请找工作人员补打。"
    assert_cjk_renders(page, "#receipt-failed", drawn_with=CJK)
    assert_fits(page)
    shot(page, screenshot_dir, "receipt-failed", docs=True)
    kiosk.post("/api/cancel")
    kiosk.sim("scale", action="remove")
    wait_screen(page, "idle")

    sign_in(page, kiosk)
    page.wait_for_selector("#printer-fault")
    assert "没纸" in text(page, "#printer-fault")
    assert page.locator("[data-status=printer]").count() == 1  # and in the status strip
    assert_fits(page)
    open_task(page, "reprint")
    kiosk.scan("villager 张家")
    page.wait_for_selector("#reprint")
    page.click("#reprint")
    page.wait_for_selector("#outcome:has-text('没纸')")
    printed = receipts(kiosk)

    kiosk.sim("printer", action="load_paper")
    page.click("#reprint")
    page.wait_for_selector("#outcome:has-text('已补打小票')")
    wait_receipts(kiosk, printed + 1)
    assert kiosk.view()["status"]["printer"] == "ok"
    assert page.locator("#printer-fault").count() == 0
    assert_fits(page)
    shot(page, screenshot_dir, "staff-reprint", docs=True)
    page.click("#signout")
    wait_screen(page, "idle")


def test_a_redemptions_receipt_that_failed_is_said_to_staff(
    page: Page, kiosk: RunningKiosk, screenshot_dir: Path
) -> None:
    kiosk.sim("printer", action="load_paper")
    kiosk.scan("villager 王家")
    wait_screen(page, "villager")
    page.click("[data-cat=cardboard]")
    kiosk.wait_view("weighing", lambda v: v["hint"] == "place_bag")
    kiosk.sim("scale", action="place", grams=3250)
    wait_screen(page, "confirmed")
    kiosk.wait_view("receipt printed", lambda v: (v["receipt"] or {}).get("state") == "printed")
    kiosk.post("/api/cancel")
    kiosk.sim("scale", action="remove")
    wait_screen(page, "idle")

    kiosk.sim("printer", action="paper_out")
    sign_in(page, kiosk)
    open_task(page, "redeem")
    kiosk.scan("villager 王家")
    page.wait_for_selector("[data-item=soap]")
    page.locator("[data-item=soap] [data-act=cart-plus]").click()
    page.click("#redeem")
    page.wait_for_selector("#outcome.msg-ok")
    # The redemption stands; its receipt's failure is said beside it, with the fix.
    page.wait_for_selector("#redeem-receipt-failed")
    said = text(page, "#redeem-receipt-failed")
    assert said == "小票没打出来（没纸），请在菜单里补打。"
    assert text(page, "#outcome").startswith("已兑换，扣 25 分")
    receipt = kiosk.view()["receipt"]
    assert receipt["state"] == "failed" and receipt["code"] == "paper_out"
    assert_cjk_renders(page, "#redeem-receipt-failed", drawn_with=CJK)
    assert_fits(page, touch=False)
    shot(page, screenshot_dir, "staff-redeem-receipt-failed")
    kiosk.post("/api/language", {"lang": "en"})
    page.wait_for_selector("#redeem-receipt-failed:has-text('out of paper')")
    assert_fits(page, touch=False)
    kiosk.post("/api/language", {"lang": "zh"})
    page.wait_for_selector("#redeem-receipt-failed:has-text('没纸')")

    # A change to the cart starts a new redemption: the old failure is not said again.
    page.locator("[data-item=soap] [data-act=cart-plus]").click()
    assert page.locator("#redeem-receipt-failed").count() == 0
    kiosk.sim("printer", action="load_paper")
    page.click("#signout")
    wait_screen(page, "idle")
