"""The kiosk daemon: one asyncio process wiring devices, the session, the ledger and sync.

    scale thread ──readings──┐                     ┌─→ ledger (one worker thread)
    scanner thread ──codes───┼─→ event queue ─→ session / desk ─→ LEDs, buzzer
    button (gpiozero) ───────┤                     └─→ view ─→ UI (SSE)
    ticker ──────────────────┘
    uplink thread: its own Ledger on the same file, MQTT to central (supervised)

Everything that changes the session goes through one queue and one task, so
the pure state machines (`edge.kiosk.session`, `edge.kiosk.desk`) see events one at a time
in arrival order. Every ledger call runs on one worker thread: SQLite work
never blocks the loop, and the kiosk's connection is used by one thread only.
A deposit is confirmed (`Committed`: screen, beep, green LED) only after
`Ledger.deposit` returned, that is after its transaction committed.

The ticker also watches the uplink: its sync fault goes to the status strip,
and an uplink that is gone for good (`failed`: it kept crashing, or its thread
ended unstopped) sets `fatal`, on which `kiosk_ui.main` stops the process with
an error so that systemd starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.kiosk import desk as dk
from edge.kiosk import session as ss
from edge.kiosk.cards import read_card
from edge.kiosk.config import KioskConfig
from edge.kiosk.devices import Devices
from edge.kiosk.receipt_printing import Outcome, ReceiptPrinting
from edge.kiosk.uplink_handle import UplinkFactory, UplinkHandle
from edge.kiosk.view import (
    Snapshot,
    Status,
    build_view,
    categories_of,
    log_fault_of,
    villager_info,
)
from edge.ledger.clock import Clock, SystemClock
from edge.ledger.ledger import Ledger
from greenpass.errors import GreenPassError, HardwareError, Refused
from hardware.gpio import State
from hardware.scale.units import apply_span
from hardware.scanner import ScannerClosed

log = logging.getLogger(__name__)
T = TypeVar("T")
TICK_S = 0.2
BACKLOG_EVERY_MS = 3000


class Kiosk:
    """The running kiosk. `await start()`, then the UI reads `view()` and calls actions."""

    def __init__(
        self,
        cfg: KioskConfig,
        devices: Devices,
        *,
        clock: Clock | None = None,
        uplink_factory: UplinkFactory | None = None,
    ) -> None:
        self.cfg = cfg
        self.devices = devices
        self.clock = clock or SystemClock()
        k = cfg.kiosk
        self.limits = ss.Limits(
            capacity_grams=cfg.hardware.scale.capacity_grams,
            zero_band_grams=k.zero_band_grams,
            idle_timeout_ms=round(k.idle_timeout_s * 1000),
            settle_timeout_ms=round(k.settle_timeout_s * 1000),
            result_ms=round(k.result_s * 1000),
        )
        self.session = ss.Session()
        self.desk = dk.Desk()
        self.language = k.language
        self.status = Status(online=None if cfg.sync is None else False)
        self.villager: dict[str, Any] | None = None  # masked name, balance, today
        self.desk_villager: dict[str, Any] | None = None
        self.last_result: dict[str, Any] | None = None
        # The rules' categories for the screen, read on the ledger's thread (the rules
        # live in the file: central's state may change them) and refreshed with the backlog.
        self.categories: list[dict[str, Any]] = []
        self.device_key: Ed25519PrivateKey | None = None
        self._own_issuer: dict[str, bytes] = {}
        self.ledger: Ledger | None = None
        self._uplink_factory = uplink_factory
        self._uplink: UplinkHandle | None = None
        self._db = ThreadPoolExecutor(1, thread_name_prefix="ledger")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._listeners: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._view: dict[str, Any] = {}
        self._version = 0
        self._backlog_ms = -BACKLOG_EVERY_MS
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        self.fatal: str | None = None  # why the kiosk must exit and be restarted
        self.fatal_event = asyncio.Event()
        self.receipts = ReceiptPrinting(self, devices.printer)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # The session's clock starts now, not at 0 (or its first event would look ancient).
        self.session = ss.step(self.session, ss.Tick(self.clock.mono_ms()), self.limits)
        self.ledger = await self.in_db(Ledger.open, self.cfg.kiosk.db, self.clock)
        self.categories = await self.in_db(categories_of, self.ledger)
        await self.in_db(self._load_device_key)
        for name, target in (("scale", self._scale_loop), ("scanner", self._scanner_loop)):
            t = threading.Thread(target=target, name=f"kiosk-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self.devices.indicator.on_button(lambda: self.post(ss.Cancel()))
        if self._uplink_factory is not None and self.cfg.sync is not None:
            self._uplink = self._uplink_factory(self.cfg, self.devices, self._health)
            self._uplink.start()
        self._tasks = [
            asyncio.create_task(self._run(), name="kiosk-events"),
            asyncio.create_task(self._tick(), name="kiosk-ticker"),
        ]
        self._show_leds()
        self._publish()
        self.ready.set()

    async def stop(self) -> None:
        self._stop.set()
        tasks = list(self._tasks)  # a spawned task leaves the list as it ends
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._uplink is not None:
            await asyncio.to_thread(self._uplink.stop)
        await asyncio.to_thread(self.receipts.close)
        for t in self._threads:  # they notice _stop within a read timeout (≤ 1 s)
            await asyncio.to_thread(t.join, 3.0)
        with contextlib.suppress(OSError, HardwareError):
            self.devices.indicator.show(State.OFF)
        await asyncio.to_thread(self.devices.close)
        if self.ledger is not None:
            await self.in_db(self.ledger.close)
        self._db.shutdown(wait=True)

    # --- inputs -------------------------------------------------------------------------

    def post(self, event: object) -> None:
        """Queue an event from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closing during shutdown
                self._loop.call_soon_threadsafe(self._events.put_nowait, event)

    def _scale_loop(self) -> None:
        scale = self.devices.scale
        span = self.cfg.hardware.scale.span_ppm
        while not self._stop.is_set():
            try:
                r = scale.read(timeout=1.0)
            except HardwareError as exc:
                if self._stop.is_set():
                    return
                log.warning("scale: %s", exc)
                self.post(ss.ScaleRead(ss.Reading(0, False, "error")))
                self._stop.wait(0.5)
                continue
            grams = apply_span(r.grams, span) if r.grams is not None else 0
            self.post(ss.ScaleRead(ss.Reading(grams, r.stable, r.status.value)))

    def _scanner_loop(self) -> None:
        scanner = self.devices.scanner
        while not self._stop.is_set():
            try:
                scan = scanner.read(timeout=0.5)
            except ScannerClosed:
                return
            except HardwareError as exc:
                log.warning("scanner: %s", exc)
                self.post(ScannerState("error"))
                self._stop.wait(1.0)
                continue
            connected = getattr(scanner, "connected", True)
            if connected != (self.status.scanner == "ok"):
                self.post(ScannerState("ok" if connected else "disconnected"))
            if scan is not None:
                self.post(Scanned(scan.payload))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.post(ss.Tick(self.clock.mono_ms()))

    # --- the one event task -------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._handle(event)
            except Exception:
                log.exception("kiosk: event %r failed", event)
            self._publish()

    async def _handle(self, event: object) -> None:
        if isinstance(event, _Action):
            try:
                event.future.set_result(await event.fn())
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who reports it
                event.future.set_exception(exc)
            return
        if isinstance(event, Scanned):
            await self._scanned(event.payload)
            return
        if isinstance(event, ScannerState):
            self.status = self.status.with_(scanner=event.state)
            return
        if isinstance(event, Outcome):
            self.receipts.done(event)
            return
        if isinstance(event, ss.Tick):
            self.desk = dk.tick(
                self.desk, event.now_ms, round(self.cfg.kiosk.staff_timeout_s * 1e3)
            )
            await self._refresh_status(event.now_ms)
        if isinstance(event, ss.ScaleRead):
            self.status = self.status.with_(scale=event.reading.status)
        if isinstance(event, ss.Cancel) and self.desk.active:
            self.desk = dk.sign_out(self.desk)
            return
        assert isinstance(event, ss.Tick | ss.ScaleRead | ss.Cancel | ss.CategoryChosen)
        await self.step(event)

    async def act(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run `fn` inside the event task (in order with scans and readings); its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._events.put_nowait(_Action(fn, future))
        return await future

    async def step(self, event: ss.Event) -> None:
        """Feed `event` to the session, then the ledger's answer to a deposit it asks
        for (Committed or CommitRefused), one after the other."""
        events: list[ss.Event] = [event]
        committed: list[tuple[str, int]] = []  # (passbook, seq) confirmed on screen
        while events:
            before = self.session.screen
            self.session = ss.step(self.session, events.pop(0), self.limits)
            for effect in self.session.effects:
                if isinstance(effect, ss.Beep):
                    self.beep(effect.kind)
                elif isinstance(effect, ss.WriteDeposit):
                    answer, seq = await self._write_deposit(effect)
                    events.append(answer)
                    if seq is not None:
                        committed.append((effect.passbook_id, seq))
            if self.session.screen is ss.Screen.IDLE and before is not ss.Screen.IDLE:
                self.villager = None
            self._show_leds()
        # Only now, the entry committed and confirmed: its receipt, printed off this task.
        for passbook_id, seq in committed:
            self.receipts.after_commit(passbook_id, [seq])

    async def _write_deposit(self, w: ss.WriteDeposit) -> tuple[ss.Event, int | None]:
        """Write the deposit; the ledger's answer for the session, and the entry's seq
        when it committed."""
        self._show_leds()
        ledger = self.require_ledger()
        try:
            entry = await self.in_db(ledger.deposit, w.passbook_id, w.category, w.grams)
        except Refused as exc:
            return ss.CommitRefused(exc.code), None
        except GreenPassError as exc:  # the disk is full, the file is gone …
            log.error("deposit not written: %s", exc)
            return ss.CommitRefused("storage_error"), None
        self.villager = await self.in_db(villager_info, ledger, w.passbook_id)
        self.last_result = {"category": w.category, "grams": w.grams, "seq": entry.seq}
        balance = self.villager["balance"] if self.villager else 0
        return ss.Committed(entry.points, entry.co2e_g, balance), entry.seq

    async def _scanned(self, payload: str) -> None:
        ledger = self.require_ledger()
        keys = await self.in_db(ledger.issuer_keys)
        keys.update(self._own_issuer)
        try:
            card = read_card(payload, keys, ledger.village)
        except Refused as exc:
            if not self.desk.active:
                await self.step(ss.PassbookScanned(None, exc.code))
            else:
                self.desk = dk.outcome(self.desk, exc.code, self.clock.mono_ms())
                self.beep("error")
            return
        now = self.clock.mono_ms()
        if card.kind == "staff":
            if self.session.screen in (ss.Screen.WEIGHING, ss.Screen.COMMITTING):
                return  # a villager is mid-deposit: let them finish
            self.desk = dk.card_scanned(self.desk, card.holder_id, now)
            self.beep("ok")
            return
        try:  # the ledger's word on the passbook: '' when it may be used here
            await self.in_db(ledger.check_villager, card.holder_id)
            refusal = ""
        except Refused as exc:
            refusal = exc.code
        if self.desk.staff_id is not None:
            if refusal:
                self.desk = dk.outcome(self.desk, refusal, now)
                self.beep("error")
                return
            self.desk = dk.villager_scanned(self.desk, card.holder_id, now)
            self.desk_villager = await self.in_db(villager_info, ledger, card.holder_id)
            self.beep("ok")
            return
        if self.desk.pending_staff is not None:
            return  # waiting for a PIN; a passbook is not an answer
        if refusal:
            await self.step(ss.PassbookScanned(None, refusal))
            return
        self.villager = await self.in_db(villager_info, ledger, card.holder_id)
        await self.step(ss.PassbookScanned(card.holder_id))
        self.beep("ok")

    def _load_device_key(self) -> None:
        """Read the device key once (ledger thread): it signs the cards this kiosk prints,
        and the kiosk trusts those cards even before central lists its key."""
        path = self.cfg.device_key_file
        if path is None or not path.exists():
            return
        from sync.keys import load_private_key, public_bytes  # noqa: PLC0415 - daemon only

        self.device_key = load_private_key(path)
        self._own_issuer = {self.require_ledger().device_id: public_bytes(self.device_key)}

    # --- outputs ------------------------------------------------------------------------

    def beep(self, kind: str) -> None:
        ind = self.devices.indicator
        with contextlib.suppress(OSError, HardwareError):
            ind.beep_ok() if kind == "ok" else ind.beep_error()

    def _show_leds(self) -> None:
        st = self.status
        if st.scale in ("disconnected", "error"):
            state = State.FAULT
        elif self.session.screen is ss.Screen.COMMITTING:
            state = State.BUSY
        elif st.online is False:
            state = State.OFFLINE
        else:
            state = State.READY
        with contextlib.suppress(OSError, HardwareError):
            self.devices.indicator.show(state)

    def _health(self) -> dict[str, str]:
        return {
            "scale": self.status.scale,
            "scanner": self.status.scanner,
            "printer": self.receipts.state,
        }

    async def _refresh_status(self, now_ms: int) -> None:
        """Sync and clock state for the status strip; the backlog is read every few seconds."""
        up = self._uplink
        online = None if up is None else up.online
        fault = None if up is None else up.sync_fault
        if up is not None and self.fatal is None and (failed := up.failed) is not None:
            log.critical("kiosk: %s; exiting so that systemd restarts the kiosk", failed)
            self.fatal = failed
            self.fatal_event.set()
        backlog, log_fault = self.status.backlog, self.status.log_fault
        if now_ms - self._backlog_ms >= BACKLOG_EVERY_MS:
            self._backlog_ms = now_ms
            b = await self.in_db(self.require_ledger().outbox.backlog)
            backlog = b.depth
            self.categories = await self.in_db(categories_of, self.require_ledger())
            # The uplink records it in the file (sync.log_check): read it from there.
            log_fault = await self.in_db(log_fault_of, self.require_ledger())
        self.status = self.status.with_(
            online=online,
            backlog=backlog,
            log_fault=log_fault,
            clock_ok=self.clock.clock_ok(),
            sync_fault=None if fault is None else (fault.code, fault.message),
        )
        self.receipts.tick(now_ms)
        self._show_leds()

    def view(self) -> dict[str, Any]:
        return self._view

    def _snapshot(self) -> Snapshot:
        ledger = self.ledger
        return Snapshot(
            session=self.session,
            desk=self.desk,
            language=self.language,
            spoken=self.cfg.ui.spoken_prompts,
            device=ledger.device_id if ledger else "",
            village=ledger.village if ledger else "",
            categories=self.categories,
            villager=self.villager,
            desk_villager=self.desk_villager,
            last_result=self.last_result,
            receipt=self.receipts.view(),
            printer=self.receipts.state,
            status=self.status,
        )

    def _publish(self) -> None:
        view = build_view(self._snapshot())
        if view == self._view:
            return
        self._version += 1
        self._view = {**view, "version": self._version}
        for q in list(self._listeners):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()  # a slow page only needs the newest view
            q.put_nowait(self._view)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of views for one page's event stream; None means "the kiosk is stopping"."""
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=4)
        self._listeners.add(q)
        q.put_nowait(self._view)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._listeners.discard(q)

    def close_streams(self) -> None:
        """End every page's event stream (shutdown: the server need not wait for Chromium)."""
        for q in list(self._listeners):
            while not q.empty():
                q.get_nowait()
            q.put_nowait(None)

    # --- helpers ------------------------------------------------------------------------

    @property
    def uplink(self) -> UplinkHandle | None:
        """The sync uplink, when this kiosk syncs (staff actions that ask central)."""
        return self._uplink

    def require_ledger(self) -> Ledger:
        if self.ledger is None:
            raise RuntimeError("the kiosk is not started")
        return self.ledger

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` beside the event task (cancelled at stop)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)

        def forget(t: asyncio.Task[None]) -> None:
            if t in self._tasks:
                self._tasks.remove(t)

        task.add_done_callback(forget)

    async def in_db(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, lambda: fn(*args, **kw))


@dataclass(frozen=True)
class Scanned:
    """The scanner read a code (the scanner thread's event)."""

    payload: str


@dataclass(frozen=True)
class ScannerState:
    """The scanner's state changed: ok / disconnected / error."""

    state: str


class _Action:
    """A UI action queued for the event task, and where its result goes."""

    def __init__(self, fn: Callable[[], Awaitable[Any]], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future
