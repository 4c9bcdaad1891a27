"""Hard frames: the rescue steps read what plain zxing-cpp misses, never a wrong card,
and a card held unsteadily for one second at 10 fps is read.

The big corpus and all speed figures live in `bench/camera_hard.py`; these tests
use a few seeded frames so they run in seconds.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import segno

from edge.kiosk.cards import read_card
from hardware.scanner import CameraScanner, open_decoder
from hardware.scanner.deblur import line_kernel, shake_kernel, streak, wiener, wiener_stack
from hardware.scanner.decoders import ZxingDecoder, as_uint8
from hardware.scanner.finders import find_marks, guesses, refined
from hardware.scanner.rescue import DEFAULT_STEPS, RescuingDecoder, looks_like_code
from simulator.camera import background
from simulator.hard_frames import (
    CODE_CATEGORIES,
    VILLAGE,
    HardScene,
    HeldCard,
    Thumb,
    card_payload,
    hard_corpus,
    issuer_key,
    issuer_keys,
    render_hard,
)


def grey(image: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return as_uint8(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


@pytest.fixture(scope="module")
def frames() -> list:  # type: ignore[type-arg]
    return hard_corpus(3, seed=3)


def test_rescue_reads_more_than_plain_zxing_and_only_the_true_card(frames: list) -> None:  # type: ignore[type-arg]
    plain, rescue = ZxingDecoder(), RescuingDecoder()
    keys = issuer_keys(3)
    plain_hits = rescue_hits = 0
    for frame in frames:
        image = grey(frame.image)
        found = rescue.decode(image)
        assert set(found) <= {frame.payload}, f"wrong payload on a {frame.category} frame"
        for payload in found:  # the kiosk's own check still passes on a rescued read
            assert read_card(payload, keys, VILLAGE).village == VILLAGE
        plain_hits += frame.payload in plain.decode(image)
        rescue_hits += frame.payload in found
    # Measured (seed 3, 21 code frames): plain 16, rescue 21. Rescue never loses a code:
    # its first look is the plain pass.
    assert rescue_hits >= plain_hits + 3, (plain_hits, rescue_hits)
    assert sum(rescue.stats.rescued.values()) == rescue_hits - rescue.stats.first_look


def test_empty_scenes_give_no_payload_and_skip_the_retries(frames: list) -> None:  # type: ignore[type-arg]
    rescue = RescuingDecoder()
    empty = [f for f in frames if f.payload is None]
    assert len(empty) == 3
    for frame in empty:
        assert rescue.decode(grey(frame.image)) == []
    # Ruled lines, a thumb or a box edge are not taken for a code: no retry chain ran.
    assert rescue.stats.candidates == 0


def test_held_card_is_read_within_one_second_in_every_category() -> None:
    for i, category in enumerate(CODE_CATEGORIES):
        cam = HeldCard(category, seed=100 + i)  # 10 frames at 10 fps
        scanner = CameraScanner(cam, clock=cam.clock)
        assert list(scanner.payloads()) == [cam.payload], category
        assert cam.clock() == 900  # the whole second was replayed, no more


def test_default_decoder_is_the_rescuing_one() -> None:
    assert DEFAULT_STEPS and "sharpen" not in DEFAULT_STEPS
    assert isinstance(open_decoder("zxing"), RescuingDecoder)
    assert isinstance(CameraScanner(HeldCard("glare", seed=1)).decoder, RescuingDecoder)


def test_streak_finds_the_direction_of_motion_blur() -> None:
    base = background((640, 480), 1)
    rng = np.random.default_rng(0)
    card = HardScene(payload="GP1:P:dongcun:K0001-0001:K0001:" + "A" * 103, module_px=4.0)
    sharp = grey(render_hard(card, base, rng))[140:340, 220:420]
    assert streak(sharp)[1] > 0.6  # a sharp code is about isotropic
    for angle in (20.0, 75.0, 140.0):
        smeared = grey(render_hard(replace(card, motion_px=9.0, motion_deg=angle), base, rng))
        found, ratio = streak(smeared[140:340, 220:420])
        assert ratio < 0.45
        assert min(abs(found - angle), 180 - abs(found - angle)) < 12, (angle, found)
        assert looks_like_code(smeared[140:340, 220:420])


def test_wiener_deconvolution_undoes_a_known_streak() -> None:
    rng = np.random.default_rng(1)
    modules = rng.integers(0, 2, (40, 40)).astype(np.float32) * 190 + 35
    sharp = as_uint8(np.kron(modules, np.ones((4, 4), np.float32)))
    kernel = line_kernel(8, 30)
    blurred = as_uint8(cv2.filter2D(sharp.astype(np.float32), -1, kernel))
    restored = wiener(blurred, kernel)
    inner = (slice(16, -16), slice(16, -16))  # away from the border's wrap-around
    error_before = np.abs(blurred[inner].astype(int) - sharp[inner]).mean()
    error_after = np.abs(restored[inner].astype(int) - sharp[inner]).mean()
    assert error_after < error_before * 0.6, (error_before, error_after)


def _card_with_thumb(
    side: int, along: float, rotation: float, *, thumb: bool = True
) -> tuple[np.ndarray, str]:  # type: ignore[type-arg]
    """A sharp, slightly tilted card; the thumb covers one finder pattern whole."""
    payload = card_payload(np.random.default_rng(5), issuer_key(0))
    scene = HardScene(
        payload=payload,
        module_px=3.6,
        rotation_deg=rotation,
        perspective=0.08,
        tilt_deg=30.0,
        thumb=Thumb(side, along, 0.36, 0.18) if thumb else None,
    )
    image = render_hard(scene, background((640, 480), 2), np.random.default_rng(0))
    return grey(image), payload


@pytest.mark.parametrize(("side", "along", "rotation"), [(0, 0.1, 20.0), (3, 0.9, 200.0)])
def test_a_covered_finder_is_painted_back_and_the_code_read(
    side: int, along: float, rotation: float
) -> None:
    image, payload = _card_with_thumb(side, along, rotation)
    assert ZxingDecoder().decode(image) == []
    without = RescuingDecoder(tuple(s for s in DEFAULT_STEPS if s != "finder"))
    assert without.decode(image) == []  # no other step gets past the missing finder
    rescue = RescuingDecoder()
    assert rescue.decode(image) == [payload]
    assert rescue.stats.rescued == {"finder": 1}
    assert read_card(payload, issuer_keys(0), VILLAGE).village == VILLAGE


def test_the_missing_finder_is_placed_within_half_a_module() -> None:
    window = (slice(80, 400), slice(160, 480))
    covered, _ = _card_with_thumb(0, 0.1, 20.0)
    marks = find_marks(covered[window])
    assert len(marks.finders) == 2
    a, b = marks.finders
    module = (a.module + b.module) / 2
    assert 3.0 < module < 4.2  # 3.6 px at the card's centre, tilted
    # The same frame with no thumb shows the third finder where it really is.
    bare, _ = _card_with_thumb(0, 0.1, 20.0, thumb=False)
    (third,) = [
        f.center
        for f in find_marks(bare[window]).finders
        if min(np.linalg.norm(f.center - a.center), np.linalg.norm(f.center - b.center)) > module
    ]
    places = [
        g.centers[g.missing] for raw in guesses(a, b) for g in refined(raw, marks.holes, module)
    ]
    assert min(np.linalg.norm(p - third) for p in places) < 0.5 * module


def test_a_micro_qr_code_is_not_read() -> None:
    # An M1 Micro QR has error detection but no correction; zxing-cpp 3 reads it as
    # part of "QR Code", and one turned up inside a held card's own modules (below).
    micro = segno.make("8405", micro=True)
    assert micro.version == "M1"
    modules = np.pad(np.array(micro.matrix, np.uint8), 4)
    image = np.kron(np.where(modules > 0, 30, 225), np.ones((8, 8))).astype(np.uint8)
    assert ZxingDecoder().decode(image) == []
    assert RescuingDecoder().decode(image) == []


def test_no_phantom_micro_qr_in_a_held_cards_texture() -> None:
    cam = HeldCard("perspective", seed=40_007)  # held-card trial 7 of seed 4
    frames = [cam.read() for _ in range(4)]
    phantom = grey(frames[3])  # plain zxing-cpp read "8405" here as a Micro QR
    assert set(ZxingDecoder().decode(phantom)) <= {cam.payload}


def test_two_views_shaken_different_ways_deconvolve_better_together() -> None:
    rng = np.random.default_rng(2)
    modules = rng.integers(0, 2, (40, 40)).astype(np.float32) * 190 + 35
    sharp = np.kron(modules, np.ones((3, 3), np.float32))  # 3 px per module
    # Defocus σ 1.6 px and a 6 px shake, across in one view and down in the other.
    kernels = [shake_kernel(1.6, 6.0, 0.0), shake_kernel(1.6, 6.0, 90.0)]
    views = [
        as_uint8(np.clip(cv2.filter2D(sharp, -1, k) + rng.normal(0, 5, sharp.shape), 0, 255))
        for k in kernels
    ]

    def wrong_modules(image: np.ndarray) -> float:  # type: ignore[type-arg]
        inner = (slice(5, -5), slice(5, -5))  # away from the border's wrap-around
        return float(((image[1::3, 1::3] > 130)[inner] != (modules > 130)[inner]).mean())

    alone = [wrong_modules(wiener(v, k, 0.005)) for v, k in zip(views, kernels, strict=True)]
    together = wrong_modules(wiener_stack(views, kernels, 0.005))
    # Measured: 3.6 % and 5.0 % of modules wrong alone, none together. Each streak
    # wipes out detail across one axis, which the other view kept.
    assert min(alone) > 0.02, alone
    assert together < 0.005, together


def test_a_held_card_too_blurred_for_any_one_frame_is_read_from_two() -> None:
    # Tuning seed 1, trial 186: defocus σ 1.9 px at 2.8 px per module, plus the shake.
    cam = HeldCard("gaussian_blur", seed=10_186)
    first, second = grey(cam.read()), grey(cam.read())
    for frame in (first, second):
        assert RescuingDecoder().decode(frame) == []
    decoder = RescuingDecoder()
    assert decoder.decode(first) == []
    assert decoder.decode(second) == [cam.payload]
    assert decoder.stats.rescued == {"frames": 1}
    # A frame of another card before it does not align, so nothing is combined.
    other = grey(HeldCard("gaussian_blur", seed=10_187).read())
    decoder = RescuingDecoder()
    assert decoder.decode(other) == []
    assert decoder.decode(second) == []
    assert decoder.stats.rescued == {}


def test_held_out_defocused_and_small_cards_are_read_on_most_frames() -> None:
    # Held-out seed 12 (the rescue was tuned on seeds 1-6): its defocus and small-module
    # trials among the first 56, the first 0.3 s of each (3 frames at 10 fps), each
    # trial through one decoder as a camera would feed it. Measured: 42 of 48 frames
    # read; 37 without the shake and frames steps (a lone frame: the test above).
    decoded = 0
    for i in range(56):
        category = CODE_CATEGORIES[i % 7]
        if category not in ("gaussian_blur", "small_modules"):
            continue
        cam = HeldCard(category, seed=120_000 + i, frames=3)
        decoder = RescuingDecoder()
        while (frame := cam.read()) is not None:
            found = decoder.decode(grey(frame))
            assert set(found) <= {cam.payload}
            decoded += found == [cam.payload]
    assert decoded >= 40, decoded
