"""Replacing a lost card at the kiosk's staff desk, in a real Chromium against a real
kiosk with simulated hardware: find the household, confirm, print the new card; the
old card is refused at once and the new one carries the balance. Refusals too.

The lost card cannot be scanned, so staff find the passbook in a list (by number or
name, names masked). One kiosk serves the module; each test uses its own households.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from simulator.kiosk_home import KioskHome
from tests.kiosk.conftest import RunningKiosk
from tests.ui.cjk import assert_cjk_renders
from tests.ui.kiosk_pages import (
    assert_fits,
    passbook_of,
    set_status,
    shot,
    text,
    ui_kiosk_home,
    wait_screen,
)
from tests.ui.test_kiosk_staff import CJK, deposit, open_task, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

HOUSEHOLDS = ("张家", "李家", "赵家", "王家", "张大明")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> KioskHome:
    h = ui_kiosk_home(tmp_path_factory.mktemp("ui-replace") / "K0001", households=HOUSEHOLDS)
    set_status(h, passbook_of(h, "赵家"), "revoked")  # reported lost to the office earlier
    return h


def pick(page: Page, passbook: str) -> None:
    page.click(f".passbook[data-passbook='{passbook}']")
    page.wait_for_selector(f".passbook.picked[data-passbook='{passbook}']")


def test_replace_a_lost_card(
    page: Page, kiosk: RunningKiosk, home: KioskHome, screenshot_dir: Path
) -> None:
    points = deposit(kiosk, "张家", "paper", 2500)
    assert points > 0
    old = passbook_of(home, "张家")
    sign_in(page, kiosk)
    tasks = page.locator(".task").all_inner_texts()
    assert tasks == [
        "兑换商品",
        "开户",
        "补办存折",
        "奖励积分",
        "撤销记录",
        "补货",
        "今日报表",
        "补打小票",
    ]
    assert_fits(page)
    shot(page, screenshot_dir, "staff-menu-replace")

    open_task(page, "replace")
    assert text(page, ".staff-title") == "补办存折"
    page.wait_for_selector(f".passbook[data-passbook='{old}']")
    # Every passbook of the village, names masked; a revoked one cannot be picked.
    assert page.locator(".passbook").count() == len(HOUSEHOLDS)
    zhao = page.locator(f".passbook[data-passbook='{passbook_of(home, '赵家')}']")
    assert zhao.is_disabled() and "已停用" in zhao.inner_text()
    assert "张家" not in text(page, "#replace-list")
    assert page.locator("#replace-next").is_disabled()
    assert text(page, "#picked-passbook") == "请选择丢失的存折"

    # Found by any part of the number or of the name (the list shows it masked).
    page.fill("#replace-q", old.lower())
    page.wait_for_function("document.querySelectorAll('.passbook').length === 1")
    page.fill("#replace-q", "张")
    page.wait_for_function("document.querySelectorAll('.passbook').length === 2")
    assert page.locator(".passbook .row-name").all_inner_texts() == ["张*", "张*明"]
    pick(page, old)
    assert f"余额 {points}" in text(page, "#picked-passbook")
    assert "张*" in text(page, "#picked-passbook")
    assert_cjk_renders(page, "#replace-list", drawn_with=CJK)
    assert_fits(page)
    shot(page, screenshot_dir, "staff-replace", docs=True)

    # Confirm: the old card stops working; going back keeps the pick.
    page.click("#replace-next")
    page.wait_for_selector("#replace-confirm")
    assert text(page, "#confirm-title") == "给 张* 补办新存折？"
    assert text(page, "#confirm-old") == f"旧存折 {old} 马上停止使用，在所有回收点都不能再用。"
    assert text(page, "#confirm-balance") == f"余额 {points} 分转到新存折。"
    assert_cjk_renders(page, "#replace-confirm", drawn_with=CJK)
    assert_fits(page)
    shot(page, screenshot_dir, "staff-replace-confirm", docs=True)
    page.click("#replace-back")
    page.wait_for_selector(f".passbook.picked[data-passbook='{old}']")
    page.click("#replace-next")
    page.click("#replace-do")

    # The new card, shown and printed as after an enrolment, with the balance carried.
    page.wait_for_selector("#new-passbook")
    new = text(page, "#new-passbook")
    assert re.fullmatch(r"K0001-\d+", new) and new != old, new
    assert text(page, "#new-household") == "张*"
    assert text(page, "#new-balance") == str(points)
    assert text(page, "#old-stopped") == f"旧存折 {old} 已停用"
    qr = page.locator("#card-qr")
    qr.wait_for()
    page.wait_for_function("document.getElementById('card-qr').naturalWidth > 0")
    src = qr.get_attribute("src") or ""
    assert src.startswith(f"/api/card.svg?text=GP1%3AP%3Adongcun%3A{new}%3AK0001%3A"), src
    assert_cjk_renders(page, ".enrol-done .side", drawn_with=CJK)
    assert_fits(page, touch=False)
    shot(page, screenshot_dir, "staff-replace-done", docs=True)
    page.emulate_media(media="print")
    assert not page.locator("#app").is_visible()
    assert page.locator("#print-card img").is_visible()
    printed = text(page, "#print-card")
    assert new in printed and "张家" in printed  # the household's own card: its name
    page.emulate_media(media="screen")
    card = page.evaluate(
        "decodeURIComponent(document.getElementById('card-qr').src.split('text=')[1])"
    )

    # The ledger: one enrol naming the old card, its revocation, the balance moved.
    entries = kiosk.http.get("/api/staff/entries").json()["entries"]
    assert all(e["passbook_id"] not in (old, new) for e in entries if e["kind"] != "deposit")
    listed = kiosk.http.get("/api/staff/passbooks", params={"q": "张家"}).json()["passbooks"]
    assert {p["passbook"]: (p["status"], p["replaced_by"], p["balance"]) for p in listed} == {
        new: ("active", None, points),
        old: ("revoked", new, 0),
    }

    # The old card is refused at once; the new one works and shows the balance.
    page.click("#signout")
    wait_screen(page, "idle")
    kiosk.scan("villager 张家")
    wait_screen(page, "refused")
    assert text(page, "#refusal-title") == "这本存折已停用"
    shot(page, screenshot_dir, "replace-old-card-refused")
    page.click("#done")
    wait_screen(page, "idle")
    kiosk.sim("scan", payload=card)
    wait_screen(page, "villager")
    assert text(page, "#villager-name") == "张*"
    assert text(page, "#balance") == str(points)
    shot(page, screenshot_dir, "replace-new-card")


def test_refusals_in_english(
    page: Page, kiosk: RunningKiosk, home: KioskHome, screenshot_dir: Path
) -> None:
    li, zhao, wang = (passbook_of(home, h) for h in ("李家", "赵家", "王家"))
    assert kiosk.post("/api/staff/replace", {"passbook": li}).status_code == 403
    assert kiosk.http.get("/api/staff/passbooks").status_code == 403
    sign_in(page, kiosk)
    page.click("#lang")
    page.wait_for_selector("[data-task=replace]:has-text('Replace lost card')")
    open_task(page, "replace")
    assert page.get_attribute("#replace-q", "placeholder") == "Passbook number or name"
    pick(page, li)
    page.click("#replace-next")
    assert text(page, "#confirm-title") == "Replace 李*'s passbook?"
    assert "stops working now, at every recycling point" in text(page, "#confirm-old")

    # Replaced meanwhile (another clerk, the same kiosk): refused, and the list shows it.
    r = kiosk.post("/api/staff/replace", {"passbook": li})
    assert r.status_code == 200, r.text
    new = r.json()["passbook"]
    page.click("#replace-do")
    page.wait_for_selector("#outcome.msg-bad")
    assert text(page, "#outcome") == "This passbook was already replaced"
    row = page.locator(f".passbook[data-passbook='{li}']")
    page.wait_for_selector(f".passbook[data-passbook='{li}'].is-revoked")
    assert row.is_disabled() and f"Replaced: {new}" in row.inner_text()
    assert page.locator("#new-passbook").count() == 0
    assert text(page, "#picked-passbook") == "Pick the lost passbook"
    assert page.locator("#replace-next").is_disabled()
    assert_fits(page)
    shot(page, screenshot_dir, "staff-replace-refused-en")

    # The other screens in English fit too.
    pick(page, wang)
    page.click("#replace-next")
    assert_fits(page)
    page.click("#replace-do")
    page.wait_for_selector("#new-passbook")
    assert text(page, "#old-stopped") == f"The old passbook {wang} no longer works"
    assert_fits(page, touch=False)
    shot(page, screenshot_dir, "staff-replace-done-en")

    # Refused by the kiosk whatever the page shows.
    for passbook, code in [
        (li, "already_replaced"),
        (zhao, "revoked_passbook"),
        ("K0001-9999", "unknown_passbook"),
    ]:
        r = kiosk.post("/api/staff/replace", {"passbook": passbook})
        assert (r.status_code, r.json()["code"]) == (409, code), r.text
    assert kiosk.post("/api/staff/replace", {"passbook": 7}).status_code == 400
    assert kiosk.post("/api/staff/task", {"task": "menu"}).status_code == 200
