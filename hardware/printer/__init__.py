"""Receipt printers (ESC/POS thermal, 58 or 80 mm, USB or serial) behind one `Printer`.

    from hardware.printer import Paper, Qr, Text, open_printer, render
    with open_printer("serial", "/dev/greenpass-printer") as printer:
        printer.print_job(render([Text("你好"), Qr("https://…")], Paper(58)))

Modules: `base` (interface, status), `document` (a receipt's blocks and their
ESC/POS bytes, GB18030 text or an image of the text), `escpos_driver` (the device,
through python-escpos), `errors`. The simulated printer is `simulator.printer`.
"""

from hardware.printer.base import Printer, PrinterStatus
from hardware.printer.document import (
    CHINESE_MODES,
    Block,
    ChineseMode,
    Paper,
    Qr,
    Row,
    Rule,
    Text,
    render,
)
from hardware.printer.errors import (
    BadSetting,
    PaperOut,
    PrinterError,
    PrinterJammed,
    PrinterOffline,
    PrinterTimeout,
)
from hardware.printer.escpos_driver import KINDS, EscposPrinter, open_printer

__all__ = [
    "CHINESE_MODES",
    "KINDS",
    "BadSetting",
    "Block",
    "ChineseMode",
    "EscposPrinter",
    "Paper",
    "PaperOut",
    "Printer",
    "PrinterError",
    "PrinterJammed",
    "PrinterOffline",
    "PrinterStatus",
    "PrinterTimeout",
    "Qr",
    "Row",
    "Rule",
    "Text",
    "open_printer",
    "render",
]
