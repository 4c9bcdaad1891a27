"""A log fault on the page (sync.log_check found central's log wrong): a short mark in
the staff screens' status strip in place of "online", the code and message on the staff
menu; villagers are not told, and nothing stops. The fault is
what the uplink records in the ledger file; it is written there by hand here (the
checking itself is tests/sync/test_log_check.py and test_log_crosscheck.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge.ledger import log_record
from edge.ledger.ledger import Ledger
from simulator.kiosk_home import STAFF_PIN
from tests.kiosk.conftest import RunningKiosk
from tests.kiosk.synced import DEVICE
from tests.ui import synced_fixtures
from tests.ui.kiosk_pages import assert_fits, open_page, shot, text, wait_screen

if TYPE_CHECKING:
    from playwright.sync_api import Page


# An online kiosk and its broker (tests/ui/synced_fixtures.py).
broker, kiosk = synced_fixtures.broker, synced_fixtures.kiosk


def test_the_strip_and_the_staff_menu_show_a_log_fault(
    page_800x480: Page, kiosk: RunningKiosk, screenshot_dir: Path
) -> None:
    page = open_page(page_800x480, kiosk)
    wait_screen(page, "idle")
    assert page.locator("[data-status=log]").count() == 0
    message = f"{DEVICE}: central's log of size 40 does not hold entry {DEVICE}:3 as it is here"
    with Ledger.open(kiosk.home.folder / "kiosk.db") as ledger, ledger.store.write() as conn:
        log_record.raise_fault(
            conn, log_record.LogFaultRecord("log_entry_changed", message, 3, 40, 0)
        )
    page.wait_for_function("GP.state.view.status.log_fault !== null", timeout=10_000)
    assert page.locator("[data-status=log], [data-status=network]").count() == 0

    kiosk.scan("staff 王丽")
    wait_screen(page, "staff_pin")
    for digit in STAFF_PIN:
        page.click(f"[data-key='{digit}']")
    page.click("#pin-ok")
    wait_screen(page, "staff_menu")
    assert text(page, "[data-status=log]") == "账本异常"
    assert page.locator("[data-status=network]").count() == 0  # in place of "online"
    fault = page.locator("#log-fault")
    assert fault.get_attribute("data-code") == "log_entry_changed"
    assert f"entry {DEVICE}:3" in fault.inner_text() and "请告诉技术员" in fault.inner_text()
    assert_fits(page)
    shot(page, screenshot_dir, "staff-log-fault")

    # A technician's reset (`greenpass sync log --reset`): the mark goes.
    with Ledger.open(kiosk.home.folder / "kiosk.db") as ledger:
        log_record.reset(ledger.store, 1)
    page.wait_for_selector("#log-fault", state="detached", timeout=10_000)
    assert page.locator("[data-status=log]").count() == 0
    assert text(page, "[data-status=network]") == "在线"
