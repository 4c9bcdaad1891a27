"""Ids in the record: passbooks, villages, items, devices, entries.

A kiosk checks them before it writes an entry and central checks them again on
receipt, with the same patterns.
"""

from __future__ import annotations

import os
import re
import uuid

from greenpass.errors import Refused

# Passbook, village, item and staff ids.
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A device id is also its MQTT username and a topic level: no dots (central and the
# broker's password file refuse them), and never the central service's name.
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_device_id(value: str) -> str:
    if not isinstance(value, str) or not DEVICE_ID_RE.match(value) or value == "central":
        raise Refused(
            "bad_id",
            f"device id {value!r} must be 1-64 letters, digits, '_' or '-' (not 'central')",
        )
    return value


def check_id(what: str, value: str, *, code: str = "bad_id") -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise Refused(code, f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return value


def uuid7(unix_ms: int, rand: bytes | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix ms, version 7, 74 random bits (an entry's
    `entry_id`)."""
    r = int.from_bytes(rand if rand is not None else os.urandom(10), "big")
    rand_a = (r >> 62) & 0xFFF
    rand_b = r & ((1 << 62) - 1)
    value = ((unix_ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (rand_a << 64)
    value |= (0b10 << 62) | rand_b
    return uuid.UUID(int=value)
