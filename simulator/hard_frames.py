"""Hard single frames of signed passbook cards, by labelled category, and a card held unsteadily.

`hard_corpus()` draws a seeded corpus for the camera benchmark and tests: every
frame has a random pose (any rotation, a little tilt), exposure, sensor noise
and lens softness, and a code of 2.6–5 px per module; each category then
pushes one degradation to where villagers' cards really fail:

    perspective     the card tilted away (far edge 30–50 % shorter)
    low_contrast    faded print or dim light: ink–paper contrast 0.35–0.55 of new
    glare           a lamp's specular spot over the code, saturated at its core
    finger          a thumb over part of the symbol, from any side (finders too)
    gaussian_blur   out of focus: σ 1.2–2.0 px
    motion_blur     a shaking hand: a 4–10 px streak in any direction
    small_modules   the card too far away: 2.0–2.6 px per module
    empty           no code: counter top, sometimes a blank card or a hand

Payloads are real cards (`edge.kiosk.cards.make_card`, version 8 QR at ECC M like the
printed ones), signed by a seeded issuer key, so a reader's output can be put
through `read_card` as the kiosk does. `HeldCard` is a `FrameSource` for the
held-card trial: one pose per trial, drawn like a corpus frame, replayed with
per-frame hand jitter, motion blur, glare drift and fresh noise.

The frames are rendered with the pixel integration a sensor does (the card
texture is prefiltered before it is warped down), so 2 px modules are as mushy
as a camera makes them rather than aliased sharp.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.kiosk.cards import make_card
from simulator.camera import Frame, background

Category = Literal[
    "perspective",
    "low_contrast",
    "glare",
    "finger",
    "gaussian_blur",
    "motion_blur",
    "small_modules",
    "empty",
]
CODE_CATEGORIES: tuple[Category, ...] = (
    "perspective",
    "low_contrast",
    "glare",
    "finger",
    "gaussian_blur",
    "motion_blur",
    "small_modules",
)
CATEGORIES: tuple[Category, ...] = (*CODE_CATEGORIES, "empty")

KEY_ID = "K0001"
VILLAGE = "dongcun"
_TEX = 8  # card texture: pixels per QR module before warping
_QUIET, _MARGIN = 4, 3  # quiet zone (modules) and card paper beyond it
_PAPER, _INK = 225.0, 35.0
_SIZE = (640, 480)


def issuer_key(seed: int = 0) -> Ed25519PrivateKey:
    """The corpus's issuer key; its public half checks the cards as a kiosk would."""
    return Ed25519PrivateKey.from_private_bytes(np.random.default_rng(seed).bytes(32))


def issuer_keys(seed: int = 0) -> dict[str, bytes]:
    """`read_card`'s key map for cards made with `issuer_key(seed)`."""
    return {KEY_ID: issuer_key(seed).public_key().public_bytes_raw()}


def card_payload(rng: np.random.Generator, key: Ed25519PrivateKey) -> str:
    book = f"K{int(rng.integers(1, 99)):04d}-{int(rng.integers(1, 9999)):04d}"
    return make_card("passbook", VILLAGE, book, key_id=KEY_ID, key=key)


@dataclass(frozen=True)
class Thumb:
    """A thumb over the card: from `side` (0 top, 1 right, 2 bottom, 3 left of the
    symbol), at `along` (0..1) of that side, `width` wide and reaching `depth` into
    the symbol (both fractions of the symbol's width)."""

    side: int
    along: float
    width: float
    depth: float
    shade: float = 160.0  # skin, in grey levels


@dataclass(frozen=True)
class HardScene:
    payload: str | None
    module_px: float = 4.0  # frame pixels per QR module (at the card's centre)
    center: tuple[float, float] = (0.5, 0.5)  # fractions of the frame
    rotation_deg: float = 0.0
    perspective: float = 0.0  # 0..0.5: how much the far edge shrinks
    tilt_deg: float = 90.0  # direction of the far edge
    contrast: float = 1.0  # ink–paper difference, fraction of fresh print
    glare: float = 0.0  # peak of the specular spot (1 ≈ saturates paper and ink)
    glare_at: tuple[float, float] = (0.5, 0.5)  # fractions of the card
    glare_size: float = 0.12  # spot sigma, fraction of the card
    thumb: Thumb | None = None
    blur: float = 0.5  # Gaussian sigma, px: the lens's own softness at least
    motion_px: float = 0.0  # length of the motion streak, px
    motion_deg: float = 0.0
    noise: float = 3.0  # sensor noise sigma, grey levels
    brightness: float = 1.0
    blank_card: bool = False  # empty scenes: a card with no code on it


@functools.lru_cache(maxsize=256)
def _matrix(payload: str) -> npt.NDArray[np.float32]:
    return np.array(segno.make(payload, error="m", micro=False).matrix, np.float32)


def _card_texture(scene: HardScene) -> tuple[npt.NDArray[np.float32], int]:
    """Card in its own coordinates (grey float32) and the symbol's width in modules."""
    pad = _QUIET + _MARGIN
    if scene.payload is None:
        modules = 49
        card = np.full(((modules + 2 * pad) * _TEX,) * 2, _PAPER, np.float32)
        for row in range(6):  # a few printed lines, like a card's back
            y = (pad + 6 + row * 7) * _TEX
            cv2.line(card, (pad * _TEX, y), ((pad + 40) * _TEX, y), _INK, _TEX * 2)
        return card, modules
    matrix = _matrix(scene.payload)
    modules = matrix.shape[0]
    ink = _PAPER - (_PAPER - _INK) * scene.contrast
    card = np.where(np.pad(matrix, pad) > 0, ink, _PAPER).astype(np.float32)
    return np.kron(card, np.ones((_TEX, _TEX), np.float32)), modules


def _effects(card: npt.NDArray[np.float32], scene: HardScene, modules: int) -> None:
    """Glare and thumb, drawn on the card texture in place."""
    size = card.shape[0]
    if scene.glare > 0:
        axis = np.arange(size, dtype=np.float32)
        sigma = size * scene.glare_size
        bx = np.exp(-((axis - scene.glare_at[0] * size) ** 2) / (2 * sigma**2))
        by = np.exp(-((axis - scene.glare_at[1] * size) ** 2) / (2 * sigma**2))
        card += np.outer(by, bx) * (scene.glare * 255)  # a round spot: separable Gaussian
    if scene.thumb is not None:
        t = scene.thumb
        pad = (_QUIET + _MARGIN) * _TEX
        code = modules * _TEX
        half_w = t.width * code / 2
        reach = t.depth * code
        long_axis = max(reach + pad, half_w * 1.3)  # a thumb is longer than it is wide
        pos = pad + t.along * code
        edge = {0: pad, 1: pad + code, 2: pad + code, 3: pad}[t.side]
        inward = {0: 1, 1: -1, 2: -1, 3: 1}[t.side]
        tip = edge + inward * reach
        mid = tip - inward * long_axis  # the ellipse's centre, outside the symbol
        if t.side in (0, 2):
            center, axes = (int(pos), int(mid)), (int(half_w), int(long_axis))
        else:
            center, axes = (int(mid), int(pos)), (int(long_axis), int(half_w))
        cv2.ellipse(card, center, axes, 0, 0, 360, t.shade, -1)


def card_quad(scene: HardScene, card_px: int, modules: int) -> npt.NDArray[np.float32]:
    """Where the card texture's corners land in the frame (float32 4×2)."""
    width, height = _SIZE
    half = scene.module_px * card_px / _TEX / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float32)
    d = np.array([math.cos(math.radians(scene.tilt_deg)), math.sin(math.radians(scene.tilt_deg))])
    along = corners @ d
    far = (along / max(float(np.abs(along).max()), 1e-6) + 1) / 2  # 0 near edge .. 1 far edge
    perp = corners - np.outer(along, d)
    shrink = (1 - scene.perspective * far)[:, None]
    trapezoid = np.outer(along * (1 - scene.perspective / 2), d) + perp * shrink
    a = math.radians(scene.rotation_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    center = np.array([scene.center[0] * width, scene.center[1] * height])
    return np.asarray(trapezoid @ rot.T + center, np.float32)


def _motion_kernel(length: float, angle_deg: float) -> npt.NDArray[np.float32]:
    """A straight streak. The rescue's deconvolution assumes the same shape (its own
    copy, so neither side changes the other silently); a real hand's curved,
    uneven streak is harder than this one."""
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx = math.cos(math.radians(angle_deg)) * (length - 1) / 2
    dy = math.sin(math.radians(angle_deg)) * (length - 1) / 2
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return np.asarray(kernel / kernel.sum(), np.float32)


def render_hard(scene: HardScene, base: npt.NDArray[np.float32], rng: np.random.Generator) -> Frame:
    """One BGR frame of `scene` over the static `base` texture."""
    height, width = base.shape[:2]
    img = base.copy()
    card, modules = _card_texture(scene)
    if scene.payload is not None or scene.blank_card:
        _effects(card, scene, modules)
        # The sensor integrates each pixel's area: prefilter the texture by the
        # downscale factor so small modules blur as they do in a camera.
        shrink = _TEX / scene.module_px
        if shrink > 1:
            card = np.asarray(cv2.GaussianBlur(card, (0, 0), 0.45 * shrink), np.float32)
        card = np.minimum(card, 255.0)  # glare saturates the paper, it cannot go brighter
        n = card.shape[0]
        src = np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float32)
        matrix = cv2.getPerspectiveTransform(src, card_quad(scene, n, modules))
        warped = cv2.warpPerspective(card, matrix, (width, height), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.ones_like(card), matrix, (width, height))
        paper = warped[:, :, None] * np.array([0.95, 1.0, 1.02], np.float32)
        img = img * (1 - mask[:, :, None]) + paper * mask[:, :, None]
    img = img * scene.brightness
    if scene.blur > 0:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), scene.blur), np.float32)
    if scene.motion_px > 1:
        img = np.asarray(cv2.filter2D(img, -1, _motion_kernel(scene.motion_px, scene.motion_deg)))
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * scene.noise
    return np.clip(img, 0, 255).astype(np.uint8)


def random_scene(rng: np.random.Generator, category: Category, payload: str | None) -> HardScene:
    """A scene of `category`: the common random pose and optics, one degradation pushed."""
    u = rng.uniform
    if category == "empty":
        thumb = Thumb(int(rng.integers(4)), u(0.2, 0.8), u(0.3, 0.5), u(0.1, 0.4))
        return HardScene(
            payload=None,
            module_px=float(u(2.6, 5.0)),
            center=(float(u(0.3, 0.7)), float(u(0.35, 0.65))),
            rotation_deg=float(u(0, 360)),
            blank_card=bool(u() < 0.5),
            thumb=thumb if u() < 0.5 else None,
            noise=float(u(2, 5)),
            brightness=float(u(0.75, 1.1)),
        )
    module_px = float(u(2.0, 2.6)) if category == "small_modules" else float(u(2.6, 5.0))
    scene = HardScene(
        payload=payload,
        module_px=module_px,
        center=(float(u(0.35, 0.65)), float(u(0.4, 0.6))),
        rotation_deg=float(u(0, 360)),
        perspective=float(u(0, 0.15)),
        tilt_deg=float(u(0, 360)),
        contrast=float(u(0.8, 1.0)),
        blur=float(u(0.4, 0.8)),
        noise=float(u(2, 5)),
        brightness=float(u(0.75, 1.1)),
    )
    if category == "perspective":
        return replace(scene, perspective=float(u(0.3, 0.5)))
    if category == "low_contrast":
        return replace(scene, contrast=float(u(0.35, 0.55)), brightness=float(u(0.6, 1.1)))
    if category == "glare":
        at = (float(u(0.3, 0.7)), float(u(0.3, 0.7)))
        return replace(
            scene, glare=float(u(0.6, 1.1)), glare_at=at, glare_size=float(u(0.08, 0.16))
        )
    if category == "finger":
        side, along = int(rng.integers(4)), float(u(0.1, 0.9))
        return replace(scene, thumb=Thumb(side, along, float(u(0.3, 0.5)), float(u(0.08, 0.22))))
    if category == "gaussian_blur":
        return replace(scene, blur=float(u(1.2, 2.0)))
    if category == "motion_blur":
        return replace(scene, motion_px=float(u(4, 10)), motion_deg=float(u(0, 180)))
    return scene  # small_modules: the module size above is the degradation


@dataclass(frozen=True)
class HardFrame:
    image: Frame
    payload: str | None
    category: Category
    scene: HardScene


def hard_corpus(
    per_category: int, *, seed: int = 0, categories: Sequence[Category] = CATEGORIES
) -> list[HardFrame]:
    """`per_category` seeded frames of each category, interleaved, with their true payloads."""
    rng = np.random.default_rng(seed)
    key = issuer_key(seed)
    bases = [background(_SIZE, seed * 1000 + i) for i in range(4)]
    frames: list[HardFrame] = []
    for i in range(per_category):
        for category in categories:
            payload = None if category == "empty" else card_payload(rng, key)
            scene = random_scene(rng, category, payload)
            image = render_hard(scene, bases[(i + len(frames)) % len(bases)], rng)
            frames.append(HardFrame(image, payload, category, scene))
    return frames


class HeldCard:
    """A `FrameSource`: one card held in front of the camera, the way an elderly villager does.

    The pose, print and lighting are drawn once (like a corpus frame of `category`);
    every frame then adds hand jitter (`jitter_px`, plus a little rotation), a
    motion streak from the hand's shake (0 to `shake_px`, any direction), a drifting
    glare spot when there is one, and fresh sensor noise. `frames` at `fps`.
    """

    def __init__(
        self,
        category: Category,
        *,
        seed: int,
        frames: int = 10,
        fps: float = 10.0,
        jitter_px: float = 3.0,
        shake_px: float = 6.0,
    ) -> None:
        self._rng = np.random.default_rng(seed)
        self.payload = card_payload(self._rng, issuer_key(0))
        self.scene = random_scene(self._rng, category, self.payload)
        self._base = background(_SIZE, seed)
        self.frames, self.fps = frames, fps
        self.jitter_px, self.shake_px = jitter_px, shake_px
        self.count = 0

    def clock(self) -> int:
        """Simulated monotonic ms of the last frame read (for `CameraScanner(clock=...)`)."""
        return int(max(self.count - 1, 0) * 1000 / self.fps)

    def read(self) -> Frame | None:
        if self.count >= self.frames:
            return None
        self.count += 1
        rng, s = self._rng, self.scene
        dx, dy = rng.normal(0, self.jitter_px, 2)
        gx, gy = s.glare_at
        frame_scene = replace(
            s,
            center=(s.center[0] + dx / _SIZE[0], s.center[1] + dy / _SIZE[1]),
            rotation_deg=s.rotation_deg + float(rng.normal(0, 1.5)),
            # The shake differs frame to frame; a fast-moving card streaks on every one.
            motion_px=float(rng.uniform(0.2, 1.0)) * max(s.motion_px, self.shake_px),
            motion_deg=float(rng.uniform(0, 180)),
            glare_at=(gx + float(rng.normal(0, 0.03)), gy + float(rng.normal(0, 0.03))),
        )
        return render_hard(frame_scene, self._base, rng)

    def close(self) -> None:
        self.count = self.frames
