"""A second look at frames where plain zxing-cpp saw a code but could not read it.

Plain zxing-cpp reads about three quarters of hard frames (blur, a thumb, tiny
modules). `RescuingDecoder` first runs it as before; only when that finds
nothing does it look for *candidates* — a symbol zxing located but could not
decode (`return_errors`), or a block of dense ink-on-paper texture — and retries
on a crop around each with a short, ordered list of cheap fixes, stopping at the
first code read:

    zxing_options  the crop again with zxing's fixed-threshold binarizer
    upscale        the crop ×2 (bicubic): 2–3 px modules become 4–6 px
    deblur         a Wiener deconvolution, upscaled: along the blur's direction
                   when the crop's gradients say it is streaked (motion), else
                   Gaussian (defocus) (`hardware.scanner.deblur`)
    sharpen        unsharp mask on the upscaled crop
    clahe          local contrast (CLAHE) on the upscaled crop: faded print, glare
    finder         when the crop shows two finder patterns and not three (a thumb
                   over a corner square), a synthetic one painted where the third
                   must be (`hardware.scanner.finders`); zxing then reads the
                   code, its error correction repairing the covered data
    shake          a held card's blur: the lens's softness and a short streak from
                   the hand at once (or a real defocus), deconvolved with little
                   regularisation, upscaled, both binarizers
    frames         when a frame is not read with a code-like crop in it, that crop
                   and the same place in the frame before, aligned and deconvolved
                   together (`hardware.scanner.multiframe`): a held card's
                   frames are shaken in different directions

The order and the set come from `python -m bench.camera_loop`, which measures
each step's gain and CPU on the hard-frame corpus; see docs/hardware-scanner.md.
An empty scene yields no candidate, so it costs the first look and the texture
map only (and the decoder forgets any earlier frame). Every payload still comes
from zxing's own decoder (Reed–Solomon checked), and the kiosk checks the card's
signature afterwards as for any scan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from hardware.scanner.deblur import REACH, deblurred, deshaken, streak
from hardware.scanner.decoders import GreyImage, ZxingDecoder, as_uint8
from hardware.scanner.finders import restored
from hardware.scanner.multiframe import Box, RecentFrames

Step = Literal[
    "zxing_options", "upscale", "deblur", "sharpen", "clahe", "finder", "shake", "frames"
]
STEPS: tuple[Step, ...] = (
    "zxing_options",
    "upscale",
    "deblur",
    "sharpen",
    "clahe",
    "finder",
    "shake",
    "frames",
)
# Sharpening is measured but left out: on the benchmark's corpus it read no
# code that deconvolution had not already read (docs/hardware-scanner.md).
DEFAULT_STEPS: tuple[Step, ...] = (
    "zxing_options",
    "upscale",
    "deblur",
    "clahe",
    "finder",
    "shake",
    "frames",
)

_CELL = 16  # texture map cell, px: a few modules of a 2–5 px/module code
_MAX_CROP = 360  # a crop's longer side before the ×2 upscale (bounds the retry cost)
_SMALL_MODULE = 3.2  # px per module: below this a painted-finder crop is also tried ×2


@dataclass
class RescueStats:
    """How often each path read a code; the benchmark and `doctor` print these."""

    first_look: int = 0
    rescued: Counter[str] = field(default_factory=Counter)
    candidates: int = 0  # crops that looked like a code and went through the steps
    misses: int = 0  # frames with such a crop where no step read it


class RescuingDecoder:
    """A `Decoder`: zxing-cpp, then the rescue steps on candidate crops (see module doc)."""

    name = "zxing"

    def __init__(
        self,
        steps: tuple[Step, ...] = DEFAULT_STEPS,
        *,
        max_candidates: int = 2,
        texture_threshold: float = 16.0,
        earlier_frames: int = 1,
    ) -> None:
        self.steps = steps
        self.max_candidates = max_candidates
        self.texture_threshold = texture_threshold
        self.stats = RescueStats()
        self._zxing = ZxingDecoder()
        self._clahe = cv2.createCLAHE(clipLimit=2.5, tileGridSize=(4, 4))
        self._recent = RecentFrames(depth=earlier_frames)

    def decode(self, grey: GreyImage) -> list[str]:
        texts, located = self._zxing.decode_located(grey)
        if texts:
            self.stats.first_look += 1
            self._recent.forget()
            return texts
        if not self.steps:
            return []
        tried: list[Box] = []
        for box in self._candidates(grey, located)[: self.max_candidates]:
            crop = _cut(grey, box)
            if not looks_like_code(crop):
                continue
            tried.append(box)
            self.stats.candidates += 1
            wide = _cut(grey, _widened(box, REACH))  # deconvolution needs the blur's reach
            for step, image, fixed in self._variants(crop, wide):
                if found := self._read(step, image, fixed):
                    return found
        if not tried:  # nothing code-like: the card has gone, its frames are no help to the next
            self._recent.forget()
            return []
        if "frames" in self.steps:
            # Only now, when no single frame was enough: aligning costs ~10 ms a frame.
            for box in tried:
                for image in self._recent.combined(grey, box):
                    for fixed in (True, False):
                        if found := self._read("frames", image, fixed):
                            return found
            self._recent.remember(grey)
        self.stats.misses += 1
        return []

    def forget(self) -> None:
        """Drop the remembered frames: the next frame is a new scene (the benchmark's
        corpus frames are unrelated to each other)."""
        self._recent.forget()

    def _read(self, step: Step, image: GreyImage, fixed: bool) -> list[str]:
        found = self._zxing.decode(image, fixed_threshold=fixed)
        if found:
            self.stats.rescued[step] += 1
            self._recent.forget()
        return found

    def _variants(self, crop: GreyImage, wide: GreyImage) -> Iterator[tuple[Step, GreyImage, bool]]:
        """(step, image, use the fixed-threshold binarizer) in order, computed lazily."""
        steps = self.steps
        if "zxing_options" in steps:
            yield "zxing_options", crop, True
        up = _upscale(crop)
        if "upscale" in steps:
            yield "upscale", up, False
        if "deblur" in steps:
            for image in deblurred(wide):
                yield "deblur", _upscale(image), False
        if "sharpen" in steps:
            blurred = cv2.GaussianBlur(up, (0, 0), 2.5)
            yield "sharpen", as_uint8(cv2.addWeighted(up, 2.5, blurred, -1.5, 0)), False
        if "clahe" in steps:
            yield "clahe", as_uint8(self._clahe.apply(up)), False
        if "finder" in steps:
            for image, module in restored(crop):
                yield "finder", image, False
                if module < _SMALL_MODULE:
                    yield "finder", _upscale(image), False
        if "shake" in steps:
            # Deconvolved this hard, a code's modules come out as blobs whose grey
            # level is all that is left: both binarizers read a different share.
            for image in deshaken(wide):
                up = _upscale(image)
                yield "shake", up, True
                yield "shake", up, False

    def _candidates(self, grey: GreyImage, located: list[Box]) -> list[Box]:
        """Where to look again: textured blocks, else the span of zxing's unread symbols.

        zxing's unread "symbols" are often a wrong triple of finder patterns
        covering part of the code, so its boxes only stand in when the texture
        map finds nothing (a faded code under glare).
        """
        boxes = self._textured_boxes(grey)
        if boxes or not located:
            return boxes
        xs0, ys0, xs1, ys1 = zip(*located, strict=True)
        return [(min(xs0), min(ys0), max(xs1), max(ys1))]

    def _textured_boxes(self, grey: GreyImage) -> list[Box]:
        """Blocks of dense edges at least 3×3 cells (48 px) across: where a code may be.

        A printed line or a box edge lights up a row of cells, not a block, so
        the erosion drops it; an empty counter rarely leaves a candidate.
        """
        height, width = grey.shape
        edges = cv2.morphologyEx(grey, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        cells = cv2.resize(edges, (width // _CELL, height // _CELL), interpolation=cv2.INTER_AREA)
        mask = (cells > self.texture_threshold).astype(np.uint8)
        core = cv2.erode(mask, np.ones((3, 3), np.uint8))
        if not core.any():
            return []
        blobs = cv2.dilate(core, np.ones((3, 3), np.uint8))
        count, _, boxes, _ = cv2.connectedComponentsWithStats(blobs)
        order = sorted(range(1, count), key=lambda i: -int(boxes[i, cv2.CC_STAT_AREA]))
        found: list[Box] = []
        for i in order:
            x, y, w, h = (int(v) * _CELL for v in boxes[i, :4])
            found.append((x - _CELL, y - _CELL, x + w + _CELL, y + h + _CELL))
        return found

    def close(self) -> None:
        self._zxing.close()


def _widened(box: Box, by: int) -> Box:
    x0, y0, x1, y1 = box
    return x0 - by, y0 - by, x1 + by, y1 + by


def _cut(grey: GreyImage, box: Box) -> GreyImage:
    height, width = grey.shape
    x0, y0, x1, y1 = box
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    crop = grey[y0:y1, x0:x1]
    longer = max(crop.shape)
    if longer > _MAX_CROP:  # a big symbol has big modules: shrink rather than upscale
        scale = _MAX_CROP / longer
        crop = as_uint8(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return np.ascontiguousarray(crop)


def looks_like_code(crop: GreyImage) -> bool:
    """Dense edges in two directions: a QR code, sharp or smeared, not ruled lines or a box edge.

    On the corpus a code's crop has ≥ 31 % edge pixels and a structure-tensor
    ratio ≥ 0.18 (a 10 px motion streak); empty scenes' texture blocks (printed
    lines, a thumb on a blank card, box corners) stay at ≤ 26 % and ≤ 0.15. The
    test saves an empty scene's frame the whole retry chain.
    """
    edges = cv2.morphologyEx(crop, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    if float((edges > 20).mean()) < 0.28:
        return False
    return streak(crop)[1] >= 0.16


def _upscale(crop: GreyImage) -> GreyImage:
    return as_uint8(cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
