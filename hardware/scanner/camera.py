"""Camera scanner: frames from OpenCV (or any `FrameSource`) through a QR decoder.

Per frame: the change gate may skip it (empty, still scene); otherwise the
region of interest is cut out, turned grey, downscaled to `detect_width`, and
decoded; the repeat filter decides which of the found codes to report.
`process()` is that one step, with no I/O, for tests and the benchmark.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2

from hardware.scanner.base import Scan, Scanner
from hardware.scanner.decoders import Decoder, GreyImage, as_uint8
from hardware.scanner.errors import ScannerClosed, ScannerUnavailable
from hardware.scanner.gating import ChangeGate, Frame, RepeatFilter
from hardware.scanner.rescue import RescuingDecoder

Clock = Callable[[], int]
_log = logging.getLogger(__name__)


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class FrameSource(Protocol):
    """Where frames come from: an OpenCV camera or the simulated one."""

    def read(self) -> Frame | None:
        """The next BGR (or grey) uint8 frame, at the source's pace; None once it has ended."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Roi:
    """Region of interest as fractions of the frame (0..1), e.g. where the card is held."""

    x: float = 0.0
    y: float = 0.0
    w: float = 1.0
    h: float = 1.0

    def crop(self, frame: Frame) -> Frame:
        height, width = frame.shape[:2]
        x0, y0 = int(self.x * width), int(self.y * height)
        x1, y1 = int((self.x + self.w) * width), int((self.y + self.h) * height)
        return frame[y0:y1, x0:x1]


@dataclass
class CameraStats:
    frames: int = 0
    decoded: int = 0
    skipped: int = 0
    reported: int = 0


class CameraScanner(Scanner):
    """A `Scanner` over a `FrameSource`. It owns (and closes) the source and the decoder."""

    def __init__(
        self,
        source: FrameSource,
        decoder: Decoder | None = None,
        *,
        gate: ChangeGate | None = None,
        gating: bool = True,
        detect_width: int | None = 640,
        roi: Roi | None = None,
        repeat_delay_ms: int | None = 3000,
        leave_ms: int = 700,
        clock: Clock = monotonic_ms,
    ) -> None:
        self.source = source
        self.decoder: Decoder = decoder if decoder is not None else RescuingDecoder()
        self.gate = (gate or ChangeGate()) if gating else None
        self.detect_width = detect_width
        self.roi = roi
        self.repeats = RepeatFilter(repeat_delay_ms=repeat_delay_ms, leave_ms=leave_ms)
        self.stats = CameraStats()
        self._clock = clock
        self._pending: deque[Scan] = deque()
        self._closed = False

    def prepare(self, frame: Frame) -> GreyImage:
        """ROI crop, grey, and downscale: the image the decoder sees."""
        if self.roi is not None:
            frame = self.roi.crop(frame)
        grey = as_uint8(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)) if frame.ndim == 3 else frame
        width = grey.shape[1]
        if self.detect_width is not None and width > self.detect_width:
            height = round(grey.shape[0] * self.detect_width / width)
            grey = as_uint8(
                cv2.resize(grey, (self.detect_width, height), interpolation=cv2.INTER_AREA)
            )
        return grey

    def process(self, frame: Frame) -> list[Scan]:
        """One frame through gate, decoder and repeat filter; the scans to report now."""
        now = self._clock()
        self.stats.frames += 1
        busy = self.repeats.busy(now)
        if self.gate is not None and not self.gate.should_decode(frame, now, busy=busy):
            self.stats.skipped += 1
            return []
        self.stats.decoded += 1
        payloads = self.decoder.decode(self.prepare(frame))
        scans = [Scan(p, now) for p in self.repeats.update(payloads, now)]
        self.stats.reported += len(scans)
        return scans

    def read(self, timeout: float | None = None) -> Scan | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if self._closed:
                raise ScannerClosed("camera scanner is closed")
            frame = self.source.read()
            if frame is None:
                raise ScannerClosed("the camera's frame source ended")
            self._pending.extend(self.process(frame))
            if deadline is not None and time.monotonic() >= deadline and not self._pending:
                return None
        return self._pending.popleft()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.source.close()
            self.decoder.close()


class OpenCVCamera:
    """A `FrameSource` over `cv2.VideoCapture`; reopens the device when reads fail.

    A USB camera that is pulled out makes `read()` fail; we release it and try
    to open it again every `reopen_s`, so plugging it back in is enough.
    """

    def __init__(
        self,
        index: int,
        *,
        width: int = 640,
        height: int = 480,
        reopen_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.index = index
        self.width, self.height = width, height
        self.reopen_s = reopen_s
        self.reopens = 0
        self._sleep = sleep
        self._closed = False
        self._cap = self._open()
        if self._cap is None:
            raise ScannerUnavailable(
                f"camera {index} could not be opened: is it plugged in, and is /dev/video{index} "
                "readable by this user (group 'video')?"
            )

    def _open(self) -> cv2.VideoCapture | None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            return None
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        return cap

    def read(self) -> Frame | None:
        while not self._closed:
            if self._cap is not None:
                ok, frame = self._cap.read()
                if ok and frame is not None:
                    return as_uint8(frame)  # already uint8 BGR; this only fixes the static type
                _log.warning("camera %d stopped delivering frames; reopening", self.index)
                self._cap.release()
                self._cap = None
            self._sleep(self.reopen_s)
            self._cap = self._open()
            self.reopens += 1
        return None

    def close(self) -> None:
        self._closed = True
        if self._cap is not None:
            self._cap.release()
            self._cap = None
