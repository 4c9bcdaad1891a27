"""The ESC/POS driver: a job's bytes to a USB, serial or device-file printer through
python-escpos's connections, with its status read by real-time queries (DLE EOT n).

Before a job the printer is asked how it is, so a job is not sent into an empty
printer; after it, again, so paper that ran out during the receipt is reported
(the receipt came out cut short). The bytes go in chunks: a printer that vanishes
mid-receipt fails the next write, and the driver reports it offline. Any failure
drops the connection; the next job opens the device afresh (a printer plugged back
in, or a new roll, needs nothing else).

Status bytes (ESC/POS DLE EOT; bits 1 and 4 always set, 0 and 7 clear):
    n=2 offline cause   0x04 cover open   0x20 stopped by paper end   0x40 error
    n=3 error cause     0x08 cutter error 0x20 unrecoverable          0x40 auto-recoverable
    n=4 paper sensor    0x0C near end     0x60 paper end
A device file (``kind = "file"``, e.g. /dev/usb/lp0) is written only: its status is
UNKNOWN and a missing roll goes unnoticed (docs/hardware-printer.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import serial

from hardware.printer.base import Printer, PrinterStatus
from hardware.printer.errors import (
    BadSetting,
    PaperOut,
    PrinterError,
    PrinterJammed,
    PrinterOffline,
    PrinterTimeout,
)
from hardware.serial_errors import PORT_GONE

KINDS = ("serial", "usb", "file")
CHUNK = 512  # bytes per write: small enough that a vanished printer is noticed mid-receipt
DLE_EOT = b"\x10\x04"
STATUS_READ_S = 0.3  # a printer answers a real-time query within milliseconds

Connector = Callable[[], Any]  # opens and returns a python-escpos connection


def _usb_ids(device: str) -> tuple[int, int]:
    try:
        vendor, product = (int(part, 16) for part in device.split(":"))
    except ValueError as exc:
        raise BadSetting(
            f"a USB printer's device is its vendor:product id in hex, e.g. 0416:5011; "
            f"got {device!r} (`lsusb` lists them)"
        ) from exc
    return vendor, product


def connector(kind: str, device: str, *, baud: int = 9600, timeout_s: float = 10.0) -> Connector:
    """How to open the printer: `kind` serial (a port), usb (vendor:product in hex) or
    file (a device file such as /dev/usb/lp0)."""
    from escpos import printer as ep  # noqa: PLC0415

    if kind not in KINDS:
        raise BadSetting(f"unknown printer kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not device:
        raise BadSetting(f"a {kind} printer needs its device ([hardware.printer] device)")
    if kind == "usb":
        vendor, product = _usb_ids(device)

    def open_it() -> Any:
        if kind == "serial":
            # No DSR/DTR handshake: most thermal printers' USB-serial cables do not wire it.
            conn = ep.Serial(devfile=device, baudrate=baud, timeout=STATUS_READ_S, dsrdtr=False)
            conn.open()
            conn.device.write_timeout = timeout_s  # a printer that stops taking bytes
        elif kind == "usb":
            conn = ep.Usb(vendor, product, timeout=int(timeout_s * 1000))
            conn.open()
        else:
            conn = ep.File(devfile=device)
            conn.open()
        return conn

    return open_it


def judge(offline: int | None, error: int | None, paper: int | None) -> PrinterStatus:
    """The printer's state from its answers to DLE EOT 2, 3 and 4 (None: no answer)."""
    answers = [b for b in (offline, error, paper) if b is not None and b & 0x93 == 0x12]
    if not answers:
        return PrinterStatus.UNKNOWN
    if (paper is not None and paper & 0x60) or (offline is not None and offline & 0x20):
        return PrinterStatus.PAPER_OUT
    if (offline is not None and offline & 0x44) or (error is not None and error & 0x68):
        return PrinterStatus.JAMMED
    if paper is not None and paper & 0x0C:
        return PrinterStatus.PAPER_LOW
    return PrinterStatus.OK


class EscposPrinter(Printer):
    def __init__(self, kind: str, connect: Connector, *, logger: logging.Logger | None = None):
        self.kind = kind
        self._connect = connect
        self._conn: Any = None
        self._log = logger or logging.getLogger(__name__)

    # --- the connection -----------------------------------------------------------------

    def _open(self) -> Any:
        if self._conn is None:
            from escpos.exceptions import Error as EscposError  # noqa: PLC0415

            try:
                self._conn = self._connect()
            except (*PORT_GONE, EscposError, ValueError) as exc:
                raise PrinterOffline(f"printer not reachable: {exc}".strip()) from exc
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self.kind == "serial" and conn.device is not None:
                conn.device.close()  # not conn.close(): it flushes into a dead port first
                conn._device = False
            else:
                conn.close()
        except Exception as exc:  # noqa: BLE001 - closing a device that is gone: log, go on
            self._log.debug("printer: closing: %s", exc)

    def _query(self, conn: Any, n: int) -> int | None:
        if self.kind == "file":
            return None
        if self.kind == "serial":
            conn.device.reset_input_buffer()
            conn.device.write(DLE_EOT + bytes((n,)))
            got = conn.device.read(1)
        else:
            conn._raw(DLE_EOT + bytes((n,)))
            try:
                got = bytes(conn.device.read(conn.in_ep, 1, int(STATUS_READ_S * 1000)))
            except OSError:  # pyusb's timeout: no answer
                return None
        return got[0] if got else None

    def _status(self, conn: Any) -> PrinterStatus:
        return judge(self._query(conn, 2), self._query(conn, 3), self._query(conn, 4))

    # --- the interface ------------------------------------------------------------------

    def status(self) -> PrinterStatus:
        try:
            return self._status(self._open())
        except PrinterError:
            return PrinterStatus.OFFLINE
        except PORT_GONE as exc:  # SerialException, USBError, termios.error: gone while asking
            self._log.info("printer: status: %s", exc)
            self._drop()
            return PrinterStatus.OFFLINE

    def print_job(self, job: bytes) -> None:
        conn = self._open()
        try:
            self._check(self._status(conn), "")
            for i in range(0, len(job), CHUNK):
                conn._raw(job[i : i + CHUNK])
            if self.kind == "serial":
                conn.device.flush()
            self._check(self._status(conn), " during the receipt (it came out cut short)")
        except PrinterError:
            self._drop()
            raise
        except serial.SerialTimeoutException as exc:
            self._drop()
            raise PrinterTimeout("the printer stopped taking the receipt (jammed?)") from exc
        except PORT_GONE as exc:  # SerialException, USBError, a device file gone, termios.error
            self._drop()
            raise PrinterOffline(f"the printer went away: {exc}") from exc

    @staticmethod
    def _check(status: PrinterStatus, when: str) -> None:
        if status is PrinterStatus.PAPER_OUT:
            raise PaperOut(f"the printer is out of paper{when}")
        if status is PrinterStatus.JAMMED:
            raise PrinterJammed(f"the printer's cover is open or its cutter is jammed{when}")

    def close(self) -> None:
        self._drop()


def open_printer(
    kind: str,
    device: str,
    *,
    baud: int = 9600,
    timeout_s: float = 10.0,
    logger: logging.Logger | None = None,
) -> EscposPrinter:
    """The printer `kind` at `device`; nothing is opened until the first job or status."""
    return EscposPrinter(
        kind, connector(kind, device, baud=baud, timeout_s=timeout_s), logger=logger
    )
