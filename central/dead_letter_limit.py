"""How many refused batches central keeps, per device: enough to diagnose, never a flood.

Every refused batch is answered (the kiosk must learn why), but storing each one
would let a single stolen or broken kiosk fill central's disk: a flood of junk on its
own ``up/batch``, or a refused batch resent every minute for weeks (entries are
immutable, so a kiosk whose batch central refuses resends the same bytes until an
operator acts). So per sending device and per hour, central keeps the first
`PER_HOUR` refusals, and never the same payload twice; the rest are counted and
logged, not stored. The count lives in the worker's memory (it is a budget, not a
record), bounded to `MAX_DEVICES` senders.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from sqlalchemy import Engine

log = logging.getLogger(__name__)

PER_HOUR = 30
WINDOW_MS = 3_600_000
MAX_DEVICES = 10_000  # claimed ids come from topics: bound what a forger can make us hold


@dataclass
class _Sender:
    window_start_ms: int
    stored: int = 0
    dropped: int = 0
    seen: set[bytes] = field(default_factory=set)  # payload digests stored this window


class DeadLetterLimit:
    """`admit(sender, payload, now_ms)`: store this dead letter, or only count it."""

    def __init__(self, per_hour: int = PER_HOUR, max_devices: int = MAX_DEVICES) -> None:
        self.per_hour = per_hour
        self.max_devices = max_devices
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self.dropped = 0  # in all, since start

    def admit(self, sender: str | None, payload: bytes, now_ms: int) -> bool:
        key = sender if sender is not None else "(no device)"
        s = self._senders.get(key)
        if s is None or now_ms - s.window_start_ms >= WINDOW_MS:
            if s is not None and s.dropped:
                log.warning("dead letters from %s: %d more were not kept", key, s.dropped)
            s = _Sender(now_ms)
            self._senders[key] = s
            while len(self._senders) > self.max_devices:
                self._senders.popitem(last=False)
        self._senders.move_to_end(key)
        digest = hashlib.sha256(payload).digest()
        if s.stored < self.per_hour and digest not in s.seen:
            s.stored += 1
            s.seen.add(digest)
            return True
        s.dropped += 1
        self.dropped += 1
        if s.dropped == 1 or s.dropped % 1000 == 0:
            log.warning(
                "dead letters from %s: %d kept this hour; not keeping more (%d so far), "
                "nor the same batch twice",
                key,
                s.stored,
                s.dropped,
            )
        return False


_limits: WeakKeyDictionary[Engine, DeadLetterLimit] = WeakKeyDictionary()


def limit_for(engine: Engine) -> DeadLetterLimit:
    """The worker's budget for one database (tests open many in one process)."""
    found = _limits.get(engine)
    if found is None:
        found = _limits[engine] = DeadLetterLimit()
    return found
