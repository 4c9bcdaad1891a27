"""Staff reverse another kiosk's entry, found by its id (docs/staff.md, "Reversing").

The id is the one on the villager's receipt and statement: the kiosk, then the
entry's number (``K1#42``). `find` asks central whether this kiosk may reverse it
(`UplinkHandle.reserve_reversal` with `peek`: central answers with what the entry did,
and reserves nothing) and shows it for confirmation; `reverse`, once staff confirm,
has central reserve it for this kiosk and writes the reversal at once, so a
reservation always ends in its reversal (and a confirmation staff cancel leaves none
behind to block the entry's own kiosk). Offline, or with no answer within a few
seconds, both say that this needs the network and write nothing.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from edge.kiosk.actions import _staff_write, require_staff
from edge.kiosk.daemon import Kiosk
from edge.kiosk.view import mask_name
from greenpass.errors import Refused
from greenpass.record.targets import OtherEntry, parse_entry_ref


async def _reserve(k: Kiosk, entry_ref: str, staff_id: str, *, peek: bool) -> OtherEntry:
    device, seq = parse_entry_ref(entry_ref)
    if device == k.require_ledger().device_id:
        raise Refused("own_entry", f"{device}#{seq} is this kiosk's own: pick it from the list")
    up = k.uplink
    if up is None or not up.other_reversals:
        raise Refused("needs_network", "reversing another kiosk's entry needs the network")
    return await asyncio.to_thread(
        functools.partial(up.reserve_reversal, device, seq, staff_id, peek=peek)
    )


async def find(k: Kiosk, entry_ref: str) -> dict[str, Any]:
    """Another kiosk's entry this kiosk may reverse, as the staff screen shows it for
    confirmation (nothing is reserved yet)."""
    staff = require_staff(k)
    target = await _reserve(k, entry_ref, staff, peek=True)
    name = ""
    if target.passbook_id is not None:
        v = await k.in_db(k.require_ledger().villager, target.passbook_id)
        name = "" if v is None else v.household_name
    return {
        "device": target.device_id,
        "seq": target.seq,
        "kind": str(target.kind),
        "passbook_id": target.passbook_id,
        "category": target.category,
        "grams": target.grams,
        "points": target.points,
        "item_id": target.item_id,
        "qty": target.qty,
        "wall_ms": target.wall_ms,
        "name": mask_name(name),
        "reversed_by": None,
    }


async def reverse(k: Kiosk, entry_ref: str, reason: str) -> dict[str, Any]:
    staff = require_staff(k)
    target = await _reserve(k, entry_ref, staff, peek=False)
    e = await _staff_write(
        k, k.require_ledger().reverse_other, target, staff_id=staff, reason=reason
    )
    return {"seq": e.seq, "reverses": f"{target.device_id}#{target.seq}", "points": e.points}
