"""A sync fault on the page: a short mark in the staff screens' status strip, the code
and message on the staff menu; villagers' screens neither show it nor are held up by it.

A real kiosk syncing to a real Mosquitto; central's acks are forged by hand (an
impossible one, then a sane one) by a paho client logged in as central.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from devkit.mqtt_broker import Broker
from simulator.kiosk_home import STAFF_PIN
from tests.kiosk.conftest import RunningKiosk
from tests.kiosk.synced import DEVICE, head_of
from tests.sync.status_watch import StatusWatch, forged_ack
from tests.ui import synced_fixtures
from tests.ui.kiosk_pages import assert_fits, open_page, shot, text, wait_screen

if TYPE_CHECKING:
    from playwright.sync_api import Page


# An online kiosk and its broker (tests/ui/synced_fixtures.py).
broker, kiosk = synced_fixtures.broker, synced_fixtures.kiosk


def test_the_strip_and_the_staff_menu_show_a_sync_fault(
    page_800x480: Page, kiosk: RunningKiosk, broker: Broker, screenshot_dir: Path
) -> None:
    page = open_page(page_800x480, kiosk)
    wait_screen(page, "idle")
    assert page.locator("[data-status=sync]").count() == 0
    watch = StatusWatch(broker, DEVICE)
    head = head_of(kiosk.home)
    watch.forge(forged_ack(DEVICE, "ok", head + 1, first_seq=1, last_seq=head + 1))
    kiosk.wait_view("the sync fault", lambda v: v["status"]["sync_fault"] is not None)
    page.wait_for_function("GP.state.view.status.sync_fault !== null")
    # Not the villagers' business: their screens neither show it nor stop.
    assert page.locator("[data-status=sync], [data-status=network]").count() == 0
    kiosk.scan("villager 张家")
    wait_screen(page, "villager")
    assert page.locator(".cat").count() > 0 and text(page, "#villager-name") == "张*"
    assert page.locator("[data-status=sync]").count() == 0
    page.click("#done")
    wait_screen(page, "idle")

    # Staff (and the technician they call) see the code and the message.
    kiosk.scan("staff 王丽")
    wait_screen(page, "staff_pin")
    for digit in STAFF_PIN:
        page.click(f"[data-key='{digit}']")
    page.click("#pin-ok")
    wait_screen(page, "staff_menu")
    assert text(page, "[data-status=sync]") == "同步故障"  # in place of online / offline
    assert page.locator("[data-status=network]").count() == 0
    fault = page.locator("#sync-fault")
    assert fault.get_attribute("data-code") == "ack_beyond_head"
    assert f"ledger ends at {head}" in fault.inner_text()
    assert "请告诉技术员" in fault.inner_text()
    assert_fits(page)
    shot(page, screenshot_dir, "staff-sync-fault", docs=True)

    # Central answers sanely: the fault goes.
    watch.forge(forged_ack(DEVICE, "ok", head, first_seq=1, last_seq=head))
    page.wait_for_selector("#sync-fault", state="detached")
    assert page.locator("[data-status=sync]").count() == 0
    assert text(page, "[data-status=network]") == "在线"
    page.click("#signout")
    wait_screen(page, "idle")
