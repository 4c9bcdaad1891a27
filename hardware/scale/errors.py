"""Errors raised by the scale drivers; every one is a `greenpass.errors.HardwareError`.

    HardwareError (OSError)                      greenpass.errors
    └── ScaleError                               anything a scale driver raises on purpose
        ├── Unsupported (NotImplementedError)    this protocol cannot tare / zero / calibrate
        ├── ScaleTimeout (TimeoutError)          no usable frame or reply within the timeout
        ├── ScaleDisconnected (ConnectionError)  the port vanished (cable out, board reset)
        ├── PortError                            the port name itself is unusable (bad URL)
        ├── CommandFailed                        the scale answered a command with a refusal
        └── BadSetting (ValueError)              a driver option is invalid (unit, baud...)
            └── UnknownProtocol                  `open_scale` was given a name it does not know

pyserial's `SerialException` and `OSError` are translated into these in
`serial_port.py` and nowhere else, so callers only ever see our tree.
Parsers raise nothing at all: bad bytes are counted and skipped.
"""

from __future__ import annotations

from greenpass.errors import HardwareError


class ScaleError(HardwareError):
    """Root of the scale drivers' errors."""


class Unsupported(ScaleError, NotImplementedError):
    """The scale's protocol has no such command (e.g. calibrate over MT-SICS level 0)."""


class ScaleTimeout(ScaleError, TimeoutError):
    """Nothing usable arrived in time: check the baud rate and the protocol name."""


class ScaleDisconnected(ScaleError, ConnectionError):
    """The serial port went away; the driver reopens it by itself when it returns."""


class PortError(ScaleError):
    """The port name cannot be opened as a serial port at all (not merely absent)."""


class CommandFailed(ScaleError):
    """The scale refused a command; `reason` is the scale's own word for why."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"scale refused {command}: {reason}")
        self.command = command
        self.reason = reason


class BadSetting(ScaleError, ValueError):
    """A driver option is invalid; the message names it."""


class UnknownProtocol(BadSetting):
    """The protocol name is not one of `hardware.scale.PROTOCOLS`."""
