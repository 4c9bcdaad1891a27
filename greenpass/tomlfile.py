"""Reading a TOML config file, with the one error every config loader gives."""

from __future__ import annotations

import tomllib
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
