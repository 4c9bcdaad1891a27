"""The browser-test infrastructure itself: the kiosk-sized zh-CN page, Chinese drawn with
real glyphs in the font stack the UI uses, and screenshots where UI tests keep them."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

from tests.ui.cjk import assert_cjk_renders

if TYPE_CHECKING:
    from playwright.sync_api import Page

FONT_STACK = '"Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", sans-serif'
WELCOME = f"""<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><style>
  body {{ margin: 0; font-family: {FONT_STACK}; background: #f3f8ef; }}
  h1 {{ margin: 0; padding: 160px 0 0; font-size: 48px; text-align: center; color: #1d5e20; }}
</style></head>
<body><h1 id="welcome">请扫描绿色存折 Scan your green passbook</h1></body>
</html>"""


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk
    return width, height


def test_kiosk_page(page_800x480: Page) -> None:
    assert page_800x480.viewport_size == {"width": 800, "height": 480}
    assert page_800x480.evaluate("navigator.language") == "zh-CN"


def test_chinese_renders_and_is_screenshotted(page_800x480: Page, screenshot_dir: Path) -> None:
    page_800x480.set_content(WELCOME)
    probe = assert_cjk_renders(page_800x480, "#welcome")
    assert probe.chars == "请扫描绿色存折"
    shot = screenshot_dir / "browser-infra-welcome.png"
    page_800x480.screenshot(path=shot)
    assert png_size(shot) == (800, 480)
