"""QR scanners: camera + decoder, or a serial / USB-CDC scanner, behind one `Scanner`.

`open_scanner(ScannerConfig(...))` picks the driver from config; the simulated
twins live in `simulator/` and plug in through `CameraScanner(source=...)` or a
pseudo-terminal path for `SerialScanner`.

The camera parts need the `camera` extra (OpenCV, numpy, zxing-cpp); they are
imported on first use, so a kiosk with a serial scanner runs without them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hardware.scanner.base import DECODER_NAMES, DecoderName, Scan, Scanner
from hardware.scanner.errors import (
    DecoderError,
    ScannerClosed,
    ScannerError,
    ScannerUnavailable,
)
from hardware.scanner.serial_scanner import LineFramer, SerialScanner

if TYPE_CHECKING:
    from hardware.scanner.camera import CameraScanner, FrameSource, OpenCVCamera, Roi
    from hardware.scanner.decoder_factory import open_decoder
    from hardware.scanner.decoders import Decoder

__all__ = [
    "DECODER_NAMES",
    "CameraScanner",
    "Decoder",
    "DecoderError",
    "DecoderName",
    "FrameSource",
    "LineFramer",
    "OpenCVCamera",
    "Roi",
    "Scan",
    "Scanner",
    "ScannerClosed",
    "ScannerConfig",
    "ScannerError",
    "ScannerUnavailable",
    "SerialScanner",
    "open_decoder",
    "open_scanner",
]

_LAZY = {
    "CameraScanner": "hardware.scanner.camera",
    "FrameSource": "hardware.scanner.camera",
    "OpenCVCamera": "hardware.scanner.camera",
    "Roi": "hardware.scanner.camera",
    "Decoder": "hardware.scanner.decoders",
    "open_decoder": "hardware.scanner.decoder_factory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hardware.scanner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ScannerConfig:
    """The `[scanner]` part of the kiosk config, already parsed and typed."""

    kind: Literal["camera", "serial"] = "camera"
    camera_index: int = 0
    width: int = 640
    height: int = 480
    decoder: DecoderName = "zxing"
    repeat_delay_ms: int | None = 3000
    roi: Roi | None = None
    port: str = "/dev/ttyACM0"
    baud: int = 9600
    max_line: int = 1024


def open_scanner(config: ScannerConfig, *, source: FrameSource | None = None) -> Scanner:
    """The scanner `config` describes. `source` replaces the OpenCV camera (simulator)."""
    if config.kind == "serial":
        return SerialScanner(config.port, baud=config.baud, max_line=config.max_line)
    if config.kind != "camera":
        raise ScannerError(f"unknown scanner kind {config.kind!r}; use 'camera' or 'serial'")
    try:
        from hardware.scanner.camera import CameraScanner, OpenCVCamera  # noqa: PLC0415
        from hardware.scanner.decoder_factory import open_decoder  # noqa: PLC0415
    except ImportError as exc:
        raise DecoderError(
            f"camera scanning needs the camera extra ({exc}): pip install 'green-passbook[camera]'"
        ) from exc
    decoder = open_decoder(config.decoder)
    try:
        frames = source or OpenCVCamera(
            config.camera_index, width=config.width, height=config.height
        )
    except ScannerError:
        decoder.close()
        raise
    return CameraScanner(frames, decoder, repeat_delay_ms=config.repeat_delay_ms, roi=config.roi)
