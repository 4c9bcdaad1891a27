"""`greenpass scanner ...`: check a QR scanner on site.

    greenpass scanner watch --camera 0 [--decoder zxing|pyzbar] [--repeat-delay-ms N] [--count N]
    greenpass scanner watch --port /dev/ttyACM0 [--baud 9600] [--count N]

Prints each decoded payload on its own line (stdout), so a technician can hold
a card in front of the kiosk and see what it reads.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hardware.scanner import DECODER_NAMES, ScannerConfig, open_scanner


def register(subparsers: Any) -> None:
    scanner = subparsers.add_parser("scanner", help="QR scanner checks (camera or serial)")
    sub = scanner.add_subparsers(dest="scanner_command", metavar="SUBCOMMAND")
    watch = sub.add_parser("watch", help="print decoded payloads, one per line, until Ctrl-C")
    source = watch.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", type=int, metavar="N", help="camera index (/dev/videoN)")
    source.add_argument("--port", metavar="PORT", help="serial port, e.g. /dev/ttyACM0")
    watch.add_argument(
        "--decoder", choices=DECODER_NAMES, default="zxing", help="camera QR decoder"
    )
    watch.add_argument("--baud", type=int, default=9600, help="serial speed (default 9600)")
    watch.add_argument(
        "--repeat-delay-ms",
        type=int,
        default=3000,
        metavar="MS",
        help="report a code held in view again after MS (default 3000)",
    )
    watch.add_argument("--count", type=int, metavar="N", help="stop after N payloads")
    watch.set_defaults(handler=watch_command)


def watch_command(args: argparse.Namespace) -> int:
    if args.port is not None:
        config = ScannerConfig(kind="serial", port=args.port, baud=args.baud)
    else:
        config = ScannerConfig(
            kind="camera",
            camera_index=args.camera,
            decoder=args.decoder,
            repeat_delay_ms=args.repeat_delay_ms,
        )
    seen = 0
    with open_scanner(config) as scanner:
        for payload in scanner.payloads():
            print(payload, flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    return 0


if __name__ == "__main__":  # pragma: no cover - handy on a kiosk without the full CLI
    parser = argparse.ArgumentParser(prog="scanner")
    register(parser.add_subparsers(required=True))
    ns = parser.parse_args()
    sys.exit(ns.handler(ns))
