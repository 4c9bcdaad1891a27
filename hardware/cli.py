"""`greenpass scale ...`: the technician's tools for a serial scale.

One `_register_<command>` function and one handler per subcommand, so other
devices' tools can be added beside these without touching them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hardware.scale import PROTOCOLS, Reading, ScaleTimeout, StabilityRule, open_scale


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    scale = subparsers.add_parser(
        "scale", help="serial scale tools", description="Serial scale tools."
    )
    commands = scale.add_subparsers(dest="scale_command", metavar="SUBCOMMAND", required=True)
    _register_watch(commands)


def _register_watch(commands: argparse._SubParsersAction[Any]) -> None:
    p = commands.add_parser(
        "watch",
        help="print the scale's readings, one per line",
        description="Print one reading per line until Ctrl-C (or --count readings).",
    )
    p.add_argument("--port", required=True, help="device path or pyserial URL (hwgrep://VID:PID)")
    p.add_argument("--protocol", required=True, choices=list(PROTOCOLS), help="scale protocol")
    p.add_argument("--baud", type=int, help="baud rate (default: the protocol's usual one)")
    p.add_argument("--json", action="store_true", help="print JSON objects instead of text")
    p.add_argument("--count", type=int, help="stop after this many readings")
    p.add_argument("--step", type=int, default=1, help="display step in grams for stability")
    p.add_argument("--hold-ms", type=int, default=500, help="how long a weight must hold (ms)")
    p.add_argument("--unit", default="kg", help="xk3190 only: the indicator's unit (kg or g)")
    p.set_defaults(handler=watch)


def format_reading(reading: Reading, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {"grams": reading.grams, "stable": reading.stable, "status": reading.status.value}
        )
    grams = "-" if reading.grams is None else f"{reading.grams} g"
    return f"{grams:>10}  {'stable' if reading.stable else 'moving':6}  {reading.status.value}"


def watch(args: argparse.Namespace) -> int:
    rule = StabilityRule(step_grams=args.step, hold_ms=args.hold_ms)
    printed = 0
    with open_scale(args.protocol, args.port, args.baud, stability=rule, unit=args.unit) as scale:
        try:
            while args.count is None or printed < args.count:
                try:
                    reading = scale.read(timeout=2.0)
                except ScaleTimeout as exc:
                    print(f"greenpass: {exc}", file=sys.stderr, flush=True)
                    continue
                print(format_reading(reading, args.json), flush=True)
                printed += 1
        except KeyboardInterrupt:  # Ctrl-C is how a technician stops watching
            return 0
    return 0
