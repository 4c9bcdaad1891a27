"""Decimal weights in scale units to integer grams.

Rounding rule: round half away from zero to the nearest gram (Decimal's
ROUND_HALF_UP), so +0.0005 kg -> 1 g and -0.0005 kg -> -1 g. Decimal, never
float, so "1.0005" kg is exactly 1000.5 g before rounding.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Grams per unit. Units we cannot convert honestly (lb, oz, ct, pcs, %) are absent,
# and frames in them are counted as unknown rather than guessed.
GRAMS_PER_UNIT: dict[str, Decimal] = {
    "mg": Decimal("0.001"),
    "g": Decimal(1),
    "kg": Decimal(1000),
    "t": Decimal(1_000_000),
}

# Sign, optional blanks (CAS pads between sign and digits), digits, optional fraction.
_NUMBER = re.compile(r"([+-]?) *([0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def to_grams(number: str, unit: str) -> int | None:
    """`number` (e.g. "+0012.34", "-  1.5", "129.07") in `unit` as grams, or None if invalid."""
    factor = GRAMS_PER_UNIT.get(unit.strip().lower())
    match = _NUMBER.fullmatch(number.strip())
    if factor is None or match is None:
        return None
    try:
        value = Decimal(match.group(1) + match.group(2)) * factor
    except InvalidOperation:  # cannot happen after the regex; kept so a parser never raises
        return None
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


PPM = 1_000_000  # span factors are integers in parts per million: no floats near weights
SPAN_LIMITS_PPM = (800_000, 1_250_000)  # beyond ±20-25 % the scale is broken, not off


def apply_span(grams: int, span_ppm: int) -> int:
    """A reading corrected by a span factor (parts per million), rounded half away from zero.

    Indicators that take no calibrate command over the wire are corrected by the
    kiosk itself with the factor `greenpass calibrate` measured; 1,000,000 is none.
    """
    if span_ppm == PPM:
        return grams
    scaled = abs(grams) * span_ppm
    rounded = (scaled + PPM // 2) // PPM
    return rounded if grams >= 0 else -rounded
