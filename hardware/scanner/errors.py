"""Scanner errors, all under `greenpass.errors.HardwareError`.

HardwareError (OSError)
└── ScannerError                 a QR scanner failed
    ├── ScannerClosed            the scanner was closed or its frame source ended
    ├── ScannerUnavailable       the device could not be opened (camera index, serial port)
    └── DecoderError             the QR decoder could not be loaded or keeps failing
"""

from __future__ import annotations

from greenpass.errors import HardwareError


class ScannerError(HardwareError):
    """A QR scanner (camera or serial) failed."""


class ScannerClosed(ScannerError):
    """The scanner was closed, or its frame source has no more frames."""


class ScannerUnavailable(ScannerError):
    """The scanning device could not be opened; the message names it and what to check."""


class DecoderError(ScannerError):
    """The QR decoder could not be loaded (missing package or library) or could not start."""
