"""Which decoder a scanner gets, and where it runs: `open_decoder`.

zxing-cpp with the hard-frame rescue steps (`hardware.scanner.rescue`) by default, in
the kiosk's process; pyzbar in a worker process (`hardware.scanner.worker`) unless told
otherwise. Apart from the decoders themselves (`hardware.scanner.decoders`), which the
rescue steps and the worker build on.
"""

from __future__ import annotations

from hardware.scanner.base import DECODER_NAMES, DecoderName
from hardware.scanner.decoders import Decoder, PyzbarDecoder, make_pyzbar
from hardware.scanner.errors import DecoderError
from hardware.scanner.rescue import RescuingDecoder
from hardware.scanner.worker import IsolatedDecoder


def make_zxing() -> Decoder:
    """Module-level factory so a spawned worker process can unpickle it: zxing-cpp with
    the hard-frame rescue steps, the default."""
    return RescuingDecoder()


def open_decoder(name: DecoderName, *, isolated: bool | None = None) -> Decoder:
    """The decoder called `name`. pyzbar runs in a worker process unless `isolated=False`."""
    if name == "zxing":
        if isolated:
            return IsolatedDecoder(make_zxing, name="zxing")
        return make_zxing()
    if name == "pyzbar":
        if isolated is False:
            return PyzbarDecoder()
        PyzbarDecoder()  # fail here, in the kiosk, with a clear message if libzbar is missing
        return IsolatedDecoder(make_pyzbar, name="pyzbar")
    raise DecoderError(f"unknown decoder {name!r}; choose one of {', '.join(DECODER_NAMES)}")
