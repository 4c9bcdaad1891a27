"""No screen of the kiosk shows "undefined", "NaN", "null", an unfilled {placeholder} or
an empty value where a number belongs: every villager screen, every refusal, every
staff screen, in both languages (`assert_no_gaps` in tests/ui/kiosk_pages.py).

The screens come from a real kiosk with simulated hardware, so what the page renders
is what the kiosk's API answers (a field the API drops shows up here); refusals and
hints the simulated hardware cannot produce are rendered from the kiosk's own view
with only the screen and the code changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from simulator.kiosk_home import HOUSEHOLDS, STAFF_PIN, KioskHome
from tests.kiosk.conftest import RunningKiosk
from tests.ui.kiosk_pages import (
    assert_fits,
    assert_no_gaps,
    shot,
    text,
    ui_kiosk_home,
    wait_screen,
)
from tests.ui.test_kiosk_staff import WANG, deposit, open_task, type_pin
from tests.ui.test_kiosk_villager import HINTS, REFUSALS

if TYPE_CHECKING:
    from playwright.sync_api import Page

# One household per language and test, so that cooldowns and caps do not meet.
VILLAGER = {"zh": "孙家", "en": "周家"}
SERVED = {"zh": "吴家", "en": "郑家"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> KioskHome:
    extra = (*VILLAGER.values(), *SERVED.values())
    return ui_kiosk_home(tmp_path_factory.mktemp("ui-gaps") / "K0001", HOUSEHOLDS + extra)


def use_language(page: Page, kiosk: RunningKiosk, lang: str) -> None:
    assert kiosk.post("/api/language", {"lang": lang}).status_code == 200
    page.wait_for_selector(f"html[lang={'en' if lang == 'en' else 'zh-CN'}]")


def hint(page: Page, name: str) -> None:
    page.wait_for_selector(f"[data-hint={name}]", timeout=10_000)


def render(page: Page, view: dict[str, Any]) -> None:
    page.evaluate("(v) => GP.render(v)", view)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_villager_screen_shows_a_gap(page: Page, kiosk: RunningKiosk, lang: str) -> None:
    use_language(page, kiosk, lang)
    assert_no_gaps(page, "idle")
    kiosk.scan(f"villager {VILLAGER[lang]}")
    wait_screen(page, "villager")
    assert_no_gaps(page, "villager")

    page.click("[data-cat=cardboard]")
    hint(page, "place_bag")
    assert_no_gaps(page, "weighing: place the bag")
    kiosk.sim("scale", action="place", grams=120)
    hint(page, "too_light")
    assert_no_gaps(page, "weighing: too light")
    kiosk.sim("scale", action="wobble", grams=2400)
    hint(page, "hold_still")
    assert_no_gaps(page, "weighing: hold still")
    kiosk.sim("scale", action="overload")
    hint(page, "over_capacity")
    assert_no_gaps(page, "weighing: over capacity")
    kiosk.sim("scale", action="unplug")
    hint(page, "scale_disconnected")
    assert_no_gaps(page, "weighing: scale unplugged")
    kiosk.sim("scale", action="replug")
    kiosk.sim("scale", action="remove")
    hint(page, "place_bag")
    kiosk.sim("scale", action="place", grams=2500)
    wait_screen(page, "confirmed")
    assert_no_gaps(page, "confirmed")

    page.click("#another")
    wait_screen(page, "villager")
    assert page.locator(".today li").count() == 1
    assert_no_gaps(page, "villager, with today's bag")
    page.click("[data-cat=cardboard]")
    hint(page, "remove_bag")
    assert_no_gaps(page, "weighing: remove the last bag")
    kiosk.sim("scale", action="remove")
    hint(page, "place_bag")

    # Every refusal and hint, the committing screen and a syncing kiosk's strip: the
    # kiosk's own view with the screen changed (nothing else is invented).
    view = kiosk.view()
    page.evaluate("GP.disconnect()")
    for code in [*REFUSALS, "a_new_code"]:
        render(page, {**view, "screen": "refused", "refusal": code})
        page.wait_for_selector(f"[data-refusal={code}]")
        assert_no_gaps(page, f"refused: {code}")
        render(page, {**view, "screen": "refused", "refusal": code, "villager": None})
        assert_no_gaps(page, f"refused: {code}, no villager")
    for name in HINTS:
        render(page, {**view, "screen": "weighing", "hint": name})
        hint(page, name)
        assert_no_gaps(page, f"weighing: {name}")
    render(page, {**view, "screen": "committing"})
    assert_no_gaps(page, "committing")
    status = {**view["status"], "online": False, "backlog": 7, "clock_ok": False}
    render(page, {**view, "screen": "idle", "villager": None, "status": status})
    assert_no_gaps(page, "idle, offline with a backlog")


def pick_and_check(page: Page, selector: str, where: str) -> None:
    page.click(selector)
    assert_no_gaps(page, where)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_staff_screen_shows_a_gap(
    page: Page, kiosk: RunningKiosk, lang: str, screenshot_dir: Path
) -> None:
    served = SERVED[lang]
    deposit(kiosk, served, "paper", 2000)  # an entry to reverse and a line in the report
    use_language(page, kiosk, lang)
    kiosk.scan(WANG)
    wait_screen(page, "staff_pin")
    assert_no_gaps(page, "PIN pad")
    type_pin(page, "0000")
    page.wait_for_selector("#pin-msg:not(:empty)")
    assert_no_gaps(page, "PIN pad, a wrong PIN")
    type_pin(page, STAFF_PIN)
    wait_screen(page, "staff_menu")
    assert_no_gaps(page, "staff menu")

    open_task(page, "award")
    assert_no_gaps(page, "award: scan the passbook")
    kiosk.scan(f"villager {served}")
    page.wait_for_selector("#desk-villager")
    assert_no_gaps(page, "award")
    page.fill("#award-points", "100")
    page.fill("#award-reason", "test")
    page.click("#award")
    page.wait_for_selector("#outcome.msg-ok")
    assert_no_gaps(page, "award: done")

    page.click("#to-menu")
    open_task(page, "redeem")
    kiosk.scan(f"villager {served}")
    page.wait_for_selector("[data-item=soap]")
    assert_no_gaps(page, "redeem")
    pick_and_check(page, "[data-item=soap] [data-act=cart-plus]", "redeem: a soap in the cart")
    page.click("#redeem")
    page.wait_for_selector("#outcome.msg-ok")
    assert_no_gaps(page, "redeem: done")

    page.click("#to-menu")
    open_task(page, "enrol")
    assert_no_gaps(page, "enrol")
    page.fill("#household", f"{served}二")
    page.click("#enrol")
    page.wait_for_selector("#new-passbook")
    assert_no_gaps(page, "enrol: done")
    new = text(page, "#new-passbook")

    page.click("#to-menu")
    open_task(page, "replace")
    page.wait_for_selector(f".passbook[data-passbook='{new}']")
    assert_no_gaps(page, "replace: the list")
    pick_and_check(page, f".passbook[data-passbook='{new}']", "replace: picked")
    pick_and_check(page, "#replace-next", "replace: confirm")
    page.click("#replace-do")
    page.wait_for_selector("#replace-again")
    assert_no_gaps(page, "replace: done")

    page.click("#to-menu")
    open_task(page, "reverse")
    page.wait_for_selector(".entry")
    assert_no_gaps(page, "reverse: the list")
    row = page.locator(".entry:not([disabled])", has_text="+16").first
    seq = row.get_attribute("data-seq")
    pick_and_check(page, f".entry[data-seq='{seq}']", "reverse: picked")
    page.click("button.chip-btn[data-act=set]")
    page.click("#reverse")
    page.wait_for_selector("#reverse-confirm")
    assert_no_gaps(page, "reverse: confirm")
    page.click("#reverse-do")
    page.wait_for_selector("#outcome.msg-ok")
    assert_no_gaps(page, "reverse: done")
    # The longest confirmation: a redemption gives points back and goods to the stock.
    redeemed = page.locator(".entry:not([disabled])", has_text="-25").first
    pick_and_check(page, f".entry[data-seq='{redeemed.get_attribute('data-seq')}']", "picked")
    page.click("button.chip-btn[data-act=set]")
    page.click("#reverse")
    page.wait_for_selector("#confirm-undoes")
    assert_no_gaps(page, "reverse: confirm a redemption's")
    assert_fits(page)
    shot(page, screenshot_dir, f"staff-reverse-confirm-redeem-{lang}")
    page.click("#reverse-back")

    page.click("#to-menu")
    open_task(page, "restock")
    page.wait_for_selector("[data-item=vinegar]")
    assert_no_gaps(page, "restock")
    pick_and_check(page, "[data-item=vinegar]", "restock: picked")
    page.click("#restock")
    page.wait_for_selector("#outcome.msg-ok")
    assert_no_gaps(page, "restock: done")

    page.click("#to-menu")
    open_task(page, "report")
    page.wait_for_selector("#report-categories")
    assert_no_gaps(page, "report")
    report = kiosk.http.get("/api/staff/report").json()["report"]
    assert text(page, "#report-entries") == str(report["entries"])

    # The technician's states, which show on staff screens only (a view of our own).
    page.click("#to-menu")
    wait_screen(page, "staff_menu")
    view = kiosk.view()
    fault = {"code": "ack_beyond_head", "message": "central acknowledged 99"}
    status = {**view["status"], "online": False, "backlog": 7, "clock_ok": False}
    page.evaluate("GP.disconnect()")
    render(page, {**view, "status": {**status, "sync_fault": fault, "log_fault": fault}})
    page.wait_for_selector("[data-status=backlog]")
    assert_no_gaps(page, "staff menu with every technician's state")
    kiosk.post("/api/staff/signout")
