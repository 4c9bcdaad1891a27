"""A held card's last few frames deconvolved together when no frame can be read alone.

A card held for a second is seen ten times, each frame blurred by the lens and by
a shake of the hand in a different direction. A code too small and too blurred
to be read from any one of them (under 3 px per module behind a defocus of σ ≈ 2
px) can still be read from two or three: aligned on the newest frame, they go
through one multi-frame Wiener filter (`deblur.wiener_stack`), each with its own
shake direction, so a detail one frame smeared away another kept, and the noise
averages down.

`RecentFrames` keeps the frames in which a code-like crop was seen and nothing
read, and forgets them when a code is read or when a frame shows nothing code-like
(the card left). Frames are aligned with OpenCV's ECC (a rotation and a shift:
a hand turns the card a little between frames), and a frame that does not align
well (another card, a hand passing) is left out. Nothing is voted on: the combined
image goes to zxing like any other, and its Reed–Solomon check decides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import cv2
import numpy as np

from hardware.scanner.deblur import REACH, shake_kernel, streak, wiener_stack
from hardware.scanner.decoders import GreyImage, as_uint8

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels

# (σ, streak px, noise-to-signal) of each frame's blur, its streak along that
# frame's own smear direction. Picked on the held-card trials of the tuning
# seeds (1–6): a real defocus with a shake, then the lens's softness alone.
_GUESSES: tuple[tuple[float, float, float], ...] = ((2.0, 3.5, 0.002), (1.2, 1.0, 0.002))
_MAX_SIDE = 420  # px: a bigger crop has big modules, and aligning it costs more than it pays
_MIN_CORRELATION = 0.85  # ECC score below which a frame is not the same card: ≥ 0.97 when it is
_ECC_STOP = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)


class RecentFrames:
    """The last `depth` frames where a code was seen and not read (see module doc)."""

    def __init__(self, depth: int = 1) -> None:
        self._frames: deque[GreyImage] = deque(maxlen=depth)

    def __len__(self) -> int:
        return len(self._frames)

    def remember(self, grey: GreyImage) -> None:
        self._frames.append(grey.copy())  # the caller may reuse its buffer

    def forget(self) -> None:
        self._frames.clear()

    def combined(self, grey: GreyImage, box: Box) -> Iterator[GreyImage]:
        """`box` of `grey` with the same place in the remembered frames, aligned and
        deconvolved together, upscaled ×2: one image per blur guess. Nothing when
        no remembered frame aligns."""
        x0, y0, x1, y1 = box
        wide = (x0 - REACH, y0 - REACH, x1 + REACH, y1 + REACH)
        newest = _cut(grey, wide)
        if max(newest.shape) > _MAX_SIDE:
            return
        stack = [newest]
        for frame in reversed(self._frames):
            aligned = _aligned(newest, _cut(frame, wide))
            if aligned is not None:
                stack.append(aligned)
        if len(stack) < 2:
            return
        angles = [streak(image)[0] for image in stack]
        for sigma, length, nsr in _GUESSES:
            kernels = [shake_kernel(sigma, length, angle) for angle in angles]
            sharp = wiener_stack(stack, kernels, nsr)
            yield as_uint8(cv2.resize(sharp, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))


def _cut(grey: GreyImage, box: Box) -> GreyImage:
    height, width = grey.shape
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(grey[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)])


def _aligned(reference: GreyImage, moving: GreyImage) -> GreyImage | None:
    """`moving` rotated and shifted onto `reference`, or None when they do not match.

    Both are smoothed first: ECC on a sharp code's modules has many local optima
    a module apart, the card's outline and the code's coarse texture have one.
    """
    if moving.shape != reference.shape:
        return None
    start = np.eye(2, 3, dtype=np.float32)
    ref = cv2.GaussianBlur(reference, (0, 0), 1.5).astype(np.float32)
    mov = cv2.GaussianBlur(moving, (0, 0), 1.5).astype(np.float32)
    try:
        everywhere = np.ones(ref.shape, np.uint8)
        # Smoothed here already: ECC's own pre-filter (1 = none) would blur it twice.
        score, warp = cv2.findTransformECC(
            ref, mov, start, cv2.MOTION_EUCLIDEAN, _ECC_STOP, everywhere, 1
        )
    except cv2.error:  # did not converge: not the same picture
        return None
    if score < _MIN_CORRELATION:
        return None
    height, width = reference.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return as_uint8(
        cv2.warpAffine(moving, warp, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    )
