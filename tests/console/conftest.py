"""The console's browser tests: their own Playwright and Chromium (tests/browser.py)."""

from tests.browser import browser_fixtures

playwright, browser, chromium_executable = browser_fixtures()
