"""The kiosk's LEDs, buzzer and button on gpiozero's MockFactory, with a visible history.

`SimulatedGpio` builds the real `hardware.gpio.Indicator` on a MockFactory whose
pins report every change to a `GpioRecorder`: a list of (mono_ms, device, state)
transitions that tests, the demo and the status view can read. `press()` drives
the button pin as a finger would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

from hardware.gpio import GpioPins, Indicator


@dataclass(frozen=True, slots=True)
class Transition:
    mono_ms: int
    device: str
    state: bool


class GpioRecorder:
    """Collects pin transitions, named by device. Thread-safe: blinks run in threads."""

    def __init__(self, names: dict[int, str], clock_ms: Callable[[], int]) -> None:
        self.names = names
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._events: list[Transition] = []

    def record(self, pin: int, state: bool) -> None:
        event = Transition(self._clock_ms(), self.names.get(pin, f"GPIO{pin}"), state)
        with self._lock:
            self._events.append(event)

    def history(self, device: str | None = None) -> list[Transition]:
        with self._lock:
            events = list(self._events)
        return [e for e in events if device is None or e.device == device]

    def states(self, device: str) -> list[bool]:
        return [e.state for e in self.history(device)]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


def _recording_pin_class(recorder: GpioRecorder) -> type[MockPin]:
    class RecordingPin(MockPin):  # type: ignore[misc]  # gpiozero ships no types
        def _change_state(self, value: bool) -> bool:
            changed: bool = super()._change_state(value)
            if changed:
                recorder.record(int(self.info.name.removeprefix("GPIO")), bool(value))
            return changed

    return RecordingPin


class SimulatedGpio:
    """An `Indicator` on mock pins plus its recorder. Use `.indicator` like the real one."""

    def __init__(
        self,
        pins: GpioPins | None = None,
        *,
        clock_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
        on_button: Callable[[], None] | None = None,
    ) -> None:
        self.pins = pins or GpioPins()
        names = {
            self.pins.green: "green",
            self.pins.amber: "amber",
            self.pins.red: "red",
            self.pins.buzzer: "buzzer",
        }
        if self.pins.button is not None:
            names[self.pins.button] = "button"
        self.recorder = GpioRecorder(names, clock_ms)
        self.factory: Any = MockFactory(pin_class=_recording_pin_class(self.recorder))
        # The mock has no real bounce; 0 keeps back-to-back test presses distinct.
        self.indicator = Indicator(
            self.pins, pin_factory=self.factory, on_button=on_button, bounce_s=None
        )
        self.recorder.clear()  # forget the pins' set-up to their initial levels

    def press(self, hold_s: float = 0.0) -> None:
        """Press and release the button (pull-up: pressed is low)."""
        if self.pins.button is None:
            raise RuntimeError("this kiosk has no button configured")
        pin = self.factory.pin(self.pins.button)
        pin.drive_low()
        if hold_s:
            time.sleep(hold_s)
        pin.drive_high()

    def pin_state(self, device: str) -> bool:
        number = getattr(self.pins, device)
        return bool(self.factory.pin(number).state)

    def close(self) -> None:
        self.indicator.close()
        self.factory.reset()
