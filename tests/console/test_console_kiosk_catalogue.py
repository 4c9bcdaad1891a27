"""End to end through real processes: a catalogue edit made in the console (Chromium) —
a new price and a picture uploaded from a photo — reaches a running kiosk over a real
Mosquitto within one state push, and its staff redeem screen shows it (issue 12)."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from devkit.mqtt_broker import Broker, free_port
from simulator.kiosk_home import STAFF_PIN, make_kiosk_home
from sync.enrol import enrol, save_credentials
from sync.keys import load_or_create_key, public_bytes
from tests.central_process import running_central
from tests.console.test_console_browser import BROKER_USERS, DESKTOP, PW, SHOTS, Offline, login
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk
from tests.sync.harness import wait_for
from tests.ui.kiosk_pages import UI_KIOSK_KEYS, open_page, wait_screen

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CATALOGUE = """\
[[item]]
id = "rice-5kg"
name_zh = "大米 5公斤"
name_en = "Rice 5 kg"
points = 300

[[item]]
id = "soap"
name_zh = "肥皂"
name_en = "Soap bar"
points = 25
picture = "soap.png"
"""


def photo(path: Path, colour: tuple[int, int, int]) -> Path:
    img = Image.new("RGB", (800, 600), colour)
    img.paste((255, 255, 255), (200, 150, 600, 450))
    img.save(path)
    return path


def items(kiosk: RunningKiosk) -> dict[str, dict[str, Any]]:
    r = kiosk.http.get("/api/catalogue")
    assert r.status_code == 200, r.text
    return {i["id"]: i for i in r.json()["items"]}


def test_a_console_catalogue_edit_appears_on_the_kiosk_redeem_screen(
    tmp_path: Path, browser: Browser
) -> None:
    with (
        Broker(tmp_path / "broker", BROKER_USERS) as broker,
        running_central(tmp_path, broker) as c,
    ):
        c.gp("central", "village", "add", "dongcun", "--name-zh", "东村", "--name-en", "Dongcun")
        photo(tmp_path / "soap.png", (30, 90, 200))
        (tmp_path / "cat.toml").write_text(CATALOGUE, encoding="utf-8")
        c.gp("central", "catalogue", "set", "--village", "dongcun", str(tmp_path / "cat.toml"))
        token = c.token("K0001", "dongcun")  # before a county account retires the admin token
        (tmp_path / "pw").write_text(PW + "\n")
        c.gp("central", "account", "add", "ops", "--role", "county",
             "--password-file", str(tmp_path / "pw"))  # fmt: skip

        folder = tmp_path / "K0001"
        key = load_or_create_key(folder / "device.key")
        creds = enrol(c.url, token, "K0001", public_bytes(key), ca_file=c.ca)
        sync = replace(save_credentials(folder, creds, folder / "device.key"), ack_timeout_s=5.0)
        home = make_kiosk_home(
            folder, "K0001", "dongcun", ui_port=free_port(), sync=sync,
            extra_kiosk_keys=UI_KIOSK_KEYS,
        )  # fmt: skip
        kiosk = start_kiosk(home, tmp_path / "kiosk.log")
        console = Offline(browser, DESKTOP)
        screen = browser.new_context(viewport={"width": 800, "height": 480}, locale="zh-CN")
        try:
            # The file's catalogue, with its picture, reaches the kiosk first.
            wait_for(
                "central's catalogue at the kiosk",
                lambda: (
                    items(kiosk).keys() == {"rice-5kg", "soap"}
                    and items(kiosk)["soap"]["picture"] is not None
                ),
                timeout=30,
            )
            assert items(kiosk)["rice-5kg"]["picture"] is None

            page = console.page
            login(page, c, "ops")
            page.goto(f"{c.url}/villages/dongcun/catalogue")
            rice = page.locator("form[data-testid=item-rice-5kg]")
            rice.locator("input[name=points]").fill("280")
            rice.locator("button[type=submit]").click()
            page.wait_for_selector("[data-testid=saved]")
            pic = page.locator("form[data-testid=picture-rice-5kg]")
            pic.locator("input[type=file]").set_input_files(
                str(photo(tmp_path / "rice.jpg", (200, 160, 40)))
            )
            saved = time.monotonic()
            pic.locator("button[type=submit]").first.click()
            pic.locator("img[data-testid=picture-img]").wait_for()
            page.screenshot(path=SHOTS / "console-catalogue-pictures.png", full_page=True)

            wait_for(
                "the console's edit at the kiosk",
                lambda: (
                    items(kiosk)["rice-5kg"]["points"] == 280
                    and items(kiosk)["rice-5kg"]["picture"] is not None
                ),
                timeout=30,
            )
            # One push: central pushes a changed village after its debounce (0.2 s
            # here) and polls for other workers' changes every few seconds.
            assert time.monotonic() - saved < 15

            kpage = open_page(screen.new_page(), kiosk)
            wait_screen(kpage, "idle")
            kiosk.scan("staff 王丽")
            wait_screen(kpage, "staff_pin")
            for digit in STAFF_PIN:
                kpage.click(f"[data-key='{digit}']")
            kpage.click("#pin-ok")
            wait_screen(kpage, "staff_menu")
            kpage.click("[data-task=redeem]")
            wait_screen(kpage, "staff_redeem")
            kiosk.scan("villager 李家")
            row = kpage.locator("[data-item='rice-5kg']")
            row.wait_for()
            assert "280" in row.inner_text()
            img = row.locator("img[data-testid=item-picture]")
            kpage.wait_for_function(
                "el => el.complete && el.naturalWidth > 0", arg=img.element_handle()
            )
            # The picture shown is the thumbnail central made of the console's upload.
            src = img.get_attribute("src")
            assert src is not None
            jpeg = kiosk.http.get(src)
            assert jpeg.headers["content-type"] == "image/jpeg"
            with Image.open(io.BytesIO(jpeg.content)) as thumb:
                r, g, b = thumb.convert("RGB").getpixel((2, 2))  # type: ignore[misc]
                assert r > 150 and b < 100, (r, g, b)  # the rice photo's yellow, not soap's blue
            assert kpage.locator("[data-item='soap'] img[data-testid=item-picture]").count() == 1
            assert kpage.locator("[data-item='vinegar']").count() == 0  # central's list only
            kpage.screenshot(path=SHOTS / "kiosk-staff-redeem-pictures.png")
            assert not console.blocked and not console.dialogs
        finally:
            screen.close()
            console.context.close()
            stop_kiosk(kiosk)
