"""Whether the kiosk's ledger sits on an encrypted disk (`greenpass doctor`'s check).

The kiosk's database holds the village's household names (its personal table, see
docs/privacy.md). A kiosk stolen from a shed gives them away unless the disk is
encrypted. Linux's disk encryption is dm-crypt (LUKS): a device-mapper device whose
`dm/uuid` in sysfs starts with ``CRYPT-``, possibly under LVM (then one of its
`slaves` is). The ledger's filesystem is found from the file's device number
(``/sys/dev/block/MAJOR:MINOR``) or, for filesystems with an anonymous device number
(btrfs, overlay), from the mount table's source device.

The roots are parameters so the tests can lay out a sysfs and a mount table of
their own; the doctor uses the real ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DOC = "docs/privacy.md#encrypting-a-kiosks-data-disk"


@dataclass(frozen=True)
class Encryption:
    state: str  # "encrypted", "plain" or "unknown"
    detail: str


def _crypt_uuid(block: Path, seen: int = 0) -> str | None:
    """The dm-crypt uuid of `block` (a /sys/class/block/X directory) or of a device under it."""
    if seen > 8:  # device stacks are shallow; a loop in sysfs would be a kernel bug
        return None
    try:
        uuid = (block / "dm" / "uuid").read_text(encoding="ascii").strip()
    except OSError:
        uuid = ""
    # dm-verity and dm-integrity are device-mapper "CRYPT-" targets too, but they only
    # check blocks; they do not hide them.
    if uuid.startswith("CRYPT-") and not uuid.startswith(("CRYPT-VERITY", "CRYPT-INTEGRITY")):
        return uuid
    slaves = block / "slaves"
    if slaves.is_dir():
        for below in sorted(slaves.iterdir()):
            found = _crypt_uuid(below.resolve(), seen + 1)
            if found:
                return found
    return None


def _mount_of(path: Path, mountinfo: Path) -> tuple[str, str] | None:
    """(fs type, source) of the mount `path` is on: the longest mount point above it."""
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best: tuple[int, str, str] | None = None
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, tail = left.split(), right.split()
        if len(parts) < 5 or len(tail) < 2:
            continue
        point = parts[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), tail[0], tail[1])
    return None if best is None else (best[1], best[2])


def encryption_of(
    path: Path, *, sys_root: Path = Path("/sys"), mountinfo: Path = Path("/proc/self/mountinfo")
) -> Encryption:
    """Is the filesystem holding `path` on a dm-crypt device?"""
    st = path.stat()
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    block = sys_root / "dev" / "block" / f"{major}:{minor}"
    mount = _mount_of(path, mountinfo)
    if not block.exists() and mount is not None and mount[1].startswith("/dev/"):
        # An anonymous device number (btrfs, overlay): the mount's source names it.
        name = Path(os.path.realpath(mount[1])).name
        block = sys_root / "class" / "block" / name
    if block.exists():
        uuid = _crypt_uuid(block.resolve())
        if uuid:
            kind = uuid.split("-")[1] if uuid.count("-") >= 2 else "dm-crypt"
            return Encryption("encrypted", f"on a {kind} encrypted device ({block.resolve().name})")
        return Encryption("plain", f"on {block.resolve().name}, which is not encrypted")
    fstype = mount[0] if mount else "unknown"
    if fstype == "tmpfs":
        return Encryption("plain", "in memory (tmpfs): not on a disk, lost at power-off")
    return Encryption("unknown", f"on a {fstype} filesystem whose device cannot be told")
