"""Another kiosk's entry, as central tells a kiosk that reserved its reversal.

A kiosk cannot see other kiosks' entries offline, and two kiosks must never both
reverse one entry, so a reversal of another kiosk's entry is reserved at central
first (docs/design.md §3, `sync.reserve`). Central answers with the target's fields
that the reversal must negate; the kiosk writes the reversal from them
(`edge.ledger.reversal.reverse_other`) with `ref_device` set to the target's device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from greenpass.errors import Refused
from greenpass.record.entries import Kind

# Kinds one kiosk may reverse of another's: those that move a household's points and
# weights only. Stock is counted per kiosk, so entries that move it (redemptions,
# restocks, stock adjustments) are reversed at the kiosk that holds the goods.
OTHER_REVERSIBLE = frozenset({Kind.DEPOSIT, Kind.AWARD})

# An entry's id as printed on a receipt and shown on a statement: device and seq.
_ENTRY_REF = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\s*[#:/ ]\s*(\d{1,12})\s*$")


@dataclass(frozen=True)
class OtherEntry:
    """The fields of another kiosk's entry that its reversal must carry, negated where
    they are amounts (`grams`, `points`, `co2e_g`, `qty`), as central stored them."""

    device_id: str
    seq: int
    kind: Kind
    passbook_id: str | None
    category: str | None
    grams: int | None
    points: int
    co2e_g: int
    item_id: str | None
    qty: int | None
    rules_version: str | None
    wall_ms: int


def parse_entry_ref(text: str) -> tuple[str, int]:
    """ "K1#42" (or "K1 42", "K1:42", "K1/42") → ("K1", 42); refuses anything else."""
    m = _ENTRY_REF.match(text)
    if m is None or int(m.group(2)) < 1:
        raise Refused(
            "bad_entry_ref",
            f"{text.strip()!r} is not an entry id (the kiosk, then #, then its number)",
        )
    return m.group(1), int(m.group(2))
