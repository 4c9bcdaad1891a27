"""`greenpass doctor`: registered without importing the checks (fast `--help`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/greenpass/kiosk.toml")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor", help="check this kiosk's health: ledger, disk, clock, devices, broker, backlog"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"kiosk config (default {DEFAULT_CONFIG})",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    p.add_argument(
        "--min-free-mb", type=int, default=200, help="fail below this much free disk (200)"
    )
    p.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for a device or the broker"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from provisioning.doctor import DoctorOptions, as_json, healthy, load_config, run

    # A missing or broken config is one more unhealthy state, reported like the others
    # (a script reading --json gets its JSON and exit code 1, not a usage error).
    cfg, found = load_config(args.config)
    if cfg is not None:
        found = run(cfg, DoctorOptions(min_free_mb=args.min_free_mb, timeout_s=args.timeout))
    if args.json:
        print(json.dumps(as_json(found), ensure_ascii=False, indent=1))
    else:
        for f in found:
            print(f.line())
        print("healthy" if healthy(found) else "NOT healthy: see the fixes above")
    return 0 if healthy(found) else 1
