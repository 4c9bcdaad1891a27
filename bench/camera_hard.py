"""Hard frames: each rescue step against plain zxing-cpp, and the held-card trial.

    python -m bench.camera_hard [--per-category N] [--seed S] [--trials N]
                                [--held-seeds 11,12,...] [--jobs N]

Part of `python -m bench.camera_loop` (which runs it after its own tables).
On the `simulator.hard_frames` corpus (N frames of each labelled category, 640×480)
it reports, for plain zxing-cpp and for the rescue chain with one more step at
a time, detection per category, wrong payloads (code frames and empty scenes),
and CPU ms per changed frame (grey conversion + decode, `time.process_time`, all
threads): median, mean and 90th percentile. Every payload read is also put
through `edge.kiosk.cards.read_card` with the corpus's issuer key, as the kiosk does.
Then the held-card trial: a card held for one second at 10 fps (`HeldCard`, one
pose per trial, per-frame jitter, shake and glare drift) through `CameraScanner`,
counted as read if the scanner reports it within those ten frames; `--trials`
trials on each of `--held-seeds`, each seed's rate and the worst printed, plain
zxing-cpp and the default decoder seeing the same frames.

Seeds: the rescue steps were tuned on corpus seed 1 and on the held-card trials
of seeds 1–8 (`TUNING_SEEDS`); 11–15 (`HELD_OUT_SEEDS`, the default) were chosen
before that tuning and never looked at while tuning, so the held-card goal judges
the worst of them. The single-frame corpus seed of the benchmark (7) was looked
at while developing earlier steps: its table is not a held-out figure.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

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

# Held-card seeds looked at while building the rescue: 1-6 tuned the shake and
# frames steps, 7 and 8's misses shaped the finder and defocus steps before them.
TUNING_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)
HELD_OUT_SEEDS = (11, 12, 13, 14, 15)


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
        if isinstance(decoder, RescuingDecoder):
            decoder.forget()  # each corpus frame is a scene of its own, unrelated to the last
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


@dataclass
class Held:
    """One decoder's held-card trials on one seed."""

    read: int = 0
    wrong: int = 0  # reported payloads that are not the held card
    missed: Counter[str] = field(default_factory=Counter)  # by category


def held_card_trials(seed: int, trials: int) -> tuple[Held, Held]:
    """(plain zxing-cpp, default decoder) over `trials` one-second holds of `seed`.

    Both scanners see the same frames (rendering a frame costs far more than
    decoding it), each with its own gate and repeat filter on the card's clock.
    """
    plain, ours = Held(), Held()
    for i in range(trials):
        category = CODE_CATEGORIES[i % len(CODE_CATEGORIES)]
        cam = HeldCard(category, seed=seed * 10_000 + i)
        scanners = (
            (plain, CameraScanner(cam, ZxingDecoder(), clock=cam.clock)),
            (ours, CameraScanner(cam, RescuingDecoder(), clock=cam.clock)),
        )
        reported: list[list[str]] = [[], []]
        while (frame := cam.read()) is not None:
            for (_, scanner), payloads in zip(scanners, reported, strict=True):
                payloads.extend(scan.payload for scan in scanner.process(frame))
        for (held, _), payloads in zip(scanners, reported, strict=True):
            held.read += cam.payload in payloads
            held.missed[category] += cam.payload not in payloads
            held.wrong += sum(p != cam.payload for p in payloads)
    for held in (plain, ours):
        held.missed = +held.missed
    return plain, ours


def _held_row(seed: int, trials: int, plain: Held, ours: Held) -> str:
    misses = ", ".join(f"{_SHORT[c]} {n}" for c, n in sorted(ours.missed.items())) or "none"
    tag = " (tuning)" if seed in TUNING_SEEDS else ""
    return (
        f"  {seed:4d}{tag:9s} {plain.read / trials:6.1%} {plain.wrong:5d}   "
        f"{ours.read / trials:6.1%} {ours.wrong:5d}   {misses}"
    )


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
    parser.add_argument("--seed", type=int, default=7, help="single-frame corpus seed (7)")
    parser.add_argument("--trials", type=int, default=200, help="held-card trials per seed (200)")
    parser.add_argument(
        "--held-seeds",
        type=_seeds,
        default=HELD_OUT_SEEDS,
        help="held-card seeds, comma-separated (11,12,13,14,15: the held-out ones)",
    )
    parser.add_argument("--held-only", action="store_true", help="only the held-card trial")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the held-card seeds (1)")
    args = parser.parse_args(argv)

    goals = []
    if not args.held_only:
        goals += single_frames(args.per_category, args.seed)
        print()
    goals += held_cards(args.held_seeds, args.trials, args.jobs)
    print()
    for text, ok in goals:
        print(f"goal: {text}: {'met' if ok else 'NOT met'}")
    return 0 if all(ok for _, ok in goals) else 1


Goal = tuple[str, bool]


def single_frames(per_category: int, seed: int) -> list[Goal]:
    """The step-by-step table on the single-frame corpus, and its three goals."""
    frames = hard_corpus(per_category, seed=seed)
    coded = sum(f.payload is not None for f in frames)
    print(
        f"hard frames: {coded} code frames ({per_category} per category) + "
        f"{len(frames) - coded} empty scenes, seed {seed}, 640x480"
    )
    rows = [measure("plain zxing-cpp", ZxingDecoder(), frames, seed)]
    for i, step in enumerate(STEPS):
        rows.append(measure(f"+ {step}", RescuingDecoder(STEPS[: i + 1]), frames, seed))
    others: list[tuple[str, Decoder]] = [
        ("zxing try_downscale", ZxingDecoder(try_downscale=True)),
        ("zxing + cv2 QRCode", _OpenCVFallback(cv2.QRCodeDetector())),
        ("zxing + cv2 QRAruco", _OpenCVFallback(cv2.QRCodeDetectorAruco())),
    ]
    for name, decoder in others:
        rows.append(measure(name, decoder, frames, seed))
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
        final = measure("default chain", RescuingDecoder(), frames, seed)
        print(_row(final))
        print(f"(default chain: {' + '.join(DEFAULT_STEPS)})")
    median = float(np.median(np.array(final.code_ms + final.empty_ms)))
    return [
        (f"single frame >= 90% read ({final.rate:.1%})", final.rate >= 0.90),
        (
            f"0 wrong payloads on single frames ({final.wrong} wrong, {final.unsigned} unsigned)",
            final.wrong == 0 and final.unsigned == 0,
        ),
        (f"CPU per changed frame <= 3 ms median ({median:.2f})", median <= 3),
    ]


def held_cards(seeds: Sequence[int], trials: int, jobs: int) -> list[Goal]:
    """The held-card trial on each seed, the worst held-out seed, and its two goals."""
    print(
        f"held card, 1 s at 10 fps, {trials} trials per seed (all categories, "
        f"per-frame shake); tuned on seeds {_span(TUNING_SEEDS)}:"
    )
    head = f"{'plain':>6s} {'wrong':>5s}   {'ours':>6s} {'wrong':>5s}"
    print(f"  {'seed':13s} {head}   missed (ours)")
    if jobs > 1:  # spawned: the parent already runs OpenCV's and zxing's threads
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            runs = list(pool.map(held_card_trials, seeds, [trials] * len(seeds)))
    else:
        runs = [held_card_trials(seed, trials) for seed in seeds]
    for seed, (plain, ours) in zip(seeds, runs, strict=True):
        print(_held_row(seed, trials, plain, ours))
    judged = [(ours.read, seed) for seed, (_, ours) in zip(seeds, runs, strict=True)]
    held_out = [(read, seed) for read, seed in judged if seed not in TUNING_SEEDS]
    worst_read, worst_seed = min(held_out or judged)
    worst = worst_read / trials
    print(
        f"  (plain: zxing-cpp alone; ours: the default decoder) worst "
        f"{'held-out' if held_out else 'tuning (no held-out seed given)'} seed: "
        f"{worst_seed}, {worst:.1%}"
    )
    wrong = sum(ours.wrong for _, ours in runs)
    return [
        (f"0 wrong payloads in the held-card trials ({wrong})", wrong == 0),
        (
            f"held card >= 99% on every held-out seed (worst, seed {worst_seed}: {worst:.1%})",
            bool(held_out) and worst >= 0.99,
        ),
    ]


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of seeds: {text!r}") from None


def _span(seeds: Sequence[int]) -> str:
    if list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


if __name__ == "__main__":
    raise SystemExit(main())
