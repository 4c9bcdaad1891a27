"""`greenpass simulate ...` and `greenpass demo`: simulated devices, scripted days, the demo.

A small dispatcher: each device adds its own subcommand with one
`_register_<device>` function and one handler. The demo and the scenario
runner import their modules only when run (fast `--help`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from simulator import camera_cli, netproxy
from simulator.scale import PROTOCOLS, SimulatedScale
from simulator.scale.controls import ControlError, apply


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    simulate = subparsers.add_parser(
        "simulate", help="run a simulated device", description="Run a simulated device."
    )
    devices = simulate.add_subparsers(dest="device", metavar="DEVICE", required=True)
    _register_scale(devices)
    camera_cli.add_commands(devices)  # camera and serial-scanner, owned by camera_cli
    _register_netproxy(devices)
    _register_scenario(devices)
    _register_demo(subparsers)


def _register_scale(devices: argparse._SubParsersAction[Any]) -> None:
    p = devices.add_parser(
        "scale",
        help="a serial scale on a pseudo-terminal",
        description="A simulated scale on a pseudo-terminal. Prints the port path, then "
        "reads controls on stdin (type 'help').",
    )
    p.add_argument("--protocol", required=True, choices=PROTOCOLS, help="protocol to speak")
    p.add_argument("--link", help="path of the symlink to the pty (default: a temporary path)")
    p.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    p.add_argument("--capacity", type=int, default=150_000, help="capacity in grams")
    p.add_argument("--settle", type=int, default=300, help="settling time in ms (default 300)")
    p.set_defaults(handler=simulate_scale)


def simulate_scale(args: argparse.Namespace) -> int:
    sim = SimulatedScale(
        args.protocol,
        link=args.link,
        rate_hz=args.rate,
        capacity_grams=args.capacity,
        settle_ms=args.settle,
    )
    with sim:
        print(f"simulated {args.protocol} scale on {sim.port}", flush=True)
        try:
            for line in sys.stdin:
                if line.strip().lower() in ("quit", "exit"):
                    break
                try:
                    said = apply(sim, line)
                except ControlError as exc:
                    print(f"error: {exc}", file=sys.stderr, flush=True)
                    continue
                if said:
                    print(said, flush=True)
        except KeyboardInterrupt:  # Ctrl-C is the normal way to stop it
            pass
    return 0


def _register_netproxy(devices: argparse._SubParsersAction[Any]) -> None:
    p = devices.add_parser(
        "netproxy",
        help="a loopback TCP proxy that can cut, stall and delay a link",
        description="A TCP proxy on 127.0.0.1 in front of TARGET (e.g. the broker). Prints "
        f"its address, then reads controls on stdin ({netproxy.CONTROLS_HELP}) and prints "
        "the link's state after each.",
    )
    p.add_argument(
        "--target", required=True, type=_target, metavar="HOST:PORT", help="where to forward to"
    )
    p.add_argument(
        "--listen", type=int, default=0, metavar="PORT", help="port to listen on (default: free)"
    )
    p.set_defaults(handler=simulate_netproxy)


def _target(text: str) -> tuple[str, int]:
    try:
        return netproxy.parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def simulate_netproxy(args: argparse.Namespace) -> int:
    host, port = args.target
    with netproxy.NetProxy(host, port, listen_port=args.listen) as proxy:
        print(f"netproxy 127.0.0.1:{proxy.port} -> {host}:{port}", flush=True)
        print(proxy.state, flush=True)
        try:
            for line in sys.stdin:
                if line.strip().lower() in ("quit", "exit"):
                    break
                try:
                    said = netproxy.apply_control(proxy, line)
                except netproxy.ControlError as exc:
                    print(f"error: {exc}", file=sys.stderr, flush=True)
                    continue
                print(said, flush=True)
        except KeyboardInterrupt:  # Ctrl-C is the normal way to stop it
            pass
    return 0


def _register_scenario(devices: argparse._SubParsersAction[Any]) -> None:
    p = devices.add_parser(
        "scenario",
        help="run a scripted day (a TOML file of steps) against running kiosks",
        description="Run the steps of FILE against running kiosks through their HTTP API and "
        "/sim routes, one line per step; exit 1 at the first expectation that fails. "
        "The file format is in docs/demo.md.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="the scenario (TOML)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--demo-dir",
        type=Path,
        help="a running demo's folder: its kiosks come from demo.json (default: demo-data)",
    )
    where.add_argument(
        "--kiosk",
        action="append",
        metavar="NAME=URL",
        type=_kiosk_url,
        help="a kiosk by name and page URL, e.g. K0001=http://127.0.0.1:8711 (repeatable)",
    )
    p.set_defaults(handler=simulate_scenario)


def _kiosk_url(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=http://HOST:PORT")
    return name, url


def simulate_scenario(args: argparse.Namespace) -> int:
    from simulator import scenario  # noqa: PLC0415 - imported when run: a fast --help
    from simulator.demo import load_demo_info  # noqa: PLC0415

    sc = scenario.load(args.file)  # a bad file stops here, before any kiosk is touched
    if args.kiosk:
        kiosks = dict(args.kiosk)
    else:
        info = load_demo_info(args.demo_dir or Path("demo-data"))
        kiosks = {name: k.url for name, k in info.kiosks.items()}
    print(f"scenario '{sc.name}' ({args.file}): {len(sc.steps)} steps", flush=True)
    try:
        took = scenario.run(sc, kiosks, out=lambda line: print(line, flush=True))
    except scenario.StepFailed as exc:
        print(f"FAILED {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"scenario passed: {len(sc.steps)} steps in {took:.1f} s", flush=True)
    return 0


def _register_demo(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="central, a broker and simulated kiosks on this machine; prints the URLs",
        description="Create DIR afresh (central's database, a village, a broker with TLS, "
        "enrolled simulated kiosks), start Mosquitto, central and the kiosks, print their "
        "URLs, and run until Ctrl-C. See docs/demo.md.",
    )
    p.add_argument(
        "--dir", type=Path, default=Path("demo-data"), help="the demo's folder (default demo-data)"
    )
    p.add_argument("--kiosks", type=int, default=2, help="how many kiosks, 1-9 (default 2)")
    p.add_argument(
        "--base-port",
        type=int,
        default=8700,
        help="central on this port, the broker on +1, kiosk N on +10+N (default 8700; "
        "0: any free ports)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="run the built-in scenario once, check central's totals against the kiosks' "
        "ledgers, then stop everything (exit 1 if anything failed)",
    )
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from simulator.demo import run_demo as run  # noqa: PLC0415

    return run(args.dir, kiosks=args.kiosks, base_port=args.base_port, no_wait=args.no_wait)
