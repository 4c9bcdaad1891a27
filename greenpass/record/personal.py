"""Personal data kept out of the hash chain: a salted commitment in the entry, the data
itself in a table that can be corrected and erased (docs/privacy.md).

An enrolment entry (enrol data version 2) carries

    data = {"personal": commitment, "village": village}
    commitment = hex(SHA-256("greenpass-personal-v1" ‖ 0x00 ‖ salt ‖ canonical JSON of fields))

where `fields` is {"household_name": name} and `salt` is 16 random bytes kept beside
the name (the kiosk's and central's `villagers` rows), never in an entry. Without the
salt the commitment says nothing about the name — a household name is short and
guessable, so an unsalted hash could be reversed by trying every surname. With it,
whoever holds the name and salt can show that this enrolment was for this household,
and a name edited behind the ledger's back no longer matches. Erasing the name and
the salt leaves the entry, its chain, signatures and proofs as they were, and the
commitment then links to nobody.

Enrolments written before version 2 carry the name itself (`"household_name"`); they
stay as they are (the chain covers them) and verify as before.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

import msgspec

PERSONAL_KEY = "personal"  # an enrolment's data key holding the commitment
LEGACY_NAME_KEY = "household_name"  # where enrolments before version 2 held the name
SALT_BYTES = 16
_DOMAIN = b"greenpass-personal-v1\x00"
_json = msgspec.json.Encoder(order="sorted")


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def household_fields(name: str) -> dict[str, str]:
    """The personal fields of a household (only its name today)."""
    return {"household_name": name}


def commitment(fields: Mapping[str, str], salt: bytes) -> str:
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a personal-data salt is {SALT_BYTES} bytes, not {len(salt)}")
    return hashlib.sha256(_DOMAIN + salt + _json.encode(dict(fields))).hexdigest()


def matches(fields: Mapping[str, str], salt: bytes, committed: str) -> bool:
    """Do `fields` with `salt` make `committed`? (Constant time: the answer leaks nothing.)"""
    try:
        mine = commitment(fields, salt)
    except ValueError:
        return False
    return hmac.compare_digest(mine, committed)


def is_commitment(value: object) -> bool:
    """64 lower-case hex digits, as `commitment` makes."""
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )
