"""Finding and launching the system Chromium for the browser tests.

We never run `playwright install` (it downloads a browser build, which this project's
machines cannot fetch); the tests drive Debian's (or Raspberry Pi OS's) `chromium`
package, the browser the kiosk itself runs, through `executable_path`.

A missing browser or Playwright skips the test with the reason, except under `CI=true`,
where it fails: CI must not pass by skipping (the policy of tests/central/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

# Debian and Raspberry Pi OS bookworm name it `chromium`; older Raspberry Pi OS and
# Ubuntu, `chromium-browser`.
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def unavailable(reason: str) -> NoReturn:
    """Skip the test with `reason`, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def chromium_path() -> str:
    """The system Chromium's launcher, or skip (fail under CI) when it is not installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    unavailable(
        "Chromium is not installed (Debian: apt-get install chromium; or scripts/bootstrap)"
    )


def launch_chromium(
    playwright: Playwright, executable: str, *, env: Mapping[str, str] | None = None
) -> Browser:
    """A headless Chromium; `env` replaces the browser's environment (e.g. FONTCONFIG_FILE)."""
    # Chromium's own sandbox refuses to start as root (CI and this project's machines).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(
        executable_path=executable,
        headless=True,
        args=args,
        env=dict(env) if env is not None else None,
    )
