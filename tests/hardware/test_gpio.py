"""GPIO: LED states, beep patterns and the button on gpiozero's MockFactory."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hardware.gpio import BUSY_BLINK_S, ERROR_BEEP, OK_BEEP, GpioPins, Indicator, State
from simulator.gpio import SimulatedGpio

PINS = GpioPins(green=5, amber=6, red=13, buzzer=19, button=26)
LEDS = ("green", "amber", "red")


@pytest.fixture
def gpio() -> Iterator[SimulatedGpio]:
    sim = SimulatedGpio(PINS)
    yield sim
    sim.close()


def lit(gpio: SimulatedGpio) -> dict[str, bool]:
    return {led: gpio.pin_state(led) for led in LEDS}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (State.OFF, {"green": False, "amber": False, "red": False}),
        (State.READY, {"green": True, "amber": False, "red": False}),
        (State.OFFLINE, {"green": True, "amber": True, "red": False}),
    ],
)
def test_steady_states_drive_the_right_pins(
    gpio: SimulatedGpio, state: State, expected: dict[str, bool]
) -> None:
    gpio.indicator.show(State.FAULT)  # start from something else: show() must clear it
    gpio.indicator.show(state)
    assert lit(gpio) == expected


def test_busy_blinks_amber_only(gpio: SimulatedGpio) -> None:
    gpio.indicator.show("ready")
    gpio.recorder.clear()
    gpio.indicator.show("busy")
    time.sleep(BUSY_BLINK_S * 5)
    assert gpio.recorder.states("green") == [False]
    assert gpio.recorder.states("amber")[:4] == [True, False, True, False]
    assert gpio.recorder.states("red") == []


def test_fault_blinks_red(gpio: SimulatedGpio) -> None:
    gpio.indicator.show(State.FAULT)
    time.sleep(0.05)
    assert lit(gpio) == {"green": False, "amber": False, "red": True}
    assert gpio.recorder.states("red") == [True]
    gpio.indicator.show(State.READY)  # stops the blink thread
    time.sleep(0.6)
    assert gpio.recorder.states("red") == [True, False]


def test_ok_beep_is_one_short_beep(gpio: SimulatedGpio) -> None:
    gpio.indicator.beep_ok(wait=True)
    events = gpio.recorder.history("buzzer")
    assert [e.state for e in events] == [True, False]
    on_ms = events[1].mono_ms - events[0].mono_ms
    assert OK_BEEP[0] * 1000 - 5 <= on_ms <= OK_BEEP[0] * 1000 + 60


def test_error_beep_is_three_longer_beeps(gpio: SimulatedGpio) -> None:
    gpio.indicator.beep_error(wait=True)
    events = gpio.recorder.history("buzzer")
    assert [e.state for e in events] == [True, False] * ERROR_BEEP[2]
    on_ms = events[1].mono_ms - events[0].mono_ms
    assert on_ms >= ERROR_BEEP[0] * 1000 - 5


def test_button_press_calls_back(gpio: SimulatedGpio) -> None:
    presses: list[float] = []
    gpio.indicator.on_button(lambda: presses.append(time.monotonic()))
    gpio.press()
    gpio.press()
    assert len(presses) == 2


def test_indicator_on_a_plain_mock_factory() -> None:
    """The real class on gpiozero's own MockFactory, no simulator in between."""
    factory = MockFactory()
    pressed: list[bool] = []
    with Indicator(PINS, pin_factory=factory, on_button=lambda: pressed.append(True)) as ind:
        ind.show("ready")
        assert factory.pin(PINS.green).state
        assert not factory.pin(PINS.red).state
        button = factory.pin(PINS.button)
        button.drive_low()
        button.drive_high()
        assert pressed == [True]
    factory.reset()


def test_inverted_buzzer_and_no_button() -> None:
    factory = MockFactory()
    pins = GpioPins(green=5, amber=6, red=13, buzzer=19, button=None, buzzer_active_high=False)
    with Indicator(pins, pin_factory=factory) as ind:
        assert factory.pin(19).state  # idle high = silent on an active-low module
        ind.beep_ok(wait=True)
        assert factory.pin(19).state
        assert ind.button is None
    factory.reset()


def test_unknown_state_is_refused(gpio: SimulatedGpio) -> None:
    with pytest.raises(ValueError):
        gpio.indicator.show("party")
