"""A kiosk whose uplink meets an impossible ack: the page and `doctor` show the sync
fault, villagers go on depositing, and central's next sane ack clears it; an uplink
that cannot be kept alive makes the kiosk exit non-zero (for systemd to restart it).

A real `greenpass kiosk` process (simulated hardware) syncs to a real Mosquitto;
central's acks are published by hand by a paho client logged in as central.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.mqtt_broker import Broker
from edge.kiosk.config import KioskConfig, load_kiosk_config
from edge.kiosk.devices import Devices
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from kiosk_ui.main import serve
from provisioning.doctor import DoctorOptions, run
from provisioning.doctor_finding import Finding
from simulator.kiosk_home import KioskHome
from sync.keys import load_private_key, public_key
from sync.supervisor import RestartPolicy
from sync.transport import BrokerConfig
from sync.uplink import Uplink
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk
from tests.kiosk.synced import BROKER_USERS, DEVICE, head_of, synced_home
from tests.sync.status_watch import StatusWatch, forged_ack

D = DEVICE


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path / "broker", BROKER_USERS) as running:
        yield running


def fault_code(view: dict[str, Any]) -> str | None:
    fault = view["status"]["sync_fault"]
    return None if fault is None else str(fault["code"])


def doctor(home: KioskHome, k: RunningKiosk) -> dict[str, Finding]:
    """`greenpass doctor` on this kiosk, while it runs (it reads the kiosk's page)."""
    port = k.url.rsplit(":", 1)[1]
    text = home.config.read_text(encoding="utf-8").replace("port = 0", f"port = {port}")
    config = home.folder / "doctor.toml"
    config.write_text(text, encoding="utf-8")
    found = run(load_kiosk_config(config), DoctorOptions(clock=FixedClock(ok=True), min_free_mb=1))
    return {f.check: f for f in found}


def test_the_page_and_doctor_show_a_sync_fault_and_villagers_carry_on(
    broker: Broker, tmp_path: Path
) -> None:
    home = synced_home(tmp_path / D, broker.url, broker.ca_cert)
    k = start_kiosk(home, tmp_path / "kiosk.log")
    try:
        k.wait_view("online", lambda v: v["status"]["online"] is True, timeout=20)
        assert k.view()["status"]["sync_fault"] is None
        watch = StatusWatch(broker, D)
        head = head_of(home)
        watch.forge(forged_ack(D, "ok", head + 1, first_seq=1, last_seq=head + 1))
        v = k.wait_view("the fault", lambda v: fault_code(v) == "ack_beyond_head")
        assert f"ends at {head}" in v["status"]["sync_fault"]["message"]
        assert v["status"]["online"] is True and v["screen"] == "idle"

        # A villager's deposit is not held up by it.
        k.scan("villager 张家")
        k.wait_view("villager screen", lambda v: v["screen"] == "villager")
        assert k.post("/api/category", {"category": "cardboard"}).status_code == 200
        k.wait_view("empty scale seen", lambda v: v["hint"] == "place_bag")
        k.sim("scale", action="place", grams=3250)
        v = k.wait_view("confirmed", lambda v: v["screen"] == "confirmed")
        assert v["result"]["points"] == 32 and fault_code(v) == "ack_beyond_head"
        k.sim("scale", action="remove")

        found = doctor(home, k)
        assert found["sync"].level == "fail"
        assert "ack_beyond_head" in found["sync"].detail and "running kiosk" in found["sync"].detail
        assert "replaced or restored" in found["sync"].fix

        # Central answers sanely: everything up to the head is stored centrally.
        head = head_of(home)
        watch.forge(forged_ack(D, "ok", head, first_seq=1, last_seq=head))
        k.wait_view(
            "the fault cleared and nothing left to send",
            lambda v: fault_code(v) is None and v["status"]["backlog"] == 0,
            timeout=15,
        )
        assert doctor(home, k)["sync"].level == "ok"
    finally:
        stop_kiosk(k)


def crashing_uplink(
    cfg: KioskConfig, devices: Devices, health: Callable[[], dict[str, str]]
) -> Uplink:
    """The real uplink, given a health callback that raises what nobody planned for."""

    def broken() -> dict[str, str]:
        raise RuntimeError(f"a bug behind {health.__name__}")

    assert cfg.sync is not None
    ledger = Ledger.open(cfg.kiosk.db)
    return Uplink(
        ledger,
        load_private_key(cfg.sync.key_file),
        BrokerConfig(cfg.sync.broker_url, D, cfg.sync.password(), f"gp-{D}", cfg.sync.ca_cert),
        central_key=public_key(cfg.sync.central_public_key),
        restart=RestartPolicy(base_s=0.05, cap_s=0.1, max_crashes=2),
        health=broken,
    )


def test_a_kiosk_whose_uplink_cannot_be_kept_alive_exits_non_zero(tmp_path: Path) -> None:
    # It crashes before it ever connects, so no broker is needed (nothing listens on 1).
    home = synced_home(tmp_path / D, "mqtts://127.0.0.1:1", None)
    cfg = load_kiosk_config(home.config)

    async def main() -> int:
        return await asyncio.wait_for(serve(cfg, uplink_factory=crashing_uplink), 30)

    assert asyncio.run(main()) == 1


def test_systemd_restarts_a_kiosk_that_exits() -> None:
    unit = Path(__file__).parents[2] / "provisioning" / "deploy" / "greenpass-kiosk.service"
    lines = unit.read_text(encoding="utf-8").splitlines()
    assert "Restart=always" in lines
