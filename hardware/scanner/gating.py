"""Cheap decisions made before and after the decoder: change gating and repeat suppression.

`ChangeGate` keeps an empty scene cheap: a 32×24 grey thumbnail of each frame
(area-averaged, so sensor noise of a few grey levels all but vanishes) is
compared with the thumbnail of the last frame that was *decoded*, not the
previous frame, so a card sliding in slowly still adds up to a change.

`RepeatFilter` turns "this code is in this frame" into "report this code now":
a code held in view is reported once; again after `repeat_delay_ms`, or after
it left the view (unseen for `leave_ms`, which rides over a missed frame).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]


class ChangeGate:
    """Says whether a frame differs enough from the last decoded one to be worth decoding."""

    def __init__(
        self,
        *,
        thumb_size: tuple[int, int] = (32, 24),
        threshold: float = 10.0,
        refresh_ms: int = 2000,
    ) -> None:
        self.thumb_size = thumb_size
        self.threshold = threshold
        # Decode now and then even on a still scene, so a missed change (a card
        # laid flat under slowly changing light) is found within refresh_ms.
        self.refresh_ms = refresh_ms
        self._reference: npt.NDArray[np.int16] | None = None
        self._reference_ms = 0

    def thumbnail(self, frame: Frame) -> npt.NDArray[np.int16]:
        # Every 4th pixel of the green channel (the one closest to luminance),
        # area-averaged down to the thumbnail: ~0.02 ms on 640×480, ten times
        # cheaper than averaging all pixels of all channels, and each cell still
        # averages ~25 samples, so sensor noise stays far below the threshold.
        small = frame[::4, ::4, 1] if frame.ndim == 3 else frame[::4, ::4]
        thumb = cv2.resize(small, self.thumb_size, interpolation=cv2.INTER_AREA)
        return thumb.astype(np.int16)

    def should_decode(self, frame: Frame, now_ms: int, *, busy: bool = False) -> bool:
        """True when `frame` should go to the decoder.

        `busy` (a code was seen recently) forces a decode: we must keep looking
        to know whether the code is still there.
        """
        thumb = self.thumbnail(frame)
        ref = self._reference
        decode = (
            busy
            or ref is None
            or now_ms - self._reference_ms >= self.refresh_ms
            or float(np.abs(thumb - ref).max()) > self.threshold
        )
        if decode:
            self._reference, self._reference_ms = thumb, now_ms
        return decode


class RepeatFilter:
    """Reports each code once while it stays in view; see the module docstring."""

    def __init__(self, *, repeat_delay_ms: int | None = 3000, leave_ms: int = 700) -> None:
        self.repeat_delay_ms = repeat_delay_ms
        self.leave_ms = leave_ms
        self._last_seen: dict[str, int] = {}
        self._last_reported: dict[str, int] = {}

    def update(self, payloads: Iterable[str], now_ms: int) -> list[str]:
        """The payloads among those seen at `now_ms` that should be reported now."""
        self._forget_departed(now_ms)
        report: list[str] = []
        for payload in dict.fromkeys(payloads):  # dedupe, keep order
            reported = self._last_reported.get(payload)
            due = reported is None or (
                self.repeat_delay_ms is not None and now_ms - reported >= self.repeat_delay_ms
            )
            if due:
                report.append(payload)
                self._last_reported[payload] = now_ms
            self._last_seen[payload] = now_ms
        return report

    def busy(self, now_ms: int) -> bool:
        """True while some code was seen within `leave_ms` (so it may still be in view)."""
        return any(now_ms - seen <= self.leave_ms for seen in self._last_seen.values())

    def _forget_departed(self, now_ms: int) -> None:
        gone = [p for p, seen in self._last_seen.items() if now_ms - seen > self.leave_ms]
        for payload in gone:
            del self._last_seen[payload]
            del self._last_reported[payload]
