"""`greenpass provision`: enrol this kiosk, write its config (flags, file, QR code or prompts)."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

FIELDS = {  # request field -> (flag, prompt)
    "device_id": ("--device-id", "Device id (e.g. K0001)"),
    "village": ("--village", "Village id (e.g. dongcun)"),
    "central_url": ("--central", "Central server URL (e.g. https://central.example)"),
    "token": ("--token", "Enrolment token from the operator"),
}
OPTIONAL = {
    "central_ca": "--central-ca",
    "config_dir": "--config-dir",
    "db": "--db",
    "backend": "--backend",
    "scale_protocol": "--scale-protocol",
    "scale_port": "--scale-port",
    "scanner_kind": "--scanner-kind",
    "scanner_port": "--scanner-port",
    "ui_port": "--ui-port",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "provision",
        help="enrol this kiosk with central: key pair, credentials, ledger, kiosk.toml",
    )
    p.add_argument("--file", type=Path, help="a TOML provisioning file with the fields below")
    p.add_argument(
        "--scan",
        action="store_true",
        help="read the fields from a provisioning QR code shown to the scanner",
    )
    p.add_argument("--scan-timeout", type=float, default=120.0, help="seconds to wait for it")
    for name, (flag, text) in FIELDS.items():
        p.add_argument(flag, dest=name, help=text)
    p.add_argument(
        "--central-ca",
        type=Path,
        help="central's CA certificate (its http-tls/ca.crt) to verify its HTTPS with "
        "(default: the system's CAs)",
    )
    p.add_argument("--config-dir", type=Path, help="where kiosk.toml and keys go (/etc/greenpass)")
    p.add_argument("--db", type=Path, help="the ledger file (/var/lib/greenpass/kiosk.db)")
    p.add_argument("--backend", choices=("real", "sim"), help="hardware backend (real)")
    p.add_argument("--scale-protocol", help="gpfw, mtsics, and, cas or xk3190 (gpfw)")
    p.add_argument("--scale-port", help="the scale's port (/dev/greenpass-scale)")
    p.add_argument("--scanner-kind", choices=("serial", "camera"), help="the QR scanner (serial)")
    p.add_argument("--scanner-port", help="the serial scanner's port (/dev/greenpass-scanner)")
    p.add_argument("--ui-port", type=int, help="the touchscreen page's port (8080)")
    p.set_defaults(handler=_run)


def _from_file(path: Path) -> dict[str, Any]:
    from greenpass.errors import ConfigError

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the provisioning file ({exc})") from exc
    known = set(FIELDS) | set(OPTIONAL)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return data


def _scan(port: str, timeout_s: float) -> dict[str, str]:
    import time

    from greenpass.errors import ConfigError
    from hardware.scanner import SerialScanner
    from provisioning.provision import parse_qr

    print(f"show the provisioning QR code to the scanner ({port}) …", flush=True)
    deadline = time.monotonic() + timeout_s
    with SerialScanner(port) as scanner:
        while time.monotonic() < deadline:
            scan = scanner.read(timeout=0.5)
            if scan is None:
                continue
            try:
                return parse_qr(scan.payload)
            except ConfigError as exc:
                print(f"  that code was not it: {exc}", flush=True)
    raise ConfigError(f"no provisioning code scanned within {timeout_s:g} s")


def _run(args: argparse.Namespace) -> int:
    from greenpass.errors import ConfigError
    from provisioning.provision import ProvisionRequest, provision

    values: dict[str, Any] = _from_file(args.file) if args.file else {}
    if args.scan:
        values.update(_scan(args.scanner_port or "/dev/greenpass-scanner", args.scan_timeout))
    for name in [*FIELDS, *OPTIONAL]:
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    for name, (flag, text) in FIELDS.items():
        if values.get(name):
            continue
        if not sys.stdin.isatty():
            raise ConfigError(f"missing {flag} (or give --file or --scan)")
        values[name] = input(f"{text}: ").strip()
    for path_field in ("central_ca", "config_dir", "db"):
        if path_field in values:
            values[path_field] = Path(values[path_field])
    req = ProvisionRequest(**values)
    summary = provision(req, progress=lambda s: print(f"  · {s}", flush=True))
    skew = f"{summary.clock_skew_s:+.1f} s" if summary.clock_skew_s is not None else "unknown"
    print(
        f"\nprovisioned {summary.device_id} for village {summary.village}\n"
        f"  config   {summary.config}\n  ledger   {summary.db}\n"
        f"  broker   {summary.broker_url}\n  clock    {skew} from central\n"
        f"next: greenpass calibrate --config {summary.config}\n"
        f"      greenpass hwcheck --config {summary.config}\n"
        f"      greenpass doctor --config {summary.config}"
    )
    return 0
