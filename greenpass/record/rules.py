"""Village rules: what each waste category earns, its limits, and its carbon factor.

A rules file is TOML, one per village (see `greenpass/record/data/default-rules.toml` and
docs/rules.md). It is parsed once into frozen objects; a bad file is refused
with an error that names the key and its line.

Integer arithmetic only. Factors in the file may have up to three decimals and
are scaled to integers on load (points per tonne, grams CO2e per kg), so:

    points  = floor(grams × points_per_kg × 1000 / 1_000_000)   (= floor(g × ppk / 1000))
    co2e_g  = floor(grams × co2e_kg_per_kg × 1000 / 1000)        (= floor(g × f))

Rounding rule: **each entry is floored on its own**; remainders are never carried
between entries. Flooring never credits a villager for weight they did not bring,
and the same grams always give the same points on every kiosk and at central.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from greenpass.errors import Refused, RulesError
from greenpass.tomlfile import TableReader

DEFAULT_RULES_PATH = Path(__file__).parent / "data" / "default-rules.toml"

ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class Category:
    key: str
    name_zh: str
    name_en: str
    points_per_tonne: int  # points per 1,000 kg: 3 decimals of points/kg, kept integral
    min_grams: int
    max_grams: int
    daily_cap_grams: int
    co2e_g_per_kg: int  # grams CO2e avoided per kg
    factor_source: str
    proxy: str  # "" when the factor is for this material itself

    def points_for(self, grams: int) -> int:
        return grams * self.points_per_tonne // 1_000_000

    def co2e_for(self, grams: int) -> int:
        return grams * self.co2e_g_per_kg // 1_000


@dataclass(frozen=True)
class Review:
    """When an accepted deposit is flagged for staff review (not refused)."""

    heavy_factor: int  # grams above factor × the villager's median in the category
    heavy_min_history: int
    burst_count: int  # this many deposits by one villager within burst_minutes
    burst_minutes: int


@dataclass(frozen=True)
class Rules:
    version: str
    village: str  # "*" applies to any village
    timezone: str
    cooldown_seconds: int
    max_award_points: int
    review: Review
    factors_source: str
    categories: MappingProxyType[str, Category]
    text: str  # the file as loaded, stored in the ledger so a rules version can be audited

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def category(self, key: str) -> Category | None:
        return self.categories.get(key)


def weighable(rules: Rules, category: str, grams: int) -> Category:
    """The category of a deposit of `grams`, if the rules in force take it."""
    cat = rules.category(category)
    if cat is None:
        raise Refused(
            "unknown_category", f"no waste category {category!r} in rules {rules.version}"
        )
    if grams < cat.min_grams:
        raise Refused(
            "too_light", f"{grams} g is below the minimum of {cat.min_grams} g for {cat.name_en}"
        )
    if grams > cat.max_grams:
        raise Refused(
            "too_heavy",
            f"{grams} g is above the most one deposit of "
            f"{cat.name_en} may weigh ({cat.max_grams} g)",
        )
    return cat


# --- loading ---------------------------------------------------------------------------

_TOP_KEYS = {
    "version",
    "village",
    "timezone",
    "cooldown_seconds",
    "max_award_points",
    "review",
    "factors",
    "categories",
}
_REVIEW_KEYS = {"heavy_factor", "heavy_min_history", "burst_count", "burst_minutes"}
_FACTORS_KEYS = {"source"}
_CATEGORY_KEYS = {
    "name_zh",
    "name_en",
    "points_per_kg",
    "min_grams",
    "max_grams",
    "daily_cap_grams",
    "co2e_kg_per_kg",
    "factor_source",
    "proxy",
}


class _RulesReader(TableReader):
    error = RulesError


def parse_rules(text: str, path: str = "<rules>") -> Rules:
    """Parse and validate a rules file's text."""
    r, data = _RulesReader.parse(text, path)
    r.table(data, "", _TOP_KEYS)
    version = r.get(data, "", "version", str)
    if not version.strip() or len(version) > 64:
        raise r.fail("", "version", "must be a non-empty string of at most 64 characters")
    timezone = r.get(data, "", "timezone", str, "Asia/Shanghai")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise r.fail("", "timezone", f"unknown time zone {timezone!r}") from exc

    review_raw = r.table(r.get(data, "", "review", dict, {}), "review", _REVIEW_KEYS)
    review = Review(
        heavy_factor=r.count(review_raw, "review", "heavy_factor", minimum=2, default=5),
        heavy_min_history=r.count(review_raw, "review", "heavy_min_history", minimum=1, default=3),
        burst_count=r.count(review_raw, "review", "burst_count", minimum=2, default=8),
        burst_minutes=r.count(review_raw, "review", "burst_minutes", minimum=1, default=10),
    )
    factors = r.table(r.get(data, "", "factors", dict), "factors", _FACTORS_KEYS)
    cats_raw = r.get(data, "", "categories", dict)
    if not cats_raw:
        raise r.fail("categories", None, "at least one category is needed")
    categories: dict[str, Category] = {}
    for key, raw in cats_raw.items():
        table = f"categories.{key}"
        if not ID_RE.match(key):
            raise r.fail(table, None, "category keys are lower-case letters, digits and _")
        if not isinstance(raw, dict):
            raise r.fail("categories", key, "must be a table")
        r.table(raw, table, _CATEGORY_KEYS)
        min_g = r.count(raw, table, "min_grams", minimum=1)
        max_g = r.count(raw, table, "max_grams", minimum=1, default=100_000)
        if max_g < min_g:
            raise r.fail(table, "max_grams", f"must not be below min_grams ({min_g})")
        categories[key] = Category(
            key=key,
            name_zh=r.get(raw, table, "name_zh", str),
            name_en=r.get(raw, table, "name_en", str),
            points_per_tonne=r.milli(raw, table, "points_per_kg"),
            min_grams=min_g,
            max_grams=max_g,
            daily_cap_grams=r.count(raw, table, "daily_cap_grams", minimum=min_g),
            co2e_g_per_kg=r.milli(raw, table, "co2e_kg_per_kg"),
            factor_source=r.get(raw, table, "factor_source", str),
            proxy=r.get(raw, table, "proxy", str, ""),
        )
    return Rules(
        version=version,
        village=r.get(data, "", "village", str, "*"),
        timezone=timezone,
        cooldown_seconds=r.count(data, "", "cooldown_seconds", default=20),
        max_award_points=r.count(data, "", "max_award_points", minimum=1, default=500),
        review=review,
        factors_source=r.get(factors, "factors", "source", str),
        categories=MappingProxyType(categories),
        text=text,
    )


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read rules file: {exc}", path=str(path)) from exc
    return parse_rules(text, str(path))


def default_rules() -> Rules:
    return load_rules(DEFAULT_RULES_PATH)
