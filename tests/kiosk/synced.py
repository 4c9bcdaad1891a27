"""A kiosk folder whose `[sync]` points at a test broker, for tests that forge central's acks."""

from __future__ import annotations

from pathlib import Path

from edge.ledger.ledger import Ledger
from simulator.kiosk_home import KioskHome, make_kiosk_home
from sync.config import SyncConfig
from sync.keys import generate_key, public_bytes

DEVICE = "K0001"
PASSWORD = "k0001-pw"
BROKER_USERS = (("central", "central-pw"), (DEVICE, PASSWORD))


def synced_home(
    folder: Path, broker_url: str, ca_cert: Path | None, *, extra_kiosk_keys: str = ""
) -> KioskHome:
    """A simulated kiosk enrolled as `DEVICE` with the broker (no central needed: the
    tests answer for it). Resends after 2 s without an ack."""
    sync = SyncConfig(
        broker_url=broker_url,
        password_file=folder / "mqtt.password",
        ca_cert=ca_cert,
        key_file=folder / "device.key",
        central_public_key=public_bytes(generate_key()),
        ack_timeout_s=2.0,
    )
    home = make_kiosk_home(folder, DEVICE, "dongcun", sync=sync, extra_kiosk_keys=extra_kiosk_keys)
    (folder / "mqtt.password").write_text(PASSWORD + "\n", encoding="utf-8")
    return home


def head_of(home: KioskHome) -> int:
    with Ledger.open(home.folder / "kiosk.db") as ledger:
        return ledger.head()[0]
