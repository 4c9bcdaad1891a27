"""Files written whole and with their final mode, or not at all: keys, passwords,
tokens, card sheets, statements, the broker's files, the kiosk's config.

A reader (the broker re-reading its password file on SIGHUP, a kiosk starting) sees
the old file or the new one, never half of one; a power cut right after the call
leaves the new one; and a private file is never readable by others, not even for a
moment: the temporary file is created with its mode (`O_CREAT | O_EXCL`), set again
on the open descriptor before the first byte (the umask only narrows what `os.open`
asks for), written, fsynced, renamed over `path`, and the folder fsynced so the
rename is on disk too. On any failure the temporary file is removed.
`create_private` does the same but never replaces a file that is already there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

PRIVATE = 0o600  # keys, passwords, tokens, anything naming households
PUBLIC = 0o644  # certificates, configuration


def write_private(path: Path, data: bytes, mode: int = PRIVATE) -> None:
    """Write `data` to `path` atomically with `mode` (0600 unless told) from the start."""
    _publish(path, data, mode, os.replace)


def create_private(path: Path, data: bytes, mode: int = PRIVATE) -> bool:
    """As `write_private`, but only if `path` does not exist yet: the first writer wins
    (two central processes starting at once make one secret, not one each). True if
    this call made it."""
    try:
        _publish(path, data, mode, os.link)  # link(2) never replaces an existing file
    except FileExistsError:
        return False
    return True


def _publish(path: Path, data: bytes, mode: int, put: Callable[[Path, Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        put(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # renamed away already, or a link beside the new file
    _fsync_folder(path.parent)


def write_public(path: Path, data: bytes) -> None:
    """Mode 0644: certificates, the ACL, the broker's and the kiosk's configuration."""
    write_private(path, data, PUBLIC)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
