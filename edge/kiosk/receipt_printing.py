"""Printing receipts in the kiosk daemon, after the commit and off the screen's path.

    ledger commit ─→ Committed (screen, beep) ─→ task: read the receipt from the ledger
                                                   └─→ printer thread: print_job
                                                         └─→ event: the Outcome

The deposit is confirmed first; the receipt is read back from the committed entries
and printed on a thread of its own, so a slow, stuck or absent printer never holds
the screen or the ledger. Its outcome comes back as an event: the screen says when
a receipt could not be printed (the points are kept all the same), the status strip,
the status topic and `greenpass doctor` carry the printer's state, and staff reprint
a passbook's last receipt from the staff menu.

`printer` in the view's status: ``off`` (no printer configured), ``ok``,
``paper_low``, ``paper_out``, ``jammed``, ``timeout``, ``offline``, ``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.kiosk import receipt as rc
from edge.kiosk.config import KioskConfig
from edge.ledger.clock import Clock
from edge.ledger.ledger import Ledger
from greenpass.errors import GreenPassError, HardwareError, Refused
from hardware.printer import Paper, Printer, PrinterError, render

log = logging.getLogger(__name__)
PROBE_EVERY_MS = 15_000  # how often an idle printer is asked how it is (a new roll …)


@dataclass(frozen=True)
class Outcome:
    """A print job's end (or a status probe's, with `seq` None)."""

    seq: int | None
    passbook_id: str
    printer: str  # the printer's state after it
    printed: bool
    code: str = ""  # why not: paper_out, offline, jammed, timeout


T = TypeVar("T")


class Host(Protocol):
    """What printing needs of the daemon (`edge.kiosk.daemon.Kiosk`): its config, clock
    and device key, its ledger thread, its event loop and its event queue."""

    @property
    def cfg(self) -> KioskConfig: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def device_key(self) -> Ed25519PrivateKey | None: ...

    def require_ledger(self) -> Ledger: ...

    async def in_db(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def post(self, event: object) -> None: ...


class ReceiptPrinting:
    def __init__(self, k: Host, printer: Printer | None) -> None:
        self.k = k
        self.printer = printer
        cfg = k.cfg.hardware.printer
        self.paper = Paper(cfg.width)
        self.chinese = cfg.chinese
        self.state = "off" if printer is None else "unknown"
        self.last: dict[str, Any] | None = None  # the newest receipt, for the screen
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="printer")
        # Counted on the event loop only (at submit, and when the outcome event arrives).
        self._busy = 0
        self._probing = False
        self._probe_ms = -PROBE_EVERY_MS

    # --- after a commit -----------------------------------------------------------------

    def after_commit(self, passbook_id: str, seqs: list[int]) -> None:
        """Print the receipt of the committed entries `seqs`, without waiting for it."""
        if self.printer is None:
            return
        self.last = {"seq": seqs[0], "passbook": passbook_id, "state": "printing", "code": ""}
        self.k.spawn(self._print(passbook_id, seqs))

    async def _print(self, passbook_id: str, seqs: list[int]) -> None:
        try:
            job = await self.k.in_db(self._job, passbook_id, seqs, False)
        except GreenPassError as exc:  # the entries are committed; only their re-read failed
            log.error("receipt of %s not made: %s", seqs, exc)
            self.k.post(Outcome(seqs[0], passbook_id, self.state, False, "error"))
            return
        self._submit(seqs[0], passbook_id, job)

    def _job(self, passbook_id: str, seqs: list[int] | None, reprint: bool) -> tuple[int, bytes]:
        """(first seq, ESC/POS bytes) of a receipt (ledger thread); Refused if none."""
        ledger = self.k.require_ledger()
        if seqs is None:
            found = rc.last_receipt(ledger, passbook_id)
            if found is None:
                raise Refused("no_receipt", "this passbook has no deposit or redemption here")
            r = found
        else:
            r = rc.receipt_of(ledger, passbook_id, seqs)
        url = rc.statement_url(
            self.k.cfg.kiosk.statement_url,
            self.k.device_key,
            ledger.device_id,
            passbook_id,
            now_ms=self.k.clock.wall_ms(),
            days=self.k.cfg.kiosk.statement_days,
        )
        return r.seq, render(rc.blocks(r, url, reprint=reprint), self.paper, self.chinese)

    def _submit(self, seq: int, passbook_id: str, job: tuple[int, bytes]) -> Future[Outcome]:
        self._busy += 1
        fut = self._pool.submit(self._run, seq, passbook_id, job[1])
        fut.add_done_callback(lambda f: self.k.post(f.result()))
        return fut

    def _run(self, seq: int | None, passbook_id: str, job: bytes | None) -> Outcome:
        """On the printer thread: print `job` (None: only ask the printer its state)."""
        assert self.printer is not None
        try:
            if job is None:
                return Outcome(None, passbook_id, self.printer.status().value, False)
            self.printer.print_job(job)
        except PrinterError as exc:
            log.warning("receipt %s not printed: %s", seq, exc)
            return Outcome(seq, passbook_id, exc.code, False, exc.code)
        except HardwareError as exc:  # any other device error: reported, never raised here
            log.warning("receipt %s not printed: %s", seq, exc)
            return Outcome(seq, passbook_id, "offline", False, "offline")
        except Exception:  # a driver's bug: an outcome must still come
            # Raised here, it reached no one: the receipt stayed "printing" and the
            # printer "busy" until the kiosk restarted (termios.error once did so).
            log.exception("receipt %s not printed: the printer driver failed", seq)
            return Outcome(seq, passbook_id, "offline", False, "offline")
        return Outcome(seq, passbook_id, "ok", True)

    # --- the outcome, on the event task -------------------------------------------------

    def done(self, o: Outcome) -> None:
        if o.seq is None:
            self._probing = False
        else:
            self._busy = max(0, self._busy - 1)
            if self.last is not None and self.last["seq"] == o.seq:
                state = "printed" if o.printed else "failed"
                self.last = {**self.last, "state": state, "code": o.code}
        self.state = o.printer

    def tick(self, now_ms: int) -> None:
        """Ask an idle printer how it is now and then: a new roll clears `paper_out`."""
        if self.printer is None or self._busy or self._probing:
            return
        if now_ms - self._probe_ms < PROBE_EVERY_MS:
            return
        self._probe_ms = now_ms
        self._probing = True
        fut = self._pool.submit(self._run, None, "", None)
        fut.add_done_callback(lambda f: self.k.post(f.result()))

    # --- staff --------------------------------------------------------------------------

    async def reprint(self, passbook_id: str) -> dict[str, Any]:
        """Print `passbook_id`'s last receipt again, marked as a reprint; the answer says
        whether it printed (staff wait for it: they stand at the printer)."""
        if self.printer is None:
            raise Refused("no_printer", "this kiosk has no receipt printer ([hardware.printer])")
        seq, job = await self.k.in_db(self._job, passbook_id, None, True)
        self.last = {"seq": seq, "passbook": passbook_id, "state": "printing", "code": ""}
        outcome = await asyncio.wrap_future(self._submit(seq, passbook_id, (seq, job)))
        if not outcome.printed:
            raise Refused(
                "receipt_not_printed",
                f"the receipt was not printed: {outcome.code}",
                printer=outcome.code,
            )
        return {"seq": seq, "printed": True}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.printer is not None:
            with contextlib.suppress(OSError, HardwareError):
                self.printer.close()

    def view(self) -> dict[str, Any] | None:
        return self.last
