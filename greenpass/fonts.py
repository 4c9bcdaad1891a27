"""The Noto Sans CJK SC font, found on this machine: card sheets, certificates and receipts
printed as images draw Chinese with it (Debian's fonts-noto-cjk; scripts/bootstrap installs it)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTCollection, TTLibError  # type: ignore[import-untyped]

from greenpass.errors import ConfigError

CJK_FAMILY = "Noto Sans CJK SC"
# Where Debian's fonts-noto-cjk puts them, when fontconfig's fc-match is not installed.
DEBIAN_FONT_FILES = {
    "": Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    "B": Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
}


@dataclass(frozen=True)
class FontFace:
    path: Path
    index: int  # the face within a TrueType/OpenType collection


def _fc_match(pattern: str) -> Path | None:
    exe = shutil.which("fc-match")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-f", "%{file}\t%{family}", pattern],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    file, _, family = out.partition("\t")
    return Path(file) if CJK_FAMILY in family.split(",") else None


def _face_index(path: Path) -> int | None:
    """Which face of a collection (.ttc) is Noto Sans CJK SC; 0 for a single font."""
    if path.suffix.lower() not in (".ttc", ".otc"):
        return 0
    try:
        with TTCollection(str(path), lazy=True) as collection:
            for i, font in enumerate(collection.fonts):
                if font["name"].getBestFamilyName() == CJK_FAMILY:
                    return i
    except (OSError, TTLibError):
        return None
    return None


def find_cjk_fonts() -> dict[str, FontFace]:
    """The regular ("") and bold ("B") faces of Noto Sans CJK SC (bold falls back to regular)."""
    faces: dict[str, FontFace] = {}
    for style, pattern in (("", f"{CJK_FAMILY}:style=Regular"), ("B", f"{CJK_FAMILY}:style=Bold")):
        for path in (_fc_match(pattern), DEBIAN_FONT_FILES[style]):
            if path is not None and path.is_file():
                index = _face_index(path)
                if index is not None:
                    faces[style] = FontFace(path, index)
                    break
    if "" not in faces:
        raise ConfigError(
            f"no {CJK_FAMILY} font found: install the Debian package fonts-noto-cjk "
            "(scripts/bootstrap does)"
        )
    faces.setdefault("B", faces[""])
    return faces
