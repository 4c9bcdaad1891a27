"""Reading a TOML config file, with the one error every config loader gives."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from greenpass.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables; `ConfigError` naming the file when it is missing or not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


class TableReader:
    """Reads typed values out of the parsed TOML, naming key and line on any error.

    The rules file and the methodology file use it, each raising its own subclass of
    ConfigError through `error`."""

    error: type[ConfigError] = ConfigError

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: str, key: str | None) -> int | None:
        """Line number of `key` in `[table]` (or of the table header), by a plain scan."""
        current = ""
        header_line = None
        for no, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            m = re.match(r"^\[\s*([^\]]+?)\s*\]\s*(#.*)?$", line)
            if m:
                current = m.group(1).replace('"', "").replace(" ", "")
                if current == table:
                    header_line = no
                continue
            if (
                key is not None
                and current == table
                and re.match(rf'^"?{re.escape(key)}"?\s*=', line)
            ):
                return no
        return header_line

    def fail(self, table: str, key: str | None, message: str) -> ConfigError:
        dotted = ".".join(p for p in (table, key) if p)
        return self.error(
            message, path=self.path, key=dotted or None, line=self.line_of(table, key)
        )

    def table(self, data: dict[str, Any], table: str, allowed: set[str]) -> dict[str, Any]:
        for key in data:
            if key not in allowed:
                raise self.fail(
                    table, key, f"unknown key (expected one of: {', '.join(sorted(allowed))})"
                )
        return data

    def get(
        self, data: dict[str, Any], table: str, key: str, kind: type, default: Any = None
    ) -> Any:
        if key not in data:
            if default is None:
                raise self.fail(table, None, f"missing required key '{key}'")
            return default
        value = data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise self.fail(table, key, f"must be {kind.__name__}, got {value!r}")
        return value

    def count(
        self,
        data: dict[str, Any],
        table: str,
        key: str,
        *,
        minimum: int = 0,
        default: int | None = None,
    ) -> int:
        value: int = self.get(data, table, key, int, default)
        if value < minimum:
            raise self.fail(table, key, f"must be at least {minimum}, got {value}")
        return value

    def milli(self, data: dict[str, Any], table: str, key: str) -> int:
        """A number with at most three decimals, returned ×1000 as an exact integer."""
        value = data.get(key)
        if key not in data:
            raise self.fail(table, None, f"missing required key '{key}'")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(table, key, f"must be a number, got {value!r}")
        try:
            scaled = Decimal(str(value)) * 1000
        except InvalidOperation as exc:  # nan / inf
            raise self.fail(table, key, f"must be a finite number, got {value!r}") from exc
        if scaled != scaled.to_integral_value() or scaled < 0:
            raise self.fail(table, key, f"must be ≥ 0 with at most 3 decimals, got {value!r}")
        return int(scaled)
