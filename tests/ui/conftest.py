"""Fixtures for the browser tests: one headless system Chromium per session, a fresh
800×480 zh-CN page per test (the kiosk's screen), and where screenshots go.

    from playwright.sync_api import Page

    def test_welcome(page_800x480: Page, screenshot_dir: Path) -> None:
        page_800x480.set_content(...)
        assert_cjk_renders(page_800x480, "h1")      # from tests.ui.cjk
        page_800x480.screenshot(path=screenshot_dir / "welcome.png")

Without Chromium or Playwright the tests are skipped with the reason; under CI=true
they fail instead (see tests/ui/chromium.py). `playwright` and `browser` come from
tests/browser.py, with package scope (why: there).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from simulator.kiosk_home import KioskHome
from tests.browser import browser_fixtures
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk
from tests.ui.kiosk_pages import open_page, reset, wait_screen

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

KIOSK_VIEWPORT: ViewportSize = {"width": 800, "height": 480}  # the kiosk's 7-inch touchscreen
KIOSK_LOCALE = "zh-CN"

playwright, browser, chromium_executable = browser_fixtures()


@pytest.fixture
def page_800x480(browser: Browser) -> Iterator[Page]:
    """A new page in its own context: 800×480 viewport, locale zh-CN."""
    context = browser.new_context(viewport=KIOSK_VIEWPORT, locale=KIOSK_LOCALE)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig: pytest.Config) -> Path:
    """`build/screenshots` at the repository root (created), for UI tests' PNGs."""
    path = pytestconfig.rootpath / "build" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


# A kiosk page for the kiosk UI tests: each test module defines a module-scoped
# `home` fixture (its seeded kiosk folder); one kiosk process serves the module.


@pytest.fixture(scope="module")
def kiosk(home: KioskHome) -> Iterator[RunningKiosk]:
    k = start_kiosk(home, home.folder.parent / "kiosk.log")
    try:
        yield k
    finally:
        stop_kiosk(k)


@pytest.fixture
def page(page_800x480: Page, kiosk: RunningKiosk) -> Page:
    """The kiosk's page, reset to idle, at 800×480."""
    reset(kiosk)
    open_page(page_800x480, kiosk)
    wait_screen(page_800x480, "idle")
    return page_800x480
