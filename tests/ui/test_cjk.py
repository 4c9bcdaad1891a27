"""tests/ui/cjk.py can fail, and passes only on real glyphs.

What these prove:
- the comparison core (`glyph_problems`) on synthetic bitmaps: identical boxes, boxes
  equal to the reference tofu, and blank cells fail; distinct glyphs pass, even ones a
  single pixel apart (己 已 巳), so it is no looser than it must be;
- the whole helper in a real Chromium with **no CJK font at all** (fontconfig limited
  to one Latin font through FONTCONFIG_FILE), text in a font family that cannot exist:
  the page really draws boxes (DevTools says the Latin font drew every character) and
  the helper fails, naming the tofu;
- the whole helper on a real zh-CN page with this machine's fonts: passes, drawn with
  Noto Sans CJK SC; and it fails on a web font that did not load, on a `drawn_with=`
  font that was not used, and on an element with no Chinese in it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.ui.chromium import launch_chromium, unavailable
from tests.ui.cjk import CELL, Bitmap, assert_cjk_renders, glyph_problems, picture, probe_cjk

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

STACK = '"Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", sans-serif'
TEXT = "请扫描绿色存折 己已巳 未末 Scan your green passbook"
NO_SUCH_FONT = '"Green Passbook No Such Font"'

# A Latin-only font every Debian has (fontconfig-config depends on DejaVu).
LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def page_html(font_family: str, text: str = TEXT, head: str = "") -> str:
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">{head}'
        f"<style>#t {{ font-family: {font_family}; font-size: 24px }}</style></head>"
        f'<body><p id="t">{text}</p></body></html>'
    )


# --- the comparison core, on synthetic bitmaps ------------------------------------


def blank() -> list[list[str]]:
    return [["."] * CELL for _ in range(CELL)]


def freeze(cells: list[list[str]]) -> Bitmap:
    return tuple("".join(row) for row in cells)


def box() -> Bitmap:
    """A missing-glyph box: a rectangle outline."""
    cells = blank()
    for y in range(6, 34):
        for x in range(10, 30):
            if y in (6, 33) or x in (10, 29):
                cells[y][x] = "#"
    return freeze(cells)


def glyph(seed: int) -> Bitmap:
    """A made-up glyph: a few random horizontal and vertical strokes."""
    rng = random.Random(seed)
    cells = blank()
    for _ in range(6):
        a, b = sorted(rng.sample(range(4, 36), 2))
        at = rng.randrange(4, 36)
        for i in range(a, b):
            if rng.random() < 0.5:
                cells[at][i] = "#"
            else:
                cells[i][at] = "#"
    return freeze(cells)


def test_distinct_glyphs_pass() -> None:
    assert glyph_problems({ch: glyph(i) for i, ch in enumerate("请扫描绿色存折")}, box()) == []


def flip(bitmap: Bitmap, x: int, y: int) -> Bitmap:
    cells = [list(row) for row in bitmap]
    cells[y][x] = "." if cells[y][x] == "#" else "#"
    return freeze(cells)


def test_glyphs_a_pixel_apart_pass() -> None:
    ji = glyph(1)
    assert glyph_problems({"己": ji, "已": flip(ji, 5, 20)}, box()) == []


def test_boxes_like_the_reference_fail() -> None:
    problems = glyph_problems({ch: box() for ch in "请扫描"}, box())
    assert problems == ["drawn as the missing-glyph box (tofu): 请 扫 描"]


def test_one_character_like_the_reference_fails() -> None:
    assert glyph_problems({"请": box()}, box()) == ["drawn as the missing-glyph box (tofu): 请"]


def test_identical_images_fail_even_unlike_the_reference() -> None:
    problems = glyph_problems({"请": glyph(7), "扫": glyph(7), "描": glyph(8)}, box())
    assert problems == ["different characters drawn identically (tofu): 请 扫"]


def test_blank_cells_fail() -> None:
    problems = glyph_problems({"请": freeze(blank()), "扫": glyph(1)}, freeze(blank()))
    assert problems == ["blank (no ink): 请"]


def test_picture_crops_to_the_ink() -> None:
    shown = picture(box()).splitlines()
    assert len(shown) == 28 and shown[0] == "#" * 20 and shown[1] == "#" + "." * 18 + "#"
    assert picture(freeze(blank())) == "(blank)"


# --- a real Chromium with no CJK font ----------------------------------------------


@pytest.fixture(scope="module")
def tofu_browser(
    playwright: Playwright, chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """Chromium whose fontconfig knows one Latin font and nothing else."""
    latin = next((Path(p) for p in LATIN_FONTS if Path(p).exists()), None)
    if latin is None:
        unavailable(f"no Latin-only font to build a no-CJK browser from: {LATIN_FONTS}")
    root = tmp_path_factory.mktemp("no-cjk-fonts")
    (root / "fonts").mkdir()
    (root / "fonts" / latin.name).symlink_to(latin)
    conf = root / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        f"  <dir>{root / 'fonts'}</dir>\n  <cachedir>{root / 'cache'}</cachedir>\n"
        "</fontconfig>\n"
    )
    browser = launch_chromium(
        playwright, chromium_executable, env={**os.environ, "FONTCONFIG_FILE": str(conf)}
    )
    yield browser
    browser.close()


def test_fails_when_no_cjk_font_exists(tofu_browser: Browser, screenshot_dir: Path) -> None:
    page = tofu_browser.new_page(viewport={"width": 800, "height": 480}, locale="zh-CN")
    page.set_content(page_html(NO_SUCH_FONT))
    page.screenshot(path=screenshot_dir / "cjk-tofu.png")
    # The environment really is tofu: one Latin font drew every Chinese character.
    probe = probe_cjk(page, "#t")
    assert len(probe.fonts) == 1 and "CJK" not in next(iter(probe.fonts)), probe.fonts
    with pytest.raises(AssertionError, match=r"missing-glyph box \(tofu\): 请 扫 描 绿"):
        assert_cjk_renders(page, "#t")
    page.close()


# --- a real zh-CN page with this machine's fonts ------------------------------------


def test_passes_on_real_glyphs(page_800x480: Page) -> None:
    page_800x480.set_content(page_html(STACK))
    probe = assert_cjk_renders(page_800x480, "#t", drawn_with="Noto Sans CJK SC")
    assert probe.chars == "请扫描绿色存折己已巳未末"
    assert probe.lang == "zh-CN"
    # The probe's temporary grid is gone again.
    assert page_800x480.locator("[data-gp-cjk-probe]").count() == 0


def test_fails_on_another_font_than_drawn_with(page_800x480: Page) -> None:
    page_800x480.set_content(page_html('"Noto Sans CJK JP"'))
    assert_cjk_renders(page_800x480, "#t")  # real glyphs, Japanese forms
    with pytest.raises(AssertionError, match="not all drawn with Noto Sans CJK SC"):
        assert_cjk_renders(page_800x480, "#t", drawn_with="Noto Sans CJK SC")


def test_fails_on_a_web_font_that_did_not_load(page_800x480: Page) -> None:
    broken = "<style>@font-face { font-family: Broken; src: url(data:font/woff2,AAAA) }</style>"
    page_800x480.set_content(page_html(f'"Broken", {STACK}', head=broken))
    with pytest.raises(AssertionError, match=r"web fonts .* did not load: Broken \(error\)"):
        assert_cjk_renders(page_800x480, "#t")


def test_fails_without_chinese_text(page_800x480: Page) -> None:
    page_800x480.set_content(page_html(STACK, text="Scan your green passbook"))
    with pytest.raises(AssertionError, match="no Chinese"):
        assert_cjk_renders(page_800x480, "#t")
