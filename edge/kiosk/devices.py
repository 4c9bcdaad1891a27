"""The kiosk's devices — scale, scanner, LEDs and buzzer — opened from config.

`[hardware] backend = "real"` opens the drivers on the configured ports. Any other
backend is a function `(KioskConfig) -> Devices` found by its name: one registered in
this process (`register_backend`), else one installed as an entry point of the
`greenpass.backends` group. The simulator declares `sim` there (pyproject.toml) and
registers it when imported: simulated twins of the scale and scanner on
pseudo-terminals, read by the very same drivers, and gpiozero's MockFactory.
Production code never names the simulator, so a kiosk runs with `simulator/` deleted
and a sim config then fails with a ConfigError (docs/design.md §2).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from edge.kiosk.config import KioskConfig
from greenpass.errors import ConfigError, HardwareError
from hardware.gpio import Indicator
from hardware.printer import Printer, open_printer
from hardware.scale import Scale
from hardware.scale.factory import open_scale
from hardware.scanner import Scanner, open_scanner


class SimControls(Protocol):
    """What a simulated kiosk offers the demo and the field tools: its control page's
    routes, a broker URL rewritten to pass through its network-fault proxy, hands
    for the technician's part (placing masses, pressing the button, showing a card),
    and a clean shutdown."""

    cards: list[dict[str, str]]

    def routes(self) -> Sequence[Any]: ...
    def broker_url(self, url: str) -> str: ...
    def scale(self, action: str, grams: int = 0) -> str: ...
    def press_button(self) -> None: ...
    def scan(self, payload: str) -> None: ...
    def close(self) -> None: ...


@dataclass
class Devices:
    scale: Scale
    scanner: Scanner
    indicator: Indicator
    sim: SimControls | None = None
    printer: Printer | None = None  # None: no receipt printer ([hardware.printer] enabled)

    def close(self) -> None:
        closers = [self.scanner.close, self.scale.close, self.indicator.close]
        if self.printer is not None:
            closers.append(self.printer.close)
        for close in closers:
            with contextlib.suppress(OSError, HardwareError):
                close()  # shutting down: a device that is already gone is fine
        if self.sim is not None:
            self.sim.close()


def pin_factory(name: str) -> Any:
    """gpiozero's pin factory by config name; None lets gpiozero choose (lgpio on a Pi)."""
    if not name:
        return None
    module, cls = {
        "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
        "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
        "mock": ("gpiozero.pins.mock", "MockFactory"),
    }[name]
    try:
        return getattr(importlib.import_module(module), cls)()
    except (ImportError, RuntimeError, OSError) as exc:
        raise ConfigError(
            f"[hardware.gpio] pin_factory = {name!r} cannot start here ({exc}); "
            "on a Raspberry Pi install the 'pi' extra: pip install 'green-passbook[pi]'"
        ) from exc


Backend = Callable[[KioskConfig], Devices]
BACKENDS_GROUP = "greenpass.backends"
_registered: dict[str, Backend] = {}


def register_backend(name: str, opener: Backend) -> None:
    """Make `[hardware] backend = name` open devices with `opener` in this process."""
    _registered[name] = opener


def _installed() -> Iterable[EntryPoint]:
    return entry_points(group=BACKENDS_GROUP)


_FIX = 'use backend = "real", or a development install (make bootstrap)'


def find_backend(
    name: str,
    installed: Callable[[], Iterable[EntryPoint]] = _installed,
    registered: dict[str, Backend] | None = None,
) -> Backend:
    """The opener of backend `name`: registered in this process, else an installed entry
    point; ConfigError naming `hardware.backend` when neither has it."""
    found = (_registered if registered is None else registered).get(name)
    if found is not None:
        return found
    for ep in installed():
        if ep.name == name:
            try:
                opener: Backend = ep.load()
            except ImportError as exc:
                raise ConfigError(
                    f"no backend {name!r} here: its entry point ({ep.value}) cannot be "
                    f"loaded ({exc}); {_FIX}",
                    key="hardware.backend",
                ) from exc
            return opener
    raise ConfigError(
        f"no backend {name!r} here: it comes with the simulator, which a production install "
        f"leaves out (no {BACKENDS_GROUP!r} entry point {name!r}); {_FIX}",
        key="hardware.backend",
    )


def open_devices(cfg: KioskConfig) -> Devices:
    hw = cfg.hardware
    if hw.backend != "real":
        return find_backend(hw.backend)(cfg)
    scale = open_scale(
        hw.scale.protocol,
        hw.scale.port,
        hw.scale.baud or None,
        capacity_grams=hw.scale.capacity_grams,
        unit=hw.scale.unit,
    )
    try:
        scanner = open_scanner(hw.scanner)
        try:
            indicator = Indicator(hw.pins, pin_factory=pin_factory(hw.pin_factory))
        except BaseException:
            scanner.close()
            raise
    except BaseException:
        scale.close()
        raise
    return Devices(scale, scanner, indicator, printer=printer_of(cfg))


def printer_of(cfg: KioskConfig, device: str | None = None) -> Printer | None:
    """The configured receipt printer (nothing is opened until it prints), or None;
    `device` overrides the configured one (the simulator's pty)."""
    pr = cfg.hardware.printer
    if not pr.enabled:
        return None
    kind = pr.kind if device is None else "serial"
    return open_printer(kind, device or pr.device, baud=pr.baud, timeout_s=pr.timeout_s)
