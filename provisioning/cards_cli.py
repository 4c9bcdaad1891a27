"""`greenpass cards`: an A4 PDF of signed passbook or staff cards; `greenpass cards keygen`:
the village office's card-signing key. See docs/cards.md."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DB_ENV = "GREENPASS_DB"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cards", help="print an A4 PDF sheet of signed passbook or staff cards")
    p.add_argument("--village", help="the village id the cards are for (signed into each card)")
    p.add_argument("--village-name", help="the village as printed, e.g. 东村 (default: its id)")
    p.add_argument(
        "--key", type=Path, help="the village office's Ed25519 private key (PEM, mode 0600)"
    )
    p.add_argument("--key-id", help="the key's id, as central lists it for the village")
    p.add_argument("--out", type=Path, help="the PDF file to write")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--db", type=Path, help=f"a kiosk's ledger: its active villagers (default: ${DB_ENV})"
    )
    source.add_argument(
        "--csv", type=Path, help="a CSV file: passbook_id,household_name (staff: staff_id,name)"
    )
    p.add_argument("--staff", action="store_true", help="staff cards instead of passbooks")
    p.add_argument(
        "--from", dest="start", type=int, default=1, metavar="N", help="start at the N-th (1)"
    )
    p.add_argument("--count", type=int, metavar="N", help="this many cards (default: the rest)")
    p.add_argument(
        "--statement-url",
        metavar="URL",
        help="central's public HTTPS address: each passbook card gets a statement slip beside "
        "it (a QR for a phone, signed with the same key); none without it",
    )
    p.add_argument(
        "--statement-days",
        type=int,
        default=1830,
        metavar="N",
        help="how many days the slips' links work (1830)",
    )
    p.set_defaults(handler=_print_sheet)
    csub = p.add_subparsers(dest="cards_command", metavar="SUBCOMMAND")
    k = csub.add_parser("keygen", help="create a village office key (prints its public key)")
    k.add_argument("--out", type=Path, required=True, help="the private key file to create")
    k.add_argument("--village", required=True, help="the village whose cards it will sign")
    k.add_argument("--key-id", required=True, help="its id, e.g. dongcun-office-1")
    k.set_defaults(handler=_keygen)


def _print_sheet(args: argparse.Namespace) -> int:
    from edge.kiosk.cards import CardKind
    from edge.ledger.ledger import Ledger
    from greenpass.errors import ConfigError, LedgerError
    from provisioning import cards as c
    from sync.keys import load_private_key

    missing = [
        flag
        for flag, value in (
            ("--village", args.village),
            ("--key", args.key),
            ("--key-id", args.key_id),
            ("--out", args.out),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"cards: give {', '.join(missing)}")
    db: str | Path | None = args.db or os.environ.get(DB_ENV)
    key = load_private_key(args.key)
    kind: CardKind = "staff" if args.staff else "passbook"
    warning = None
    if args.csv is not None:
        holders = c.csv_holders(args.csv, staff=args.staff)
        what = f"rows in {args.csv}"
    elif db:
        with Ledger.open(db) as ledger:
            if ledger.village != args.village:
                raise LedgerError(
                    f"{db} is the ledger of village {ledger.village!r}, not {args.village!r}"
                )
            warning = c.check_issuer(ledger, args.key_id, key)
            holders = c.ledger_holders(ledger, staff=args.staff)
        what = f"active {'staff' if args.staff else 'villagers'} in {db}"
    else:
        raise ConfigError(f"cards: give --db LEDGER or --csv FILE (or set ${DB_ENV})")
    chosen = c.select(holders, args.start, args.count, what=what)
    slips = None
    if args.statement_url:
        url = args.statement_url.strip().rstrip("/")
        if not url.startswith("https://") or args.statement_days <= 0:
            raise ConfigError(
                "cards: --statement-url is central's public https:// address, and "
                "--statement-days a positive number of days"
            )
        slips = c.StatementSlips(url, args.statement_days)
    cards = c.sign_cards(chosen, kind, args.village, key_id=args.key_id, key=key, slips=slips)
    first, last = chosen[0].holder_id, chosen[-1].holder_id
    footer = f"{args.village} · {args.key_id} · {first} – {last}"
    pdf = c.render_sheet(cards, village_name=args.village_name or args.village, footer=footer)
    c.write_sheet(args.out, pdf)
    pages = -(-len(cards) // c.cards_per_page(cards))
    print(f"wrote {len(cards)} {kind} cards ({first} … {last}) on {pages} A4 page(s) to {args.out}")
    if warning:
        print(f"greenpass: warning: {warning}", file=sys.stderr)
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from edge.kiosk.cards import make_card
    from greenpass.errors import ConfigError, Refused
    from sync.keys import generate_key, public_bytes, save_private_key

    out: Path = args.out
    if out.exists():
        raise ConfigError(
            f"{out}: already exists; refusing to replace a key (cards it signed would need it)"
        )
    key = generate_key()
    try:  # the ids must fit on a card: check before writing anything
        make_card("passbook", args.village, "check", key_id=args.key_id, key=key)
    except Refused as exc:
        raise ConfigError(str(exc)) from exc
    save_private_key(out, key)
    pub = public_bytes(key).hex()
    print(f"wrote the office key for village {args.village} to {out} (mode 0600)")
    print(f"key id:     {args.key_id}")
    print(f"public key: {pub}")
    print("Keep the file offline and backed up: whoever holds it can sign this village's cards.")
    print("At central, trust it with:")
    print(
        f"  greenpass central issuer-key --village {args.village} --key-id {args.key_id} "
        f"--public-key {pub}"
    )
    print("Then print cards with:")
    print(
        f"  greenpass cards --village {args.village} --key {out} --key-id {args.key_id} "
        "--db kiosk.db --out cards.pdf"
    )
    return 0
