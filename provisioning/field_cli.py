"""`greenpass calibrate` and `greenpass hwcheck`: the technician's checks at the kiosk."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("/etc/greenpass/kiosk.toml")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("calibrate", help="set up the scale with reference masses (kiosk stopped)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the kiosk config")
    p.add_argument("--known-mass", type=int, default=5000, help="calibration mass, grams (5000)")
    p.add_argument("--check-mass", type=int, default=2000, help="check mass, grams (2000)")
    p.add_argument("--tolerance", type=int, default=10, help="allowed error on the check, g (10)")
    p.add_argument(
        "--detect",
        action="store_true",
        help="only find the scale: probe serial ports and protocols, print the config lines",
    )
    p.set_defaults(handler=_calibrate)
    p = sub.add_parser(
        "hwcheck",
        help="blink the LEDs, sound the buzzer, wait for the button, read a card, "
        "print a test receipt",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the kiosk config")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds for the button and the card"
    )
    p.set_defaults(handler=_hwcheck)


def _devices(config: Path) -> tuple[Any, Any]:
    from edge.kiosk.config import load_kiosk_config
    from edge.kiosk.devices import open_devices
    from greenpass.errors import ConfigError
    from provisioning.doctor import live_view

    cfg = load_kiosk_config(config)
    if live_view(cfg, 1.0) is not None:
        raise ConfigError(
            "the kiosk is running and holds the devices: stop it first "
            "(sudo systemctl stop greenpass-kiosk)"
        )
    return cfg, open_devices(cfg)


def _say(text: str) -> None:
    print(f"  · {text}", flush=True)


def _calibrate(args: argparse.Namespace) -> int:
    from greenpass.errors import ConfigError
    from provisioning.calibrate import calibrate, candidate_ports, detect_scale, save_span

    if args.detect:
        found = detect_scale(candidate_ports())
        if found is None:
            print("no scale found on " + (", ".join(candidate_ports()) or "any serial port"))
            return 1
        print(f'found: put in [hardware.scale]\nprotocol = "{found[1]}"\nport = "{found[0]}"')
        return 0
    cfg, devices = _devices(args.config)
    try:
        sim = devices.sim
        if sim is None and not sys.stdin.isatty():
            raise ConfigError("calibration needs a technician at the scale (run it in a terminal)")

        def prompt(text: str, grams: int) -> None:
            if sim is not None:  # the simulator's hands put the masses on
                _say(f"{text} (simulated)")
                sim.scale("place" if grams else "remove", grams)
            else:
                input(f"  · {text}, then press Enter ")

        result = calibrate(
            devices.scale,
            known_grams=args.known_mass,
            check_grams=args.check_mass,
            tolerance_grams=args.tolerance,
            prompt=prompt,
            zero_band_grams=cfg.kiosk.zero_band_grams,
        )
    finally:
        devices.close()
    if result.calibrated:
        how = "calibrated and saved in the scale's firmware"
    elif result.ok:
        save_span(args.config, result.span_ppm)
        how = (
            f"this indicator takes no calibrate command: the kiosk corrects its readings by "
            f"span_ppm = {result.span_ppm}, saved in {args.config}"
        )
    else:
        how = "this indicator takes no calibrate command, and the correction did not hold"
    print(f"zero: {'set' if result.zeroed else 'not supported over the wire'}; span: {how}")
    print(
        f"check: {result.check_grams} g read as {result.read_grams} g "
        f"(error {result.error_grams:+d} g, tolerance ±{result.tolerance_grams} g): "
        f"{'PASS' if result.ok else 'FAIL'}"
    )
    return 0 if result.ok else 1


def _hwcheck(args: argparse.Namespace) -> int:
    from edge.ledger.ledger import Ledger
    from hardware.printer import Paper
    from provisioning.hwcheck import print_test_receipt, scan_test_card, show_outputs, wait_button
    from sync.keys import load_private_key, public_bytes

    cfg, devices = _devices(args.config)
    try:
        sim = devices.sim
        results = show_outputs(devices.indicator, _say, on_s=0.3 if sim else 1.0)
        if sim is not None:
            threading.Timer(0.5, sim.press_button).start()
        results.append(wait_button(devices.indicator, _say, args.timeout))
        with Ledger.open(cfg.kiosk.db) as ledger:
            keys, village, device = ledger.issuer_keys(), ledger.village, ledger.device_id
        key_file = cfg.device_key_file
        if key_file is not None and key_file.exists():
            keys[device] = public_bytes(load_private_key(key_file))
        if sim is not None and sim.cards:
            payload = sim.cards[-1]["payload"]
            threading.Timer(0.5, lambda: sim.scan(payload)).start()
        results.append(scan_test_card(devices.scanner, keys, village, _say, args.timeout))
        if devices.printer is not None:
            pr = cfg.hardware.printer
            results.append(
                print_test_receipt(
                    devices.printer,
                    village=village,
                    device_id=device,
                    paper=Paper(pr.width),
                    chinese=pr.chinese,
                    say=_say,
                )
            )
            printed = getattr(sim, "printer_sim", None)
            if printed is not None and printed.receipts:
                _say(f"the simulated printer drew it: {printed.receipts[-1]}")
    finally:
        devices.close()
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'}  {r.name:<10} {r.detail}")
    return 0 if all(r.ok for r in results) else 1
