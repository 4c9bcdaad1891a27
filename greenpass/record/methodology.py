"""The methodology: how many reduction units central may issue for verified deposits.

A kiosk shows each deposit's *displayed CO2e* (显示减排量): the village rules' single
recycling factor (greenpass.record.rules). The registry issues *reduction units* (1 unit = 1 kg
CO2e) from a different, conservative figure, the *issuable reduction*, defined by a
methodology file (`greenpass/record/data/methodology-default.toml`, docs/methodology.md):

    avoided per kg = Σ share of route × that route's disposal emissions
                       (routes: landfill, incineration, open_dumping)
                     − incineration share × incineration_credit
                     − recycling pathway emissions,            floored at 0
    per kg = avoided per kg × (1 − already recycled share),    floored

(the share that would have been recycled anyway, e.g. sold to scrap collectors, is not
additional), and `split` turns a sum of such grams into whole units: an uncertainty
deduction first, whole kilograms only, a buffer share held back for reversals.

The file is TOML in the style of the rules file: parsed once into frozen objects,
numbers of at most three decimals scaled to integers on load (grams CO2e per kg,
shares in permille), a bad file refused with an error naming its key and line.
Integer arithmetic only, floored wherever a remainder would otherwise become units.

A methodology version's text never changes once used; a change is a new file with a
new version, so every unit can be traced to the exact text it was issued under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from greenpass.errors import MethodologyError
from greenpass.record.ids import ID_RE as VILLAGE_ID_RE
from greenpass.record.rules import ID_RE as CATEGORY_KEY_RE
from greenpass.tomlfile import TableReader

DEFAULT_METHODOLOGY_PATH = Path(__file__).parent / "data" / "methodology-default.toml"

ROUTES = ("landfill", "incineration", "open_dumping")
VINTAGE_RULES = ("deposit_month",)
SOURCE_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Mix:
    """Where a village's waste goes without the kiosk: shares in permille, summing to 1000."""

    landfill_permille: int
    incineration_permille: int
    open_dumping_permille: int
    source: str


@dataclass(frozen=True)
class CategoryFactors:
    """One waste category's factors, grams CO2e per kg of material as weighed."""

    key: str
    recycling_g_per_kg: int  # the recycling pathway's own emissions (collection, transport…)
    landfill_g_per_kg: int
    incineration_g_per_kg: int
    # Grid power a waste-to-energy plant would have made from the material: subtracted
    # from the incineration route, kept as its own non-negative number so that no factor
    # in the file is ever negative.
    incineration_credit_g_per_kg: int
    open_dumping_g_per_kg: int
    sources: MappingProxyType[str, str]  # factor name → where its number comes from
    # Permille of this material that would have been recycled without the programme.
    # 0 when the file does not say: texts written before the key existed (version
    # gp-recyclables-2026.12) must keep giving the units they were issued with.
    already_recycled_permille: int = 0

    def avoided_per_kg_g(self, mix: Mix) -> int:
        """Grams CO2e per kg kept from disposal under `mix` if none of the material would
        have been recycled anyway; floored, never below 0."""
        baseline = (
            mix.landfill_permille * self.landfill_g_per_kg
            + mix.incineration_permille
            * (self.incineration_g_per_kg - self.incineration_credit_g_per_kg)
            + mix.open_dumping_permille * self.open_dumping_g_per_kg
        )
        # Shares are permille, so both terms are g/kg × 1000; one floor at the end keeps
        # the sub-gram remainders of the three routes from each being lost separately.
        return max(0, (baseline - 1000 * self.recycling_g_per_kg) // 1000)

    def reduction_per_kg_g(self, mix: Mix, already_recycled_permille: int) -> int:
        """Issuable grams CO2e per kg: the avoided figure for the share that would not
        have been recycled anyway, floored again (never above the avoided figure)."""
        return self.avoided_per_kg_g(mix) * (1000 - already_recycled_permille) // 1000


@dataclass(frozen=True)
class AlreadyRecycled:
    """A village's own already-recycled shares, for the categories it names (permille);
    the others keep their category's share."""

    permille: MappingProxyType[str, int]  # category → permille
    source: str


@dataclass(frozen=True)
class Methodology:
    version: str
    name_zh: str
    name_en: str
    timezone: str  # where a vintage month starts and ends
    vintage: str  # "deposit_month": units' vintage is the calendar month of their deposits
    uncertainty_permille: int  # taken off the gross reduction first
    buffer_permille: int  # of the whole units, held back in the buffer pool (rounded up)
    categories: MappingProxyType[str, CategoryFactors]
    default_mix: Mix
    village_mixes: MappingProxyType[str, Mix]
    village_already_recycled: MappingProxyType[str, AlreadyRecycled]
    sources: MappingProxyType[str, str]  # reference id → full citation
    text: str  # the file as loaded, kept with issued units so a version can be audited

    def covers(self, category: str) -> bool:
        """Whether deposits of `category` can earn units (reduction_g is 0 otherwise)."""
        return category in self.categories

    def mix_for(self, village_id: str) -> Mix:
        return self.village_mixes.get(village_id, self.default_mix)

    def already_recycled_for(self, category: str, village_id: str) -> int:
        """Permille of `category` that `village_id` would have recycled anyway: the
        village's own share if its table names one, else the category's; 0 for a
        category this methodology does not cover."""
        own = self.village_already_recycled.get(village_id)
        if own is not None and category in own.permille:
            return own.permille[category]
        factors = self.categories.get(category)
        return 0 if factors is None else factors.already_recycled_permille

    def reduction_per_kg_g(self, category: str, village_id: str) -> int:
        """Issuable grams CO2e per kg of `category` deposited in `village_id`; 0 for a
        category this methodology does not cover (see `covers`)."""
        factors = self.categories.get(category)
        if factors is None:
            return 0
        return factors.reduction_per_kg_g(
            self.mix_for(village_id), self.already_recycled_for(category, village_id)
        )

    def reduction_g(self, category: str, village_id: str, grams: int) -> int:
        """Issuable grams CO2e of one deposit entry.

        Floored per entry, as greenpass.record.rules floors points and displayed CO2e:
        remainders are never carried between entries, so the same entry always gives the
        same grams wherever it is recomputed, and flooring never credits weight nobody
        brought.
        """
        if grams < 0:
            raise ValueError(f"grams must not be negative, got {grams}")
        return grams * self.reduction_per_kg_g(category, village_id) // 1000

    def split(self, gross_g: int) -> tuple[int, int, int]:
        """(units_total, buffer_units, issued_units) for a gross reduction in grams.

        The uncertainty deduction comes off first, then only whole kilograms become
        units (the remainder is not issued); the buffer share is rounded up, so rounding
        always favours the pool that covers reversals, never the holder.
        """
        if gross_g < 0:
            raise ValueError(f"gross_g must not be negative, got {gross_g}")
        after_uncertainty_g = gross_g * (1000 - self.uncertainty_permille) // 1000
        units_total = after_uncertainty_g // 1000
        buffer_units = -(-units_total * self.buffer_permille // 1000)
        return units_total, buffer_units, units_total - buffer_units

    def vintage_of(self, wall_ms: int) -> str:
        """The vintage ("YYYY-MM") of a deposit made at `wall_ms` (ms since the epoch)."""
        moment = datetime.fromtimestamp(wall_ms / 1000, ZoneInfo(self.timezone))
        return f"{moment.year:04d}-{moment.month:02d}"


# --- loading ---------------------------------------------------------------------------

_TOP_KEYS = {
    "version",
    "name_zh",
    "name_en",
    "timezone",
    "vintage",
    "uncertainty_deduction",
    "buffer_share",
    "sources",
    "baseline",
    "villages",
    "categories",
}
_MIX_TABLE_KEYS = {"mix", "source"}
_VILLAGE_KEYS = {*_MIX_TABLE_KEYS, "already_recycled", "already_recycled_source"}
_FACTORS = ("recycling", "landfill", "incineration", "incineration_credit", "open_dumping")
_CATEGORY_KEYS = {
    *_FACTORS,
    *(f"{f}_source" for f in _FACTORS),
    "already_recycled",
    "already_recycled_source",
}
# Values written as inline tables (`mix = { landfill = … }`): an error in one of their
# keys is reported on the line of the key that holds the inline table.
_INLINE_TABLES = ("mix", "already_recycled")


class _MethodologyReader(TableReader):
    """The rules file's reader, raising MethodologyError."""

    error = MethodologyError

    def text_value(self, data: dict[str, Any], table: str, key: str) -> str:
        """A required string that is not blank (a source nobody wrote is no source)."""
        value: str = self.get(data, table, key, str)
        if not value.strip():
            raise self.fail(table, key, "must not be empty")
        return value

    def fraction(self, data: dict[str, Any], table: str, key: str, *, below_one: bool) -> int:
        """A share from 0 to 1 (or below 1), returned in permille."""
        permille = self.milli(data, table, key)
        if permille > 1000 or (below_one and permille == 1000):
            bound = "below 1" if below_one else "at most 1"
            raise self.fail(table, key, f"must be {bound}, got {data[key]!r}")
        return permille

    def line_of(self, table: str, key: str | None) -> int | None:
        # A mix is an inline table (`mix = { landfill = … }`): its shares are named
        # `TABLE.mix.ROUTE` but live on the line of `mix =`; likewise a village's
        # `already_recycled = { cardboard = … }`.
        for inline in _INLINE_TABLES:
            if table.endswith(f".{inline}"):
                return super().line_of(table.removesuffix(f".{inline}"), inline)
        return super().line_of(table, key)

    def mix(self, data: dict[str, Any], table: str) -> Mix:
        """`mix` and its `source` from `[baseline]` or a village's table."""
        raw = self.table(self.get(data, table, "mix", dict), f"{table}.mix", set(ROUTES))
        shares = {
            route: self.fraction(raw, f"{table}.mix", route, below_one=False) for route in ROUTES
        }
        total = sum(shares.values())
        if total != 1000:
            raise self.fail(
                table, "mix", f"shares must add up to 1 (they add up to {total / 1000:g})"
            )
        return Mix(
            landfill_permille=shares["landfill"],
            incineration_permille=shares["incineration"],
            open_dumping_permille=shares["open_dumping"],
            source=self.text_value(data, table, "source"),
        )

    def shares(self, data: dict[str, Any], table: str, categories: set[str]) -> AlreadyRecycled:
        """A village's `already_recycled = { CATEGORY = share, … }` and its source."""
        raw: dict[str, Any] = self.get(data, table, "already_recycled", dict)
        if not raw:
            raise self.fail(table, "already_recycled", "must name at least one category")
        for category in raw:
            if category not in categories:
                raise self.fail(
                    f"{table}.already_recycled",
                    category,
                    "unknown category: not a [categories.KEY] of this file",
                )
        permille = {
            category: self.fraction(raw, f"{table}.already_recycled", category, below_one=False)
            for category in raw
        }
        return AlreadyRecycled(
            permille=MappingProxyType(permille),
            source=self.text_value(data, table, "already_recycled_source"),
        )

    def village(
        self, data: dict[str, Any], table: str, categories: set[str]
    ) -> tuple[Mix | None, AlreadyRecycled | None]:
        """A village's own mix, own already-recycled shares, or both; each comes with its
        source, and a table with neither is refused (it would override nothing)."""
        self.table(data, table, _VILLAGE_KEYS)
        if not data:
            raise self.fail(table, None, "needs a mix or already_recycled (with its source)")
        mix = None
        if "mix" in data or "source" in data:
            mix = self.mix(data, table)
        shares = None
        if "already_recycled" in data or "already_recycled_source" in data:
            shares = self.shares(data, table, categories)
        return mix, shares

    def category(self, key: str, raw: Any) -> CategoryFactors:
        table = f"categories.{key}"
        if not CATEGORY_KEY_RE.match(key):
            raise self.fail(table, None, "category keys are lower-case letters, digits and _")
        if not isinstance(raw, dict):
            raise self.fail("categories", key, "must be a table")
        self.table(raw, table, _CATEGORY_KEYS)
        g = {f: self.milli(raw, table, f) for f in _FACTORS}
        sources = {f: self.text_value(raw, table, f"{f}_source") for f in _FACTORS}
        # Optional for texts older than the key, but only as a pair with its source.
        already = 0
        if "already_recycled" in raw or "already_recycled_source" in raw:
            already = self.fraction(raw, table, "already_recycled", below_one=False)
            sources["already_recycled"] = self.text_value(raw, table, "already_recycled_source")
        return CategoryFactors(
            key=key,
            recycling_g_per_kg=g["recycling"],
            landfill_g_per_kg=g["landfill"],
            incineration_g_per_kg=g["incineration"],
            incineration_credit_g_per_kg=g["incineration_credit"],
            open_dumping_g_per_kg=g["open_dumping"],
            sources=MappingProxyType(sources),
            already_recycled_permille=already,
        )


def parse_methodology(text: str, path: str = "<methodology>") -> Methodology:
    """Parse and validate a methodology file's text."""
    r, data = _MethodologyReader.parse(text, path)
    r.table(data, "", _TOP_KEYS)
    version = r.text_value(data, "", "version")
    if len(version) > 64:
        raise r.fail("", "version", "must be at most 64 characters")
    timezone = r.get(data, "", "timezone", str, "Asia/Shanghai")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise r.fail("", "timezone", f"unknown time zone {timezone!r}") from exc
    vintage = r.get(data, "", "vintage", str)
    if vintage not in VINTAGE_RULES:
        raise r.fail("", "vintage", f"must be one of: {', '.join(VINTAGE_RULES)}")

    sources_raw = r.get(data, "", "sources", dict)
    for ref in sources_raw:
        if not SOURCE_ID_RE.match(ref):
            raise r.fail("sources", ref, "source ids are lower-case letters, digits and _")
    sources = {ref: r.text_value(sources_raw, "sources", ref) for ref in sources_raw}

    cats_raw = r.get(data, "", "categories", dict)
    if not cats_raw:
        raise r.fail("categories", None, "at least one category is needed")
    categories = {key: r.category(key, raw) for key, raw in cats_raw.items()}

    # After the categories: a village's shares may name only categories of this file.
    baseline = r.table(r.get(data, "", "baseline", dict), "baseline", _MIX_TABLE_KEYS)
    default_mix = r.mix(baseline, "baseline")
    village_mixes: dict[str, Mix] = {}
    village_already: dict[str, AlreadyRecycled] = {}
    for village_id, raw in r.get(data, "", "villages", dict, {}).items():
        table = f"villages.{village_id}"
        if not VILLAGE_ID_RE.match(village_id):
            raise r.fail(table, None, "village ids are letters, digits, '.', '_' or '-'")
        if not isinstance(raw, dict):
            raise r.fail("villages", village_id, "must be a table")
        mix, shares = r.village(raw, table, set(categories))
        if mix is not None:
            village_mixes[village_id] = mix
        if shares is not None:
            village_already[village_id] = shares

    return Methodology(
        version=version,
        name_zh=r.text_value(data, "", "name_zh"),
        name_en=r.text_value(data, "", "name_en"),
        timezone=timezone,
        vintage=vintage,
        uncertainty_permille=r.fraction(data, "", "uncertainty_deduction", below_one=True),
        buffer_permille=r.fraction(data, "", "buffer_share", below_one=True),
        categories=MappingProxyType(categories),
        default_mix=default_mix,
        village_mixes=MappingProxyType(village_mixes),
        village_already_recycled=MappingProxyType(village_already),
        sources=MappingProxyType(sources),
        text=text,
    )


def load_methodology(path: str | Path) -> Methodology:
    """Read and validate a methodology file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MethodologyError(f"cannot read methodology file: {exc}", path=str(path)) from exc
    return parse_methodology(text, str(path))


def default_methodology() -> Methodology:
    """The methodology this software ships (greenpass/record/data/methodology-default.toml)."""
    return load_methodology(DEFAULT_METHODOLOGY_PATH)
