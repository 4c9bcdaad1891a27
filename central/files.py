"""Files the broker reads while it runs (``passwd``, ``acl``, ``mosquitto.conf``, the
TLS files): written whole and with their final mode, or not at all.

The broker may re-read a file at any moment (SIGHUP): it must see the old file or
the new one, never half of one, and never a moment of wider mode.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to a sibling temp file with `mode`, fsync it, rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed what os.open asked for
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Mode 0600: keys and the password file."""
    write_atomic(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Mode 0644: certificates, the ACL and the broker's configuration."""
    write_atomic(path, data, 0o644)
