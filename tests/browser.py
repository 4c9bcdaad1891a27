"""The browser tests' Playwright and Chromium, as fixtures each browser package
(tests/ui, tests/console) declares for itself with package scope:

    playwright, browser, chromium_executable = browser_fixtures()

Package scope, not session: Playwright's sync API keeps an event loop running in the
main thread while it lives, so a session-wide instance would break every later
`asyncio.run()` in the suite (the kiosk tests'), and two live instances cannot
coexist. Each package starts one and stops it when its last test is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.ui.chromium import chromium_path, launch_chromium, unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright


def browser_fixtures() -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    @pytest.fixture(scope="package")
    def chromium_executable() -> str:
        """Path of the system Chromium (skips, or fails under CI, when absent)."""
        return chromium_path()

    @pytest.fixture(scope="package")
    def playwright() -> Iterator[Playwright]:
        """Playwright's sync API, for this package's tests."""
        try:
            # Imported here so that the rest of the suite runs without Playwright.
            from playwright.sync_api import sync_playwright  # noqa: PLC0415
        except ImportError as exc:
            unavailable(f"Playwright is not installed ({exc}); run scripts/bootstrap")
        with sync_playwright() as pw:
            yield pw

    @pytest.fixture(scope="package")
    def browser(playwright: Playwright, chromium_executable: str) -> Iterator[Browser]:
        """One headless system Chromium for this package's tests."""
        b = launch_chromium(playwright, chromium_executable)
        yield b
        b.close()

    return playwright, browser, chromium_executable
