"""greenpass.files: whole files with their mode from the first byte, or nothing."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenpass.files import create_private, write_private, write_public

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask_0() -> Iterator[None]:
    """The widest umask: whatever mode a file has, the code gave it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_and_public_modes_whatever_the_umask(tmp_path: Path, umask_0: None) -> None:
    write_private(tmp_path / "key", b"secret")
    write_public(tmp_path / "cert", b"public")
    assert mode(tmp_path / "key") == 0o600 and (tmp_path / "key").read_bytes() == b"secret"
    assert mode(tmp_path / "cert") == 0o644
    os.umask(0o077)  # a narrow umask does not make a certificate unreadable either
    write_public(tmp_path / "cert", b"public 2")
    assert mode(tmp_path / "cert") == 0o644 and (tmp_path / "cert").read_bytes() == b"public 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert", "key"]


def test_a_private_file_is_never_wider_than_0600_while_written(
    tmp_path: Path, umask_0: None
) -> None:
    """Watch the folder while large files are written: every temporary file seen, at any
    moment, already has mode 0600 (a write-then-chmod would show 0666 here)."""
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for entry in os.scandir(tmp_path):
                if entry.name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                        seen.append(stat.S_IMODE(entry.stat().st_mode))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        data = os.urandom(8 << 20)
        for _ in range(100):
            write_private(tmp_path / "sheet.pdf", data)
            if seen:
                break
    finally:
        done.set()
        watcher.join()
    assert seen, "the temporary file was never seen"
    assert set(seen) == {0o600}


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    """A full disk, as a file size limit in a child process: the write fails, the old
    file is whole, nothing else is left in the folder."""
    target = tmp_path / "admin.token"
    write_private(target, b"old token\n")
    child = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from greenpass.files import write_private\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        "    write_private(Path(sys.argv[1]), b'x' * 65536)\n"
        "except OSError as exc:\n"
        "    print(exc.strerror)\n"
        "    sys.exit(3)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", child, str(target)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 3, r.stderr
    assert "too large" in r.stdout.lower()
    assert target.read_bytes() == b"old token\n" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["admin.token"]


def test_create_private_keeps_the_first(tmp_path: Path, umask_0: None) -> None:
    path = tmp_path / "central.password"
    assert create_private(path, b"first\n")
    assert not create_private(path, b"second\n")
    assert path.read_bytes() == b"first\n" and mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["central.password"]
