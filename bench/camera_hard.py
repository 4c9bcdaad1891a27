"""Hard frames: each rescue step against plain zxing-cpp, and the held-card trial.

    python -m bench.camera_hard [--per-category N] [--seed S] [--trials N]

Part of `python -m bench.camera_loop` (which runs it after its own tables).
On the `simulator.hard_frames` corpus (N frames of each labelled category, 640×480)
it reports, for plain zxing-cpp and for the rescue chain with one more step at
a time, detection per category, wrong payloads (code frames and empty scenes),
and CPU ms per changed frame (grey conversion + decode, `time.process_time`, all
threads): median, mean and 90th percentile. Every payload read is also put
through `edge.kiosk.cards.read_card` with the corpus's issuer key, as the kiosk does.
Then the held-card trial: a card held for one second at 10 fps (`HeldCard`, one
pose per trial, per-frame jitter, shake and glare drift) through `CameraScanner`,
counted as read if the scanner reports it within those ten frames.

The corpus seed of the benchmark (7) is not the one the steps were tuned on (1).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.kiosk.cards import read_card
from greenpass.errors import Refused
from hardware.scanner.camera import CameraScanner
from hardware.scanner.decoders import Decoder, GreyImage, ZxingDecoder, as_uint8
from hardware.scanner.rescue import DEFAULT_STEPS, STEPS, RescuingDecoder
from simulator.hard_frames import (
    CODE_CATEGORIES,
    VILLAGE,
    HardFrame,
    HeldCard,
    hard_corpus,
    issuer_keys,
)

_SHORT = {
    "perspective": "persp",
    "low_contrast": "contr",
    "glare": "glare",
    "finger": "finger",
    "gaussian_blur": "gauss",
    "motion_blur": "motion",
    "small_modules": "2px",
}


@dataclass
class Result:
    name: str
    found: Counter[str]
    total: Counter[str]
    wrong: int  # payloads that are not the frame's card (on code or empty frames)
    unsigned: int  # payloads read_card refuses
    code_ms: list[float]
    empty_ms: list[float]

    @property
    def rate(self) -> float:
        return sum(self.found.values()) / max(sum(self.total.values()), 1)


class _OpenCVFallback:
    """Plain zxing, then one of OpenCV's model-free QR detectors on the whole frame."""

    def __init__(self, detector: cv2.QRCodeDetector | cv2.QRCodeDetectorAruco) -> None:
        self.name = "opencv"
        self._zxing = ZxingDecoder()
        self._detector = detector

    def decode(self, grey: GreyImage) -> list[str]:
        found = self._zxing.decode(grey)
        if found:
            return found
        try:
            ok, texts, _, _ = self._detector.detectAndDecodeMulti(grey)
        except cv2.error:
            return []
        return [str(t) for t in texts if t] if ok else []

    def close(self) -> None:
        pass


def measure(name: str, decoder: Decoder, frames: Sequence[HardFrame], seed: int) -> Result:
    keys = issuer_keys(seed)
    result = Result(name, Counter(), Counter(), 0, 0, [], [])
    for frame in frames:
        start = time.process_time()
        payloads = decoder.decode(as_uint8(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)))
        spent = (time.process_time() - start) * 1000
        result.wrong += sum(p != frame.payload for p in payloads)
        for payload in payloads:
            try:
                read_card(payload, keys, VILLAGE)
            except Refused:
                result.unsigned += 1
        if frame.payload is None:
            result.empty_ms.append(spent)
            continue
        result.code_ms.append(spent)
        result.total[frame.category] += 1
        result.found[frame.category] += frame.payload in payloads
    return result


def held_card_rate(
    make: Callable[[], Decoder], trials: int, seed: int
) -> tuple[int, int, Counter[str]]:
    """(trials read, wrong reports, missed trials by category) for `trials`
    one-second holds through CameraScanner."""
    read = wrong = 0
    missed: Counter[str] = Counter()
    for i in range(trials):
        category = CODE_CATEGORIES[i % len(CODE_CATEGORIES)]
        cam = HeldCard(category, seed=seed * 10_000 + i)
        scanner = CameraScanner(cam, make(), clock=cam.clock)
        payloads = list(scanner.payloads())
        read += cam.payload in payloads
        missed[category] += cam.payload not in payloads
        wrong += sum(p != cam.payload for p in payloads)
    return read, wrong, +missed


def _row(r: Result) -> str:
    cats = " ".join(f"{r.found[c] / max(r.total[c], 1):6.0%}" for c in CODE_CATEGORIES)
    ms = np.array(r.code_ms + r.empty_ms)
    return (
        f"{r.name:22s} {cats} {r.rate:6.1%} {r.wrong:5d} {r.unsigned:5d} "
        f"{np.median(ms):6.2f} {ms.mean():6.2f} {np.percentile(ms, 90):6.2f} "
        f"{np.median(r.empty_ms):6.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.camera_hard", description=__doc__)
    parser.add_argument("--per-category", type=int, default=60, help="frames per category (60)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trials", type=int, default=200, help="held-card trials (200)")
    args = parser.parse_args(argv)

    frames = hard_corpus(args.per_category, seed=args.seed)
    coded = sum(f.payload is not None for f in frames)
    print(
        f"hard frames: {coded} code frames ({args.per_category} per category) + "
        f"{len(frames) - coded} empty scenes, seed {args.seed}, 640x480"
    )
    rows = [measure("plain zxing-cpp", ZxingDecoder(), frames, args.seed)]
    for i, step in enumerate(STEPS):
        rows.append(measure(f"+ {step}", RescuingDecoder(STEPS[: i + 1]), frames, args.seed))
    others: list[tuple[str, Decoder]] = [
        ("zxing try_downscale", ZxingDecoder(try_downscale=True)),
        ("zxing + cv2 QRCode", _OpenCVFallback(cv2.QRCodeDetector())),
        ("zxing + cv2 QRAruco", _OpenCVFallback(cv2.QRCodeDetectorAruco())),
    ]
    for name, decoder in others:
        rows.append(measure(name, decoder, frames, args.seed))
    cats = " ".join(f"{_SHORT[c]:>6s}" for c in CODE_CATEGORIES)
    print(
        f"{'step (cumulative)':22s} {cats} {'all':>6s} {'wrong':>5s} {'unsig':>5s} "
        f"{'ms med':>6s} {'mean':>6s} {'p90':>6s} {'empty':>6s}"
    )
    for r in rows:
        print(_row(r))
    print("(ms: CPU per changed frame over all frames; 'empty': median on empty scenes)")

    final = rows[len(STEPS)]
    if DEFAULT_STEPS != STEPS:  # the default keeps only the steps that paid
        final = measure(f"default {'+'.join(DEFAULT_STEPS)}", RescuingDecoder(), frames, args.seed)
        print(_row(final))
    plain_read, plain_wrong, plain_missed = held_card_rate(ZxingDecoder, args.trials, args.seed)
    ours_read, ours_wrong, ours_missed = held_card_rate(RescuingDecoder, args.trials, args.seed)
    print()
    print(f"held card, 1 s at 10 fps, {args.trials} trials (all categories, per-frame shake):")
    for name, read, wrong, missed in (
        ("plain zxing-cpp", plain_read, plain_wrong, plain_missed),
        ("default (rescue)", ours_read, ours_wrong, ours_missed),
    ):
        misses = ", ".join(f"{_SHORT[c]} {n}" for c, n in sorted(missed.items())) or "none"
        print(f"  {name:17s} {read / args.trials:6.1%} read, {wrong} wrong; missed: {misses}")

    all_ms = np.array(final.code_ms + final.empty_ms)
    goals = [
        (f"single frame >= 90% read ({final.rate:.1%})", final.rate >= 0.90),
        (
            f"0 wrong payloads ({final.wrong} wrong, {final.unsigned} unsigned)",
            final.wrong == 0 and final.unsigned == 0 and ours_wrong == 0,
        ),
        (f"CPU per changed frame <= 3 ms median ({np.median(all_ms):.2f})", np.median(all_ms) <= 3),
        (f"held card >= 99% ({ours_read / args.trials:.1%})", ours_read / args.trials >= 0.99),
    ]
    print()
    for text, ok in goals:
        print(f"goal: {text}: {'met' if ok else 'NOT met'}")
    return 0 if all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
