"""Today's report for staff at the kiosk, as the page shows it (`Ledger.day_report`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from edge.ledger.ledger import Ledger


def day_report(ledger: Ledger) -> dict[str, Any]:
    """`Ledger.day_report` with each category's and item's names in both languages.

    Every figure of the report passes through as it is (`asdict`): a total added to
    `DayReport` reaches the page without a second list here to forget it in.
    """
    report = ledger.day_report()
    cats = ledger.rules.categories
    return {
        **asdict(report),
        "categories": [
            {
                **asdict(c),
                "name_zh": cats[c.category].name_zh if c.category in cats else c.category,
                "name_en": cats[c.category].name_en if c.category in cats else c.category,
            }
            for c in report.categories
        ],
        "stock": [
            {"id": i.item_id, "name_zh": i.name_zh, "name_en": i.name_en, "stock": i.stock}
            for i in report.stock
        ],
    }
