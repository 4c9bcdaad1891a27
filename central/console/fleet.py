"""The Fleet page's rows: every kiosk an actor may see, its health, and its alerts.

An alert is raised when, at central's clock:

- ``offline``: nothing heard from the kiosk for longer than `offline_hours` (its last
  status, or its enrolment when it never sent one), or its last status says offline
  (the broker published its last will) for that long;
- ``backlog``: its oldest unsynced entry is older than `backlog_hours`;
- ``scale`` / ``scanner``: reported as ``error`` or ``disconnected``;
- ``disk``: less than `disk_free_mb` MB free, or less than `disk_free_percent` of its
  disk free (only when the kiosk reports its disk's size: older ones send no
  ``disk_bytes`` and are judged by MB alone);
- ``log``: its check of central's transparency log failed (a log fault: central
  rewrote history, forked its log, or changed or dropped one of the kiosk's entries;
  docs/trust.md). Shown with its code and the kiosk's seq it names;
- ``printer``: its receipt printer is out of paper, jammed, unplugged or not answering
  (the deposits are kept; villagers go without receipts until a technician comes);
- ``clock``: its clock is not synchronised (the kiosk says so since it reports
  ``clock_ok``): its entries' times may be wrong, so a technician should look.

Revoked kiosks are listed, without alerts: nobody expects to hear from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from central.api_models import DeviceOut
from central.console.settings import Alerts
from central.store import CentralStore

FAULTS = ("error", "disconnected")
PRINTER_FAULTS = ("paper_out", "jammed", "offline", "timeout")
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class KioskRow:
    device: DeviceOut
    seen_ms: int  # the last time central heard from it (or its enrolment)
    online: bool
    backlog_age_ms: int | None  # age of its oldest unsynced entry; None: nothing unsynced
    alerts: tuple[str, ...]

    @property
    def free_mb(self) -> int | None:
        """Free disk in whole MB, rounded down: a kiosk under a 500 MB threshold never
        shows 500."""
        health = self.device.health
        if health is None or health.free_disk_bytes is None:
            return None
        return health.free_disk_bytes // 1_000_000

    @property
    def free_percent(self) -> int | None:
        """Free share of the disk in whole percent, rounded down; None when the kiosk
        did not report its disk's size."""
        health = self.device.health
        if health is None:
            return None
        share = _free_share(health.free_disk_bytes, health.disk_bytes)
        return None if share is None else int(share * 100)


def kiosk_rows(
    store: CentralStore, village: str | None, alerts: Alerts, now_ms: int
) -> list[KioskRow]:
    """Kiosks of `village` (None: all), alerting ones first, then by device id."""
    rows = [_row(DeviceOut.of(d), alerts, now_ms) for d in store.devices(village)]
    return sorted(rows, key=lambda r: (not r.alerts, r.device.device_id))


def _row(d: DeviceOut, limits: Alerts, now_ms: int) -> KioskRow:
    seen = d.last_seen_ms if d.last_seen_ms is not None else d.enrolled_ms
    silent_ms = max(0, now_ms - seen)
    online = bool(d.online) and silent_ms <= limits.offline_hours * HOUR_MS
    backlog_age = (
        max(0, now_ms - d.oldest_unsynced_ms)
        if d.oldest_unsynced_ms is not None and (d.backlog or 0) > 0
        else None
    )
    found: list[str] = []
    if d.status == "active":
        if silent_ms > limits.offline_hours * HOUR_MS:
            found.append("offline")
        if backlog_age is not None and backlog_age > limits.backlog_hours * HOUR_MS:
            found.append("backlog")
        if d.health is not None:
            if d.health.scale in FAULTS:
                found.append("scale")
            if d.health.scanner in FAULTS:
                found.append("scanner")
            free = d.health.free_disk_bytes
            share = _free_share(free, d.health.disk_bytes)
            if (free is not None and free < limits.disk_free_mb * 1_000_000) or (
                share is not None and share * 100 < limits.disk_free_percent
            ):
                found.append("disk")
            if d.health.log_fault is not None:
                found.append("log")
            if d.health.printer in PRINTER_FAULTS:
                found.append("printer")
            if d.health.clock_ok is False:
                found.append("clock")
    return KioskRow(d, seen, online, backlog_age, tuple(found))


def _free_share(free: int | None, total: int | None) -> float | None:
    """Free bytes over the disk's size (0–1), or None when either is unknown."""
    if free is None or total is None or total <= 0:
        return None
    return min(1.0, max(0, free) / total)
