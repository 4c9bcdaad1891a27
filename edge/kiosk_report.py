"""Today's report for staff at the kiosk: what came in, what went out, what is left.

"Today" is the village's calendar day (the rules' time zone). Reversed entries
and the reversals themselves cancel out, so the figures match the ledger's sums.
"""

from __future__ import annotations

from typing import Any

from edge.ledger import Ledger
from edge.queries import day_start_ms


def day_report(ledger: Ledger) -> dict[str, Any]:
    start = day_start_ms(ledger.rules, ledger.clock.wall_ms())
    live = (
        "FROM entries WHERE wall_ms >= ? AND kind != 'reversal' AND seq NOT IN "
        "(SELECT ref_seq FROM entries WHERE kind = 'reversal' AND ref_seq IS NOT NULL)"
    )
    per_category = ledger.store.query(
        f"SELECT category, COUNT(*) AS deposits, SUM(grams) AS grams, SUM(points) AS points, "
        f"SUM(co2e_g) AS co2e_g {live} AND kind = 'deposit' GROUP BY category ORDER BY category",
        (start,),
    )
    totals = ledger.store.query(
        f"SELECT COALESCE(SUM(CASE WHEN points > 0 THEN points END), 0) AS points_in, "
        f"COALESCE(-SUM(CASE WHEN points < 0 THEN points END), 0) AS points_out, "
        f"COALESCE(SUM(co2e_g), 0) AS co2e_g, COUNT(*) AS entries {live}",
        (start,),
    )[0]
    names = {c.key: (c.name_zh, c.name_en) for c in ledger.rules.categories.values()}
    return {
        "day_start_ms": start,
        "categories": [
            {
                **dict(r),
                "name_zh": names.get(r["category"], (r["category"],) * 2)[0],
                "name_en": names.get(r["category"], (r["category"],) * 2)[1],
            }
            for r in per_category
        ],
        "points_in": totals["points_in"],
        "points_out": totals["points_out"],
        "co2e_g": totals["co2e_g"],
        "entries": totals["entries"],
        "stock": [
            {"id": i.item_id, "name_zh": i.name_zh, "name_en": i.name_en, "stock": i.stock}
            for i in ledger.catalogue()
        ],
    }
