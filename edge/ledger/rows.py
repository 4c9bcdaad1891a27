"""How an entry is stored in a row of the `entries` table, and read back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from greenpass.record.entries import Entry, Kind

# `Entry`'s fields in declaration order, so a row maps onto `Entry(...)` positionally:
# reading a backlog is the kiosk's half of a sync drain, and a dict per row was most of it.
ENTRY_COLUMNS = tuple(f.name for f in fields(Entry))
SELECT_ENTRY = f"SELECT {', '.join(ENTRY_COLUMNS)}, h FROM entries"
_KINDS = {kind.value: kind for kind in Kind}
_DATA = ENTRY_COLUMNS.index("data")
if (
    ENTRY_COLUMNS[3] != "kind"
    or ENTRY_COLUMNS[5] != "clock_ok"
    or _DATA != 20
    or ENTRY_COLUMNS[21:] != ("ref_device",)
):  # pragma: no cover
    raise RuntimeError("edge.ledger.rows no longer matches Entry's fields")


def fields_from_row(row: Sequence[Any]) -> tuple[tuple[Any, ...], bytes]:
    """A stored row as (an entry's field values in `ENTRY_COLUMNS` order, its hash), the
    kind as its string value: what the uplink encodes, without building an `Entry`."""
    data = row[_DATA]
    values = (
        *row[:5],
        bool(row[5]),
        *row[6:_DATA],
        {} if data == "{}" else json.loads(data),  # the ledger writes "{}" for no data
        row[_DATA + 1],  # ref_device
    )
    return values, bytes(row[_DATA + 2])


def entry_from_row(row: Sequence[Any]) -> tuple[Entry, bytes]:
    values, h = fields_from_row(row)
    kind = values[3]
    kind = _KINDS.get(kind) or Kind(kind)  # Kind(…) raises on an unknown kind
    return Entry(*(*values[:3], kind, *values[4:])), h
