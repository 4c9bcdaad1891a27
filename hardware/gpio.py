"""Status LEDs, buzzer and help button through gpiozero.

The kiosk tells the villager what is going on with three LEDs and a buzzer:

    state     green   amber          red
    off       off     off            off
    ready     on      off            off
    busy      off     blink 4 Hz     off
    offline   on      on             off      (works, but cannot sync)
    fault     off     off            blink 1 Hz

`beep_ok()`: one short beep (0.08 s). `beep_error()`: three beeps (0.25 s on, 0.12 s off).
Pins come from `GpioPins` (BCM numbers, from config). The pin factory is
gpiozero's choice unless one is passed in: lgpio on a Pi (Pi 3, 4 and 5),
RPi.GPIO only if installed and asked for (it fails on the Pi 5), MockFactory in
tests and the simulator. This module is the one small layer over gpiozero.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from gpiozero import LED, Button, Buzzer


@dataclass(frozen=True)
class GpioPins:
    """BCM pin numbers; `button=None` for a kiosk without one."""

    green: int = 17
    amber: int = 27
    red: int = 22
    buzzer: int = 23
    button: int | None = 24
    # Active buzzer modules driven by a transistor are active-high; some boards invert.
    buzzer_active_high: bool = True


class State(enum.StrEnum):
    OFF = "off"
    READY = "ready"
    BUSY = "busy"
    OFFLINE = "offline"
    FAULT = "fault"


BUSY_BLINK_S = 0.125  # 4 Hz: something is happening, wait
FAULT_BLINK_S = 0.5  # 1 Hz: call staff
OK_BEEP = (0.08, 0.08, 1)  # on, off, count
ERROR_BEEP = (0.25, 0.12, 3)


class Indicator:
    """The kiosk's LEDs, buzzer and button. Closes its gpiozero devices on `close()`."""

    def __init__(
        self,
        pins: GpioPins,
        *,
        pin_factory: Any = None,
        on_button: Callable[[], None] | None = None,
        bounce_s: float | None = 0.05,
    ) -> None:
        self.pins = pins
        self.state = State.OFF
        self.green = LED(pins.green, pin_factory=pin_factory)
        self.amber = LED(pins.amber, pin_factory=pin_factory)
        self.red = LED(pins.red, pin_factory=pin_factory)
        self.buzzer = Buzzer(
            pins.buzzer, active_high=pins.buzzer_active_high, pin_factory=pin_factory
        )
        self.button: Button | None = None
        if pins.button is not None:
            # Pull-up: the button shorts the pin to ground, no resistor needed.
            self.button = Button(
                pins.button, pull_up=True, bounce_time=bounce_s, pin_factory=pin_factory
            )
            self.button.when_pressed = self._pressed
        self._on_button = on_button

    def on_button(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` (from gpiozero's thread) on each press."""
        self._on_button = callback

    def _pressed(self) -> None:
        if self._on_button is not None:
            self._on_button()

    def show(self, state: State | str) -> None:
        state = State(state)
        if state is self.state and state is not State.OFF:
            return  # already showing it; re-lighting would restart a blink mid-cycle
        self.state = state
        for led in (self.green, self.amber, self.red):
            led.off()  # also stops a blink thread
        if state is State.READY:
            self.green.on()
        elif state is State.BUSY:
            self.amber.blink(on_time=BUSY_BLINK_S, off_time=BUSY_BLINK_S)
        elif state is State.OFFLINE:
            self.green.on()
            self.amber.on()
        elif state is State.FAULT:
            self.red.blink(on_time=FAULT_BLINK_S, off_time=FAULT_BLINK_S)

    def beep_ok(self, *, wait: bool = False) -> None:
        """One short beep. `wait=True` blocks until it is done (tests, shutdown)."""
        on, off, n = OK_BEEP
        self.buzzer.beep(on_time=on, off_time=off, n=n, background=not wait)

    def beep_error(self, *, wait: bool = False) -> None:
        """Three longer beeps: the villager should look at the screen."""
        on, off, n = ERROR_BEEP
        self.buzzer.beep(on_time=on, off_time=off, n=n, background=not wait)

    def close(self) -> None:
        for device in (self.green, self.amber, self.red, self.buzzer, self.button):
            if device is not None:
                device.close()

    def __enter__(self) -> Indicator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
