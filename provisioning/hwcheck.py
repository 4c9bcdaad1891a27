"""Field checks of the kiosk's other hardware: LEDs, buzzer, button, a test card, and a
test receipt.

Each LED is lit in turn and the buzzer sounded while the technician watches;
the button must be pressed within the timeout; a card shown to the scanner is
decoded and checked against the kiosk's trusted issuer keys, so a technician
learns on site whether the scanner reads and whether the village's cards are
trusted here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edge.kiosk.cards import read_card
from greenpass.errors import Refused
from hardware.gpio import Indicator
from hardware.printer import Block, Paper, Printer, PrinterError, Qr, Row, Rule, Text, render
from hardware.printer.document import ChineseMode
from hardware.scanner import Scanner

Say = Callable[[str], None]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def show_outputs(ind: Indicator, say: Say, on_s: float = 1.0) -> list[CheckResult]:
    """Light each LED and sound the buzzer; the technician watches (and listens)."""
    out = []
    for name in ("green", "amber", "red"):
        say(f"the {name} LED is on for {on_s:g} s")
        led = getattr(ind, name)
        led.on()
        time.sleep(on_s)
        led.off()
        out.append(CheckResult(f"{name} LED", True, "lit"))
    say("the buzzer beeps once, then three times")
    ind.beep_ok(wait=True)
    ind.beep_error(wait=True)
    out.append(CheckResult("buzzer", True, "sounded"))
    return out


def wait_button(ind: Indicator, say: Say, timeout_s: float = 30.0) -> CheckResult:
    if ind.button is None:
        return CheckResult("button", True, "none configured ([hardware.gpio] button = -1)")
    pressed = threading.Event()
    ind.on_button(pressed.set)
    say(f"press the kiosk's button (within {timeout_s:g} s)")
    try:
        ok = pressed.wait(timeout_s)
    finally:
        ind.on_button(None)
    return CheckResult("button", ok, "pressed" if ok else f"not pressed within {timeout_s:g} s")


def scan_test_card(
    scanner: Scanner,
    issuer_keys: Mapping[str, bytes],
    village: str,
    say: Say,
    timeout_s: float = 30.0,
) -> CheckResult:
    say(f"show a passbook or staff card to the scanner (within {timeout_s:g} s)")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        scan = scanner.read(timeout=0.5)
        if scan is None:
            continue
        try:
            card = read_card(scan.payload, issuer_keys, village)
        except Refused as exc:
            return CheckResult("scanner", False, f"read a code, but it is refused: {exc}")
        return CheckResult("scanner", True, f"read the {card.kind} card of {card.holder_id}")
    return CheckResult("scanner", False, f"no code read within {timeout_s:g} s")


def print_test_receipt(
    printer: Printer,
    *,
    village: str,
    device_id: str,
    paper: Paper,
    chinese: ChineseMode,
    say: Say,
) -> CheckResult:
    """A test receipt with Chinese, a row, a rule, a QR code and the cut: the technician
    checks on the paper that the hanzi are hanzi (not boxes or mojibake: then try
    `chinese = "image"`), that the QR scans and that the paper was cut."""
    say(f"printing a test receipt ({paper.width_mm} mm, chinese = {chinese})")
    blocks: list[Block] = [
        Text("绿色存折 Green Passbook", align="center", bold=True),
        Text("打印测试 printer test", align="center"),
        Rule(),
        Row("村 Village", village),
        Row("回收点 Kiosk", device_id),
        Row("中文 Chinese", "纸板 塑料 玻璃"),
        Rule(),
        Qr(f"greenpass printer test {device_id}"),
        Text("扫码应显示 the QR reads:", align="center"),
        Text(f"greenpass printer test {device_id}", align="center"),
    ]
    before = printer.status()
    try:
        printer.print_job(render(blocks, paper, chinese))
    except PrinterError as exc:
        return CheckResult("printer", False, f"{exc} (was {before.value})")
    return CheckResult(
        "printer", True, "test receipt printed: check the hanzi, the QR code and the cut"
    )
