"""Totals from the kiosks' own ledgers, read-only, in the shape of central's village totals."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def ledger_value(db: Path, sql: str) -> int:
    """One number from a kiosk's ledger, read-only (the kiosk keeps writing it)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            row = c.execute(sql).fetchone()
    except sqlite3.Error:
        return -1
    return int(row[0]) if row and row[0] is not None else 0


# --- totals, as central computes them (central.reports.village_totals) --------------------


def ledger_totals(db: Path) -> dict[str, Any]:
    """A kiosk ledger's totals, net of reversals, in the shape of central's totals."""
    sql = (
        "SELECT e.kind, t.kind, e.category, COUNT(*), COALESCE(SUM(e.grams), 0), "
        "COALESCE(SUM(e.points), 0), COALESCE(SUM(e.co2e_g), 0) FROM entries e "
        "LEFT JOIN entries t ON t.seq = e.ref_seq AND e.ref_device IS NULL "
        "GROUP BY e.kind, t.kind, e.category"
    )
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        rows = c.execute(sql).fetchall()
    grams: dict[str, int] = defaultdict(int)
    deposits = issued = redeemed = co2e = 0
    for own_kind, target_kind, category, n, g, points, co2 in rows:
        kind, sign = (target_kind, -1) if own_kind == "reversal" else (own_kind, 1)
        if kind == "deposit":
            deposits += sign * n
            issued += points
            co2e += co2
            if category is not None:
                grams[category] += g
        elif kind == "award":
            issued += points
        elif kind == "redeem":
            redeemed -= points
    return {
        "grams_by_category": dict(sorted(grams.items())),
        "deposits": deposits,
        "points_issued": issued,
        "points_redeemed": redeemed,
        "co2e_g": co2e,
    }


def sum_totals(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {
        "grams_by_category": {},
        "deposits": 0,
        "points_issued": 0,
        "points_redeemed": 0,
        "co2e_g": 0,
    }
    grams: dict[str, int] = defaultdict(int)
    for part in parts:
        for cat, g in part["grams_by_category"].items():
            grams[cat] += g
        for key in ("deposits", "points_issued", "points_redeemed", "co2e_g"):
            total[key] += part[key]
    total["grams_by_category"] = dict(sorted(grams.items()))
    return total
