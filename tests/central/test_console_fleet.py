"""The Fleet page's disk alert and its settings: free disk in MB or as a percent of the
kiosk's disk, whichever is crossed first; a kiosk that does not report its disk's size
judged by MB alone; the thresholds read from ``console.toml`` and refused by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.console.fleet import kiosk_rows
from central.console.settings import Alerts, ConsoleSettings, load_settings
from central.store import CentralStore
from greenpass.errors import ConfigError
from sync import protocol
from sync.keys import generate_key, public_bytes
from tests.central import test_auth
from tests.central.conftest import NOW, SQLITE_ONLY
from tests.central.test_auth import Site

# SQLite only: the Fleet pages' layout and scoping; tests/bench/test_console_bench.py
# runs their queries on both.
pytestmark = SQLITE_ONLY

site = test_auth.site  # the fixture: a kiosk's day at V1 (K1), county, v1 and v2 accounts

GB = 1_000_000_000


def _enrol_k9(store: CentralStore) -> None:
    token = store.create_enrol_token("K9", "V1", NOW, actor="test")
    store.enrol(token, "K9", public_bytes(generate_key()), NOW)


def _report(store: CentralStore, device_id: str, free: int | None, total: int | None) -> None:
    status = protocol.Status(
        device_id=device_id, online=True, ts_ms=NOW, version="0.1.0",
        free_disk_bytes=free, disk_bytes=total, scale="ok", scanner="ok",
    )  # fmt: skip
    topic = protocol.topic(device_id, protocol.STATUS)
    assert store.record_status(topic, protocol.encode_status(status), NOW)


@pytest.mark.parametrize(
    ("free", "total", "alert", "shown"),
    [
        (8 * GB, 16 * GB, False, (8_000, 50)),
        (1 * GB, 16 * GB, True, (1_000, 6)),  # 6 %: under 10 % though over 500 MB
        (400_000_000, 1 * GB, True, (400, 40)),  # 400 MB: under 500 MB though 40 % free
        (1_599_999_999, 16 * GB, True, (1_599, 9)),  # 9.99 %: rounded down, never "10 %"
        (1 * GB, None, False, (1_000, None)),  # no size reported: MB alone
        (400_000_000, None, True, (400, None)),
        (1 * GB, 0, False, (1_000, None)),  # a size of 0 is no size
        (None, None, False, (None, None)),  # no free space reported: no disk alert
    ],
)
def test_the_disk_alert_is_mb_or_percent(
    store: CentralStore,
    free: int | None,
    total: int | None,
    alert: bool,
    shown: tuple[int | None, int | None],
) -> None:
    _enrol_k9(store)
    _report(store, "K9", free, total)
    (row,) = kiosk_rows(store, "V1", Alerts(), NOW)
    assert ("disk" in row.alerts) == alert
    assert (row.free_mb, row.free_percent) == shown


def test_the_thresholds_are_the_operators(store: CentralStore) -> None:
    _enrol_k9(store)
    _report(store, "K9", 8 * GB, 16 * GB)  # 8,000 MB, 50 %
    (row,) = kiosk_rows(store, "V1", Alerts(disk_free_mb=500, disk_free_percent=10), NOW)
    assert row.alerts == ()
    (row,) = kiosk_rows(store, "V1", Alerts(disk_free_percent=60), NOW)
    assert row.alerts == ("disk",)
    (row,) = kiosk_rows(store, "V1", Alerts(disk_free_mb=9_000), NOW)
    assert row.alerts == ("disk",)


def test_the_fleet_page_shows_mb_and_percent(site: Site) -> None:
    _report(site.store, "K1", 1_234_567_890, 10 * GB)
    c = site.login("county")
    html = c.get("/fleet").text
    assert "1,234 MB (12 %)" in html and 'data-sort="1234567890"' in html
    assert "磁盘不足" not in html.split("<tbody>")[1]  # 12 % and 1,234 MB: no alert
    assert "剩余磁盘少于 500 MB 或 10 %" in html
    _report(site.store, "K1", 1_234_567_890, None)  # software too old to send its size
    html = c.get("/fleet").text
    assert "1,234 MB</td>" in html and "(12 %)" not in html
    _report(site.store, "K1", 234_567_890, 10 * GB)
    c.post("/lang", data={"lang": "en", "next": "/fleet", "csrf": site.csrf("/fleet")})
    html = c.get("/fleet").text
    assert "234 MB (2 %)" in html and "disk low" in html
    assert "free disk under 500 MB or 10 %." in html


def test_settings_read_the_percent(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    assert load_settings(path) == ConsoleSettings()
    assert ConsoleSettings().alerts.disk_free_percent == 10
    path.write_text("[alerts]\ndisk_free_mb = 200\ndisk_free_percent = 5.5\n")
    alerts = load_settings(path).alerts
    assert (alerts.disk_free_mb, alerts.disk_free_percent) == (200, 5.5)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("disk_free_percent = 0", "alerts.disk_free_percent"),
        ("disk_free_percent = 100", "alerts.disk_free_percent"),
        ("disk_free_percent = true", "alerts.disk_free_percent"),
        ('disk_free_percent = "10"', "alerts.disk_free_percent"),
        ("disk_free_mb = -1", "alerts.disk_free_mb"),
        ("disk_percent = 10", "alerts.disk_percent"),
    ],
)
def test_a_bad_alert_setting_names_its_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "console.toml"
    path.write_text(f"[alerts]\n{text}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert key in str(caught.value) and "console.toml" in str(caught.value)


def test_a_log_fault_is_an_alert_naming_the_device_and_seq(site: Site) -> None:
    """A kiosk whose check of central's log failed (sync.log_check) says so in its
    status; the Fleet page raises it with the code and the kiosk's seq."""
    fault = protocol.LogFault(
        code="log_entry_changed", seq=3, size=40, since_ms=NOW,
        message="K1: central's log of size 40 does not hold entry K1:3 as this kiosk has it",
    )  # fmt: skip
    status = protocol.Status(
        device_id="K1", online=True, ts_ms=NOW, free_disk_bytes=8 * GB, disk_bytes=16 * GB,
        scale="ok", scanner="ok", log_size=32, log_seq=2, log_fault=fault,
    )  # fmt: skip
    topic = protocol.topic("K1", protocol.STATUS)
    assert site.store.record_status(topic, protocol.encode_status(status), NOW)
    (row,) = kiosk_rows(site.store, "V1", Alerts(), NOW)
    assert row.alerts == ("log",)
    health = row.device.health
    assert health is not None and health.log_fault is not None
    assert (health.log_size, health.log_seq, health.log_fault.seq) == (32, 2, 3)
    c = site.login("county")
    html = c.get("/fleet").text
    assert "中心账本核对失败" in html and "log_entry_changed · K1:3" in html
    assert "does not hold entry K1:3" in html  # the kiosk's message, on hover
    # A fault about the checkpoint itself names its size.
    about = protocol.LogFault(code="log_not_extended", size=41, message="K1: forked")
    status = protocol.Status(device_id="K1", online=True, ts_ms=NOW, log_fault=about)
    assert site.store.record_status(topic, protocol.encode_status(status), NOW)
    c.post("/lang", data={"lang": "en", "next": "/fleet", "csrf": site.csrf("/fleet")})
    html = c.get("/fleet").text
    assert "central&#39;s log failed its check" in html
    assert "log_not_extended · checkpoint 41" in html


def test_a_kiosk_whose_clock_is_not_synchronised_is_an_alert(site: Site) -> None:
    """The kiosk tells staff, not villagers, and central's Fleet page tells technicians."""
    topic = protocol.topic("K1", protocol.STATUS)
    for clock_ok, expected in ((False, ("clock",)), (True, ()), (None, ())):
        status = protocol.Status(
            device_id="K1", online=True, ts_ms=NOW, free_disk_bytes=8 * GB, disk_bytes=16 * GB,
            scale="ok", scanner="ok", clock_ok=clock_ok,
        )  # fmt: skip
        assert site.store.record_status(topic, protocol.encode_status(status), NOW)
        (row,) = kiosk_rows(site.store, "V1", Alerts(), NOW)
        assert row.alerts == expected, clock_ok
        assert row.device.health is not None and row.device.health.clock_ok is clock_ok
        if clock_ok is False:
            assert "时钟未同步" in site.login("county").get("/fleet").text


@pytest.mark.parametrize(
    ("printer", "alert"),
    [("paper_out", True), ("jammed", True), ("offline", True), ("ok", False), ("off", False),
     ("paper_low", False), (None, False)],
)  # fmt: skip
def test_a_receipt_printer_fault_is_an_alert(site: Site, printer: str | None, alert: bool) -> None:
    status = protocol.Status(
        device_id="K1", online=True, ts_ms=NOW, free_disk_bytes=8 * GB, disk_bytes=16 * GB,
        scale="ok", scanner="ok", printer=printer,
    )  # fmt: skip
    assert site.store.record_status(protocol.topic("K1", protocol.STATUS),
                                    protocol.encode_status(status), NOW)  # fmt: skip
    (row,) = kiosk_rows(site.store, "V1", Alerts(), NOW)
    assert row.alerts == (("printer",) if alert else ())
    assert row.device.health is not None and row.device.health.printer == printer
