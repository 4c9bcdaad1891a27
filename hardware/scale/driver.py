"""`SerialScale`: the `Scale` behaviour every protocol shares, over a `SerialLink`.

A protocol module supplies a parser and, where the protocol has them, the
command exchanges. This class turns weight frames into `Reading`s (applying
the stability rule and the optional capacity limit), keeps command replies
apart from readings, and turns a vanished port into `disconnected` readings
while the link reopens it.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.scale.base import FrameCounters, Reading, Scale, ScaleStatus
from hardware.scale.errors import ScaleDisconnected, ScaleTimeout
from hardware.scale.frames import Frame, InfoFrame, Parser, ReplyFrame, WeightFrame
from hardware.scale.serial_port import SerialLink
from hardware.scale.stability import StabilityDetector, StabilityRule

MonoMs = Callable[[], int]


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass(frozen=True)
class ScaleOptions:
    """What every driver takes besides its link. `capacity_grams`: readings above it
    are reported as overload (for indicators that send no overload flag)."""

    stability: StabilityRule = field(default_factory=StabilityRule)
    capacity_grams: int | None = None
    clock_ms: MonoMs = monotonic_ms
    sleep: Callable[[float], None] = time.sleep


class SerialScale(Scale):
    """A scale on a serial link. Subclasses set `protocol`, implement `make_parser`,
    and may override `poll` (request/response protocols), `on_disconnect` and the
    commands.

    Not thread-safe: one thread owns a scale and should read it continuously, since
    `read` returns readings in arrival order and a scale left unread falls behind.
    """

    # Readings not yet handed out; old ones fall off while a command waits for its reply.
    QUEUE_LIMIT = 64

    def __init__(
        self, link: SerialLink, options: ScaleOptions | None = None, parser: Parser | None = None
    ) -> None:
        options = options or ScaleOptions()
        self._link = link
        self._parser = parser or self.make_parser()
        self._detector = StabilityDetector(options.stability)
        self._capacity = options.capacity_grams
        self._clock_ms = options.clock_ms
        self._sleep = options.sleep
        self._readings: deque[Reading] = deque(maxlen=self.QUEUE_LIMIT)
        self._replies: deque[ReplyFrame | InfoFrame] = deque(maxlen=self.QUEUE_LIMIT)
        self._closed = False

    @property
    def counters(self) -> FrameCounters:
        return self._parser.counters

    @property
    def port(self) -> str:
        return self._link.url

    def read(self, timeout: float = 1.0) -> Reading:
        if self._closed:
            raise ScaleDisconnected(f"scale on {self._link.url} was closed")
        deadline = self._clock_ms() + int(timeout * 1000)
        while not self._readings:
            if not self._link.is_open and not self._reopen(deadline):
                return self._disconnected()
            try:
                self.poll()
                self._pump(deadline)
            except ScaleDisconnected:
                return self._disconnected()
            if not self._readings and self._clock_ms() >= deadline:
                raise ScaleTimeout(
                    f"no reading from {self._link.url} in {timeout:g} s "
                    f"(check the protocol ({self.protocol}) and the baud rate)"
                )
        return self._readings.popleft()

    def close(self) -> None:
        self._closed = True
        self._link.close()

    # -- for subclasses ---------------------------------------------------------------

    @abstractmethod
    def make_parser(self) -> Parser:
        """A fresh parser for this protocol."""

    def poll(self) -> None:
        """Ask for a reading, for request/response protocols. Continuous ones need not."""

    def send(self, data: bytes) -> None:
        """Write a request; raises ScaleDisconnected if the port is gone."""
        if self._closed:
            raise ScaleDisconnected(f"scale on {self._link.url} was closed")
        if not self._link.is_open and not self._link.try_open():
            raise ScaleDisconnected(f"scale port {self._link.url} is not connected")
        self._link.write(data)

    def await_reply(
        self, accept: Callable[[ReplyFrame | InfoFrame], bool], timeout: float, what: str
    ) -> ReplyFrame | InfoFrame:
        """Wait for a reply `accept` recognises; readings arriving meanwhile are kept."""
        deadline = self._clock_ms() + int(timeout * 1000)
        while True:
            while self._replies:
                reply = self._replies.popleft()
                if accept(reply):
                    return reply
            if self._clock_ms() >= deadline:
                raise ScaleTimeout(f"no reply to {what} from {self._link.url} in {timeout:g} s")
            self._pump(deadline)

    def on_disconnect(self) -> None:
        """Forget per-connection protocol state (an unanswered request, say)."""

    def discard_replies(self) -> None:
        self._replies.clear()

    # -- internals --------------------------------------------------------------------

    def _pump(self, deadline_ms: int) -> None:
        """Read once (up to the deadline) and sort the frames that arrive."""
        wait = max(0.0, (deadline_ms - self._clock_ms()) / 1000)
        try:
            data = self._link.read(min(wait, 0.05))
        except ScaleDisconnected:
            self._detector.reset()
            raise
        for frame in self._parser.feed(data):
            self.handle_frame(frame)

    def handle_frame(self, frame: Frame) -> None:
        """Weights become readings; replies wait for `await_reply`. Subclasses may filter."""
        if isinstance(frame, WeightFrame):
            self._readings.append(self._reading(frame))
        else:
            self._replies.append(frame)

    def _reading(self, frame: WeightFrame) -> Reading:
        now = self._clock_ms()
        status, grams = frame.status, frame.grams
        # Some indicators (XK3190) send no overload flag; never credit beyond capacity.
        capacity = self._capacity
        if status is ScaleStatus.OK and grams is not None and capacity is not None:
            status = ScaleStatus.OVERLOAD if grams > capacity else status
        if status is not ScaleStatus.OK:
            grams = None
        stable = self._detector.update(now, grams, frame.stable_flag)
        return Reading(grams, stable, status, frame.stable_flag, now)

    def _reopen(self, deadline_ms: int) -> bool:
        """Wait (at most to the deadline) for the next reopen attempt and make it."""
        wait_s = min(self._link.seconds_until_retry(), (deadline_ms - self._clock_ms()) / 1000)
        if wait_s > 0:
            self._sleep(wait_s)
        return self._link.try_open()

    def _disconnected(self) -> Reading:
        self.on_disconnect()
        self._detector.reset()
        self._readings.clear()
        self._replies.clear()
        return Reading(None, False, ScaleStatus.DISCONNECTED, None, self._clock_ms())
