"""QR decoders: turn a greyscale image into the texts of the QR codes in it.

zxing-cpp is the default: its maintainer's benchmark found 1113 codes on 540 hard
images against pyzbar's 387, in a third of the time. pyzbar is selectable, but
libzbar has open crash bugs (double free), so the camera scanner runs it in a
worker process (`hardware.scanner.worker`) where a crash cannot take the kiosk down;
`hardware.scanner.decoder_factory` chooses (`open_decoder`).

Decoders are plain objects with `decode(grey) -> list[str]` so tests and the
benchmark can wrap them (count calls, inject faults) without patching anything.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import numpy.typing as npt

from hardware.scanner.base import DECODER_NAMES, DecoderName
from hardware.scanner.errors import DecoderError

__all__ = [
    "DECODER_NAMES",
    "Decoder",
    "DecoderName",
    "GreyImage",
    "PyzbarDecoder",
    "ZxingDecoder",
    "as_uint8",
]

GreyImage = npt.NDArray[np.uint8]


def as_uint8(image: object) -> GreyImage:
    """OpenCV's typed results as our uint8 image type (no copy when already uint8)."""
    return np.asarray(image, dtype=np.uint8)


_log = logging.getLogger(__name__)


class Decoder(Protocol):
    """Finds QR codes in a 2-D uint8 greyscale image."""

    name: str

    def decode(self, grey: GreyImage) -> list[str]:
        """Texts of the QR codes found, in no particular order; [] when none."""
        ...

    def close(self) -> None:
        """Release resources (a worker process, for the isolated decoder)."""
        ...


class ZxingDecoder:
    """zxing-cpp, QR only, in-process (it has no known crashers on our inputs).

    Rotation and inversion retries are off: a QR code is found in any orientation
    anyway, and passbook cards are dark-on-light, so both would only cost CPU.
    zxing's own downscaling pass is off too: the camera scanner already hands it
    a frame of `detect_width`, and on our 640×480 corpus the pass found no extra
    code while costing ~25 % more CPU (see docs/hardware-scanner.md).
    """

    name = "zxing"

    def __init__(self, *, try_downscale: bool = False) -> None:
        try:
            import zxingcpp  # noqa: PLC0415 - optional extra, load only when chosen
        except ImportError as exc:
            raise DecoderError(
                "zxing-cpp is not installed: pip install 'green-passbook[camera]'"
            ) from exc
        self._zxing = zxingcpp
        # Full-size QR only. zxing-cpp 3 made `QRCode` the family, Micro QR included,
        # and an M1 Micro QR (error detection, no correction) turns up in a big
        # code's own texture: a wrong payload on one held-card frame in 2,000.
        qr = zxingcpp.BarcodeFormat
        self._formats = zxingcpp.BarcodeFormats(getattr(qr, "QRCodeModel2", qr.QRCode))
        self._try_downscale = try_downscale

    def decode(self, grey: GreyImage, *, fixed_threshold: bool = False) -> list[str]:
        """Texts of the codes read; `fixed_threshold` swaps zxing's local-average binarizer."""
        binarizer = self._zxing.Binarizer
        results = self._zxing.read_barcodes(
            grey,
            formats=self._formats,
            try_rotate=False,
            try_invert=False,
            try_downscale=self._try_downscale,
            binarizer=binarizer.FixedThreshold if fixed_threshold else binarizer.LocalAverage,
        )
        return [str(r.text) for r in results if r.valid]

    def decode_located(self, grey: GreyImage) -> tuple[list[str], list[tuple[int, int, int, int]]]:
        """Texts read, and the boxes (x0, y0, x1, y1) of symbols found but not read.

        One zxing pass either way (`return_errors` costs nothing extra): a symbol
        whose finder patterns were found but whose data failed its checksum is
        the best place to look again (`hardware.scanner.rescue`).
        """
        results = self._zxing.read_barcodes(
            grey,
            formats=self._formats,
            try_rotate=False,
            try_invert=False,
            try_downscale=self._try_downscale,
            return_errors=True,
        )
        texts = [str(r.text) for r in results if r.valid]
        boxes = []
        for r in results:
            if r.valid:
                continue
            p = r.position
            xs = (p.top_left.x, p.top_right.x, p.bottom_right.x, p.bottom_left.x)
            ys = (p.top_left.y, p.top_right.y, p.bottom_right.y, p.bottom_left.y)
            # The quiet zone and a module or two of slack around the located corners.
            pad = max(max(xs) - min(xs), max(ys) - min(ys)) // 8 + 6
            boxes.append((min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad))
        return texts, boxes

    def close(self) -> None:
        pass


class PyzbarDecoder:
    """pyzbar (libzbar), in the calling process. Prefer `worker.IsolatedDecoder` around it."""

    name = "pyzbar"

    def __init__(self) -> None:
        try:
            from pyzbar import pyzbar  # noqa: PLC0415 - optional extra
        except ImportError as exc:  # also raised when libzbar0 is missing
            raise DecoderError(
                f"pyzbar cannot load ({exc}): pip install 'green-passbook[pyzbar]' "
                "and apt-get install libzbar0"
            ) from exc
        self._pyzbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(self, grey: GreyImage) -> list[str]:
        found: list[str] = []
        for symbol in self._pyzbar.decode(grey, symbols=self._symbols):
            try:
                found.append(bytes(symbol.data).decode("utf-8"))
            except UnicodeDecodeError:
                # zbar guesses text encodings; a card we can't read as UTF-8 is not ours.
                _log.debug("pyzbar: skipped a non-UTF-8 payload")
        return found

    def close(self) -> None:
        pass


def make_pyzbar() -> PyzbarDecoder:
    """Module-level factory so a spawned worker process can unpickle it."""
    return PyzbarDecoder()
