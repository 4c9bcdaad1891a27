"""`greenpass`: the project's one command line.

Each area of the project owns its subcommands in its own `cli` module, which
exposes ``register(subparsers)``; this module only assembles them, so the parser
is the single place that knows every command (and the docs test walks it). The
simulator's commands (`simulate`, `demo`) come in through the `greenpass.commands`
entry point group, so production code never names the simulator and the command
still starts when it is absent (docs/design.md §2).
Handlers return an exit code; a `GreenPassError` becomes one clear line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points

from greenpass import __version__
from greenpass.errors import GreenPassError

# Modules that add subcommands. Each defines `register(subparsers) -> None`.
COMMAND_MODULES: tuple[str, ...] = (
    "edge.ledger.cli",
    "hardware.scanner_cli",
    "hardware.cli",
    "sync.cli",
    "central.cli",
    "kiosk_ui.cli",
    "provisioning.doctor_cli",
    "provisioning.provision_cli",
    "provisioning.field_cli",
    "provisioning.cards_cli",
    "greenpass.evidence_cli",
)

COMMANDS_GROUP = "greenpass.commands"  # entry points: `register` functions of other packages

Handler = Callable[[argparse.Namespace], int]
Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _installed() -> Iterable[EntryPoint]:
    return entry_points(group=COMMANDS_GROUP)


def plugin_commands(installed: Callable[[], Iterable[EntryPoint]] = _installed) -> list[Register]:
    """The `register` functions installed in `COMMANDS_GROUP`, by name; one whose package
    is gone (the simulator deleted from a kiosk) is left out."""
    found = []
    for ep in sorted(installed(), key=lambda e: e.name):
        try:
            found.append(ep.load())
        except ImportError:
            continue
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenpass",
        description="Green Passbook: kiosk, ledger, hardware, sync and central tools.",
    )
    parser.add_argument("--version", action="version", version=f"greenpass {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for register in plugin_commands():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:  # a command group given without its subcommand
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        return handler(args)
    except GreenPassError as exc:
        print(f"greenpass: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
