"""A villager's statement from the command line (issue 16; docs/cli.md):

    greenpass central statement-link --passbook P [--days N] --public-url URL
    greenpass central statements --village V --month YYYY-MM --out FILE.pdf --public-url URL

Both sign with central's key (``HOME/central.key``, the one whose links ``/s/…``
trusts as kind ``c``), so they need the --home of the central that serves the page.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from greenpass.errors import CentralError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sync.keys import Ed25519PrivateKey

    Child = Callable[[str, str], argparse.ArgumentParser]

LINK_DAYS = 90  # a link handed to one villager: long enough to keep, short if it leaks


def register(child: Child) -> None:
    p = child("statement-link", "print a link that opens a passbook's statement on a phone")
    p.add_argument("--passbook", required=True, help="the passbook id")
    p.add_argument(
        "--days", type=int, default=LINK_DAYS, help=f"valid this many days (default {LINK_DAYS})"
    )
    p.add_argument("--public-url", required=True, help="central's address as phones reach it")
    p.set_defaults(handler=_statement_link)
    p = child("statements", "a village's monthly paper statements: one A5 page per household")
    p.add_argument("--village", required=True, help="the village id")
    p.add_argument("--month", required=True, metavar="YYYY-MM", help="the month (local days)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.pdf", help="PDF to write")
    p.add_argument("--public-url", required=True, help="central's address in the QR codes")
    p.add_argument(
        "--days", type=int, default=400, help="the QR codes' links are valid this long (400)"
    )
    p.set_defaults(handler=_statements)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _central_key(home: Path) -> Ed25519PrivateKey:
    from sync.keys import load_private_key

    key_file = home / "central.key"
    if not key_file.exists():
        raise ConfigError(f"no central key at {key_file}: give the --home of the central")
    return load_private_key(key_file)


def _url(text: str) -> str:
    if not text.startswith(("https://", "http://")):
        raise ConfigError(f"--public-url {text!r}: give central's address, https://…")
    return text.rstrip("/")


def _days(n: int) -> int:
    if not 1 <= n <= 3660:
        raise ConfigError("--days must be 1 to 3660")
    return n


def _statement_link(args: argparse.Namespace) -> int:
    from central import statement_access
    from central.cli_common import open_store
    from greenpass import statement_link
    from sync.keys import public_bytes

    key, url, now = _central_key(args.home), _url(args.public_url), now_ms()
    try:
        link = statement_link.sign(
            key, "c", "", args.passbook, statement_link.day_of(now) + _days(args.days)
        )
    except statement_link.BadLink as exc:
        raise ConfigError(f"--passbook {args.passbook!r} is not a passbook id") from exc
    with open_store(args) as store:
        # Checked as the page will check it: a link that opens nothing is not handed out.
        found = statement_access.check(store, link.token, public_bytes(key), now)
    if not isinstance(found, statement_access.Granted):
        raise CentralError(f"passbook {args.passbook!r}: no link, the page would say "
                           f"{found.value} ({found.status})")  # fmt: skip
    print(link.url(url))
    return 0


def _statements(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from central import exports, statements_pdf
    from central.cli_common import open_store
    from central.operations import DEFAULT_TIMEZONE
    from greenpass.files import write_private

    month = statements_pdf.Month.parse(args.month)
    key, url, now = _central_key(args.home), _url(args.public_url), now_ms()
    with open_store(args) as store:
        if args.village not in store.villages():
            raise CentralError(f"no village {args.village!r}")
        tz = exports.village_tz(store, args.village, ZoneInfo(DEFAULT_TIMEZONE))
        data, done = statements_pdf.write(
            store, args.village, month, key, url, tz=tz, now_ms=now, days=_days(args.days)
        )
    try:
        write_private(args.out, data)  # it holds households' names
    except OSError as exc:
        raise ConfigError(f"{args.out}: cannot write the statements ({exc.strerror})") from exc
    print(f"wrote {args.out}: {done.pages} statement(s) of {args.village} for {month} (A5)")
    if done.revoked:
        print(f"left out {done.revoked} revoked passbook(s)")
    if done.cut:
        print(f"{done.cut} page(s) had more entries than fit: the rest are summed in one line")
    for passbook in done.unprintable:
        print(f"warning: {passbook}: the font cannot draw the household's name; left blank")
    return 0
