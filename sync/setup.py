"""An `Uplink` from the kiosk's `[sync]` config: shared by `greenpass sync run` and the daemon."""

from __future__ import annotations

from collections.abc import Callable

from edge.ledger.ledger import Ledger
from sync.config import SyncConfig
from sync.keys import load_private_key, public_key
from sync.protocol import device_client_id
from sync.transport import BrokerConfig
from sync.uplink import Uplink


def uplink_from_config(
    ledger: Ledger,
    cfg: SyncConfig,
    *,
    broker_url: str | None = None,
    health: Callable[[], dict[str, str]] | None = None,
) -> Uplink:
    """The uplink `cfg` describes, on `ledger` (its own `Ledger`: it runs in its own thread).

    `broker_url` overrides `cfg.broker_url` (the simulator routes it through a proxy).
    """
    return Uplink(
        ledger,
        load_private_key(cfg.key_file),
        BrokerConfig(
            url=broker_url or cfg.broker_url,
            username=ledger.device_id,
            password=cfg.password(),
            client_id=device_client_id(ledger.device_id),
            ca_cert=cfg.ca_cert,
            mqtt_version=cfg.mqtt_version,
        ),
        central_key=public_key(cfg.central_public_key),
        window=cfg.window,
        ack_timeout_s=cfg.ack_timeout_s,
        status_every_s=cfg.status_every_s,
        health=health,
    )
