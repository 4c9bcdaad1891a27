"""Deconvolution for the rescue steps: which blur a code crop shows, and undoing it.

A code crop is smeared in one of three ways, each with its own guesses:

    motion   a streak along one direction (a card moved during the exposure):
             `streak` reads the direction and roughly the length off the crop's
             structure tensor; Wiener deconvolution by a line of that length
    defocus  a lens focused elsewhere: Gaussian widths, some trusting the image
             more (lower noise-to-signal), which codes of under 3 px per module need
    shake    both at once, as in a held card: the lens's softness (σ ≈ 1 px with
             the sensor's own) and a short streak from the hand along the crop's
             smear direction, or a real defocus (σ 2 px) with little streak.
             Deconvolved with little regularisation, since at 2–3 px per module
             the code's finest detail is barely above the noise.

Guesses are tried in order and the caller stops at the first image zxing reads,
so each list is short and its order comes from the benchmark's corpora
(`python -m bench.camera_hard`, docs/hardware-scanner.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from hardware.scanner.decoders import GreyImage, as_uint8

Kernel = npt.NDArray[np.float32]

# px a crop should reach beyond the code's box for deconvolution: a blur spreads
# the code's edge modules that far, and the filter needs the quiet zone to undo it.
REACH = 12


def streak(crop: GreyImage) -> tuple[float, float]:
    """Direction (degrees) along which the crop is smeared, and how isotropic it is (0..1).

    From the structure tensor: a motion streak wipes out gradients along its
    direction, so the tensor's weak axis is the streak's and a small ratio of its
    eigenvalues means a long streak. A sharp or defocused code scores near 1.
    """
    img = crop.astype(np.float32)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1)
    a, b, c = float((gx * gx).mean()), float((gy * gy).mean()), float((gx * gy).mean())
    root = math.sqrt(((a - b) / 2) ** 2 + c * c)
    strong, weak = (a + b) / 2 + root, (a + b) / 2 - root
    angle = (0.5 * math.degrees(math.atan2(2 * c, a - b)) + 90) % 180
    return angle, weak / strong if strong > 0 else 1.0


def line_kernel(length: float, angle_deg: float) -> Kernel:
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx = math.cos(math.radians(angle_deg)) * (length - 1) / 2
    dy = math.sin(math.radians(angle_deg)) * (length - 1) / 2
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return np.asarray(kernel / kernel.sum(), np.float32)


def gaussian_kernel(sigma: float) -> Kernel:
    k = cv2.getGaussianKernel(int(3 * sigma) * 2 + 1, sigma)
    return np.asarray(k @ k.T, np.float32)


def shake_kernel(sigma: float, length: float, angle_deg: float) -> Kernel:
    """A Gaussian of `sigma` smeared along a `length` px streak at `angle_deg`."""
    gauss = gaussian_kernel(sigma)
    if length <= 1:
        return gauss
    half = gauss.shape[0] // 2
    line = np.pad(line_kernel(length, angle_deg), half)
    kernel = cv2.filter2D(line, -1, gauss, borderType=cv2.BORDER_CONSTANT)
    return np.asarray(kernel / kernel.sum(), np.float32)


# Streak lengths tried for a given anisotropy: measured on the corpus, a ratio
# near 0.2 goes with a 8–10 px streak and near 0.45 with a 4–5 px one.
_STREAK_LENGTHS: tuple[tuple[float, tuple[float, ...]], ...] = (
    (0.30, (9.0, 7.0, 5.5)),
    (0.45, (6.5, 5.0, 8.0)),
    (0.60, (4.5, 3.5, 6.0)),
)

# Defocus widths tried (σ, noise-to-signal). The last two trust the image more:
# a heavily defocused code of under 3 px per module keeps so little contrast
# that the default 0.02 smooths it away (docs/hardware-scanner.md).
_DEFOCUS: tuple[tuple[float, float], ...] = ((1.5, 0.02), (2.2, 0.02), (1.5, 0.005), (1.9, 0.005))

# Shake guesses (σ, streak px, noise-to-signal), the streak along the crop's smear
# direction. Picked on the held-card trials of the tuning seeds (1–6): the lens's
# softness with a 3.5 or a 5 px shake, then a real defocus with none; a wrong
# direction (±45°) reads almost nothing, so the structure tensor's is kept.
_SHAKE: tuple[tuple[float, float, float], ...] = (
    (0.8, 3.5, 0.002),
    (0.8, 5.0, 0.006),
    (2.0, 1.0, 0.002),
)


def deblurred(crop: GreyImage) -> Iterator[GreyImage]:
    """`crop` deconvolved by each motion or defocus guess, likeliest first."""
    angle, ratio = streak(crop)
    for limit, lengths in _STREAK_LENGTHS:
        if ratio < limit:  # streaked: a motion blur along `angle`
            for length in lengths:
                yield wiener(crop, line_kernel(length, angle))
            return
    for sigma, nsr in _DEFOCUS:  # about isotropic: defocus
        yield wiener(crop, gaussian_kernel(sigma), nsr)


def deshaken(crop: GreyImage) -> Iterator[GreyImage]:
    """`crop` deconvolved by each shake guess (defocus and a short streak at once)."""
    angle, _ = streak(crop)
    for sigma, length, nsr in _SHAKE:
        yield wiener(crop, shake_kernel(sigma, length, angle), nsr)


def wiener(image: GreyImage, kernel: Kernel, nsr: float = 0.02) -> GreyImage:
    """Wiener deconvolution of `image` by `kernel` (a blur's point spread), in the DFT domain."""
    return wiener_stack([image], [kernel], nsr)


def wiener_stack(images: Sequence[GreyImage], kernels: Sequence[Kernel], nsr: float) -> GreyImage:
    """One sharp image from several views of it, each blurred by its own kernel.

    The multi-frame Wiener filter, Σ conj(Hᵢ)·Gᵢ / (Σ |Hᵢ|² + nsr): each frame
    contributes most where its own blur kept detail, so two shakes in different
    directions fill each other's gaps, and the noise averages down. The images
    must be aligned and of one size; one image is the plain Wiener filter.
    """
    height, width = images[0].shape
    rows, cols = cv2.getOptimalDFTSize(height + 16), cv2.getOptimalDFTSize(width + 16)
    re = np.zeros((rows, cols), np.float32)
    im = np.zeros((rows, cols), np.float32)
    power = np.full((rows, cols), nsr, np.float32)
    for image, kernel in zip(images, kernels, strict=True):
        # Pad by replicating the border so the DFT's wrap-around does not ring into the code.
        padded = cv2.copyMakeBorder(
            image, 0, rows - height, 0, cols - width, cv2.BORDER_REPLICATE
        ).astype(np.float32)
        psf = np.zeros((rows, cols), np.float32)
        kh, kw = kernel.shape
        psf[:kh, :kw] = kernel
        psf = np.roll(psf, (-(kh // 2), -(kw // 2)), (0, 1))
        g = cv2.dft(padded, flags=cv2.DFT_COMPLEX_OUTPUT)
        h = cv2.dft(psf, flags=cv2.DFT_COMPLEX_OUTPUT)
        # G · conj(H), with complex parts as the last axis.
        re += g[:, :, 0] * h[:, :, 0] + g[:, :, 1] * h[:, :, 1]
        im += g[:, :, 1] * h[:, :, 0] - g[:, :, 0] * h[:, :, 1]
        power += h[:, :, 0] ** 2 + h[:, :, 1] ** 2
    out = cv2.idft(np.dstack([re / power, im / power]), flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
    return as_uint8(np.clip(out[:height, :width], 0, 255))
