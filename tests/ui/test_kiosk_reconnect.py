"""The page survives the kiosk process restarting: a "reconnecting" mark, never a blank page.

The kiosk is stopped under the open page (as systemd restarts it after an update or
a crash) and started again on the same port; the page must keep the last screen,
show the mark while the stream is down, and then follow the new process by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from devkit.mqtt_broker import free_port
from simulator.kiosk_home import make_kiosk_home
from tests.kiosk.conftest import start_kiosk, stop_kiosk
from tests.ui.kiosk_pages import UI_KIOSK_KEYS, open_page, shot, text, wait_screen

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_the_page_reconnects_after_a_kiosk_restart(
    page_800x480: Page, tmp_path: Path, screenshot_dir: Path
) -> None:
    home = make_kiosk_home(
        tmp_path / "K0001", "K0001", "dongcun", ui_port=free_port(), extra_kiosk_keys=UI_KIOSK_KEYS
    )
    log = tmp_path / "kiosk.log"
    kiosk = start_kiosk(home, log)
    try:
        page = open_page(page_800x480, kiosk)
        wait_screen(page, "idle")
        assert page.locator("#conn").is_hidden()
    finally:
        stop_kiosk(kiosk)

    page.wait_for_selector("#conn", state="visible", timeout=10_000)
    assert text(page, "#conn") == "正在重新连接…"
    assert text(page, "#prompt") == "请扫描绿色存折"  # the last screen stays
    shot(page, screenshot_dir, "reconnecting")

    kiosk = start_kiosk(home, log)
    try:
        page.wait_for_selector("#conn", state="hidden", timeout=15_000)
        kiosk.scan("villager 张家")  # the page follows the new process's views
        wait_screen(page, "villager")
        assert text(page, "#villager-name") == "张*"
    finally:
        stop_kiosk(kiosk)
