"""Fixtures for the scale tests: a simulated scale on a real pty, and a driver on it.

Timings are small (100 frames/s, 40 ms settling, 60 ms hold) so the whole
contract suite over five protocols stays within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from hardware.scale import PROTOCOLS, Reading, Scale, SerialScale, StabilityRule, open_scale
from simulator.scale import SimulatedScale

SIM_RATE_HZ = 100.0
SIM_SETTLE_MS = 40
SIM_CAPACITY = 30_000
FAST_RULE = StabilityRule(step_grams=1, hold_ms=60, min_samples=3)


def wait_for(scale: Scale, ok: Callable[[Reading], bool], timeout: float = 3.0) -> Reading:
    """Read until a reading satisfies `ok`; fail with the last readings seen."""
    seen: list[Reading] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reading = scale.read(timeout=1.0)
        if ok(reading):
            return reading
        seen = [*seen[-5:], reading]
    raise AssertionError(f"no matching reading in {timeout} s; last: {seen}")


def stable_at(scale: Scale, grams: int, timeout: float = 3.0) -> Reading:
    return wait_for(scale, lambda r: r.stable and r.grams == grams, timeout)


@dataclass
class Rig:
    """A simulated scale and the driver reading it."""

    sim: SimulatedScale
    scale: SerialScale

    def wait_for(self, ok: Callable[[Reading], bool], timeout: float = 3.0) -> Reading:
        return wait_for(self.scale, ok, timeout)

    def stable_at(self, grams: int, timeout: float = 3.0) -> Reading:
        return stable_at(self.scale, grams, timeout)

    def readings(self, seconds: float) -> list[Reading]:
        """Everything read during the next `seconds`."""
        out: list[Reading] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out.append(self.scale.read(timeout=1.0))
        return out


def make_rig(protocol: str, **sim_options: object) -> tuple[SimulatedScale, SerialScale]:
    sim = SimulatedScale(
        protocol,
        rate_hz=SIM_RATE_HZ,
        settle_ms=SIM_SETTLE_MS,
        capacity_grams=SIM_CAPACITY,
        **sim_options,  # type: ignore[arg-type]
    ).start()
    scale = open_scale(
        protocol,
        str(sim.port),
        stability=FAST_RULE,
        # The XK3190 frame has no overload flag: the kiosk must be told the capacity.
        capacity_grams=SIM_CAPACITY if protocol == "xk3190" else None,
        poll_interval=0.01,
        reconnect_max_s=0.1,
    )
    return sim, scale


@pytest.fixture(params=list(PROTOCOLS))
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    sim, scale = make_rig(request.param)
    try:
        yield Rig(sim, scale)
    finally:
        scale.close()
        sim.stop()
