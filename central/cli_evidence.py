"""`greenpass central evidence --village V --from YYYY-MM-DD --to YYYY-MM-DD --out
FILE.zip`: a village's evidence pack for a period (`central.evidence`; checked by
`greenpass verify-evidence`). The name and flags are fixed: other tools call them."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from greenpass.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    Child = Callable[[str, str], argparse.ArgumentParser]


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from exc


def register(child: Child) -> None:
    p = child("evidence", "write a village's evidence pack for a period (verifies offline)")
    p.add_argument("--village", required=True, help="the village id")
    p.add_argument("--from", dest="first", type=_day, required=True, metavar="YYYY-MM-DD",
                   help="first local day of the period (the village's time zone)")  # fmt: skip
    p.add_argument("--to", dest="last", type=_day, required=True, metavar="YYYY-MM-DD",
                   help="last local day of the period, included")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, metavar="FILE.zip", help="pack to write")
    p.add_argument(
        "--log-origin",
        default=None,
        help="the log's origin, only if it has no checkpoint yet (as `greenpass central "
        "--log-origin`; default greenpass.local/log)",
    )
    p.set_defaults(handler=_evidence)


def _evidence(args: argparse.Namespace) -> int:
    import time
    from zoneinfo import ZoneInfo

    from central import evidence
    from central.cli_common import open_store
    from central.evidence_summary import verify_line
    from central.operations import DEFAULT_TIMEZONE
    from central.tlog import DEFAULT_ORIGIN
    from sync.keys import load_private_key

    key_file = args.home / "central.key"
    if not key_file.exists():
        raise ConfigError(
            f"no central key at {key_file}: give the --home of the central whose log this is"
        )
    key = load_private_key(key_file)
    with open_store(args) as store:
        done = evidence.write_pack(
            store, key, args.village, args.first, args.last, args.out,
            origin=args.log_origin or DEFAULT_ORIGIN,
            default_tz=ZoneInfo(DEFAULT_TIMEZONE),
            now_ms=int(time.time() * 1000),
        )  # fmt: skip
    t = done.totals
    print(
        f"wrote {done.path}: {done.in_period} entries of {args.village} from {args.first} to "
        f"{args.last} ({done.entries} with their context), {done.devices} kiosk(s), "
        f"proven in the checkpoint of size {done.size}"
    )
    print(
        f"totals: {t['deposits']} deposits, points issued {t['points_issued']}, redeemed "
        f"{t['points_redeemed']}, CO2e {t['co2e_g']} g"
    )
    if not done.in_period:
        print(
            f"note: {args.village} has no entries in those local days (its time zone's, "
            "e.g. Asia/Shanghai, UTC+8): check --from and --to"
        )
    print("verify: " + verify_line(done.central_key, str(done.path)))
    return 0
