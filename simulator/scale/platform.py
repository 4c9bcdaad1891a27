"""The simulated load cell: what is on the platform, and what the scale displays.

A change of load ramps linearly to the new value over `settle_ms` (so the
readings move, as a real platform's do), then holds; noise, drift and a span
error (`gain`) are added on top. Zero and tare are kept in integer grams, as
an indicator keeps them in counts. Thread-safe: controls come from the test
thread, samples are taken by the device thread.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from simulator.scale.encoders import Display


class Platform:
    def __init__(
        self,
        *,
        capacity_grams: int,
        settle_ms: int,
        rng: random.Random,
        clock: Callable[[], float],
    ) -> None:
        self.capacity_grams = capacity_grams
        self.settle_ms = settle_ms
        self.noise_grams = 0
        self.gain = 1.0
        self._rng = rng
        self._clock = clock
        self._lock = threading.Lock()
        self._from = 0.0
        self._to = 0.0
        self._changed_at = clock() - 3600.0
        self._drift = 0.0  # grams per second
        self._drift_since = self._changed_at
        self._zero = 0
        self._tare = 0

    def load(self, grams: int) -> None:
        with self._lock:
            self._from = self._mass(self._clock())
            self._to = float(grams)
            self._changed_at = self._clock()

    def set_drift(self, grams_per_s: float) -> None:
        with self._lock:
            now = self._clock()
            self._to = self._mass(now)  # keep what has crept so far
            self._from, self._changed_at = self._to, now - self.settle_ms / 1000
            self._drift, self._drift_since = grams_per_s, now

    def display(self) -> Display:
        """One sample as the indicator would show it."""
        with self._lock:
            now = self._clock()
            gross = self._gross(now)
            settled = (now - self._changed_at) * 1000 >= self.settle_ms
            quiet = self.noise_grams <= 1 and self._drift == 0
            return Display(gross - self._tare, settled and quiet, gross > self.capacity_grams)

    def zero(self) -> None:
        with self._lock:
            self._zero += self._gross(self._clock())
            self._tare = 0

    def tare(self) -> int:
        """Take the current gross as tare; return it."""
        with self._lock:
            self._tare = self._gross(self._clock())
            return self._tare

    def calibrate(self, known_grams: int) -> bool:
        """Set the span so the present load reads `known_grams`; False if nothing is on."""
        with self._lock:
            mass = self._mass(self._clock())
            if mass <= 0:
                return False
            self.gain = known_grams / mass
            return True

    def _mass(self, now: float) -> float:
        elapsed_ms = (now - self._changed_at) * 1000
        if elapsed_ms < self.settle_ms:
            mass = self._from + (self._to - self._from) * elapsed_ms / self.settle_ms
        else:
            mass = self._to
        return mass + self._drift * (now - self._drift_since)

    def _gross(self, now: float) -> int:
        noise = self._rng.uniform(-self.noise_grams, self.noise_grams)
        return round(self._mass(now) * self.gain + noise) - self._zero
