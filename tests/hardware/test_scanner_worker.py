"""The pyzbar worker process: decodes, survives a crash of its C library, gets restarted."""

from __future__ import annotations

import functools
import pickle

import cv2
import numpy as np
import pytest

from hardware.scanner import CameraScanner, DecoderError, open_decoder
from hardware.scanner.decoders import GreyImage, PyzbarDecoder, as_uint8, make_pyzbar
from hardware.scanner.worker import IsolatedDecoder
from simulator.camera import Scene, SimulatedCamera, aborting_pyzbar, passbook_payload

PAYLOAD = passbook_payload(np.random.default_rng(3))
MAGIC = "CRASH-ME"


def grey_frame(payload: str | None) -> GreyImage:
    frame = SimulatedCamera(Scene(payload=payload, code_px=240), frames=1).read()
    assert frame is not None
    return as_uint8(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))


def test_isolated_pyzbar_decodes_like_in_process() -> None:
    grey = grey_frame(PAYLOAD)
    with_worker = open_decoder("pyzbar")
    try:
        assert isinstance(with_worker, IsolatedDecoder)
        assert with_worker.decode(grey) == PyzbarDecoder().decode(grey) == [PAYLOAD]
        assert with_worker.decode(grey_frame(None)) == []
        assert with_worker.stats.starts == 1
    finally:
        with_worker.close()
    assert with_worker.pid is None


def test_crashed_worker_is_restarted_and_counted() -> None:
    decoder = IsolatedDecoder(functools.partial(aborting_pyzbar, MAGIC), name="pyzbar")
    try:
        assert decoder.decode(grey_frame(PAYLOAD)) == [PAYLOAD]
        first_pid = decoder.pid
        assert decoder.decode(grey_frame(MAGIC)) == []  # the worker called os.abort()
        assert decoder.stats.crashes == 1
        assert decoder.pid is None
        assert decoder.decode(grey_frame(PAYLOAD)) == [PAYLOAD]  # a fresh worker
        assert decoder.stats.starts == 2
        assert decoder.pid not in (None, first_pid)
    finally:
        decoder.close()


def test_camera_scanner_keeps_going_through_decoder_crashes() -> None:
    cam = SimulatedCamera(Scene(payload=MAGIC), frames=400)
    decoder = IsolatedDecoder(functools.partial(aborting_pyzbar, MAGIC), name="pyzbar")
    scanner = CameraScanner(cam, decoder, clock=cam.clock, repeat_delay_ms=None)
    reported: list[str] = []
    try:
        for _ in range(3):  # each frame with the magic card kills the worker
            frame = cam.read()
            assert frame is not None
            reported.extend(s.payload for s in scanner.process(frame))
        cam.set_scene(Scene(payload=PAYLOAD))
        frame = cam.read()
        assert frame is not None
        reported.extend(s.payload for s in scanner.process(frame))
    finally:
        scanner.close()
    assert reported == [PAYLOAD]
    assert decoder.stats.crashes >= 1
    assert decoder.stats.starts == decoder.stats.crashes + 1


def _never_ready() -> PyzbarDecoder:
    raise ImportError("libzbar.so.0: cannot open shared object file")


def test_worker_that_cannot_start_fails_loudly() -> None:
    decoder = IsolatedDecoder(_never_ready, name="broken", start_timeout_s=20)
    with pytest.raises(DecoderError, match="did not start"):
        decoder.decode(grey_frame(None))
    decoder.close()


def test_make_pyzbar_is_picklable_for_spawn() -> None:
    assert pickle.loads(pickle.dumps(make_pyzbar)) is make_pyzbar
