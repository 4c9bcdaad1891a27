"""`greenpass simulate ...`: simulated devices for development and tests.

A small dispatcher: each device adds its own subcommand with one
`_register_<device>` function and one handler.
"""

from __future__ import annotations

import argparse
import sys
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
