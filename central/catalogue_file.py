"""A village catalogue as a file (`greenpass central catalogue set FILE.toml`), and the
pictures it names, made into thumbnails small enough to push to kiosks.

    [[item]]
    id = "rice"
    name_zh = "大米"
    name_en = "Rice 1 kg"
    points = 50              # the price, a whole number of points
    picture = "rice.jpg"     # optional: a PNG or JPEG, relative to this file
    active = true            # optional, default true

The file is the whole catalogue: an item of the village that it does not list is
made inactive (never deleted: kiosks' entries name it). Every error names the file,
the line and the key (`catalogue.toml:7, key 'item[2].points': …`), and nothing is
changed by a refused file.

Pictures travel in every state push (`down/state`, one MQTT message; the broker
allows 1 MiB), so each is shrunk here to at most `THUMB_PX`² pixels, re-encoded as
JPEG (which also drops anything a crafted file carried besides pixels), and must
come out under `MAX_PICTURE_BYTES`; a village's pictures together stay under
`MAX_PICTURES_BYTES` (`central.operations` checks the sum).
"""

from __future__ import annotations

import io
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from greenpass.errors import ConfigError
from greenpass.record.ids import ID_RE

THUMB_PX = 96
MAX_PICTURE_BYTES = 8 * 1024  # after re-encoding; a 96×96 JPEG is about 3 KiB
MAX_PICTURES_BYTES = 256 * 1024  # all pictures of one village, a quarter of a state
MAX_SOURCE_BYTES = 10 * 1024 * 1024  # the file an operator points at (a phone photo)
MAX_SOURCE_PIXELS = 40_000_000  # refuse a decompression bomb before decoding it
MAX_ITEMS = 500
MAX_NAME = 64
_ITEM_KEYS = {"id", "name_zh", "name_en", "points", "picture", "active"}


@dataclass(frozen=True)
class CatalogueItem:
    item_id: str
    name_zh: str
    name_en: str
    points: int  # the price of one unit
    active: bool = True
    picture: bytes | None = None  # a JPEG thumbnail; None: none (or keep, see operations)


def check_item(
    fields: dict[str, Any], where: str, fail: Any = None
) -> tuple[str, str, str, int, bool]:
    """Validate one item's fields (from a file or an API body); returns them typed.
    `fail(key, message)` makes the error; by default a ConfigError naming `where.key`."""

    def _fail(key: str, message: str) -> ConfigError:
        if fail is not None:
            return fail(key, message)  # type: ignore[no-any-return]
        return ConfigError(message, key=f"{where}.{key}")

    for key in fields:
        if key not in _ITEM_KEYS:
            raise _fail(key, f"unknown key (expected one of: {', '.join(sorted(_ITEM_KEYS))})")
    for key in ("id", "name_zh", "name_en", "points"):
        if key not in fields:
            raise _fail(key, "is required")
    item_id = fields["id"]
    if not isinstance(item_id, str) or not ID_RE.fullmatch(item_id):
        raise _fail(
            "id",
            "must be 1-64 letters, digits, '.', '_' or '-', starting with one of the first two",
        )
    names = []
    for key in ("name_zh", "name_en"):
        value = fields[key]
        if not isinstance(value, str) or not value.strip():
            raise _fail(key, "must be a non-empty string")
        value = value.strip()
        if len(value) > MAX_NAME or not value.isprintable():
            raise _fail(key, f"must be at most {MAX_NAME} printable characters")
        names.append(value)
    points = fields["points"]
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points < 2**31:
        raise _fail("points", f"must be a positive whole number of points, got {points!r}")
    active = fields.get("active", True)
    if not isinstance(active, bool):
        raise _fail("active", f"must be true or false, got {active!r}")
    return item_id, names[0], names[1], points, active


def parse_catalogue(
    text: str, path: str = "<catalogue>", base: Path | None = None
) -> list[CatalogueItem]:
    """The items of a catalogue file; pictures are read relative to `base`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            f"not valid TOML: {exc}", path=path, line=int(m.group(1)) if m else None
        ) from exc
    lines = text.splitlines()
    for key in data:
        if key != "item":
            raise ConfigError(
                "unknown key (a catalogue file holds only [[item]] tables)",
                path=path, key=key, line=_top_line(lines, key),
            )  # fmt: skip
    raw = data.get("item", [])
    if not isinstance(raw, list) or not all(isinstance(i, dict) for i in raw):
        raise ConfigError(
            "must be [[item]] tables", path=path, key="item", line=_top_line(lines, "item")
        )
    if len(raw) > MAX_ITEMS:
        raise ConfigError(f"at most {MAX_ITEMS} items", path=path, key="item")
    items: list[CatalogueItem] = []
    seen: set[str] = set()
    for n, fields in enumerate(raw, start=1):

        def fail(key: str, message: str, n: int = n) -> ConfigError:
            return ConfigError(
                message, path=path, key=f"item[{n}].{key}", line=_item_line(lines, n, key)
            )

        item_id, name_zh, name_en, points, active = check_item(fields, f"item[{n}]", fail)
        if item_id in seen:
            raise fail("id", f"item {item_id!r} is listed twice")
        seen.add(item_id)
        picture = None
        if "picture" in fields:
            rel = fields["picture"]
            if not isinstance(rel, str) or not rel:
                raise fail("picture", "must be the path of a PNG or JPEG file")
            try:
                picture = thumbnail((base or Path(".")) / rel)
            except ConfigError as exc:
                raise fail("picture", str(exc)) from exc
        items.append(CatalogueItem(item_id, name_zh, name_en, points, active, picture))
    return items


def thumbnail(source: Path | bytes) -> bytes:
    """A PNG or JPEG made into a JPEG of at most THUMB_PX × THUMB_PX pixels."""
    if isinstance(source, Path):
        try:
            if source.stat().st_size > MAX_SOURCE_BYTES:
                raise ConfigError(f"{source}: over {MAX_SOURCE_BYTES // 2**20} MiB")
            raw = source.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from exc
    else:
        raw = source
        if len(raw) > MAX_SOURCE_BYTES:
            raise ConfigError(f"a picture is at most {MAX_SOURCE_BYTES // 2**20} MiB")
    try:
        with Image.open(io.BytesIO(raw), formats=["PNG", "JPEG"]) as img:
            if img.width * img.height > MAX_SOURCE_PIXELS:
                raise ConfigError(f"{img.width}×{img.height} pixels is too large a picture")
            img.thumbnail((THUMB_PX, THUMB_PX))
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ConfigError(f"not a PNG or JPEG picture ({exc})") from exc
    for quality in (80, 60, 40):
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= MAX_PICTURE_BYTES:
            return out.getvalue()
    raise ConfigError(f"the picture stays over {MAX_PICTURE_BYTES} bytes as a thumbnail")


def _top_line(lines: list[str], key: str) -> int | None:
    for no, line in enumerate(lines, start=1):
        if re.match(rf"^\s*(\[\[?\s*)?\"?{re.escape(key)}\"?\s*(=|\]\]?)", line):
            return no
    return None


def _item_line(lines: list[str], n: int, key: str) -> int | None:
    """Line of `key` in the n-th `[[item]]` table (or of its header), by a plain scan."""
    seen, header = 0, None
    for no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if re.match(r"^\[\[\s*item\s*\]\]", line):
            seen += 1
            if seen == n:
                header = no
            elif seen > n:
                break
            continue
        if line.startswith("["):
            if seen >= n:
                break
            continue
        if seen == n and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
            return no
    return header
