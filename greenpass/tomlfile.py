"""Reading TOML files: one reader for every file the project parses (the kiosk's config
and its `[sync]` table, village rules, the methodology), so a bad file is refused the
same way everywhere, with a `ConfigError` (or its subclass for that file) that names
the file, the line and the key: `path:12, key 'hardware.scale.baud': must be int, …`.

`TableReader` holds the file's text (to find a key's line) and reads typed values out
of its tables; `Table` is one table of it, read key by key, that refuses at `done()`
any key nobody read (a misspelt key must not be silently ignored).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Self, TypeVar

from greenpass.errors import ConfigError

T = TypeVar("T")
N = TypeVar("N", int, float)
REQUIRED: Any = object()  # `Table.get`'s default for a key that must be there


class TableReader:
    """Reads typed values out of the parsed TOML, naming key and line on any error.

    A file of its own kind raises its own subclass of ConfigError through `error`
    (the rules file: RulesError; the methodology: MethodologyError)."""

    error: type[ConfigError] = ConfigError

    def __init__(self, text: str, path: str | Path) -> None:
        self.text = text
        self.path = str(path)
        self.lines = text.splitlines()

    @classmethod
    def parse(cls, text: str, path: str | Path) -> tuple[Self, dict[str, Any]]:
        """A reader for `text` and its tables; invalid TOML is refused with its line."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise cls.error(
                f"not valid TOML: {exc}", path=str(path), line=int(m.group(1)) if m else None
            ) from exc
        return cls(text, path), data

    @classmethod
    def load(cls, path: Path) -> tuple[Self, dict[str, Any]]:
        """As `parse`, for the file at `path` (one that cannot be read is refused too)."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise cls.error(f"cannot read ({exc.strerror})", path=str(path)) from exc
        except UnicodeDecodeError as exc:
            raise cls.error(f"not UTF-8 text ({exc.reason})", path=str(path)) from exc
        return cls.parse(text, path)

    def at(self, data: Any, table: str) -> Table:
        """`data`, the table named `table` (dotted), to be read key by key."""
        if not isinstance(data, dict):
            raise self.fail(table, None, "must be a table")
        return Table(self, data, table)

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
        return self.typed(data, table, key, kind)

    def typed(self, data: dict[str, Any], table: str, key: str, kind: type) -> Any:
        """`data[key]` if it is a `kind` (an integer is also a float; a bool is neither
        an int nor a float)."""
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
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


class Table:
    """One table of a file being read (`TableReader.at`). Every read names `table.key`
    in its error; `done` refuses the keys nobody read."""

    def __init__(self, reader: TableReader, data: dict[str, Any], name: str) -> None:
        self.reader = reader
        self.data = data
        self.name = name
        self.used: set[str] = set()

    @property
    def folder(self) -> Path:
        """The folder of the file: relative paths in it are relative to that."""
        return Path(self.reader.path).parent

    def fail(self, key: str | None, message: str) -> ConfigError:
        return self.reader.fail(self.name, key, message)

    def get(self, key: str, kind: type[T], default: T = REQUIRED) -> T:
        """The value of `key`, a `kind`; `default` when it is absent, refused if there is
        no default."""
        self.used.add(key)
        if key not in self.data:
            if default is REQUIRED:
                raise self.fail(key, "missing")
            return default
        value: T = self.reader.typed(self.data, self.name, key, kind)
        return value

    def maybe(self, key: str, kind: type[T]) -> T | None:
        """The value of `key`, a `kind`, or None when it is absent."""
        self.used.add(key)
        if key not in self.data:
            return None
        value: T = self.reader.typed(self.data, self.name, key, kind)
        return value

    def choice(self, key: str, options: Sequence[str], default: str = REQUIRED) -> str:
        value = self.get(key, str, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def positive(self, key: str, kind: type[N], default: N = REQUIRED) -> N:
        value = self.get(key, kind, default)
        if value <= 0:
            raise self.fail(key, f"must be positive, got {value}")
        return value

    def path(self, key: str) -> Path | None:
        """A path, relative to the file's folder unless absolute; None when absent."""
        raw = self.maybe(key, str)
        if raw is None:
            return None
        p = Path(raw)
        return p if p.is_absolute() else self.folder / p

    def sub(self, name: str) -> Table:
        """The subtable `name` (empty when absent)."""
        self.used.add(name)
        return self.reader.at(self.data.get(name, {}), f"{self.name}.{name}")

    def done(self) -> None:
        """Refuse any key of the table that was not read."""
        for key in self.data:
            if key not in self.used:
                known = ", ".join(sorted(self.used))
                raise self.fail(key, f"unknown key (expected one of: {known})")
