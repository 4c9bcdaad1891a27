"""Setting up the demo's data: central's database, secrets and broker folder, and each
kiosk's folder around credentials from central's real HTTP enrolment API."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import httpx

from central.accounts import Accounts
from central.broker import mosquitto_password_hash, write_broker_config
from central.store import CentralStore
from greenpass.record.rules import default_rules
from simulator.demo_folder import OFFICE_KEY_ID, VILLAGE, DemoError, say
from simulator.demo_procs import Ports
from simulator.kiosk_home import GOODS, Issuer, KioskHome, make_kiosk_home
from sync.enrol import enrol, save_credentials, tls_verify
from sync.keys import load_or_create_key, public_bytes

PASSBOOKS_PER_KIOSK = 3
# Each kiosk enrols its own households (K0001: 张 李 王, K0002: 赵 陈 刘 …), so a card's
# label ("villager 张家 …") names one villager however many kiosks run.
SURNAMES = [f"{s}家" for s in "张李王赵陈刘杨黄吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩"]


DEMO_OPERATOR = "demo"
DEMO_PASSWORD = "greenpass-demo"  # a demo's, printed for anyone at the screen


def secret_file(path: Path) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        value = secrets.token_urlsafe(24)
        f.write(value + "\n")
    return value


def central_data(home: Path, db: Path, broker_dir: Path, ports: Ports) -> Issuer:
    """Central's database and secrets, the village, and the broker folder."""
    central_pw = secret_file(home / "central.password")
    secret_file(home / "admin.token")  # central's bootstrap token, retired by the account below
    office = load_or_create_key(home / f"office-{VILLAGE}.key")
    rules = default_rules()
    now = time.time_ns() // 1_000_000
    with CentralStore.open(db, now_ms=now) as store:
        store.create_village(VILLAGE)
        store.set_rules(VILLAGE, rules.text, now_ms=now)
        for item_id, zh, en, price, _stock in GOODS:
            store.put_item(VILLAGE, item_id, name_zh=zh, name_en=en, points_price=price)
        store.add_issuer_key(OFFICE_KEY_ID, VILLAGE, public_bytes(office), now_ms=now)
        # The console's demo operator (printed with the URLs), and its API token, which
        # the demo uses for its own API calls: a county account retires admin.token.
        accounts = Accounts(store)
        accounts.add(DEMO_OPERATOR, "county", DEMO_PASSWORD, now, actor="demo-setup")
        token_file = home / "demo-operator.token"
        token_file.write_text(
            accounts.issue_token(DEMO_OPERATOR, now, actor="demo-setup") + "\n", encoding="utf-8"
        )
        token_file.chmod(0o600)
    # As `greenpass central broker-config` does (no device is enrolled yet: central
    # gives the broker each kiosk's login as it enrols), plus: started as root,
    # Mosquitto would switch to the `mosquitto` account and could not read this folder.
    write_broker_config(
        broker_dir,
        port=ports.broker,
        central_password_hash=mosquitto_password_hash(central_pw),
        hostnames=["localhost"],
        bind="127.0.0.1",
        run_as="root" if os.geteuid() == 0 else None,
    )
    say(
        f"  village  {VILLAGE}: rules {rules.version}, {len(GOODS)} goods, "
        f"cards signed by the office key '{OFFICE_KEY_ID}'"
    )
    return Issuer(OFFICE_KEY_ID, office)


def kiosk_home(
    demo_folder: Path,
    n: int,
    device: str,
    central_url: str,
    central_ca: Path,
    admin_token: str,
    office: Issuer,
    ports: Ports,
) -> KioskHome:
    """Enrol `device` through central's HTTP API, then build its folder around it."""
    folder = demo_folder / "kiosks" / device
    folder.mkdir(parents=True)
    key = load_or_create_key(folder / "device.key")  # made on the device; never leaves it
    r = httpx.post(
        central_url + "/api/v1/enrol-tokens",
        json={"device_id": device, "village_id": VILLAGE, "ttl_hours": 1},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
        verify=tls_verify(central_ca),
    )
    if r.status_code != 201:
        raise DemoError(f"central refused an enrolment token for {device}: {r.text}")
    creds = enrol(central_url, r.json()["token"], device, public_bytes(key), ca_file=central_ca)
    if creds.village_id != VILLAGE:
        raise DemoError(f"central enrolled {device} for {creds.village_id!r}, not {VILLAGE}")
    # Quicker status and resend than a village kiosk's, for a lively demo.
    sync = replace(
        save_credentials(folder, creds, folder / "device.key"),
        ack_timeout_s=10.0,
        status_every_s=10.0,
    )
    first = (n - 1) * PASSBOOKS_PER_KIOSK
    households = SURNAMES[first : first + PASSBOOKS_PER_KIOSK]
    home = make_kiosk_home(
        folder,
        device,
        VILLAGE,
        ui_port=ports.kiosks[n - 1],
        households=households,
        passbook_prefix=f"DC{n}",
        sync=sync,
        issuer=office,
        # A simulated receipt printer (its receipts on /sim), the QR pointing at this
        # central's statement pages.
        printer=True,
        extra_kiosk_keys=f'statement_url = "{central_url}"',
    )
    passbooks = ", ".join(
        c["label"].removeprefix("villager ") for c in home.cards if c["label"].startswith("vil")
    )
    say(f"  {device}    enrolled with central (MQTT user {creds.mqtt_username}); {passbooks}")
    return home


def share_cards(homes: Sequence[KioskHome]) -> None:
    """Every kiosk's control page lists every card of the village (all signed by the
    office key), so a villager enrolled at one kiosk can be scanned at another."""
    cards: dict[str, dict[str, str]] = {}
    for home in homes:
        for card in home.cards:
            label = card["label"]
            if label.startswith("villager"):
                label = f"{label} ({home.device_id})"
            cards.setdefault(card["payload"], {"label": label, "payload": card["payload"]})
    text = json.dumps(list(cards.values()), ensure_ascii=False, indent=1)
    for home in homes:
        (home.folder / "cards.json").write_text(text, encoding="utf-8")
