"""The kiosk's config file: typed, every key documented, bad keys named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.kiosk.config import load_kiosk_config
from greenpass.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FULL = """
[kiosk]
db = "k.db"
language = "en"
idle_timeout_s = 30
settle_timeout_s = 8.5
result_s = 4
staff_timeout_s = 90
zero_band_grams = 20
key_file = "device.key"
statement_url = "https://central.county.example/"
statement_days = 400

[ui]
host = "0.0.0.0"
port = 8081
spoken_prompts = true

[hardware]
backend = "sim"

[hardware.scale]
protocol = "mtsics"
port = "/dev/ttyUSB0"
baud = 9600
capacity_grams = 60000
unit = "g"
span_ppm = 1020000

[hardware.scanner]
kind = "camera"
port = "/dev/ttyACM1"
baud = 115200
camera_index = 1
decoder = "pyzbar"

[hardware.gpio]
pin_factory = "mock"
green = 5
amber = 6
red = 13
buzzer = 19
buzzer_active_high = false
button = -1

[hardware.printer]
enabled = true
kind = "usb"
device = "0416:5011"
baud = 115200
width = 80
chinese = "image"
timeout_s = 5

[simulator]
cards_file = "cards.json"
network_proxy = false
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "kiosk.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_every_key_is_read_into_typed_objects(tmp_path: Path) -> None:
    cfg = load_kiosk_config(write(tmp_path, FULL))
    assert cfg.kiosk.db == tmp_path / "k.db"
    assert cfg.kiosk.language == "en"
    assert cfg.kiosk.idle_timeout_s == 30.0
    assert cfg.kiosk.settle_timeout_s == 8.5
    assert cfg.kiosk.key_file == tmp_path / "device.key"
    assert (cfg.ui.host, cfg.ui.port, cfg.ui.spoken_prompts) == ("0.0.0.0", 8081, True)
    assert cfg.hardware.backend == "sim"
    assert cfg.hardware.scale.protocol == "mtsics"
    assert cfg.hardware.scale.capacity_grams == 60000
    assert cfg.hardware.scale.span_ppm == 1_020_000
    assert cfg.hardware.scanner.kind == "camera"
    assert cfg.hardware.scanner.decoder == "pyzbar"
    assert cfg.hardware.pins.button is None
    assert cfg.hardware.pins.buzzer_active_high is False
    assert cfg.hardware.pin_factory == "mock"
    pr = cfg.hardware.printer
    assert (pr.enabled, pr.kind, pr.device, pr.baud) == (True, "usb", "0416:5011", 115200)
    assert (pr.width, pr.chinese, pr.timeout_s) == (80, "image", 5.0)
    # The link appends /s/<token>: a trailing slash is dropped.
    assert cfg.kiosk.statement_url == "https://central.county.example"
    assert cfg.kiosk.statement_days == 400
    assert cfg.simulator.network_proxy is False
    assert cfg.sync is None


def test_defaults_need_only_the_ledger(tmp_path: Path) -> None:
    cfg = load_kiosk_config(write(tmp_path, '[kiosk]\ndb = "/var/lib/gp/k.db"\n'))
    assert cfg.kiosk.language == "zh"
    assert cfg.kiosk.settle_timeout_s == 15.0
    assert cfg.hardware.backend == "real"
    assert cfg.hardware.scanner.kind == "serial"
    assert cfg.ui.port == 8080
    # No printer unless one is configured; no statement QR without central's address.
    assert cfg.hardware.printer.enabled is False
    assert cfg.hardware.printer.chinese == "gb18030"
    assert cfg.kiosk.statement_url == ""


@pytest.mark.parametrize(
    ("text", "key", "line", "says"),
    [
        ('[kiosk]\ndb = "k.db"\nlanguge = "en"\n', "kiosk.languge", 3, "unknown key"),
        (
            '[kiosk]\ndb = "k.db"\n[hardware.scale]\nprotocol = "acme"\n',
            "hardware.scale.protocol",
            4,
            "must be one of gpfw",
        ),
        ('[kiosk]\ndb = "k.db"\n[ui]\nport = "80"\n', "ui.port", 4, "must be int"),
        ('[kiosk]\ndb = "k.db"\n[ui]\nport = 70000\n', "ui.port", 4, "must be 0..65535"),
        ('[kiosk]\ndb = "k.db"\nresult_s = 0\n', "kiosk.result_s", 3, "must be positive"),
        (
            '[kiosk]\ndb = "k.db"\nsettle_timeout_s = -1\n',
            "kiosk.settle_timeout_s",
            3,
            "must be positive",
        ),
        ('[kiosk]\ndb = "k.db"\n[hardware.gpio]\ngreen = 40\n', "hardware.gpio.green", 4, "BCM"),
        (
            '[kiosk]\ndb = "k.db"\n[hardware.gpio]\nbuzzer = true\n',
            "hardware.gpio.buzzer",
            4,
            "must be int",
        ),
        ('[kiosk]\ndb = "k.db"\n[screen]\n', "screen", None, "unknown table"),
        ("[ui]\nport = 1\n", "kiosk", None, "no [kiosk] table"),
        ("[kiosk]\nlanguage = 'zh'\n", "kiosk.db", 1, "missing"),
        ('[kiosk]\ndb = "k.db"\n[sync]\nbroker_url = "mqtts://x"\n', "sync.", 3, ""),
        ("[kiosk\n", None, 1, "not valid TOML"),
        (
            '[kiosk]\ndb = "k.db"\n[hardware.printer]\nwidth = 76\n',
            "hardware.printer.width",
            4,
            "must be 58 or 80",
        ),
        (
            '[kiosk]\ndb = "k.db"\n[hardware.printer]\nkind = "lpt"\n',
            "hardware.printer.kind",
            4,
            "must be one of",
        ),
        (
            '[kiosk]\ndb = "k.db"\n[hardware.printer]\nchinese = "big5"\n',
            "hardware.printer.chinese",
            4,
            "must be one of",
        ),
        (
            '[kiosk]\ndb = "k.db"\n[hardware.printer]\npaper = 1\n',
            "hardware.printer.paper",
            4,
            "unknown key",
        ),
        (
            '[kiosk]\ndb = "k.db"\nstatement_url = "http://central.example"\n',
            "kiosk.statement_url",
            3,
            "central's public address",
        ),
    ],
)
def test_a_bad_config_names_the_key(
    tmp_path: Path, text: str, key: str | None, line: int | None, says: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_kiosk_config(path)
    if key is not None and key.endswith("."):  # some key of that table
        assert err.value.key is not None and err.value.key.startswith(key)
    else:
        assert err.value.key == key
    assert err.value.line == line and err.value.path == str(path)
    assert says in str(err.value)
    where = f"{path}:{line}" if line else str(path)
    assert str(err.value).startswith(where + (f", key '{err.value.key}'" if key else ""))


def test_every_config_key_is_documented() -> None:
    doc = (ROOT / "docs" / "kiosk.md").read_text(encoding="utf-8")
    keys = set(re.findall(r"^(\w+) = ", FULL, flags=re.M))
    missing = sorted(k for k in keys if f"| `{k}` |" not in doc)
    assert not missing, f"document these [kiosk] config keys in docs/kiosk.md: {missing}"
    tables = set(re.findall(r"^\[([\w.]+)\]", FULL, flags=re.M))
    assert all(f"[{t}]" in doc for t in tables)
