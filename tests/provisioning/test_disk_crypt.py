"""The doctor's disk-encryption check on laid-out sysfs trees and mount tables: LUKS,
LVM on LUKS, a plain partition, a btrfs/overlay-style anonymous device found through
the mount table, tmpfs, and a filesystem whose device cannot be told."""

from __future__ import annotations

import os
from pathlib import Path

from provisioning.disk_crypt import encryption_of


def ledger_folder(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "data"
    folder.mkdir()
    st = folder.stat()
    return folder, f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def block(sys_root: Path, name: str, uuid: str | None = None, slaves: tuple[str, ...] = ()) -> Path:
    d = sys_root / "devices" / "virtual" / "block" / name
    d.mkdir(parents=True)
    if uuid is not None:
        (d / "dm").mkdir()
        (d / "dm" / "uuid").write_text(uuid + "\n")
    (d / "slaves").mkdir()
    for s in slaves:
        (d / "slaves" / s).symlink_to(sys_root / "devices" / "virtual" / "block" / s)
    (sys_root / "class" / "block").mkdir(parents=True, exist_ok=True)
    (sys_root / "class" / "block" / name).symlink_to(d)
    return d


def by_number(sys_root: Path, number: str, target: Path) -> None:
    (sys_root / "dev" / "block").mkdir(parents=True, exist_ok=True)
    (sys_root / "dev" / "block" / number).symlink_to(target)


def mounts(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_luks_and_lvm_on_luks_are_encrypted(tmp_path: Path) -> None:
    folder, number = ledger_folder(tmp_path)
    sys_root = tmp_path / "sys"
    block(sys_root, "mmcblk0p3")
    crypt = block(sys_root, "dm-0", "CRYPT-LUKS2-0123456789abcdef-gpdata", ("mmcblk0p3",))
    by_number(sys_root, number, crypt)
    found = encryption_of(folder, sys_root=sys_root, mountinfo=mounts(tmp_path))
    assert found.state == "encrypted" and "LUKS2" in found.detail

    sys_root = tmp_path / "sys2"
    block(sys_root, "dm-0", "CRYPT-LUKS2-0123456789abcdef-pv")
    lvm = block(sys_root, "dm-1", "LVM-abcdefghijkl", ("dm-0",))
    by_number(sys_root, number, lvm)
    found = encryption_of(folder, sys_root=sys_root, mountinfo=mounts(tmp_path))
    assert found.state == "encrypted"


def test_a_plain_partition_is_not(tmp_path: Path) -> None:
    folder, number = ledger_folder(tmp_path)
    sys_root = tmp_path / "sys"
    by_number(sys_root, number, block(sys_root, "mmcblk0p2"))
    found = encryption_of(folder, sys_root=sys_root, mountinfo=mounts(tmp_path))
    assert found.state == "plain" and "mmcblk0p2" in found.detail
    # LVM without LUKS underneath is still plain.
    sys_root = tmp_path / "sys2"
    block(sys_root, "sda2")
    by_number(sys_root, number, block(sys_root, "dm-3", "LVM-xyz", ("sda2",)))
    assert encryption_of(folder, sys_root=sys_root, mountinfo=mounts(tmp_path)).state == "plain"
    # dm-integrity checks blocks, it does not hide them.
    sys_root = tmp_path / "sys3"
    block(sys_root, "sda3")
    by_number(sys_root, number, block(sys_root, "dm-4", "CRYPT-INTEGRITY-x-gp", ("sda3",)))
    assert encryption_of(folder, sys_root=sys_root, mountinfo=mounts(tmp_path)).state == "plain"


def test_an_anonymous_device_is_found_through_the_mount_table(tmp_path: Path) -> None:
    folder, _ = ledger_folder(tmp_path)
    sys_root = tmp_path / "sys"
    block(sys_root, "gpdata", "CRYPT-LUKS1-abc-gpdata")
    point = str(folder.resolve().parent)
    table = mounts(
        tmp_path,
        "22 1 0:21 / / rw,relatime - ext4 /dev/root rw",
        f"40 22 0:45 / {point} rw,relatime - btrfs /dev/mapper/gpdata rw",
    )
    found = encryption_of(folder, sys_root=sys_root, mountinfo=table)
    assert found.state == "encrypted", found


def test_tmpfs_and_unknown_filesystems(tmp_path: Path) -> None:
    folder, _ = ledger_folder(tmp_path)
    empty = tmp_path / "sys"
    empty.mkdir()
    point = str(folder.resolve())
    table = mounts(tmp_path, f"40 22 0:45 / {point} rw - tmpfs tmpfs rw")
    assert encryption_of(folder, sys_root=empty, mountinfo=table).state == "plain"
    table = mounts(tmp_path, f"40 22 0:45 / {point} rw - overlay overlay rw")
    found = encryption_of(folder, sys_root=empty, mountinfo=table)
    assert found.state == "unknown" and "overlay" in found.detail
