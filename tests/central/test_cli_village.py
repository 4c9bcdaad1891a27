"""`greenpass central village|rules|catalogue|passbook|audit` through a real process, on
SQLite and PostgreSQL (the commands' words and refusals on SQLite alone: their queries
are tested on both in test_operations.py); and a revocation and a catalogue change made
with them reaching a kiosk's ledger through a real Mosquitto and a real state push."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from central.store import CentralStore
from devkit.mqtt_broker import Broker
from greenpass.record.rules import DEFAULT_RULES_PATH
from tests.central.conftest import SQLITE_ONLY
from tests.sync.conftest import BROKER_USERS
from tests.sync.harness import World, wait_for

# SQLite only: the CLI's words; tests/central/test_operations.py runs its queries on
# both.
pytestmark = SQLITE_ONLY

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, db: str, home: Path) -> None:
        self.db, self.home = db, home

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "greenpass", "central", *args, "--db", self.db,
             "--home", str(self.home)],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        if ok:
            assert r.returncode == 0, f"{args}:\n{r.stdout}\n{r.stderr}"
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def gp(central_url: str, tmp_path: Path) -> Cli:
    return Cli(central_url, tmp_path / "home")


def _rules(tmp_path: Path, version: str, edit: tuple[str, str] = ("", "")) -> Path:
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    text = text.replace('version = "cn-default-2026.11"', f'version = "{version}"', 1)
    if edit[0]:
        text = text.replace(edit[0], edit[1], 1)
    path = tmp_path / f"{version}-{len(edit[1])}.toml"
    path.write_text(text, encoding="utf-8")
    return path


CATALOGUE = """\
[[item]]
id = "rice"
name_zh = "大米"
name_en = "Rice 1 kg"
points = 50
picture = "rice.jpg"

[[item]]
id = "soap"
name_zh = "肥皂"
name_en = "<script>alert(1)</script>"
points = 20
"""


def test_villages(gp: Cli) -> None:
    out = gp("village", "add", "dongcun", "--name-zh", "东村", "--name-en", "East village")
    assert out.stdout.strip() == "village dongcun created"
    gp("village", "add", "xicun", "--name-zh", "西村", "--name-en", "West", "--timezone", "UTC")
    again = gp("village", "add", "xicun", "--name-zh", "西村", "--name-en", "West", "--timezone",
               "UTC")  # fmt: skip
    assert "unchanged" in again.stdout
    listed = gp.json("village", "list")
    assert listed == [
        {"village_id": "dongcun", "name_zh": "东村", "name_en": "East village",
         "timezone": "Asia/Shanghai", "devices": 0, "rules_version": None, "catalogue_version": 0},
        {"village_id": "xicun", "name_zh": "西村", "name_en": "West", "timezone": "UTC",
         "devices": 0, "rules_version": None, "catalogue_version": 0},
    ]  # fmt: skip
    assert "东村" in gp("village", "list").stdout
    bad = gp("village", "add", "x1", "--name-zh", "x", "--name-en", "x", "--timezone", "Nowhere",
             ok=False)  # fmt: skip
    assert bad.returncode == 2 and "unknown time zone 'Nowhere'" in bad.stderr
    assert len(gp.json("village", "list")) == 2
    audit = gp.json("audit")
    assert [r["action"] for r in audit] == ["village.add", "village.add"]
    assert audit[0]["actor"].startswith("cli:")


def test_rules_set_show_and_refusals(gp: Cli, tmp_path: Path) -> None:
    gp("village", "add", "dongcun", "--name-zh", "东村", "--name-en", "East")
    shown = gp.json("rules", "show", "--village", "dongcun")
    assert shown["version"] is None
    good = _rules(tmp_path, "dongcun-1")
    out = gp("rules", "set", "--village", "dongcun", str(good))
    assert "rules dongcun-1 now in force for dongcun" in out.stdout
    assert "already in force" in gp("rules", "set", "--village", "dongcun", str(good)).stdout

    malformed = _rules(tmp_path, "dongcun-2", ("min_grams = 200", 'min_grams = "lots"'))
    r = gp("rules", "set", "--village", "dongcun", str(malformed), ok=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        f"{malformed}:" in r.stderr and "key 'categories." in r.stderr and ".min_grams'" in r.stderr
    )
    reused = _rules(tmp_path, "dongcun-1", ("cooldown_seconds = 20", "cooldown_seconds = 30"))
    r = gp("rules", "set", "--village", "dongcun", str(reused), ok=False)
    assert r.returncode == 2 and "different text" in r.stderr
    shown = gp.json("rules", "show", "--village", "dongcun")
    assert shown["version"] == "dongcun-1" and shown["versions"] == ["dongcun-1"]
    assert shown["text"] == good.read_text(encoding="utf-8")
    assert "# rules dongcun-1 for dongcun" in gp("rules", "show", "--village", "dongcun").stdout
    actions = [r["action"] for r in gp.json("audit", "--village", "dongcun")]
    assert actions == ["rules.set", "village.add"]  # nothing from the refused files


def test_catalogue_set_show_conflict_and_script_text(gp: Cli, tmp_path: Path) -> None:
    gp("village", "add", "dongcun", "--name-zh", "东村", "--name-en", "East")
    Image.new("RGB", (640, 480), (200, 180, 40)).save(tmp_path / "rice.jpg")
    cat = tmp_path / "catalogue.toml"
    cat.write_text(CATALOGUE, encoding="utf-8")
    out = gp("catalogue", "set", "--village", "dongcun", str(cat), "--if-version", "0")
    assert "now version 1: 2 active items of 2" in out.stdout
    shown = gp.json("catalogue", "show", "--village", "dongcun")
    assert shown["version"] == 1
    items = {i["id"]: i for i in shown["items"]}
    assert items["soap"]["name_en"] == "<script>alert(1)</script>"
    assert items["rice"]["points"] == 50 and items["rice"]["picture_jpeg_base64"]
    assert items["soap"]["picture_jpeg_base64"] is None

    stale = gp("catalogue", "set", "--village", "dongcun", str(cat), "--if-version", "0", ok=False)
    assert stale.returncode == 2 and "changed meanwhile" in stale.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(CATALOGUE.replace("points = 20", "points = -3"), encoding="utf-8")
    r = gp("catalogue", "set", "--village", "dongcun", str(bad), ok=False)
    assert r.returncode == 2 and f"{bad}:12, key 'item[2].points'" in r.stderr
    assert gp.json("catalogue", "show", "--village", "dongcun") == shown  # nothing changed
    text = gp("catalogue", "show", "--village", "dongcun").stdout
    assert "<script>alert(1)</script>" in text and "version 1" in text
    rows = gp.json("audit", "--village", "dongcun")
    assert [r["action"] for r in rows][:1] == ["catalogue.set"]


def test_passbook_commands_refuse_unknown_ones(gp: Cli) -> None:
    for args in (("revoke", "P9", "--reason", "lost"), ("reinstate", "P9"), ("replace", "P9")):
        r = gp("passbook", *args, ok=False)
        assert r.returncode == 2 and "no passbook 'P9'" in r.stderr


# --- through a real broker ----------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto with the production config (skipped where it is missing)."""
    with Broker(tmp_path / "broker", BROKER_USERS) as running:
        yield running


@pytest.fixture
def world(tmp_path: Path, mosquitto: Broker, central_url: str) -> Iterator[World]:
    w = World(tmp_path, mosquitto, central_url)
    yield w
    w.close()


def test_revocation_replacement_and_catalogue_reach_a_kiosk(world: World, tmp_path: Path) -> None:
    gp = Cli(world.db_url, tmp_path / "home")
    world.start_central()
    k = world.kiosk("K1")
    k.start(world)
    li = k.ledger.enrol("Li household", staff_id="S1").passbook_id
    wang = k.ledger.enrol("Wang household", staff_id="S1").passbook_id
    assert li and wang
    k.ledger.award(wang, 40, staff_id="S1", reason="clean-up")
    wait_for("enrolments at central", k.synced)

    out = gp("passbook", "revoke", li, "--reason", "card stolen")
    assert "revoked" in out.stdout

    def status(pid: str) -> str | None:
        v = k.ledger.villager(pid)
        return None if v is None else v.status

    wait_for("the revocation at the kiosk", lambda: status(li) == "revoked")
    gp("passbook", "reinstate", li)
    wait_for("the reinstatement at the kiosk", lambda: status(li) == "active")

    card = tmp_path / "new-card.csv"
    replaced = gp.json("passbook", "replace", wang, "--csv", str(card))
    new = replaced["new_passbook_id"]
    assert replaced["balance"] == 40
    assert card.read_text(encoding="utf-8").splitlines() == [
        "passbook_id,household_name",
        f"{new},Wang household",
    ]
    wait_for("the new passbook at the kiosk", lambda: status(new) == "active")
    assert status(wang) == "revoked" and k.ledger.balance(new) == 40

    cat = tmp_path / "catalogue.toml"
    cat.write_text(CATALOGUE.replace('picture = "rice.jpg"\n', ""), encoding="utf-8")
    gp("catalogue", "set", "--village", world.village, str(cat))
    wait_for("the catalogue at the kiosk", lambda: k.ledger.item("soap") is not None, timeout=15)
    soap = k.ledger.item("soap")
    assert soap is not None and soap.name_en == "<script>alert(1)</script>"
    # The kiosk's own enrolment rows (device.*) are not what this is about.
    actions = [r["action"] for r in gp.json("audit") if not r["action"].startswith("device.")]
    assert actions == ["catalogue.set", "passbook.replace", "passbook.reinstate", "passbook.revoke"]
    with CentralStore.open(world.db_url) as store:
        assert store.count_entries() == k.ledger.head()[0]
