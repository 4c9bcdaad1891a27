"""Turning a bare Pi into an enrolled kiosk: identity, keys, enrolment, ledger, config.

`provision(request)` does, in order, each step announced through `progress`:

1. checks the ids and that the kiosk's clock agrees with central's (a Pi has no
   RTC: a clock hours off would date every entry wrong and fail TLS);
2. creates the device's Ed25519 key pair on the device (private key 0600), or
   keeps the one already there (re-provisioning keeps the identity);
3. trades the one-time enrolment token for broker credentials and the CA
   (`sync.enrol`); a used, expired or other-village token is refused by central
   with its reason, an unreachable central with what to check;
4. creates the ledger (or checks an existing one belongs to this device);
5. writes `kiosk.toml` with `[kiosk]`, `[ui]`, `[hardware]` and `[sync]`.

A provisioning QR code carries the same fields as flags, as one line:
``GPPROV1 central=https://central.example token=… device=K0001 village=dongcun``
(space-separated key=value pairs, so a cheap scanner's keyboard mode keeps them).

Central is reached over HTTPS only (`sync.enrol.check_central_url`), its
certificate checked against `central_ca` (central's ``http-tls/ca.crt``, which
the technician brings; a code cannot carry it) or else the system's CAs — for
the clock check as for the enrolment, so not even central's time is taken from
an impostor.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from edge.ledger.ledger import Ledger
from greenpass.errors import CentralError, ConfigError, Refused
from greenpass.files import write_public
from greenpass.record.ids import check_device_id, check_id
from greenpass.record.rules import default_rules
from sync.config import SyncConfig, sync_config_text
from sync.enrol import check_central_url, enrol, save_credentials, tls_verify, unreachable
from sync.keys import load_or_create_key, public_bytes

QR_PREFIX = "GPPROV1"
QR_KEYS = {"central": "central_url", "token": "token", "device": "device_id", "village": "village"}
MAX_SKEW_S = 300


@dataclass(frozen=True)
class ProvisionRequest:
    device_id: str
    village: str
    central_url: str
    token: str
    central_ca: Path | None = None  # central's HTTPS CA; None: the system's CAs
    config_dir: Path = Path("/etc/greenpass")
    db: Path = Path("/var/lib/greenpass/kiosk.db")
    backend: str = "real"
    scale_protocol: str = "gpfw"
    scale_port: str = "/dev/greenpass-scale"
    scanner_kind: str = "serial"
    scanner_port: str = "/dev/greenpass-scanner"
    ui_port: int = 8080


@dataclass
class Summary:
    device_id: str
    village: str
    config: Path
    db: Path
    broker_url: str
    clock_skew_s: float | None
    steps: list[str] = field(default_factory=list)


def parse_qr(payload: str) -> dict[str, str]:
    """The fields of a provisioning QR code (see the module docstring)."""
    words = payload.strip().split()
    if not words or words[0] != QR_PREFIX:
        raise ConfigError(f"not a provisioning code (it should start with {QR_PREFIX})")
    out: dict[str, str] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or key not in QR_KEYS or not value:
            raise ConfigError(f"provisioning code: unexpected field {word!r}")
        out[QR_KEYS[key]] = value
    return out


def check_clock(
    central_url: str,
    *,
    ca_file: Path | None = None,
    now_s: float | None = None,
    timeout_s: float = 10,
) -> float:
    """Seconds the local clock is ahead of central's (from its HTTP Date header)."""
    url = central_url.rstrip("/") + "/"
    try:
        r = httpx.get(url, timeout=timeout_s, verify=tls_verify(ca_file))
    except httpx.HTTPError as exc:
        raise CentralError(unreachable(url, exc, ca_file)) from exc
    date = r.headers.get("date")
    if not date:
        raise CentralError(f"central at {central_url} sent no Date header; cannot check the clock")
    central = email.utils.parsedate_to_datetime(date).timestamp()
    return (time.time() if now_s is None else now_s) - central


def provision(
    req: ProvisionRequest,
    *,
    progress: Callable[[str], None] = lambda _s: None,
    now_s: float | None = None,
    max_skew_s: float = MAX_SKEW_S,
) -> Summary:
    check_device_id(req.device_id)
    check_id("village", req.village)
    if not req.token.strip():
        raise ConfigError("the enrolment token is empty: ask the operator for one")
    check_central_url(req.central_url)
    progress(f"checking the clock against central at {req.central_url}")
    skew = check_clock(req.central_url, ca_file=req.central_ca, now_s=now_s)
    if abs(skew) > max_skew_s:
        side = "ahead of" if skew > 0 else "behind"
        raise ConfigError(
            f"this kiosk's clock is {abs(skew) / 60:.0f} min {side} "
            "central's: set the time (`sudo timedatectl set-ntp true`, or "
            "`sudo date -s '2026-11-25 10:00'`) and provision again"
        )
    req.config_dir.mkdir(parents=True, exist_ok=True)
    key_file = req.config_dir / "device.key"
    existed = key_file.exists()
    key = load_or_create_key(key_file)
    progress(f"device key {'kept' if existed else 'generated'}: {key_file} (mode 0600)")
    ledger_village = _existing_ledger(req)
    progress(f"enrolling {req.device_id} with central")
    creds = enrol(
        req.central_url, req.token, req.device_id, public_bytes(key), ca_file=req.central_ca
    )
    if creds.village_id != req.village:
        raise ConfigError(
            f"the token was for village {creds.village_id!r}, not {req.village!r}: "
            "ask the operator for a token for this kiosk's village"
        )
    sync = save_credentials(req.config_dir, creds, key_file)
    progress(f"broker credentials and CA saved in {req.config_dir}")
    if ledger_village is None:
        req.db.parent.mkdir(parents=True, exist_ok=True)
        Ledger.create(
            req.db, device_id=req.device_id, village=req.village, rules=default_rules()
        ).close()
        progress(f"ledger created: {req.db}")
    else:
        progress(f"ledger kept: {req.db}")
    config = req.config_dir / "kiosk.toml"
    write_kiosk_config(config, req, sync)
    progress(f"config written: {config}")
    return Summary(req.device_id, req.village, config, req.db, creds.broker_url, skew)


def _existing_ledger(req: ProvisionRequest) -> str | None:
    """The village of a ledger already at `req.db` (checked to be this device's), or None."""
    if not req.db.exists():
        return None
    with Ledger.open(req.db) as ledger:
        if (ledger.device_id, ledger.village) != (req.device_id, req.village):
            raise Refused(
                "ledger_mismatch",
                f"{req.db} holds the ledger of {ledger.device_id} in {ledger.village}, not "
                f"{req.device_id} in {req.village}: use another --db, or move that file aside "
                "only after central has all its entries (greenpass doctor shows the backlog)",
            )
        return ledger.village


def write_kiosk_config(path: Path, req: ProvisionRequest, sync: SyncConfig) -> None:
    lines = [
        "# Written by `greenpass provision`; every key is documented in docs/kiosk.md.",
        "[kiosk]",
        f'db = "{req.db}"',
        'key_file = "device.key"',
        "",
        "[ui]",
        'host = "127.0.0.1"',
        f"port = {req.ui_port}",
        "",
        "[hardware]",
        f'backend = "{req.backend}"',
        "",
        "[hardware.scale]",
        f'protocol = "{req.scale_protocol}"',
        f'port = "{req.scale_port}"',
        "",
        "[hardware.scanner]",
        f'kind = "{req.scanner_kind}"',
        f'port = "{req.scanner_port}"',
        "",
    ]
    text = "\n".join(lines) + sync_config_text(path, sync)
    write_public(path, text.encode("utf-8"))
