"""`greenpass kiosk`: registered here without importing the web stack (fast `--help`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "kiosk", help="run the kiosk: devices, ledger, sync and the touchscreen page"
    )
    p.add_argument("--config", required=True, type=Path, help="the kiosk's TOML config file")
    p.add_argument(
        "--ready-file", type=Path, help="write the page's URL here once it is serving (scripts)"
    )
    p.add_argument("--verbose", action="store_true", help="log at debug level")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import asyncio

    from edge.kiosk.config import load_kiosk_config
    from kiosk_ui.main import serve

    cfg = load_kiosk_config(args.config)
    # 1 when the kiosk stopped itself to be restarted (its uplink could not be kept alive).
    return asyncio.run(serve(cfg, ready_file=args.ready_file))
