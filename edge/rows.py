"""How an entry is stored in a row of the `entries` table, and read back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from edge.entries import Entry, Kind

ENTRY_COLUMNS = (
    "seq",
    "entry_id",
    "device_id",
    "kind",
    "passbook_id",
    "category",
    "grams",
    "points",
    "co2e_g",
    "item_id",
    "qty",
    "ref_seq",
    "staff_id",
    "reason",
    "rules_version",
    "wall_ms",
    "clock_ok",
    "boot_id",
    "mono_ms",
    "flags",
    "data",
)
SELECT_ENTRY = f"SELECT {', '.join(ENTRY_COLUMNS)}, h FROM entries"


def entry_from_row(row: Sequence[Any]) -> tuple[Entry, bytes]:
    values = dict(zip(ENTRY_COLUMNS, row, strict=False))
    values["kind"] = Kind(values["kind"])
    values["clock_ok"] = bool(values["clock_ok"])
    values["data"] = json.loads(values["data"])
    return Entry(**values), bytes(row[len(ENTRY_COLUMNS)])
