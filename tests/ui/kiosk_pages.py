"""Helpers for the kiosk page's browser tests: a kiosk for them, and what a page must satisfy.

The tests drive a real `greenpass kiosk` process (simulated hardware, through its
`/sim/...` controls) and look at its page in headless Chromium. The page is found
in a known state through `body[data-screen=...]`, which the page sets from the
view it rendered.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.kiosk.cards import make_card
from edge.ledger.ledger import Ledger
from simulator.kiosk_home import HOUSEHOLDS, KioskHome, make_kiosk_home
from sync.keys import Ed25519PrivateKey, load_or_create_key
from tests.kiosk.conftest import RunningKiosk

if TYPE_CHECKING:
    from playwright.sync_api import Page

# Results stay up and nobody is timed out while a test looks at a screen.
UI_KIOSK_KEYS = "result_s = 120\nidle_timeout_s = 600\nstaff_timeout_s = 600"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

# Replaces window.speechSynthesis before the page's scripts run: headless Chromium has
# no voices, and the tests read what would have been said from window.__spoken.
FAKE_SPEECH = """
window.__spoken = [];
Object.defineProperty(window, "speechSynthesis", {
  configurable: true,
  value: {
    speak: (u) => window.__spoken.push([u.lang, u.text]),
    cancel: () => {},
    getVoices: () => [],
  },
});
"""


def ui_kiosk_home(folder: Path, households: tuple[str, ...] = HOUSEHOLDS) -> KioskHome:
    return make_kiosk_home(
        folder, "K0001", "dongcun", households=households, extra_kiosk_keys=UI_KIOSK_KEYS
    )


def enable_spoken_prompts(home: KioskHome) -> None:
    text = home.config.read_text(encoding="utf-8")
    home.config.write_text(text.replace("[ui]\n", "[ui]\nspoken_prompts = true\n", 1), "utf-8")


def set_status(home: KioskHome, passbook_id: str, status: str) -> None:
    """Revoke or pause a passbook in the ledger (before the kiosk starts)."""
    with Ledger.open(home.folder / "kiosk.db") as ledger:
        ledger.set_villager_status(passbook_id, status, staff_id="wang", reason="test")


def passbook_of(home: KioskHome, household: str) -> str:
    label = next(c["label"] for c in home.cards if c["label"].startswith(f"villager {household}"))
    return label.rsplit(" ", 1)[1]


def card_index(home: KioskHome, label_prefix: str) -> int:
    return next(i for i, c in enumerate(home.cards) if c["label"].startswith(label_prefix))


def signed_card(
    home: KioskHome,
    holder: str,
    *,
    kind: str = "passbook",
    village: str | None = None,
    key: Ed25519PrivateKey | None = None,
    key_id: str | None = None,
) -> str:
    """A card signed by the kiosk's own key (which it trusts), or by `key`."""
    return make_card(
        "staff" if kind == "staff" else "passbook",
        village or home.village,
        holder,
        key_id=key_id or home.device_id,
        key=key or load_or_create_key(home.folder / "device.key"),
    )


def reset(kiosk: RunningKiosk) -> None:
    """Back to the idle screen in Chinese: scale empty, staff signed out, session closed."""
    kiosk.sim("scale", action="remove")
    kiosk.post("/api/staff/signout")
    kiosk.post("/api/language", {"lang": "zh"})
    for _ in range(3):
        if kiosk.view()["screen"] == "idle":
            break
        kiosk.post("/api/cancel")
    kiosk.wait_view("idle", lambda v: v["screen"] == "idle" and v["lang"] == "zh")
    wait_empty_scale(kiosk)


def wait_empty_scale(kiosk: RunningKiosk) -> None:
    """Until the kiosk has seen the scale empty and steady: a new bag may be weighed."""
    kiosk.wait_view(
        "an empty scale",
        lambda v: (
            v["status"]["scale"] == "ok"
            and abs(v["weight"]["grams"]) <= 50
            and v["weight"]["stable"]
        ),
    )


def open_page(page: Page, kiosk: RunningKiosk) -> Page:
    page.add_init_script(FAKE_SPEECH)
    page.goto(kiosk.url + "/")
    page.wait_for_selector("body[data-screen]")
    return page


def wait_screen(page: Page, screen: str, timeout: float = 10_000) -> None:
    page.wait_for_selector(f"body[data-screen={screen}]", timeout=timeout)


def text(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text()


_LAYOUT_JS = """
() => {
  const problems = [];
  const de = document.documentElement;
  const px = (a, b) => `${Math.round(a)}×${Math.round(b)}`;
  if (de.scrollHeight > innerHeight || de.scrollWidth > innerWidth) {
    problems.push(`the page scrolls: ${px(de.scrollWidth, de.scrollHeight)} in ` +
                  px(innerWidth, innerHeight));
  }
  const name = (el) => el.id ? `#${el.id}` :
    `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} ` +
    `"${(el.textContent || "").trim().slice(0, 20)}"`;
  const main = document.getElementById("main").getBoundingClientRect();
  const screen = {top: 0, left: 0, right: innerWidth, bottom: innerHeight};
  for (const el of document.querySelectorAll("#app *")) {
    if (el.closest("svg")) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    // Inside a list that is meant to scroll, rows may be out of view.
    const scrolled = el.parentElement && el.parentElement.closest(".scroll");
    // What is on the screen stays inside its own area (nothing over the status strip).
    const box = el.closest("#main") ? main : screen;
    if (!scrolled && (r.bottom > box.bottom + 0.5 || r.right > box.right + 0.5 ||
                      r.left < box.left - 0.5 || r.top < box.top - 0.5)) {
      problems.push(`${name(el)} is off its area (${px(r.left, r.top)} to ` +
                    `${px(r.right, r.bottom)})`);
    }
    const cs = getComputedStyle(el);
    const clips = cs.overflowX !== "visible" || cs.overflowY !== "visible";
    if (clips && !el.classList.contains("scroll") &&
        (el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1)) {
      problems.push(`${name(el)} cuts off its content (${px(el.scrollWidth, el.scrollHeight)} ` +
                    `in ${px(el.clientWidth, el.clientHeight)})`);
    }
  }
  for (const b of document.querySelectorAll("#app button")) {
    const r = b.getBoundingClientRect();
    if (r.width && (r.width < 63.5 || r.height < 63.5)) {
      problems.push(`${name(b)} is a small touch target: ${px(r.width, r.height)}`);
    }
  }
  return problems;
}
"""


def layout_problems(page: Page, *, touch: bool = True) -> list[str]:
    """Why the screen does not fit: page scrolling, anything off the screen or cut off,
    and (with `touch`) buttons smaller than 64×64 px."""
    problems: list[str] = page.evaluate(_LAYOUT_JS)
    if not touch:
        problems = [p for p in problems if "small touch target" not in p]
    return problems


def assert_fits(page: Page, *, touch: bool = True) -> None:
    problems = layout_problems(page, touch=touch)
    assert not problems, "the screen does not fit:\n  " + "\n  ".join(problems)
    scroll: Any = page.evaluate("[document.documentElement.scrollHeight, innerHeight]")
    assert scroll[0] <= scroll[1], scroll


# Where a screen shows a number (a count, points, a balance, a weight, a time): each of
# these, when on screen, must show at least one digit ("–.––" is the weighing screen's
# deliberate "no reading").
NUMBER_SLOTS = ", ".join(
    (
        "#balance", ".today b", ".cat-rate", "#weight", ".committing .sub",
        "#earned", "#new-balance", "#co2", ".result-ok .line",
        "[data-status=backlog]",
        "#desk-balance", "#cart-total", "#cart-after", ".qty", ".row-price", ".row-stock",
        "#new-passbook", ".pb-no", "#confirm-balance", "#confirm-old",
        "#confirm-who", "#confirm-undoes",
        ".e-seq", ".e-time", "#picked-entry:not(.muted)",
        "#report-kg", "#points-in", "#points-out", "#report-co2", "#report-entries",
        "#report-categories td + td", "#report-stock b",
    )
)  # fmt: skip

_GAPS_JS = """
(slots) => {
  const problems = [];
  const shown = (el) => el.getClientRects().length > 0;
  // What a missing field or a bad sum turns into once it is put into words, and a
  // placeholder a translation did not fill.
  const text = document.body.innerText;
  for (const m of text.matchAll(/\\b(undefined|NaN|null|Infinity)\\b|\\{\\w+\\}/g)) {
    const at = Math.max(0, m.index - 30);
    problems.push(`"${m[0]}" on screen: "${text.slice(at, m.index + 30).replace(/\\s+/g, " ")}"`);
  }
  for (const el of document.querySelectorAll(slots)) {
    if (!shown(el)) continue;
    const t = (el.textContent || "").trim();
    if (!/[0-9]|^–\\.––$/.test(t)) {
      const cls = [...el.classList].join(".");
      const name = el.id ? `#${el.id}` : `${el.tagName.toLowerCase()}.${cls}`;
      problems.push(`${name} shows "${t}" where a number belongs`);
    }
  }
  return problems;
}
"""


def gaps(page: Page) -> list[str]:
    """What the screen shows in place of a value: "undefined", "NaN", "null", an unfilled
    {placeholder}, or a number slot (`NUMBER_SLOTS`) without a digit."""
    found: list[str] = page.evaluate(_GAPS_JS, NUMBER_SLOTS)
    return found


def assert_no_gaps(page: Page, where: str) -> None:
    problems = gaps(page)
    assert not problems, f"{where}: a value is missing:\n  " + "\n  ".join(problems)


def shot(page: Page, screenshot_dir: Path, name: str, *, docs: bool = False) -> Path:
    """Save a screenshot as `kiosk-<name>.png`; `docs` also copies it to docs/screenshots
    when GREENPASS_UPDATE_DOCS_SCREENSHOTS is set (so a test run never dirties the tree)."""
    path = screenshot_dir / f"kiosk-{name}.png"
    page.screenshot(path=path, animations="disabled", caret="hide")
    if docs and os.environ.get("GREENPASS_UPDATE_DOCS_SCREENSHOTS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    return path
