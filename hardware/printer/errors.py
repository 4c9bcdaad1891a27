"""Errors raised by the receipt printer driver; every one is a `greenpass.errors.HardwareError`.

    HardwareError (OSError)                        greenpass.errors
    └── PrinterError                               anything the printer driver raises on purpose
        ├── PrinterOffline (ConnectionError)       unplugged, switched off, the port vanished
        ├── PaperOut                               the roll is empty (before or during a receipt)
        ├── PrinterJammed                          cover open, cutter jammed, a printer error
        ├── PrinterTimeout (TimeoutError)          the printer stopped taking bytes
        └── BadSetting (ValueError)                a printer option is invalid (kind, device …)

pyserial's, pyusb's and python-escpos's own errors are translated into these in
`escpos_driver.py` and nowhere else. Each carries `code`, the word the kiosk's
status, `doctor` and the screen use: offline, paper_out, jammed, timeout.
"""

from __future__ import annotations

from greenpass.errors import HardwareError


class PrinterError(HardwareError):
    """Root of the printer driver's errors."""

    code = "error"


class PrinterOffline(PrinterError, ConnectionError):
    """The printer cannot be reached: cable out, power off, wrong device."""

    code = "offline"


class PaperOut(PrinterError):
    """The paper roll is empty: load a new roll."""

    code = "paper_out"


class PrinterJammed(PrinterError):
    """The cover is open, the cutter is jammed, or the printer reports an error."""

    code = "jammed"


class PrinterTimeout(PrinterError, TimeoutError):
    """The printer stopped accepting bytes in time (paper jam, a hung printer)."""

    code = "timeout"


class BadSetting(PrinterError, ValueError):
    """A printer option is invalid; the message names it."""

    code = "bad_setting"
