"""A ready-to-run simulated kiosk folder: ledger, staff, villagers, goods, cards, config.

Used by the demo and the kiosk tests. What a technician and the village office
would do by hand (`greenpass ledger init`, `staff-add`, `enrol`, `item`,
`restock`, printing cards) is done here in one call, with the simulated
hardware chosen in the config.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge.kiosk.cards import CardKind, make_card
from edge.ledger.ledger import Ledger
from greenpass.record.rules import default_rules
from sync.config import SyncConfig, write_sync_config
from sync.keys import Ed25519PrivateKey, load_or_create_key

STAFF_PIN = "2468"  # the demo's staff PIN (documented in the README)

HOUSEHOLDS = ("张家", "李家", "王家", "赵家", "陈家", "刘家")
GOODS = (  # id, 中文, English, points, stock
    ("rice-5kg", "大米 5公斤", "Rice 5 kg", 300, 10),
    ("soap", "肥皂", "Soap bar", 25, 40),
    ("vinegar", "陈醋 500ml", "Vinegar 500 ml", 40, 20),
    ("health-check", "健康检查", "Health check", 200, 5),
    ("fitness-coupon", "健身券", "Fitness coupon", 80, 15),
)


@dataclass(frozen=True)
class Issuer:
    """Who signs the cards: the village office key registered with central, or the kiosk."""

    key_id: str
    key: Ed25519PrivateKey


@dataclass
class KioskHome:
    folder: Path
    config: Path
    device_id: str
    village: str
    cards: list[dict[str, str]] = field(default_factory=list)

    def card(self, label_prefix: str) -> str:
        return next(c["payload"] for c in self.cards if c["label"].startswith(label_prefix))


def make_kiosk_home(
    folder: Path,
    device_id: str,
    village: str,
    *,
    ui_port: int = 0,
    households: Sequence[str] = HOUSEHOLDS,
    passbook_prefix: str | None = None,
    sync: SyncConfig | None = None,
    issuer: Issuer | None = None,
    scale_protocol: str = "gpfw",
    extra_kiosk_keys: str = "",
    printer: bool = False,
) -> KioskHome:
    """Create `folder` with a ledger and a sim-backend `kiosk.toml`; returns its parts.

    Passbooks are `<prefix>-0001`… (prefix: the device id). Cards are signed by
    `issuer`, or by the kiosk's own key when there is none. `printer`: a simulated
    receipt printer (its receipts, as PNGs, in `kiosk-receipts/`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(folder / "device.key")
    signer = issuer or Issuer(device_id, key)
    db = folder / "kiosk.db"
    cards: list[dict[str, str]] = []
    with Ledger.create(db, device_id=device_id, village=village, rules=default_rules()) as ledger:
        ledger.add_staff("wang", name="王丽 Wang Li", role="admin", pin=STAFF_PIN)
        ledger.add_staff(
            "zhou", name="周强 Zhou Qiang", role="staff", pin=STAFF_PIN, by_staff_id="wang"
        )
        for staff_id, name in (("wang", "王丽 Wang Li (admin)"), ("zhou", "周强 Zhou Qiang")):
            cards.append(
                {"label": f"staff {name}", "payload": _card("staff", village, staff_id, signer)}
            )
        prefix = passbook_prefix or device_id
        for n, household in enumerate(households, start=1):
            e = ledger.enrol(household, staff_id="wang", passbook_id=f"{prefix}-{n:04d}")
            assert e.passbook_id is not None
            cards.append(
                {
                    "label": f"villager {household} {e.passbook_id}",
                    "payload": _card("passbook", village, e.passbook_id, signer),
                }
            )
        for item_id, zh, en, price, stock in GOODS:
            ledger.put_item(item_id, name_zh=zh, name_en=en, points_price=price, staff_id="wang")
            ledger.restock(item_id, stock, staff_id="wang")
    (folder / "cards.json").write_text(json.dumps(cards, ensure_ascii=False, indent=1), "utf-8")
    config = folder / "kiosk.toml"
    lines = [
        "[kiosk]",
        'db = "kiosk.db"',
        'key_file = "device.key"',
        extra_kiosk_keys,
        "",
        "[ui]",
        'host = "127.0.0.1"',
        f"port = {ui_port}",
        "",
        "[hardware]",
        'backend = "sim"',
        "",
        "[hardware.scale]",
        f'protocol = "{scale_protocol}"',
        "",
        "[hardware.printer]",
        f"enabled = {'true' if printer else 'false'}",
        "",
        "[simulator]",
        'cards_file = "cards.json"',
        "",
    ]
    config.write_text("\n".join(lines) + "\n", "utf-8")
    if sync is not None:
        sync_file = folder / "sync.toml"
        write_sync_config(sync_file, sync)
        with config.open("a", encoding="utf-8") as f:
            f.write(sync_file.read_text(encoding="utf-8"))
        sync_file.unlink()
    return KioskHome(folder, config, device_id, village, cards)


def _card(kind: CardKind, village: str, holder: str, signer: Issuer) -> str:
    return make_card(kind, village, holder, key_id=signer.key_id, key=signer.key)
