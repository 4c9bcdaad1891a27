"""Prove that Chinese text on a page is drawn with real glyphs, not tofu.

When no installed font has a character, Chromium draws the primary font's missing-glyph
("notdef") box instead: every missing character becomes the same empty rectangle (or
nothing at all). A screenshot compare against a golden image would not notice a
machine where *all* CJK is boxes as long as the golden was made there too, and
`document.fonts.check()` returns true for any system font, present or not. So:

1. In the page, each distinct Han character of the element (at most `max_chars`) is
   drawn alone in a cell of a temporary grid, with the element's computed font
   (family stack, weight, style, stretch) and language, beside one reference cell
   holding a permanently unassigned code point (U+FDD0, a noncharacter), which no font
   has: that cell *is* this font stack's tofu.
2. The grid is screenshotted (what Chromium really painted), and each cell is turned
   into a black-and-white bitmap.
3. `glyph_problems` requires every character to have ink, to differ from the reference
   tofu, and to differ from every other character (distinct Han characters never share
   a glyph; tofu boxes are pixel-identical, since every cell sits on whole pixels).
4. Web fonts (`@font-face`) in the element's stack must have loaded for those
   characters (`document.fonts.check()`), since a kiosk is offline and a font file
   that did not load is a bug even when a system font covers for it.

The fonts Chromium used for the characters (DevTools' `CSS.getPlatformFontsForNode`) are
reported alongside, to say *why* when it fails; `drawn_with=` can require one family.
That matters: given only `sans-serif` (or a family that is not installed) and lang
zh-CN, Debian 12's Chromium draws Chinese with Noto Sans CJK **JP** (Japanese glyph
forms), so the UI's stack must name the SC font first. Cost: one screenshot of a
~320×160 grid, about 0.2 s.

It cannot catch a font that draws every character as a different but wrong picture
(a "last resort" font showing code points in boxes): `CjkProbe.fonts` names such a font.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

Bitmap = tuple[str, ...]
"""A cell's pixels, one string per row: `#` ink, `.` background."""

NOTDEF = "\ufdd0"  # a noncharacter: never assigned, so no font has a glyph for it
MAX_CHARS = 30
CELL = 40  # px, a square cell per character
FONT_PX = 28  # drawn size; large enough that similar characters (己 已 巳) differ
COLUMNS = 8  # 8 × 40 px = 320 px: fits any phone-sized viewport
INK_LUMINANCE = 128  # darker than this (black on white) counts as ink
MIN_INK = 8  # pixels; fewer is a blank cell

_PROBE_JS = """
async (el, {maxChars, token, cell, columns, fontPx, notdef}) => {
  await document.fonts.ready;
  const chars = [];
  for (const ch of (el.textContent || "").match(/\\p{Script=Han}/gu) || []) {
    if (chars.length >= maxChars) break;
    if (!chars.includes(ch)) chars.push(ch);
  }
  const cs = getComputedStyle(el);
  const family = cs.fontFamily;
  const lang = el.closest("[lang]")?.getAttribute("lang") || "";

  // @font-face families in the element's stack: load them for these characters.
  const unquote = (s) => s.trim().replace(/^["']|["']$/g, "");
  const names = family.split(",").map(unquote);
  const spec = `${cs.fontStyle} ${cs.fontWeight} ${fontPx}px ${family}`;
  const webFonts = [...document.fonts].filter((f) => names.includes(unquote(f.family)));
  let webFontsLoaded = null;
  if (webFonts.length && chars.length) {
    try { await document.fonts.load(spec, chars.join("")); } catch (e) { /* checked below */ }
    webFontsLoaded = document.fonts.check(spec, chars.join(""));
  }

  const grid = document.createElement("div");
  grid.setAttribute("data-gp-cjk-probe", token);
  if (lang) grid.setAttribute("lang", lang);
  grid.style.cssText = "all: initial";
  Object.assign(grid.style, {
    position: "fixed", left: "0", top: "0", zIndex: "2147483647", display: "grid",
    gridTemplateColumns: `repeat(${columns}, ${cell}px)`, gridAutoRows: `${cell}px`,
    background: "#fff",
  });
  for (const ch of [notdef, ...chars]) {
    const span = document.createElement("span");
    span.textContent = ch;
    span.style.cssText = "all: initial";
    Object.assign(span.style, {
      display: "block", overflow: "hidden", whiteSpace: "pre", color: "#000",
      paddingLeft: `${(cell - fontPx) / 2}px`, lineHeight: `${cell}px`,
      fontSize: `${fontPx}px`, fontFamily: family, fontStyle: cs.fontStyle,
      fontWeight: cs.fontWeight, fontStretch: cs.fontStretch,
    });
    grid.appendChild(span);
  }
  document.documentElement.appendChild(grid);
  return {
    chars: chars.join(""), family, lang, webFontsLoaded,
    webFonts: webFonts.map((f) => `${unquote(f.family)} (${f.status})`),
  };
}
"""

_BITMAPS_JS = """
async ({png, cell, columns, count, inkLuminance}) => {
  const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
  const image = await createImageBitmap(new Blob([bytes], {type: "image/png"}));
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  ctx.drawImage(image, 0, 0);
  const cells = [];
  for (let i = 0; i < count; i++) {
    const x0 = (i % columns) * cell, y0 = Math.floor(i / columns) * cell;
    const px = ctx.getImageData(x0, y0, cell, cell).data;
    const rows = [];
    for (let y = 0; y < cell; y++) {
      let row = "";
      for (let x = 0; x < cell; x++) {
        const k = (y * cell + x) * 4;
        const lum = 0.299 * px[k] + 0.587 * px[k + 1] + 0.114 * px[k + 2];
        row += lum < inkLuminance ? "#" : ".";
      }
      rows.push(row);
    }
    cells.push(rows);
  }
  return cells;
}
"""


@dataclass(frozen=True)
class CjkProbe:
    """What `probe_cjk` saw of one element."""

    chars: str  # the distinct Han characters drawn (at most MAX_CHARS)
    family: str  # the element's computed font-family
    lang: str  # the nearest lang attribute ("" if none)
    glyphs: dict[str, Bitmap]  # each character drawn alone
    notdef: Bitmap  # the reference: this font stack's missing-glyph box
    fonts: dict[str, int]  # font family Chromium drew the characters with → glyph count
    web_fonts: tuple[str, ...]  # @font-face families in the stack, "Family (status)"
    web_fonts_loaded: bool | None  # document.fonts.check() for them; None if none


def ink(bitmap: Bitmap) -> int:
    return sum(row.count("#") for row in bitmap)


def glyph_problems(
    glyphs: Mapping[str, Bitmap], notdef: Bitmap, *, min_ink: int = MIN_INK
) -> list[str]:
    """Why these renderings are not real glyphs; empty when every one is.

    `glyphs` maps distinct characters to their bitmaps, all drawn the same way as the
    `notdef` reference (a character no font has)."""
    problems: list[str] = []
    blank = [ch for ch, bm in glyphs.items() if ink(bm) < min_ink]
    if blank:
        problems.append(f"blank (no ink): {' '.join(blank)}")
    as_notdef = [ch for ch, bm in glyphs.items() if bm == notdef and ch not in blank]
    if as_notdef:
        problems.append(f"drawn as the missing-glyph box (tofu): {' '.join(as_notdef)}")
    by_image: dict[Bitmap, list[str]] = {}
    for ch, bm in glyphs.items():
        if ch not in blank and ch not in as_notdef:
            by_image.setdefault(bm, []).append(ch)
    for same in by_image.values():
        if len(same) > 1:
            problems.append(f"different characters drawn identically (tofu): {' '.join(same)}")
    return problems


def picture(bitmap: Bitmap) -> str:
    """The bitmap cropped to its ink, for a failure message."""
    rows = [i for i, row in enumerate(bitmap) if "#" in row]
    if not rows:
        return "(blank)"
    cols = [i for row in bitmap for i, c in enumerate(row) if c == "#"]
    return "\n".join(row[min(cols) : max(cols) + 1] for row in bitmap[rows[0] : rows[-1] + 1])


def probe_cjk(page: Page, selector: str, *, max_chars: int = MAX_CHARS) -> CjkProbe:
    """Draw the Han characters of the element `selector` (a Playwright selector matching
    one element) alone, and return what was painted."""
    token = secrets.token_hex(8)
    info: dict[str, Any] = page.locator(selector).evaluate(
        _PROBE_JS,
        {
            "maxChars": max_chars,
            "token": token,
            "cell": CELL,
            "columns": COLUMNS,
            "fontPx": FONT_PX,
            "notdef": NOTDEF,
        },
    )
    grid = f'[data-gp-cjk-probe="{token}"]'
    try:
        chars: str = info["chars"]
        png = page.locator(grid).screenshot(scale="css", animations="disabled", caret="hide")
        cells: list[list[str]] = page.evaluate(
            _BITMAPS_JS,
            {
                "png": base64.b64encode(png).decode("ascii"),
                "cell": CELL,
                "columns": COLUMNS,
                "count": 1 + len(chars),
                "inkLuminance": INK_LUMINANCE,
            },
        )
        fonts = _platform_fonts(page, f"{grid} > span:not(:first-child)") if chars else {}
    finally:
        page.locator(grid).evaluate("(el) => el.remove()")
    return CjkProbe(
        chars=chars,
        family=info["family"],
        lang=info["lang"],
        glyphs={ch: tuple(cell) for ch, cell in zip(chars, cells[1:], strict=True)},
        notdef=tuple(cells[0]),
        fonts=fonts,
        web_fonts=tuple(info["webFonts"]),
        web_fonts_loaded=info["webFontsLoaded"],
    )


def _platform_fonts(page: Page, selector: str) -> dict[str, int]:
    """The system or web fonts Chromium drew the matched elements' text with, and how
    many glyphs each (empty on other browsers)."""
    counts: dict[str, int] = {}
    if page.context.browser is None or page.context.browser.browser_type.name != "chromium":
        return counts
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        nodes = cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})
        cdp.send("CSS.enable")
        for node in nodes["nodeIds"]:
            for font in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]:
                name = font["familyName"]
                counts[name] = counts.get(name, 0) + int(font["glyphCount"])
    finally:
        cdp.detach()
    return counts


def assert_cjk_renders(
    page: Page, selector: str, *, drawn_with: str | None = None, max_chars: int = MAX_CHARS
) -> CjkProbe:
    """Fail unless the Chinese text of the element `selector` is drawn with real glyphs,
    and, given `drawn_with` (e.g. "Noto Sans CJK SC"), all of it with that font family.

    Checks at most `max_chars` distinct Han characters; fails if the element has none
    (a wrong selector must not pass). Returns the probe, whose `fonts` say which fonts
    drew the characters."""
    # After a form's navigation the element can exist before the page's stylesheet
    # has loaded (the default serif font then draws it): wait for the page's load.
    page.wait_for_load_state("load")
    probe = probe_cjk(page, selector, max_chars=max_chars)
    fonts = ", ".join(f"{name} ({n} glyphs)" for name, n in probe.fonts.items())
    where = (
        f"{selector!r} (font-family {probe.family}; lang {probe.lang or 'unset'}; "
        f"drawn with {fonts or 'unknown fonts'})"
    )
    if not probe.chars:
        raise AssertionError(f"no Chinese (Han) characters in the text of {where}")
    problems = glyph_problems(probe.glyphs, probe.notdef)
    if probe.web_fonts_loaded is False:
        problems.append(f"web fonts in the stack did not load: {', '.join(probe.web_fonts)}")
    if drawn_with is not None and set(probe.fonts) != {drawn_with}:
        problems.append(f"not all drawn with {drawn_with}")
    if problems:
        raise AssertionError(
            f"Chinese text of {where} does not render with real glyphs:\n  "
            + "\n  ".join(problems)
            + f"\nthe missing-glyph box of this font stack:\n{picture(probe.notdef)}"
            + "\n(is a CJK font installed? Debian: apt-get install fonts-noto-cjk)"
        )
    return probe
