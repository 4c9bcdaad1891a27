"""Staff PINs: a slow salted hash, and the lockout policy.

PINs are short, so the hash alone cannot protect them; the lockout does the real
work (a few wrong tries, then a pause), and the slow hash (scrypt, ~16 MiB) makes
a stolen database expensive to brute-force. Both live in the ledger file so a
reboot does not reset a lockout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from greenpass.errors import Refused

PIN_RE = re.compile(r"^[0-9]{4,8}$")
ROLES = ("staff", "admin", "technician")
_N, _R, _P = 2**14, 8, 1


@dataclass(frozen=True)
class PinPolicy:
    max_attempts: int = 5  # wrong PINs in a row before a lockout
    lockout_ms: int = 5 * 60_000


@dataclass(frozen=True)
class StaffMember:
    staff_id: str
    name: str
    role: str
    active: bool


def check_pin_format(pin: str) -> None:
    if not PIN_RE.match(pin):
        raise Refused("bad_pin_format", "a PIN is 4 to 8 digits")


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    check_pin_format(pin)
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        want = base64.b64decode(digest_b64)
        got = hashlib.scrypt(pin.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)
