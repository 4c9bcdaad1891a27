"""The kiosk's `[sync]` settings, loaded once into a typed object.

    [sync]
    broker_url = "mqtts://central.example.cn:8883"
    password_file = "mqtt.password"     # relative paths are relative to this file
    ca_cert = "ca.crt"
    key_file = "device.key"
    central_public_key = "9f3c…"        # hex, 32 bytes: verifies central's signed state
    window = 2                          # batches in flight
    ack_timeout_s = 20
    status_every_s = 60
    mqtt_version = "5"                  # "3.1.1" on a RabbitMQ cluster (docs/scale.md)

The MQTT username is the ledger's device id. `greenpass sync enrol` writes this
file; docs/sync.md documents every key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from greenpass.errors import ConfigError
from greenpass.files import write_public
from greenpass.tomlfile import Table, TableReader
from sync.transport import MQTT_VERSIONS

KEYS = (
    "broker_url",
    "password_file",
    "ca_cert",
    "key_file",
    "central_public_key",
    "window",
    "ack_timeout_s",
    "status_every_s",
    "mqtt_version",
)


@dataclass(frozen=True)
class SyncConfig:
    broker_url: str
    password_file: Path
    ca_cert: Path | None
    key_file: Path
    central_public_key: bytes
    window: int = 2
    ack_timeout_s: float = 20.0
    status_every_s: float = 60.0
    mqtt_version: str = "5"

    def password(self) -> str:
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{self.password_file}: cannot read the MQTT password ({exc.strerror})"
            ) from exc


def parse_sync_config(t: Table) -> SyncConfig:
    """The `[sync]` table `t` (of a kiosk's config file, or of a file of its own)."""

    def rel(key: str) -> Path:
        p = t.path(key)
        if p is None:
            raise t.fail(key, "missing")
        return p

    hexkey = t.get("central_public_key", str)
    try:
        central = bytes.fromhex(hexkey)
    except ValueError as exc:
        raise t.fail("central_public_key", "is not hex") from exc
    if len(central) != 32:
        raise t.fail("central_public_key", "must be 32 bytes (64 hex digits)")
    window = t.get("window", int, 2)
    if not 1 <= window <= 8:
        raise t.fail("window", f"must be 1..8, got {window}")
    version = t.get("mqtt_version", str, "5")
    if version not in MQTT_VERSIONS:
        raise t.fail("mqtt_version", f"must be one of {', '.join(MQTT_VERSIONS)}")
    cfg = SyncConfig(
        broker_url=t.get("broker_url", str),
        password_file=rel("password_file"),
        ca_cert=t.path("ca_cert"),
        key_file=rel("key_file"),
        central_public_key=central,
        window=window,
        ack_timeout_s=t.get("ack_timeout_s", float, 20.0),
        status_every_s=t.get("status_every_s", float, 60.0),
        mqtt_version=version,
    )
    t.done()
    return cfg


def load_sync_config(path: Path) -> SyncConfig:
    reader, data = TableReader.load(path)
    if not isinstance(data.get("sync"), dict):
        raise reader.fail("sync", None, "no [sync] table")
    return parse_sync_config(reader.at(data["sync"], "sync"))


def write_sync_config(path: Path, cfg: SyncConfig) -> None:
    write_public(path, sync_config_text(path, cfg).encode("utf-8"))


def sync_config_text(path: Path, cfg: SyncConfig) -> str:
    """The `[sync]` table of a file at `path` (paths beside it are written as names)."""

    def q(p: Path) -> str:
        return p.name if p.parent == path.parent else str(p)

    lines = [
        "[sync]",
        f'broker_url = "{cfg.broker_url}"',
        f'password_file = "{q(cfg.password_file)}"',
        *([f'ca_cert = "{q(cfg.ca_cert)}"'] if cfg.ca_cert is not None else []),
        f'key_file = "{q(cfg.key_file)}"',
        f'central_public_key = "{cfg.central_public_key.hex()}"',
        f"window = {cfg.window}",
        f"ack_timeout_s = {cfg.ack_timeout_s}",
        f"status_every_s = {cfg.status_every_s}",
        # Written only when not the default: a kiosk on Mosquitto keeps its file as it was.
        *([f'mqtt_version = "{cfg.mqtt_version}"'] if cfg.mqtt_version != "5" else []),
    ]
    return "\n".join(lines) + "\n"
