"""`greenpass simulate camera` and `greenpass simulate serial-scanner`.

`add_commands(simulate_subparsers)` adds both to the `simulate` group, which
`simulator/cli.py` owns:

    greenpass simulate camera --out DIR [--frames N] [--seed S] [--mix easy=0.4,medium=0.4,hard=0.2]
    greenpass simulate camera --stats [--frames N] [--seed S] [--mix ...] [--decoder zxing|pyzbar]
    greenpass simulate serial-scanner [--path PATH] [--eol crlf|cr|lf]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from greenpass.errors import ConfigError
from hardware.scanner.base import DECODER_NAMES
from simulator.serial_scanner import SimulatedSerialScanner

# numpy and OpenCV load only when a camera command runs: every `greenpass` command
# builds this parser, and the kiosk process must not carry them for a serial scanner.
if TYPE_CHECKING:
    from simulator.camera import CorpusFrame, Difficulty

_DIFFICULTIES = ("easy", "medium", "hard", "empty")
_EOLS = {"crlf": b"\r\n", "cr": b"\r", "lf": b"\n"}


def parse_mix(text: str) -> list[tuple[Difficulty, float]]:
    """'easy=0.4,hard=0.2' → [('easy', 0.4), ('hard', 0.2)]."""
    mix: list[tuple[Difficulty, float]] = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in _DIFFICULTIES:
            raise ConfigError(f"unknown difficulty {name!r}; use {', '.join(_DIFFICULTIES)}")
        try:
            value = float(weight)
        except ValueError:
            raise ConfigError(f"weight of {name!r} must be a number, got {weight!r}") from None
        mix.append((cast("Difficulty", name), value))
    return mix


def add_commands(simulate_subparsers: Any) -> None:
    cam = simulate_subparsers.add_parser(
        "camera", help="write simulated camera frames with QR codes, or measure detection"
    )
    what = cam.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", type=Path, metavar="DIR", help="write PNG frames + manifest.json")
    what.add_argument("--stats", action="store_true", help="decode the frames, print rates")
    cam.add_argument("--frames", type=int, default=200, metavar="N", help="how many (200)")
    cam.add_argument("--seed", type=int, default=0, help="corpus seed (0)")
    cam.add_argument(
        "--mix",
        type=parse_mix,
        default="easy=0.4,medium=0.4,hard=0.2",
        help="difficulty weights (easy=0.4,medium=0.4,hard=0.2; also 'empty')",
    )
    cam.add_argument("--decoder", choices=DECODER_NAMES, default="zxing", help="for --stats")
    cam.set_defaults(handler=camera_command)

    ser = simulate_subparsers.add_parser(
        "serial-scanner",
        help="a serial QR scanner on a pseudo-terminal; stdin lines become scans",
    )
    ser.add_argument("--path", type=Path, help="symlink to create for the port (default: temp)")
    ser.add_argument("--eol", choices=sorted(_EOLS), default="crlf", help="line ending (crlf)")
    ser.set_defaults(handler=serial_scanner_command)


def camera_command(args: argparse.Namespace) -> int:
    from simulator.camera import corpus  # noqa: PLC0415

    frames = corpus(args.frames, seed=args.seed, mix=args.mix)  # argparse ran parse_mix
    if args.out is not None:
        write_frames(frames, args.out)
        print(f"wrote {len(frames)} frames and manifest.json to {args.out}")
        return 0
    print_stats(frames, args.decoder)
    return 0


def write_frames(frames: list[CorpusFrame], out: Path) -> None:
    import cv2  # noqa: PLC0415 - only this command writes images

    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, frame in enumerate(frames):
        name = f"frame-{i:04d}-{frame.difficulty}.png"
        cv2.imwrite(str(out / name), frame.image)
        manifest.append({"file": name, "payload": frame.payload, "difficulty": frame.difficulty})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def print_stats(frames: list[CorpusFrame], decoder_name: str) -> None:
    import cv2  # noqa: PLC0415

    from hardware.scanner.decoder_factory import open_decoder  # noqa: PLC0415
    from hardware.scanner.decoders import as_uint8  # noqa: PLC0415

    decoder = open_decoder(cast(Any, decoder_name), isolated=False)
    total: Counter[str] = Counter()
    found: Counter[str] = Counter()
    false = 0
    for frame in frames:
        payloads = decoder.decode(as_uint8(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)))
        total[frame.difficulty] += 1
        found[frame.difficulty] += frame.payload in payloads
        false += sum(p != frame.payload for p in payloads)
    decoder.close()
    print(f"decoder {decoder_name}, {len(frames)} frames")
    for difficulty in _DIFFICULTIES[:3]:
        if total[difficulty]:
            rate = found[difficulty] / total[difficulty]
            print(f"  {difficulty:7s} {found[difficulty]:4d}/{total[difficulty]:<4d} {rate:6.1%}")
    if total["empty"]:
        print(f"  empty   {total['empty']:4d} frames (no code)")
    coded = sum(n for d, n in total.items() if d != "empty")
    if coded:
        print(f"  all     {sum(found.values()):4d}/{coded:<4d} {sum(found.values()) / coded:6.1%}")
    print(f"  false payloads: {false}")


def serial_scanner_command(args: argparse.Namespace) -> int:
    with SimulatedSerialScanner(args.path, eol=_EOLS[args.eol]) as sim:
        print(sim.path, flush=True)
        print("type payloads, one per line; !unplug, !replug, Ctrl-D ends", file=sys.stderr)
        for line in sys.stdin:
            text = line.rstrip("\r\n")
            if text == "!unplug":
                sim.unplug()
            elif text == "!replug":
                sim.replug()
            elif sim.plugged:
                sim.scan(text)
            else:
                print("unplugged: type !replug first", file=sys.stderr)
    return 0
