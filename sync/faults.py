"""The uplink's sync fault: why sync is stuck, reported once and cleared by a sane ack.

One fault at a time (the latest): its `code` (one of `protocol.SYNC_FAULTS`) goes
into the kiosk's status, page and `doctor`. A new fault is logged at error level
and makes the status due for publishing at once; the same fault again (a central
repeating the same impossible ack, or every probe refused alike) only updates the
message, so a stuck link does not flood the log. Written by the uplink thread,
read by the kiosk's: each change replaces one immutable `SyncFault`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sync import protocol as p

log = logging.getLogger(__name__)


class Faults:
    def __init__(self, device_id: str, wall_ms: Callable[[], int]) -> None:
        self.device_id = device_id
        self._wall_ms = wall_ms
        self.current: p.SyncFault | None = None
        self._due = False

    def set(self, code: str, message: str) -> None:
        current = self.current
        if current is not None and current.code == code:
            self.current = p.SyncFault(code=code, message=message, since_ms=current.since_ms)
            log.debug("uplink %s: %s again: %s", self.device_id, code, message)
            return
        self.current = p.SyncFault(code=code, message=message, since_ms=self._wall_ms())
        self._due = True
        log.error("uplink %s: sync fault %s: %s", self.device_id, code, message)

    def clear(self) -> None:
        if self.current is not None:
            log.info("uplink %s: sync fault %s cleared", self.device_id, self.current.code)
            self.current = None
            self._due = True

    def take_due(self) -> bool:
        """Whether the fault changed since the last call: the status must go out now."""
        due, self._due = self._due, False
        return due
