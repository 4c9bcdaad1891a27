"""Serial scales behind one `Scale` interface.

    from hardware.scale import open_scale
    with open_scale("gpfw", "/dev/serial/by-id/usb-GreenPass_Scale-if00") as scale:
        reading = scale.read(timeout=1.0)

Modules: `base` (interface, Reading), `stability` (the stable rule),
`serial_port` (transport with reconnect), `driver` (shared driver logic), one
module per protocol (`gpfw`, `mtsics`, `and_ascii`, `cas`, `xk3190`), `errors`.
"""

from hardware.scale.base import FrameCounters, Reading, Scale, ScaleStatus
from hardware.scale.driver import ScaleOptions, SerialScale
from hardware.scale.errors import (
    BadSetting,
    CommandFailed,
    PortError,
    ScaleDisconnected,
    ScaleError,
    ScaleTimeout,
    UnknownProtocol,
    Unsupported,
)
from hardware.scale.factory import PROTOCOLS, open_scale
from hardware.scale.stability import StabilityDetector, StabilityRule

__all__ = [
    "PROTOCOLS",
    "BadSetting",
    "CommandFailed",
    "FrameCounters",
    "PortError",
    "Reading",
    "Scale",
    "ScaleDisconnected",
    "ScaleError",
    "ScaleOptions",
    "ScaleStatus",
    "ScaleTimeout",
    "SerialScale",
    "StabilityDetector",
    "StabilityRule",
    "UnknownProtocol",
    "Unsupported",
    "open_scale",
]
