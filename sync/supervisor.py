"""Keep a worker thread alive: restart it after a crash, with backoff; give up loudly.

The kiosk's uplink runs in a thread of the kiosk process. An exception nobody
planned for (a bug, a library raising something new) used to end that thread
silently while the kiosk ran on, showing only "offline". Here such an exception
is logged with its traceback, reported (`on_crash`: the uplink turns it into a
sync fault), and the target is run again after a jittered, growing pause. After
`max_crashes` crashes in a row (a run that lasted `healthy_after_s` resets the
count) it gives up (`on_give_up`) and `failed` says why: the kiosk daemon, which
watches `failed`, then exits non-zero so systemd starts a fresh process.

`failed` also reports a thread that ended any other way without being stopped
(a `BaseException`, or the target returning early), so a dead thread is never
mistaken for a quiet one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sync.transport import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    base_s: float = 1.0  # pauses before a restart: uniform(0, min(cap, base · 2^n))
    cap_s: float = 60.0
    max_crashes: int = 5  # crashes in a row tolerated; one more and it gives up
    healthy_after_s: float = 600.0  # a run at least this long resets the count


class Supervisor:
    """Runs `target` in a daemon thread until `stop` is set, restarting it after crashes.

    `target` must return only once `stop` is set."""

    def __init__(
        self,
        target: Callable[[], None],
        *,
        name: str,
        stop: threading.Event,
        policy: RestartPolicy | None = None,
        on_crash: Callable[[Exception, int], None] | None = None,
        on_give_up: Callable[[Exception, int], None] | None = None,
    ) -> None:
        self.target = target
        self.name = name
        self.stop = stop
        self.policy = policy or RestartPolicy()
        self.on_crash = on_crash
        self.on_give_up = on_give_up
        self.crashes = 0  # in a row, as counted for giving up
        self.runs = 0  # times `target` was started: 1 + restarts
        self._backoff = Backoff(self.policy.base_s, self.policy.cap_s)
        self._gave_up: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def failed(self) -> str | None:
        """Why the thread is gone though nobody stopped it; None while it runs (or
        was stopped, or was never started)."""
        if self._gave_up is not None:
            return self._gave_up
        if self._thread is None or self._thread.is_alive() or self.stop.is_set():
            return None
        return f"{self.name} ended without being stopped"

    def _loop(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            self.runs += 1
            try:
                self.target()
            except Exception as exc:
                # The one supervisor boundary: whatever escaped the target's own (narrow)
                # handling is a bug; log it, report it, and run the target again rather
                # than let the thread die unseen.
                if time.monotonic() - started >= self.policy.healthy_after_s:
                    self.crashes = 0
                    self._backoff.reset()
                self.crashes += 1
                if self.crashes > self.policy.max_crashes:
                    self._give_up(exc)
                    return
                log.exception("%s crashed (%d in a row); restarting it", self.name, self.crashes)
                if self.on_crash is not None:
                    self.on_crash(exc, self.crashes)
                self.stop.wait(self._backoff.next_delay())
                continue
            return

    def _give_up(self, exc: Exception) -> None:
        self._gave_up = (
            f"{self.name} crashed {self.crashes} times in a row and is not restarted "
            f"again: {type(exc).__name__}: {exc}"
        )
        log.critical("%s", self._gave_up, exc_info=exc)
        if self.on_give_up is not None:
            self.on_give_up(exc, self.crashes)
