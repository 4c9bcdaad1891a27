"""A simulated camera: BGR frames of a counter top, with or without a QR card in view.

The background is a static texture (low-frequency shading, grain and a few
edges) plus fresh sensor noise on every frame, so change gating is tested
against a scene that is still but never bit-identical, like a real camera's.
A card carries a segno QR code and can be tilted (perspective), rotated,
blurred, washed out by glare, and partly covered by a thumb; each is a
`Scene` parameter. `corpus()` draws a seeded mix of easy / medium / hard
frames with known payloads for detection-rate tests and the benchmark.
"""

from __future__ import annotations

import base64
import functools
import math
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import segno

from hardware.scanner.decoders import Decoder, GreyImage, make_pyzbar

Frame = npt.NDArray[np.uint8]
Difficulty = Literal["easy", "medium", "hard", "empty"]

_MODULE_PX = 8  # card texture resolution before warping: 8 px per QR module
_QUIET = 4  # QR quiet zone in modules (the standard's minimum)
_MARGIN = 3  # card paper beyond the quiet zone, in modules
_NOISE_BANK = 8  # pre-drawn noise fields; one is picked per frame


@dataclass(frozen=True)
class Scene:
    """What the camera sees. `payload=None` is an empty scene."""

    payload: str | None = None
    code_px: float = 240.0  # width of the QR symbol (without quiet zone) in the frame, pixels
    center: tuple[float, float] = (0.5, 0.5)  # card centre, fractions of the frame
    rotation_deg: float = 0.0
    perspective: float = 0.0  # 0..0.5: how much the far edge of the tilted card shrinks
    tilt_deg: float = 90.0  # direction of that far edge
    blur: float = 0.0  # Gaussian sigma in pixels (defocus, motion)
    noise: float = 2.0  # sensor noise sigma in grey levels
    glare: float = 0.0  # 0..1: peak of a specular blob on the card
    glare_at: tuple[float, float] = (0.35, 0.4)  # blob centre, fractions of the card
    occlusion: float = 0.0  # 0..0.3: share of the card width a thumb covers at its lower edge
    brightness: float = 1.0  # scene exposure factor
    jitter_px: float = 0.0  # hand shake: random card offset per frame
    error: Literal["l", "m", "q", "h"] = "m"


def passbook_payload(rng: np.random.Generator) -> str:
    """A payload shaped like a signed passbook card (ids + an Ed25519 signature)."""
    sig = base64.urlsafe_b64encode(rng.bytes(64)).rstrip(b"=").decode()
    village, book, key = rng.integers(1, 999), rng.integers(1, 999_999), rng.integers(1, 9)
    return f"GP1.VIL-{village:03d}.PB-{book:06d}.k{key}.{sig}"


def background(size: tuple[int, int], seed: int) -> npt.NDArray[np.float32]:
    """A static counter-top texture, float32 BGR."""
    width, height = size
    rng = np.random.default_rng(seed)
    # Mostly grey shading with a little colour: a counter top, not a rainbow.
    grey = rng.uniform(70, 170, (6, 8, 1)).astype(np.float32)
    tint = rng.uniform(-20, 20, (6, 8, 3)).astype(np.float32)
    shade = cv2.resize(grey + tint, size, interpolation=cv2.INTER_CUBIC)
    grain = cv2.GaussianBlur(rng.normal(0, 14, (height, width)).astype(np.float32), (0, 0), 1.2)
    img = shade + grain[:, :, None]
    for _ in range(6):  # a few hard edges: bezel, shelf, a bag on the counter
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
        color = tuple(float(c) for c in rng.uniform(30, 220, 3))
        cv2.rectangle(img, (min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1)), color, 2)
    return img


@functools.lru_cache(maxsize=64)
def _card(payload: str, error: str) -> npt.NDArray[np.float32]:
    """The card in its own coordinates: paper, QR modules as ink, grey float32."""
    qr = segno.make(payload, error=error, micro=False)
    modules = np.array(qr.matrix, dtype=np.float32)
    pad = _QUIET + _MARGIN
    modules = np.pad(modules, pad)
    card = np.where(modules > 0, 35.0, 225.0).astype(np.float32)
    return np.kron(card, np.ones((_MODULE_PX, _MODULE_PX), np.float32))


def _quad(
    scene: Scene, card_px: int, code_modules: int, frame_size: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Where the card's corners land in the frame (float32 4×2)."""
    width, height = frame_size
    side = scene.code_px * card_px / (code_modules * _MODULE_PX)
    half = side / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float32)
    tilt = math.radians(scene.tilt_deg)
    d = np.array([math.cos(tilt), math.sin(tilt)], np.float32)
    along = corners @ d
    far = (along / max(float(np.abs(along).max()), 1e-6) + 1) / 2  # 0 near edge .. 1 far edge
    perp = corners - np.outer(along, d)
    shrink = (1 - scene.perspective * far)[:, None]
    trapezoid = np.outer(along * (1 - scene.perspective / 2), d) + perp * shrink
    angle = math.radians(scene.rotation_deg)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    center = np.array([scene.center[0] * width, scene.center[1] * height], np.float32)
    quad: npt.NDArray[np.float32] = (trapezoid @ rot.T + center).astype(np.float32)
    return quad


def _card_with_effects(scene: Scene) -> npt.NDArray[np.float32]:
    assert scene.payload is not None
    card = _card(scene.payload, scene.error).copy()
    size = card.shape[0]
    if scene.glare > 0:  # a specular blob: washes the ink out where it sits
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        gx, gy = scene.glare_at[0] * size, scene.glare_at[1] * size
        sigma = size * 0.14
        blob = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * sigma**2))
        card = card + blob * scene.glare * 255 * 1.3
    if scene.occlusion > 0:  # a thumb at the lower edge, right of centre (no finder there)
        axes = (int(size * scene.occlusion), int(size * scene.occlusion * 1.6))
        center = (int(size * 0.72), size - _MODULE_PX * (_QUIET + _MARGIN) // 2)
        cv2.ellipse(card, center, axes, 0, 0, 360, 150.0, -1)
    return card


def render(
    scene: Scene,
    base: npt.NDArray[np.float32],
    rng: np.random.Generator,
    noise: npt.NDArray[np.float32] | None = None,
) -> Frame:
    """One BGR frame of `scene` over the static `base` texture."""
    height, width = base.shape[:2]
    img = base.copy()
    if scene.payload is not None:
        card = _card_with_effects(scene)
        modules = _card(scene.payload, scene.error).shape[0] // _MODULE_PX - 2 * (_QUIET + _MARGIN)
        shaken = scene
        if scene.jitter_px:
            dx, dy = rng.normal(0, scene.jitter_px, 2)
            cx, cy = scene.center
            shaken = replace(scene, center=(cx + dx / width, cy + dy / height))
        dst = _quad(shaken, card.shape[0], modules, (width, height))
        n = card.shape[0]
        src = np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float32)
        matrix = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(card, matrix, (width, height), flags=cv2.INTER_AREA)
        mask = cv2.warpPerspective(np.ones_like(card), matrix, (width, height))
        paper = warped[:, :, None] * np.array([0.95, 1.0, 1.02], np.float32)
        img = img * (1 - mask[:, :, None]) + paper * mask[:, :, None]
    if scene.brightness != 1.0:
        img = img * scene.brightness
    if scene.blur > 0:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), scene.blur), dtype=np.float32)
    if noise is None:
        noise = rng.standard_normal((height, width, 3), dtype=np.float32)
    img = img + noise * scene.noise
    return np.clip(img, 0, 255).astype(np.uint8)


class SimulatedCamera:
    """A `FrameSource` that renders `scene` at `fps`, with its own simulated clock.

    Pass `clock` (the bound method) to the scanner so timing follows frames, not
    wall time: ``CameraScanner(cam, clock=cam.clock)``. `frames` limits the
    stream (None: endless); `set_scene` moves a card in or out of view.
    """

    def __init__(
        self,
        scene: Scene | None = None,
        *,
        size: tuple[int, int] = (640, 480),
        fps: float = 30.0,
        frames: int | None = None,
        seed: int = 0,
        noise_frames: int = _NOISE_BANK,
    ) -> None:
        self.scene = scene or Scene()
        self.size = size
        self.fps = fps
        self.limit = frames
        self.count = 0
        self._rng = np.random.default_rng(seed)
        self._base = background(size, seed)
        width, height = size
        self._noise = [
            self._rng.standard_normal((height, width, 3), dtype=np.float32)
            for _ in range(max(1, noise_frames))
        ]
        self._still: npt.NDArray[np.float32] | None = None  # cached scene without noise

    def set_scene(self, scene: Scene) -> None:
        self.scene = scene
        self._still = None

    def clock(self) -> int:
        """Simulated monotonic milliseconds: the time of the last frame read."""
        return int(max(self.count - 1, 0) * 1000 / self.fps)

    def read(self) -> Frame | None:
        if self.limit is not None and self.count >= self.limit:
            return None
        self.count += 1
        noise = self._noise[int(self._rng.integers(len(self._noise)))]
        scene = self.scene
        if scene.jitter_px:
            return render(scene, self._base, self._rng, noise)
        if self._still is None:  # a still scene: render it once, add fresh noise per frame
            self._still = render(replace(scene, noise=0.0), self._base, self._rng).astype(
                np.float32
            )
        return np.clip(self._still + noise * scene.noise, 0, 255).astype(np.uint8)

    def close(self) -> None:
        self.limit = self.count


@dataclass(frozen=True)
class CorpusFrame:
    image: Frame
    payload: str | None
    difficulty: Difficulty
    scene: Scene


def random_scene(rng: np.random.Generator, difficulty: Difficulty) -> Scene:
    """A scene of the given difficulty with random pose, optics and payload."""
    if difficulty == "empty":
        return Scene(noise=float(rng.uniform(1.5, 4.0)), brightness=float(rng.uniform(0.8, 1.1)))
    u = rng.uniform
    lo_hi = {
        # code width px, max rotation, perspective, blur, noise, glare, occlusion, brightness
        "easy": ((190, 280), 15, (0.0, 0.1), (0.0, 0.7), (1.5, 3.0), 0.0, 0.0, (0.9, 1.05)),
        "medium": ((150, 240), 45, (0.05, 0.25), (0.5, 1.2), (2.5, 5.0), 0.5, 0.08, (0.7, 1.1)),
        "hard": ((140, 220), 180, (0.15, 0.35), (0.8, 1.4), (4.0, 7.0), 0.8, 0.14, (0.55, 1.2)),
    }[difficulty]
    size, rot, persp, blur, noise, glare, occl, bright = lo_hi
    code_px = float(u(*size))
    margin = code_px * 0.75 / 640
    return Scene(
        payload=passbook_payload(rng),
        code_px=code_px,
        center=(float(u(0.5 - 0.5 + margin + 0.1, 0.9 - margin)), float(u(0.35, 0.65))),
        rotation_deg=float(u(-rot, rot)),
        perspective=float(u(*persp)),
        tilt_deg=float(u(0, 360)),
        blur=float(u(*blur)),
        noise=float(u(*noise)),
        glare=float(u(0, glare)) if u() < 0.6 else 0.0,
        glare_at=(float(u(0.2, 0.8)), float(u(0.2, 0.8))),
        occlusion=float(u(0, occl)),
        brightness=float(u(*bright)),
    )


def corpus(
    n: int,
    *,
    seed: int = 0,
    mix: Sequence[tuple[Difficulty, float]] = (("easy", 0.4), ("medium", 0.4), ("hard", 0.2)),
    size: tuple[int, int] = (640, 480),
) -> list[CorpusFrame]:
    """`n` seeded frames with known payloads; difficulties drawn by the `mix` weights."""
    rng = np.random.default_rng(seed)
    names = [name for name, _ in mix]
    weights = np.array([w for _, w in mix], np.float64)
    bases = [background(size, seed * 1000 + i) for i in range(4)]
    frames = []
    for i in range(n):
        difficulty: Difficulty = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        scene = random_scene(rng, difficulty)
        image = render(scene, bases[i % len(bases)], rng)
        frames.append(CorpusFrame(image, scene.payload, difficulty, scene))
    return frames


class AbortOnPayload:
    """A decoder that kills its own process when it decodes `magic` (fault injection).

    Used to prove the isolated pyzbar worker is restarted after a crash, the
    way a libzbar double free would end it.
    """

    def __init__(self, inner: Decoder, magic: str) -> None:
        self.name = f"abort-on-{magic}"
        self._inner = inner
        self._magic = magic

    def decode(self, grey: GreyImage) -> list[str]:
        found = self._inner.decode(grey)
        if self._magic in found:
            # No core file: this crash is on purpose and may run where cores are kept.
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.abort()
        return found

    def close(self) -> None:
        self._inner.close()


def aborting_pyzbar(magic: str) -> AbortOnPayload:
    """Factory for `IsolatedDecoder`: pyzbar that aborts on `magic`. Use via functools.partial."""
    return AbortOnPayload(make_pyzbar(), magic)
