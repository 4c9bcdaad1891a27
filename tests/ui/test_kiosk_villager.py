"""The villager's screens in a real Chromium, against a real kiosk with simulated hardware.

One kiosk serves the whole module; each test starts from the idle screen (`reset`)
and uses its own households, so deposits of one test (cooldowns, daily caps) do not
touch another's. Hardware is driven only through the kiosk's `/sim/...` controls.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from simulator.kiosk_home import HOUSEHOLDS, KioskHome
from sync.keys import Ed25519PrivateKey
from tests.kiosk.conftest import RunningKiosk
from tests.ui.cjk import assert_cjk_renders
from tests.ui.kiosk_pages import (
    assert_fits,
    card_index,
    enable_spoken_prompts,
    open_page,
    passbook_of,
    reset,
    set_status,
    shot,
    signed_card,
    text,
    ui_kiosk_home,
    wait_screen,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CJK = "Noto Sans CJK SC"
# 张家 … 刘家, then households of our own so that every test has fresh villagers.
EXTRA = ("孙家", "周家", "吴家", "郑家", "冯家")
REVOKED, PAUSED = "赵家", "陈家"
HAN = re.compile("[\u3400-\u9fff]")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> KioskHome:
    h = ui_kiosk_home(tmp_path_factory.mktemp("ui-villager") / "K0001", HOUSEHOLDS + EXTRA)
    enable_spoken_prompts(h)
    set_status(h, passbook_of(h, REVOKED), "revoked")
    set_status(h, passbook_of(h, PAUSED), "inactive")
    return h


def hint(page: Page, name: str) -> None:
    page.wait_for_selector(f"[data-hint={name}]", timeout=10_000)


def start_deposit(page: Page, kiosk: RunningKiosk, household: str, category: str) -> None:
    kiosk.scan(f"villager {household}")
    wait_screen(page, "villager")
    page.click(f"[data-cat={category}]")
    wait_screen(page, "weighing")


def spoken(page: Page) -> list[str]:
    said: list[list[str]] = page.evaluate("window.__spoken")
    return [s[1] for s in said]


# --- the deposit ----------------------------------------------------------------------


def test_idle_screen_asks_for_the_passbook(page: Page, screenshot_dir: Path) -> None:
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert text(page, "#prompt") == "请扫描绿色存折"
    assert page.locator(".idle-qr svg[data-icon=qr]").is_visible()
    assert page.locator(".idle-arrow svg[data-icon=arrow_down]").is_visible()
    assert text(page, "#lang") == "English"
    assert_cjk_renders(page, "#prompt", drawn_with=CJK)
    assert_cjk_renders(page, ".idle-text .sub", drawn_with=CJK)
    assert_fits(page)
    assert "请扫描绿色存折" in spoken(page)
    shot(page, screenshot_dir, "idle", docs=True)


def test_a_deposit_from_scan_to_confirmed(
    page: Page, kiosk: RunningKiosk, screenshot_dir: Path
) -> None:
    kiosk.scan("villager 张家")
    wait_screen(page, "villager")
    assert text(page, "#villager-name") == "张*"
    assert text(page, "#balance") == "0"
    assert page.locator(".cat").count() == 12
    assert "纸板箱" in text(page, "[data-cat=cardboard]")
    assert "10 分/公斤" in text(page, "[data-cat=cardboard]")
    assert_cjk_renders(page, ".cats", drawn_with=CJK)
    assert_cjk_renders(page, ".who", drawn_with=CJK)
    assert_fits(page)
    assert "请选择垃圾种类" in spoken(page)
    shot(page, screenshot_dir, "villager", docs=True)

    page.click("[data-cat=cardboard]")
    wait_screen(page, "weighing")
    hint(page, "place_bag")
    assert text(page, "#hint") == "请把袋子放到秤上"
    assert text(page, "#weight") == "0.00"
    assert "纸板箱" in text(page, "#title")
    assert_cjk_renders(page, "#hint", drawn_with=CJK)
    assert_fits(page)
    shot(page, screenshot_dir, "weighing", docs=True)

    kiosk.sim("scale", action="place", grams=3250)
    wait_screen(page, "confirmed")
    assert text(page, "#earned") == "+32 分"
    assert text(page, "#new-balance") == "余额 32 分"
    assert "3.25 公斤" in text(page, ".result-text")
    assert text(page, "#co2") == "减少 11.2 kg CO₂ 排放"  # 3.25 kg × 3.461 = 11,248 g
    assert page.locator(".result-ok .result-icon svg[data-icon=check_circle]").is_visible()
    view = kiosk.view()
    assert view["result"]["points"] == 32 and view["villager"]["balance"] == 32
    assert_cjk_renders(page, ".result-text", drawn_with=CJK)
    assert_fits(page)
    assert "谢谢！得到 32 分" in spoken(page)
    shot(page, screenshot_dir, "confirmed", docs=True)

    # "Put another bag": the categories again, with the new balance and today's bag.
    page.click("#another")
    wait_screen(page, "villager")
    assert text(page, "#balance") == "32"
    assert "今天已投放 1 次" in text(page, ".who")
    assert_fits(page)
    page.click("#done")
    wait_screen(page, "idle")
    assert kiosk.view()["screen"] == "idle"


def test_the_weighing_hints(page: Page, kiosk: RunningKiosk, screenshot_dir: Path) -> None:
    start_deposit(page, kiosk, "李家", "paper")  # paper: at least 200 g
    kiosk.sim("scale", action="place", grams=120)
    hint(page, "too_light")
    assert text(page, "#hint") == "太轻了，最少要 200 克"
    assert text(page, "#weight") == "0.12"
    assert_fits(page)
    shot(page, screenshot_dir, "hint-too-light")

    kiosk.sim("scale", action="wobble", grams=2400)
    hint(page, "hold_still")
    assert text(page, "#hint") == "请不要碰秤，正在称重…"
    assert page.locator("[data-hint=hold_still] svg.pulse").count() == 1
    shot(page, screenshot_dir, "hint-hold-still", docs=True)

    kiosk.sim("scale", action="overload")
    hint(page, "over_capacity")
    assert "太重了" in text(page, "#hint")
    shot(page, screenshot_dir, "hint-over-capacity")

    kiosk.sim("scale", action="remove")
    hint(page, "place_bag")

    kiosk.sim("scale", action="unplug")
    hint(page, "scale_disconnected")
    assert text(page, "#hint") == "秤没有连接，请找工作人员"
    assert text(page, "#weight") == "–.––"
    page.wait_for_selector("[data-status=scale].st-bad")
    assert text(page, "[data-status=scale]") == "秤 未连接"
    assert_fits(page)
    shot(page, screenshot_dir, "hint-scale-disconnected")
    kiosk.sim("scale", action="replug")
    hint(page, "place_bag")
    page.wait_for_selector("[data-status=scale].st-ok")

    page.click("#back")
    wait_screen(page, "villager")
    assert kiosk.view()["screen"] == "villager"


# --- refusals -------------------------------------------------------------------------


def card_for(refusal: str, home: KioskHome) -> dict[str, Any]:
    """What to send to /sim/scan so that the kiosk refuses the card with `refusal`."""
    if refusal == "not_a_card":
        return {"payload": "https://example.com/not-a-passbook"}
    if refusal == "forged":
        return {"forged": card_index(home, "villager 张家")}
    if refusal == "unknown_issuer":
        stranger = Ed25519PrivateKey.generate()
        return {"payload": signed_card(home, "K0001-0001", key=stranger, key_id="X9")}
    if refusal == "foreign_village":
        return {"payload": signed_card(home, "K0001-0001", village="xicun")}
    if refusal == "unknown_passbook":
        return {"payload": signed_card(home, "K0001-9999")}
    if refusal == "revoked_passbook":
        return {"payload": home.card(f"villager {REVOKED}")}
    assert refusal == "inactive_villager"
    return {"payload": home.card(f"villager {PAUSED}")}


CARD_REFUSALS = {
    "not_a_card": ("这不是绿色存折", "请扫描存折上的二维码"),
    "forged": ("这张卡无效", "卡可能坏了或被改过，请找工作人员"),
    "unknown_issuer": ("这张卡无法识别", "不是本村发的卡，请找工作人员"),
    "foreign_village": ("这是别的村的存折", "请到自己村的回收点使用"),
    "unknown_passbook": ("找不到这本存折", "还没有开户，请找工作人员"),
    "revoked_passbook": ("这本存折已停用", "可能已挂失，请找工作人员"),
    "inactive_villager": ("这个账户暂停使用", "请找工作人员"),
}


@pytest.mark.parametrize("refusal", list(CARD_REFUSALS))
def test_a_refused_card_says_why(
    refusal: str, page: Page, kiosk: RunningKiosk, home: KioskHome, screenshot_dir: Path
) -> None:
    kiosk.sim("scan", **card_for(refusal, home))
    wait_screen(page, "refused")
    assert kiosk.view()["refusal"] == refusal
    title, detail = CARD_REFUSALS[refusal]
    assert text(page, "#refusal-title") == title
    assert text(page, "#refusal-detail") == detail
    assert page.locator(f"[data-refusal={refusal}] .result-icon svg").is_visible()
    assert text(page, "#done") == "好的"
    assert_cjk_renders(page, ".result-text", drawn_with=CJK)
    assert_fits(page)
    shot(page, screenshot_dir, f"refused-{refusal.replace('_', '-')}", docs=refusal == "forged")
    page.click("#done")
    wait_screen(page, "idle")


def test_refused_deposits_too_heavy_daily_cap_cooldown(
    page: Page, kiosk: RunningKiosk, screenshot_dir: Path
) -> None:
    start_deposit(page, kiosk, "王家", "cardboard")
    kiosk.sim("scale", action="place", grams=60_000)  # within the scale, over a bag's 50 kg
    wait_screen(page, "refused")
    assert text(page, "#refusal-title") == "一次放太多了"
    assert text(page, "#refusal-detail") == "请分成几袋来放"
    assert_fits(page)
    shot(page, screenshot_dir, "refused-too-heavy")

    # "Try another kind": the categories; the old bag must come off first.
    page.click("#another")
    wait_screen(page, "villager")
    page.click("[data-cat=aluminium]")  # daily cap 5 kg
    hint(page, "remove_bag")
    assert text(page, "#hint") == "请先把秤上的东西拿下来"
    kiosk.sim("scale", action="remove")
    hint(page, "place_bag")
    kiosk.sim("scale", action="place", grams=6000)
    page.wait_for_selector("[data-refusal=daily_cap]", timeout=10_000)
    assert text(page, "#refusal-title") == "今天这一种已经收满了"
    assert text(page, "#refusal-detail") == "请明天再来"
    shot(page, screenshot_dir, "refused-daily-cap")

    page.click("#another")
    page.click("[data-cat=paper]")
    kiosk.sim("scale", action="remove")
    hint(page, "place_bag")
    kiosk.sim("scale", action="place", grams=1000)
    wait_screen(page, "confirmed")
    assert text(page, "#earned") == "+8 分"
    page.click("#another")
    page.click("[data-cat=paper]")  # the same kind again at once: cooldown
    kiosk.sim("scale", action="remove")
    hint(page, "place_bag")
    kiosk.sim("scale", action="place", grams=1200)
    page.wait_for_selector("[data-refusal=cooldown]", timeout=10_000)
    assert text(page, "#refusal-title") == "请稍等一会儿"
    assert_fits(page)
    shot(page, screenshot_dir, "refused-cooldown")
    page.click("#done")
    wait_screen(page, "idle")


def test_refusals_the_hardware_cannot_produce(page: Page, kiosk: RunningKiosk) -> None:
    """storage_error (a full disk) and a code this page does not know yet: plain words."""
    view = kiosk.view()
    page.evaluate("GP.disconnect()")
    villager = {"passbook": "K0001-0001", "name": "张*", "balance": 5, "today": []}
    base = {**view, "screen": "refused", "category": "paper", "villager": villager}
    page.evaluate("(v) => GP.render(v)", {**base, "refusal": "storage_error"})
    assert text(page, "#refusal-title") == "没有保存成功，没有记分"
    assert text(page, "#refusal-detail") == "请找工作人员"
    assert page.locator("#another").count() == 0  # nothing to retry: ask staff
    page.evaluate("(v) => GP.render(v)", {**base, "refusal": "too_light"})
    assert text(page, "#refusal-detail") == "这一种最少要 200 克"
    page.evaluate("(v) => GP.render(v)", {**base, "refusal": "a_new_code"})
    assert text(page, "#refusal-title") == "出了点问题"
    assert text(page, "#refusal-detail") == "请找工作人员"
    assert text(page, ".refusal-code") == "a_new_code"


# --- language, status strip, screen sizes ---------------------------------------------


def test_language_switch_zh_en_zh(page: Page, kiosk: RunningKiosk, screenshot_dir: Path) -> None:
    page.click("#lang")
    page.wait_for_selector("html[lang=en]")
    assert kiosk.view()["lang"] == "en"
    assert text(page, "#prompt") == "Scan your green passbook"
    assert text(page, "#lang") == "中文"
    assert not HAN.search(text(page, "#main")), text(page, "#main")
    assert text(page, "[data-status=scale]") == "Scale OK"
    shot(page, screenshot_dir, "idle-en")

    kiosk.scan("villager 孙家")
    wait_screen(page, "villager")
    assert "Cardboard" in text(page, "[data-cat=cardboard]")
    assert "10 points/kg" in text(page, "[data-cat=cardboard]")
    assert text(page, "#done") == "Done"
    assert_fits(page)
    shot(page, screenshot_dir, "villager-en")

    page.click("#lang")
    page.wait_for_selector("html[lang=zh-CN]")
    assert kiosk.view()["lang"] == "zh"
    assert "纸板箱" in text(page, "[data-cat=cardboard]")
    assert text(page, "#done") == "完成"
    assert_cjk_renders(page, ".cats", drawn_with=CJK)


TECHNICIAN_STATES = ("network", "backlog", "sync", "log", "clock")


def test_the_status_strip(page: Page, kiosk: RunningKiosk, screenshot_dir: Path) -> None:
    """Villagers see what changes what they do (the scale, the scanner); the
    technician's states (network, backlog, faults, clock) show to staff only."""
    assert page.locator("[data-status=network]").count() == 0  # no sync on this kiosk
    assert text(page, "[data-status=scale]") == "秤 正常"
    assert text(page, "[data-status=scanner]") == "扫码器 正常"
    # Whatever this machine's clock says (the demo's often is not synchronised).
    assert page.locator("[data-status=clock]").count() == 0
    assert "dongcun" in text(page, ".st-where")

    kiosk.sim("scanner", action="unplug")
    try:
        page.wait_for_selector("[data-status=scanner].st-bad", timeout=10_000)
        assert text(page, "[data-status=scanner]") == "扫码器 未连接"
    finally:
        kiosk.sim("scanner", action="replug")
    page.wait_for_selector("[data-status=scanner].st-ok", timeout=10_000)

    # A kiosk that syncs, offline, with a backlog, faults and an unset clock (views of
    # our own): nothing of it on the villagers' screens ...
    view = kiosk.view()
    page.evaluate("GP.disconnect()")
    status = {"online": False, "backlog": 7, "scale": "ok", "scanner": "ok", "clock_ok": False}
    villager = {"passbook": "K0001-0001", "name": "张*", "balance": 5, "today": []}
    for screen in ("idle", "villager", "weighing", "refused"):
        page.evaluate(
            "(v) => GP.render(v)",
            {**view, "screen": screen, "villager": villager, "status": status},
        )
        for state in TECHNICIAN_STATES:
            assert page.locator(f"[data-status={state}]").count() == 0, (screen, state)
        assert text(page, "[data-status=scale]") == "秤 正常"
    # ... and all of it on the staff screens, the clock on the menu in words.
    staff = {"id": "wang", "name": "王丽", "role": "admin", "task": None, "message": ""}
    staff_view = {**view, "screen": "staff", "staff": staff, "status": status}
    page.evaluate("(v) => GP.render(v)", staff_view)
    assert text(page, "[data-status=network]") == "离线"
    assert text(page, "[data-status=backlog]") == "7 条待上传"
    assert text(page, "[data-status=clock]") == "时钟未同步"
    assert "时钟未同步" in text(page, "#clock-fault") and "技术员" in text(page, "#clock-fault")
    assert_fits(page)
    page.evaluate("(v) => GP.render(v)", {**staff_view, "status": {**status, "online": True}})
    assert text(page, "[data-status=network]") == "在线"
    # The worst case for the menu's height: a sync fault, a log fault and the clock.
    fault = {"code": "ack_beyond_head", "message": "central acknowledged 99; ledger ends at 12"}
    log = {"code": "log_entry_changed", "message": "central's log of size 40 differs at 3"}
    for lang in ("zh", "en"):
        worst = {**status, "sync_fault": fault, "log_fault": log}
        page.evaluate("(v) => GP.render(v)", {**staff_view, "lang": lang, "status": worst})
        assert page.locator("#sync-fault, #log-fault, #clock-fault").count() == 3
        shot(page, screenshot_dir, f"staff-menu-all-faults-{lang}")
        assert_fits(page)


def test_villager_screens_fit_1024x600(
    browser: Browser, kiosk: RunningKiosk, screenshot_dir: Path
) -> None:
    reset(kiosk)
    context = browser.new_context(viewport={"width": 1024, "height": 600}, locale="zh-CN")
    try:
        page = open_page(context.new_page(), kiosk)
        wait_screen(page, "idle")
        assert_fits(page)
        kiosk.scan("villager 周家")
        wait_screen(page, "villager")
        assert_fits(page)
        assert_cjk_renders(page, ".cats", drawn_with=CJK)
        shot(page, screenshot_dir, "villager-1024x600")
        page.click("[data-cat=glass]")
        hint(page, "place_bag")
        assert_fits(page)
        kiosk.sim("scale", action="place", grams=900)
        wait_screen(page, "confirmed")
        assert text(page, "#earned") == "+1 分"
        assert_fits(page)
        shot(page, screenshot_dir, "confirmed-1024x600")
    finally:
        context.close()


REFUSALS = [*CARD_REFUSALS, "daily_cap", "cooldown", "too_light", "too_heavy", "storage_error"]
HINTS = [
    "place_bag",
    "hold_still",
    "remove_bag",
    "unsettled",
    "too_light",
    "over_capacity",
    "scale_disconnected",
    "scale_error",
]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_message_fits_in_both_languages(
    page: Page, kiosk: RunningKiosk, lang: str, screenshot_dir: Path
) -> None:
    """Each refusal and weighing hint, in each language, with its icon and without
    scrolling or cut-off text (views of our own, rendered by the page)."""
    view = kiosk.view()
    page.evaluate("GP.disconnect()")
    villager = {"passbook": "K0001-0001", "name": "张*", "balance": 12345, "today": []}
    base = {**view, "lang": lang, "category": "plastic_pet", "villager": villager}
    for code in REFUSALS:
        page.evaluate("(v) => GP.render(v)", {**base, "screen": "refused", "refusal": code})
        assert page.locator(f"[data-refusal={code}] .result-icon svg").is_visible()
        assert text(page, "#refusal-title") and text(page, "#refusal-detail")
        assert_fits(page)
        if code == "foreign_village":
            shot(page, screenshot_dir, f"refused-foreign-village-{lang}")
    for name in HINTS:
        weight = {"grams": 149_950, "stable": False}
        page.evaluate(
            "(v) => GP.render(v)", {**base, "screen": "weighing", "hint": name, "weight": weight}
        )
        assert page.locator(f"[data-hint={name}] svg").is_visible()
        assert_fits(page)
        if name == "unsettled":
            shot(page, screenshot_dir, f"hint-unsettled-{lang}")
    result: dict[str, Any] = {"points": 1234, "co2e_g": 123_456, "balance": 98765}
    result.update(grams=4_950, category="batteries")
    page.evaluate("(v) => GP.render(v)", {**base, "screen": "confirmed", "result": result})
    assert_fits(page)
    shot(page, screenshot_dir, f"confirmed-large-{lang}")
    page.evaluate("(v) => GP.render(v)", {**base, "screen": "committing"})
    assert_fits(page)
