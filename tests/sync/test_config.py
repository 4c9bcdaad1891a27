"""The kiosk's [sync] table: typed, every key documented, a bad key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenpass.errors import ConfigError
from sync.config import KEYS, SyncConfig, load_sync_config, write_sync_config

ROOT = Path(__file__).resolve().parents[2]
GOOD = f"""
[sync]
broker_url = "mqtts://127.0.0.1:8883"
password_file = "mqtt.password"
ca_cert = "/etc/greenpass/ca.crt"
key_file = "device.key"
central_public_key = "{"ab" * 32}"
window = 3
"""


def test_every_key_is_documented() -> None:
    doc = (ROOT / "docs" / "sync.md").read_text(encoding="utf-8")
    assert [k for k in KEYS if f"`{k}`" not in doc] == []


def test_load_resolves_relative_paths_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(GOOD)
    cfg = load_sync_config(path)
    assert cfg.password_file == tmp_path / "mqtt.password"
    assert cfg.ca_cert == Path("/etc/greenpass/ca.crt")
    assert (cfg.window, cfg.ack_timeout_s, cfg.central_public_key) == (3, 20.0, b"\xab" * 32)
    write_sync_config(tmp_path / "again.toml", cfg)
    assert load_sync_config(tmp_path / "again.toml") == cfg


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (("window = 3", "windo = 3"), "sync.windo", "unknown key"),
        (("window = 3", "window = 0"), "sync.window", "must be 1..8"),
        (("window = 3", 'window = "3"'), "sync.window", "must be int"),
        (('key_file = "device.key"', ""), "sync.key_file", "missing"),
        (("ab" * 32, "ab" * 31), "sync.central_public_key", "32 bytes"),
        (("[sync]", "[sink]"), "sync", "no [sync] table"),
        (("[sync]", "[sync"), None, "not valid TOML"),
        (("window = 3", 'mqtt_version = "3"'), "sync.mqtt_version", "must be one of"),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path, change: tuple[str, str], key: str | None, message: str
) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as err:
        load_sync_config(path)
    assert err.value.key == key and err.value.path == str(path)


def test_mqtt_version_defaults_to_5_and_is_written_only_when_not(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(GOOD)
    assert load_sync_config(path).mqtt_version == "5"
    write_sync_config(tmp_path / "again.toml", load_sync_config(path))
    assert "mqtt_version" not in (tmp_path / "again.toml").read_text()  # Mosquitto kiosks
    path.write_text(GOOD + 'mqtt_version = "3.1.1"\n')
    cfg = load_sync_config(path)
    assert cfg.mqtt_version == "3.1.1"
    write_sync_config(tmp_path / "again.toml", cfg)
    assert load_sync_config(tmp_path / "again.toml") == cfg


def test_missing_password_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = SyncConfig("mqtts://h:1", tmp_path / "nope", None, tmp_path / "k", b"\0" * 32)
    with pytest.raises(ConfigError, match="cannot read the MQTT password"):
        cfg.password()
