"""The operator's web console, served by central at ``/`` (`install`), with its
settings (`ConsoleSettings`, from ``HOME/console.toml``). docs/operator.md shows it."""

from central.console.routes import install
from central.console.settings import Alerts, ConsoleSettings, load_settings

__all__ = ["Alerts", "ConsoleSettings", "install", "load_settings"]
