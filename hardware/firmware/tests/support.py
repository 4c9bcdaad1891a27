"""Helpers shared by the firmware tests (MicroPython has no pytest)."""

import os

_tmp = []


def tmpdir():
    """A fresh empty directory for one test; removed by cleanup()."""
    base = os.getenv("TMPDIR") or "/tmp"
    path = base + "/gp-fw-" + "".join(f"{b:02x}" for b in os.urandom(6))
    os.mkdir(path)
    _tmp.append(path)
    return path


def cleanup():
    while _tmp:
        path = _tmp.pop()
        for name in os.listdir(path):
            os.remove(path + "/" + name)
        os.rmdir(path)


def eq(actual, expected):
    assert actual == expected, f"expected {expected!r}, got {actual!r}"


def raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type:
        return
    raise AssertionError(f"{exc_type.__name__} not raised")


def body_of(line):
    """Check one device line's framing and checksum; return the part before *."""
    assert line.endswith("\n") and not line.endswith("\r\n"), repr(line)
    star = line.index("*")
    ck = 0
    for ch in line[:star]:
        ck ^= ord(ch)
    eq(line[star + 1 : -1], f"{ck:02X}")
    return line[:star]


class FakePort:
    """A serial port for run(): bytes to receive, lines sent."""

    def __init__(self, incoming=b""):
        self.incoming = bytearray(incoming)
        self.sent = []

    def read_byte(self):
        if not self.incoming:
            return -1
        b = self.incoming[0]
        self.incoming = self.incoming[1:]
        return b

    def write(self, line):
        self.sent.append(line)
