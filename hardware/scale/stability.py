"""Is the weight stable? Decided by the kiosk from the samples, not only by the scale.

Rule: a reading is stable when every sample over the last `hold_ms`
milliseconds lies within `step_grams` of each other (max - min <= one display
step), at least `min_samples` samples cover that span, and the scale's own
stable flag, if its protocol sends one, also says stable. Any sample that is
not an OK weight (overload, error, disconnected) restarts the window.

Why both: cheap indicators flag "stable" after a fixed count of equal samples
even while someone leans on the platform; and scales without a flag
(XK3190 continuous output) still need a decision. Pure: no clock, no I/O; the
caller passes each sample's monotonic time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class StabilityRule:
    step_grams: int = 1
    hold_ms: int = 500
    min_samples: int = 3

    def __post_init__(self) -> None:
        if self.step_grams < 0 or self.hold_ms < 0 or self.min_samples < 1:
            raise ValueError(f"invalid stability rule {self}")


class StabilityDetector:
    """Feed samples in time order with `update`; it answers whether the weight is stable."""

    def __init__(self, rule: StabilityRule | None = None) -> None:
        self.rule = rule or StabilityRule()
        # Samples inside the hold window, plus the newest one older than it (the
        # "anchor"), whose value held at the window's start.
        self._samples: deque[tuple[int, int]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def update(self, at_ms: int, grams: int | None, scale_flag: bool | None) -> bool:
        """Add a sample (grams None = not a weight) and return the stability decision."""
        if grams is None:
            self.reset()
            return False
        samples = self._samples
        if samples and at_ms < samples[-1][0]:
            self.reset()  # the clock went backwards: trust nothing older
        samples.append((at_ms, grams))
        window_start = at_ms - self.rule.hold_ms
        while len(samples) >= 2 and samples[1][0] <= window_start:
            samples.popleft()
        values = [g for _, g in samples]
        if max(values) - min(values) > self.rule.step_grams:
            # Keep only the newest run that is within one step, so stability can
            # return as soon as the load has held still for hold_ms.
            self._trim_to_settled_run()
            return False
        covered = samples[0][0] <= window_start
        enough = len(samples) >= self.rule.min_samples
        return covered and enough and scale_flag is not False

    def _trim_to_settled_run(self) -> None:
        samples = self._samples
        low = high = samples[-1][1]
        keep = 1
        for _, grams in reversed(list(samples)[:-1]):
            low, high = min(low, grams), max(high, grams)
            if high - low > self.rule.step_grams:
                break
            keep += 1
        while len(samples) > keep:
            samples.popleft()
