"""The console's settings: alert thresholds for the Fleet page and the time zone of
"today", read once at start from ``HOME/console.toml`` (every key optional):

    timezone = "Asia/Shanghai"    # where "today" and "this month" begin
    [alerts]
    offline_hours = 2             # a kiosk not heard from for longer is an alert
    backlog_hours = 24            # its oldest unsynced entry is older than this
    disk_free_mb = 500            # less free disk than this, in MB,
    disk_free_percent = 10        # or than this share of the disk

The disk alert fires when either is crossed. A kiosk that does not report its disk's
size (software from before ``disk_bytes``) is judged by MB alone. A scale or scanner
reported as ``error`` or ``disconnected`` is always an alert. A wrong key or value
stops central with an error naming it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from greenpass.errors import ConfigError

FILE_NAME = "console.toml"
ALERT_KEYS = ("offline_hours", "backlog_hours", "disk_free_mb", "disk_free_percent")


@dataclass(frozen=True)
class Alerts:
    offline_hours: float = 2.0
    backlog_hours: float = 24.0
    disk_free_mb: float = 500.0
    disk_free_percent: float = 10.0

    def __post_init__(self) -> None:
        for name in ALERT_KEYS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError("must be a positive number", key=f"alerts.{name}")
        if self.disk_free_percent >= 100:
            raise ConfigError("must be under 100", key="alerts.disk_free_percent")


@dataclass(frozen=True)
class ConsoleSettings:
    alerts: Alerts = field(default_factory=Alerts)
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {self.timezone!r}", key="timezone") from exc

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_settings(path: Path) -> ConsoleSettings:
    """`path`'s settings, or the defaults when it does not exist."""
    if not path.exists():
        return ConsoleSettings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=str(path)) from exc
    unknown = set(raw) - {"timezone", "alerts"}
    if unknown:
        raise ConfigError("unknown key", path=str(path), key=sorted(unknown)[0])
    alerts = raw.get("alerts", {})
    if not isinstance(alerts, dict):
        raise ConfigError("must be a table", path=str(path), key="alerts")
    unknown = set(alerts) - set(ALERT_KEYS)
    if unknown:
        raise ConfigError("unknown key", path=str(path), key=f"alerts.{sorted(unknown)[0]}")
    timezone = raw.get("timezone", "Asia/Shanghai")
    if not isinstance(timezone, str):
        raise ConfigError("must be a string", path=str(path), key="timezone")
    try:
        return ConsoleSettings(Alerts(**alerts), timezone)
    except ConfigError as exc:
        raise ConfigError(str(exc), path=str(path)) from exc
