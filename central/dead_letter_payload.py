"""Whether a dead letter's payload carries a household's name (`central.personal.erase`).

A refused batch is kept as it arrived, signed and maybe compressed; it can hold a
household's name in a personal record (`BatchBody.personal`) or, from a kiosk of
before enrol data version 2, in an enrolment's data. This reads it loosely — a dead
letter is by definition something that did not decode as it should — as plain
MessagePack, without the schema or the signature.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import msgspec

from greenpass.errors import ProtocolError
from greenpass.record.personal import LEGACY_NAME_KEY
from sync.envelope import DECODE_ERRORS, inflate, open_envelope

_BODY_ENTRIES, _BODY_PERSONAL = 8, 9  # BatchBody's positions
_ENTRY_PASSBOOK, _ENTRY_DATA = 6, 18  # WireEntry's positions


def names_any(payload: bytes, passbooks: Collection[str]) -> bool:
    """True if `payload` is a batch with personal data of one of `passbooks`, or one
    that cannot be read well enough to tell (kept only if it surely holds none)."""
    if not payload:
        return False
    try:
        env = open_envelope(payload, "batch")
        body: Any = msgspec.msgpack.decode(inflate(env))
    except (ProtocolError, ValueError, *DECODE_ERRORS):
        return any(p.encode() in payload for p in passbooks) or b"household" in payload
    if not isinstance(body, list):
        return False
    if len(body) > _BODY_PERSONAL and isinstance(body[_BODY_PERSONAL], list):
        for record in body[_BODY_PERSONAL]:
            if isinstance(record, list) and record and record[0] in passbooks:
                return True
    entries = body[_BODY_ENTRIES] if len(body) > _BODY_ENTRIES else []
    for w in entries if isinstance(entries, list) else []:
        if not isinstance(w, list) or len(w) <= _ENTRY_DATA:
            continue
        data = w[_ENTRY_DATA]
        if w[_ENTRY_PASSBOOK] in passbooks and isinstance(data, dict) and LEGACY_NAME_KEY in data:
            return True
    return False
