"""The printer thread always reports how a receipt went, whatever the driver raises.

A driver's own exception (a bug, or an error it failed to translate: termios.error
once) raised out of the thread reached no one: the receipt stayed "printing" on the
screen, and the printer "busy" — its status never asked again — until the kiosk
restarted (`edge.kiosk.receipt_printing`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from edge.kiosk.config import KioskConfig, KioskSection
from edge.kiosk.receipt_printing import Outcome, ReceiptPrinting
from hardware.printer import Printer, PrinterOffline, PrinterStatus

T = TypeVar("T")


class BuggyDriver(Printer):
    """A printer driver that raises what it should have translated."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def print_job(self, job: bytes) -> None:
        raise self.error

    def status(self) -> PrinterStatus:
        raise self.error

    def close(self) -> None:
        pass


class Host:
    """What printing needs of the kiosk daemon: here only its config and its events."""

    def __init__(self, folder: Path) -> None:
        self.cfg = KioskConfig(path=folder / "kiosk.toml", kiosk=KioskSection(db=folder / "k.db"))
        self.clock: Any = None
        self.device_key = None
        self.events: list[object] = []

    def require_ledger(self) -> Any:
        raise AssertionError("not read here")

    async def in_db(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        raise AssertionError("not read here")

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        coro.close()

    def post(self, event: object) -> None:
        self.events.append(event)


def test_a_driver_that_raises_anything_still_gives_an_outcome(tmp_path: Path) -> None:
    code = "offline"  # how the screen and `doctor` name a printer whose driver failed
    for error in (RuntimeError("driver bug"), PrinterOffline("gone")):
        host = Host(tmp_path)
        printing = ReceiptPrinting(host, BuggyDriver(error))
        try:
            printing.last = {"seq": 7, "passbook": "P1", "state": "printing", "code": ""}
            printing._submit(7, "P1", (7, b"\x1b@receipt")).result(timeout=10)
            assert host.events == [Outcome(7, "P1", code, False, code)], error
            (outcome,) = host.events
            assert isinstance(outcome, Outcome)
            printing.done(outcome)  # on the event task, as the daemon does
            assert printing.view() == {"seq": 7, "passbook": "P1", "state": "failed", "code": code}
            # The status probe (an idle printer is asked how it is) reports too.
            printing.tick(10**9)
            printing._pool.submit(lambda: None).result(timeout=10)  # the probe ran first
            assert isinstance(host.events[-1], Outcome) and host.events[-1].seq is None
        finally:
            printing.close()
