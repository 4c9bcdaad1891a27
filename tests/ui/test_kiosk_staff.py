"""The staff screens in a real Chromium, against a real kiosk with simulated hardware.

Staff sign in as at the kiosk: the staff card is scanned (`/sim/scan`), the PIN is
typed on the page's PIN pad. One kiosk serves the module; each test signs in anew
and works on its own villagers and goods, so the tests do not depend on each other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from simulator.kiosk_home import STAFF_PIN, KioskHome
from tests.kiosk.conftest import RunningKiosk
from tests.ui.cjk import assert_cjk_renders
from tests.ui.kiosk_pages import (
    assert_fits,
    passbook_of,
    shot,
    signed_card,
    text,
    ui_kiosk_home,
    wait_empty_scale,
    wait_screen,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

CJK = "Noto Sans CJK SC"
WANG = "staff 王丽"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> KioskHome:
    return ui_kiosk_home(tmp_path_factory.mktemp("ui-staff") / "K0001")


def type_pin(page: Page, pin: str) -> None:
    for digit in pin:
        page.click(f"[data-key='{digit}']")
    page.click("#pin-ok")


def sign_in(page: Page, kiosk: RunningKiosk, card: str = WANG) -> None:
    kiosk.scan(card)
    wait_screen(page, "staff_pin")
    type_pin(page, STAFF_PIN)
    wait_screen(page, "staff_menu")


def open_task(page: Page, task: str) -> None:
    page.click(f"[data-task={task}]")
    wait_screen(page, f"staff_{task}")


def catalogue(kiosk: RunningKiosk) -> dict[str, dict[str, Any]]:
    r = kiosk.http.get("/api/catalogue")
    assert r.status_code == 200, r.text
    return {item["id"]: item for item in r.json()["items"]}


def deposit(kiosk: RunningKiosk, household: str, category: str, grams: int) -> int:
    """A villager's deposit through the kiosk (before staff sign in); its points."""
    kiosk.scan(f"villager {household}")
    kiosk.wait_view("villager", lambda v: v["screen"] == "villager")
    assert kiosk.post("/api/category", {"category": category}).status_code == 200
    kiosk.wait_view("weighing", lambda v: v["hint"] == "place_bag")
    kiosk.sim("scale", action="place", grams=grams)
    v = kiosk.wait_view("confirmed", lambda v: v["screen"] == "confirmed")
    kiosk.post("/api/cancel")
    kiosk.sim("scale", action="remove")
    wait_empty_scale(kiosk)
    return int(v["result"]["points"])


def test_sign_in_on_the_pin_pad(page: Page, kiosk: RunningKiosk, screenshot_dir: Path) -> None:
    kiosk.scan(WANG)
    wait_screen(page, "staff_pin")
    assert text(page, "#pin-title") == "请输入密码"
    assert page.locator(".keypad .key").count() == 12
    page.click("[data-key='1']")
    page.click("[data-key='2']")
    assert page.locator("#pin-dots .dot.on").count() == 2
    assert "12" not in text(page, "#main")  # the PIN is never shown
    page.click("#pin-clear")
    assert page.locator("#pin-dots .dot.on").count() == 0
    assert page.locator("#pin-ok").is_disabled()
    assert_cjk_renders(page, ".pin-left", drawn_with=CJK)
    assert_fits(page)
    shot(page, screenshot_dir, "staff-pin")

    type_pin(page, "1111")
    page.wait_for_selector("#pin-msg:has-text('密码不对')")
    assert text(page, "#pin-msg") == "密码不对，还可以试 4 次"
    assert kiosk.view()["staff"]["message"] == "bad_pin"
    shot(page, screenshot_dir, "staff-pin-wrong")

    type_pin(page, STAFF_PIN)
    wait_screen(page, "staff_menu")
    assert "王丽 Wang Li" in text(page, "#staff-who")
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
    assert_cjk_renders(page, ".tasks", drawn_with=CJK)
    assert_fits(page)
    shot(page, screenshot_dir, "staff-menu", docs=True)

    page.click("#signout")
    wait_screen(page, "idle")
    assert kiosk.view()["staff"] is None


def test_award_then_redeem_lowers_the_stock(
    page: Page, kiosk: RunningKiosk, screenshot_dir: Path
) -> None:
    rice_before = catalogue(kiosk)["rice-5kg"]["stock"]
    sign_in(page, kiosk)

    open_task(page, "award")
    assert text(page, "#scan-villager") == "请扫描村民的存折"
    kiosk.scan("villager 李家")
    page.wait_for_selector("#desk-villager")
    assert "李*" in text(page, "#desk-villager")
    assert page.locator("#award").is_disabled()
    page.fill("#award-points", "400")
    page.click("button.chip-btn:has-text('打扫卫生')")
    assert page.input_value("#award-reason") == "打扫卫生"
    page.click("#award")
    page.wait_for_selector("#outcome.msg-ok")
    assert text(page, "#outcome") == "已奖励 400 分"
    page.wait_for_selector("#desk-balance:text-is('400')")
    shot(page, screenshot_dir, "staff-award")

    page.click("#to-menu")
    wait_screen(page, "staff_menu")
    open_task(page, "redeem")
    kiosk.scan("villager 李家")
    page.wait_for_selector("[data-item='rice-5kg']")
    rice = page.locator("[data-item='rice-5kg']")
    assert "大米 5公斤" in rice.inner_text()
    assert f"库存 {rice_before}" in rice.inner_text()
    rice.locator("[data-act=cart-plus]").click()
    assert text(page, "#cart-total") == "300"
    assert text(page, "#cart-after") == "100"
    assert_cjk_renders(page, "#catalogue", drawn_with=CJK)
    assert_fits(page, touch=False)
    shot(page, screenshot_dir, "staff-redeem", docs=True)

    page.click("#redeem")
    page.wait_for_selector("#outcome.msg-ok")
    assert text(page, "#outcome") == "已兑换，扣 300 分。新余额 100 分"
    page.wait_for_selector(f"[data-item='rice-5kg']:has-text('库存 {rice_before - 1}')")
    assert text(page, "#desk-balance") == "100"
    assert catalogue(kiosk)["rice-5kg"]["stock"] == rice_before - 1
    shot(page, screenshot_dir, "staff-redeem-done")

    # More than the balance cannot be confirmed.
    soap = page.locator("[data-item=soap] [data-act=cart-plus]")
    for _ in range(5):
        soap.click()
    assert text(page, "#cart-total") == "125"
    assert text(page, "#cart-after") == "-25"
    assert page.locator("#redeem").is_disabled()
    assert text(page, "#cart-why") == "积分不够"


def test_enrol_shows_the_new_passbook_and_a_card_that_scans(
    page: Page, kiosk: RunningKiosk, screenshot_dir: Path
) -> None:
    sign_in(page, kiosk)
    open_task(page, "enrol")
    assert page.locator("#enrol").is_disabled()
    page.fill("#household", "孙家")
    page.click("#enrol")
    page.wait_for_selector("#new-passbook")
    passbook = text(page, "#new-passbook")
    assert re.fullmatch(r"K0001-\d+", passbook), passbook
    assert text(page, "#new-household") == "孙家"
    qr = page.locator("#card-qr")
    qr.wait_for()
    page.wait_for_function("document.getElementById('card-qr').naturalWidth > 0")
    src = qr.get_attribute("src") or ""
    assert src.startswith(f"/api/card.svg?text=GP1%3AP%3Adongcun%3A{passbook}%3AK0001%3A"), src
    assert page.locator("#print").is_visible()
    assert_cjk_renders(page, ".enrol-done .side", drawn_with=CJK)
    assert_fits(page, touch=False)
    shot(page, screenshot_dir, "staff-enrol", docs=True)

    # Printing shows only the card.
    page.emulate_media(media="print")
    assert not page.locator("#app").is_visible()
    assert page.locator("#print-card img").is_visible()
    assert passbook in text(page, "#print-card")
    page.emulate_media(media="screen")

    # The printed card works at the kiosk.
    card = page.evaluate(
        "decodeURIComponent(document.getElementById('card-qr').src.split('text=')[1])"
    )
    page.click("#signout")
    wait_screen(page, "idle")
    kiosk.sim("scan", payload=card)
    wait_screen(page, "villager")
    assert text(page, "#villager-name") == "孙*"


def test_reverse_an_entry(
    page: Page, kiosk: RunningKiosk, home: KioskHome, screenshot_dir: Path
) -> None:
    points = deposit(kiosk, "王家", "paper", 2000)
    assert points == 16
    passbook = passbook_of(home, "王家")
    sign_in(page, kiosk)
    open_task(page, "reverse")
    page.wait_for_selector(".entry")
    row = page.locator(".entry", has_text=passbook).first
    seq = int(row.get_attribute("data-seq") or 0)
    assert "投放" in row.inner_text() and "+16" in row.inner_text()
    assert page.locator("#reverse").is_disabled()
    row.click()
    assert passbook in text(page, "#picked-entry")
    page.click("button.chip-btn:has-text('记错了')")
    page.click("#reverse")
    # Nothing is undone yet: the confirmation says what will be.
    page.wait_for_selector("#reverse-confirm")
    assert text(page, "#confirm-title") == f"撤销第 {seq} 条记录？"
    assert text(page, "#confirm-who") == f"村民：王* · {passbook}"
    assert text(page, "#confirm-what") == "投放 · 废纸 · 2 公斤"
    assert text(page, "#confirm-undoes") == "从余额扣回 16 分"
    assert text(page, "#confirm-reason") == "原因：记错了"
    entries = kiosk.http.get("/api/staff/entries").json()["entries"]
    assert next(e for e in entries if e["seq"] == seq)["reversed_by"] is None
    assert_cjk_renders(page, ".confirm-text", drawn_with=CJK)
    assert_fits(page)
    shot(page, screenshot_dir, "staff-reverse-confirm", docs=True)
    page.click("#reverse-back")  # cancel: back to the list, pick and reason kept
    page.wait_for_selector(f".entry.picked[data-seq='{seq}']")
    assert page.input_value("#reverse-reason") == "记错了"
    page.click("#reverse")
    page.click("#reverse-do")
    page.wait_for_selector("#outcome.msg-ok")
    assert text(page, "#outcome") == f"已撤销第 {seq} 条"
    done = page.locator(f".entry[data-seq='{seq}']")
    done.wait_for()
    page.wait_for_selector(f".entry[data-seq='{seq}'].is-reversed")
    assert done.is_disabled()
    assert "已撤销" in done.inner_text()
    entries = kiosk.http.get("/api/staff/entries").json()["entries"]
    assert next(e for e in entries if e["seq"] == seq)["reversed_by"] is not None
    assert_fits(page, touch=False)
    shot(page, screenshot_dir, "staff-reverse")


def test_restock(page: Page, kiosk: RunningKiosk, screenshot_dir: Path) -> None:
    before = catalogue(kiosk)["vinegar"]["stock"]
    sign_in(page, kiosk)
    open_task(page, "restock")
    page.click("[data-item=vinegar]")
    page.fill("#restock-qty", "12")
    page.click("#restock")
    page.wait_for_selector("#outcome.msg-ok")
    assert text(page, "#outcome") == f"已补货，现在库存 {before + 12}"
    page.wait_for_selector(f"[data-stock=vinegar]:has-text('库存 {before + 12}')")
    assert catalogue(kiosk)["vinegar"]["stock"] == before + 12
    assert_fits(page, touch=False)
    shot(page, screenshot_dir, "staff-restock")


def test_report(page: Page, kiosk: RunningKiosk, screenshot_dir: Path) -> None:
    deposit(kiosk, "刘家", "cardboard", 2500)
    sign_in(page, kiosk)
    open_task(page, "report")
    page.wait_for_selector("#report-categories")
    report = kiosk.http.get("/api/staff/report").json()["report"]
    row = page.locator("#report-categories tr[data-category=cardboard]")
    cardboard = next(c for c in report["categories"] if c["category"] == "cardboard")
    assert row.locator("td").all_inner_texts() == [
        "纸板箱",
        str(cardboard["deposits"]),
        f"{cardboard['grams'] / 1000:.1f}",
        str(cardboard["points"]),
    ]
    assert text(page, "#points-in") == str(report["points_in"])
    assert text(page, "#points-out") == str(report["points_out"])
    assert text(page, "#report-co2").endswith("kg CO₂")
    assert text(page, "#report-entries") == str(report["entries"])
    assert page.locator("#report-stock li").count() == 5
    assert_cjk_renders(page, "#report-categories", drawn_with=CJK)
    assert_fits(page, touch=False)
    shot(page, screenshot_dir, "staff-report", docs=True)


def test_unknown_staff_and_lockout(
    page: Page, kiosk: RunningKiosk, home: KioskHome, screenshot_dir: Path
) -> None:
    kiosk.sim("scan", payload=signed_card(home, "ghost", kind="staff"))
    wait_screen(page, "staff_pin")
    type_pin(page, STAFF_PIN)
    wait_screen(page, "idle")
    page.wait_for_selector(".notice:has-text('没有这个工作人员')")

    kiosk.scan("staff 周强")  # the last test: 周强 stays locked for five minutes
    wait_screen(page, "staff_pin")
    for left in (4, 3, 2, 1):
        type_pin(page, "0000")
        page.wait_for_selector(f"#pin-msg:text-is('密码不对，还可以试 {left} 次')")
    type_pin(page, "0000")
    wait_screen(page, "idle")
    page.wait_for_selector(".notice:has-text('密码错误太多次')")
    assert kiosk.view()["staff"]["message"] == "staff_locked"
    shot(page, screenshot_dir, "staff-locked")
