"""The methodology file: the shipped one parses and covers every waste category, the
issuable reduction is never negative and follows each village's mix and already-recycled
shares, the unit split is integer-exact, the version before those shares still gives
what it gave, and a malformed file is refused naming its key and line."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenpass.errors import ConfigError, MethodologyError
from greenpass.record.methodology import (
    DEFAULT_METHODOLOGY_PATH,
    CategoryFactors,
    Mix,
    default_methodology,
    load_methodology,
    parse_methodology,
)
from greenpass.record.rules import default_rules

ROOT = Path(__file__).resolve().parents[2]
BASE = DEFAULT_METHODOLOGY_PATH.read_text(encoding="utf-8")
# The version before already-recycled shares. Units were issued under it, so its text
# must never change: the registry refuses a changed text under a used version, and
# certificates carry it to be recomputed offline.
OLD_PATH = DEFAULT_METHODOLOGY_PATH.with_name("methodology-gp-recyclables-2026.12.toml")
OLD_SHA256 = "52e1a655b8ef1520da872790cbdb1aa1143e39c640208bc9fcd450f13ebfab3b"
FACTOR_NAMES = {"recycling", "landfill", "incineration", "incineration_credit", "open_dumping"}
PAPER_SOURCE = BASE.split("\n[categories.paper]\n", 1)[1].split("\nlandfill_source = ", 1)[1]
PAPER_SOURCE_LINE = "landfill_source = " + PAPER_SOURCE.split("\n", 1)[0] + "\n"


def _broken(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def _line(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def _with_mix(text: str, village: str, landfill: str, incineration: str, dumping: str) -> str:
    return text + (
        f"\n[villages.{village}]\n"
        f"mix = {{ landfill = {landfill}, incineration = {incineration}, "
        f"open_dumping = {dumping} }}\n"
        'source = "county records"\n'
    )


def _with_shares(text: str, village: str, shares: str, header: bool = True) -> str:
    """`text` with a village table (or, header=False, the last table) overriding shares."""
    return (
        text
        + (f"\n[villages.{village}]\n" if header else "")
        + (f'already_recycled = {shares}\nalready_recycled_source = "village survey"\n')
    )


# --- the shipped file ------------------------------------------------------------------


def test_the_shipped_file_parses_and_cites_every_number() -> None:
    m = default_methodology()
    assert m.version == "gp-recyclables-2026.12.1"
    assert m.name_zh and m.name_en
    assert m.text == BASE  # kept verbatim, so issued units can name the exact text
    assert m.vintage == "deposit_month" and m.timezone == "Asia/Shanghai"
    assert (m.uncertainty_permille, m.buffer_permille) == (100, 100)
    mix = m.default_mix
    assert (mix.landfill_permille, mix.incineration_permille, mix.open_dumping_permille) == (
        500,
        400,
        100,
    )
    assert mix.source.startswith("PROXY")
    assert m.village_mixes == {} and m.village_already_recycled == {}
    for c in m.categories.values():
        # every category states its share, even where it changes nothing (0 g/kg)
        assert set(c.sources) == {*FACTOR_NAMES, "already_recycled"}, c.key
        assert all(s.strip() for s in c.sources.values()), c.key
    # every reference listed in [sources] is cited by some number (PROXY in capitals)
    cited = " ".join([mix.source, *(s for c in m.categories.values() for s in c.sources.values())])
    assert {"ipcc2006_v5", "ar5_gwp", "mee_grid_2022", "tchobanoglous1993"} <= set(m.sources)
    assert [ref for ref in m.sources if ref not in cited.replace("PROXY", "proxy")] == []


def test_every_category_of_the_default_rules_is_covered() -> None:
    m = default_methodology()
    rules = default_rules()
    assert set(m.categories) == set(rules.categories)
    assert all(m.covers(k) for k in rules.categories)


def test_the_default_numbers() -> None:
    """The worked example of docs/methodology.md, its table, and which categories earn
    nothing."""
    m = default_methodology()
    paper = m.categories["paper"]
    assert (
        paper.recycling_g_per_kg,
        paper.landfill_g_per_kg,
        paper.incineration_g_per_kg,
        paper.incineration_credit_g_per_kg,
        paper.open_dumping_g_per_kg,
        paper.already_recycled_permille,
    ) == (102, 1107, 28, 845, 492, 500)
    # (500 × 1107 + 400 × (28 − 845) + 100 × 492 − 1000 × 102) // 1000
    assert paper.avoided_per_kg_g(m.default_mix) == 173
    assert m.reduction_per_kg_g("paper", "V1") == 173 * 500 // 1000 == 86
    assert m.reduction_g("paper", "V1", 2500) == 215
    table = {k: (c.already_recycled_permille, m.reduction_per_kg_g(k, "V1"))
             for k, c in m.categories.items()}  # fmt: skip
    assert table == {
        "paper": (500, 86), "cardboard": (800, 32), "plastic_pet": (900, 9),
        "plastic_hdpe": (500, 139), "plastic_mixed": (300, 195), "metal": (900, 0),
        "aluminium": (900, 0), "glass": (400, 0), "textiles": (250, 0), "batteries": (0, 0),
        "kitchen": (500, 3), "ewaste": (900, 0),
    }  # fmt: skip
    earned = {k for k in m.categories if m.reduction_per_kg_g(k, "V1") > 0}
    assert earned == {
        "paper",
        "cardboard",
        "plastic_pet",
        "plastic_hdpe",
        "plastic_mixed",
        "kitchen",
    }


def test_an_unknown_category_earns_nothing_and_says_so() -> None:
    m = default_methodology()
    assert not m.covers("gold")
    assert m.reduction_per_kg_g("gold", "V1") == 0
    assert m.reduction_g("gold", "V1", 10_000) == 0


# --- the reduction -----------------------------------------------------------------------


def test_a_village_mix_overrides_the_default() -> None:
    m = parse_methodology(_with_mix(BASE, "V9", "1.0", "0.0", "0.0"))
    assert m.mix_for("V9").landfill_permille == 1000
    assert m.mix_for("V1") is m.default_mix
    assert m.reduction_per_kg_g("paper", "V9") == (1107 - 102) * 500 // 1000
    assert m.reduction_per_kg_g("paper", "V1") == 86
    # all to a waste-to-energy plant: paper's lost power outweighs its fossil carbon
    m = parse_methodology(_with_mix(BASE, "V8", "0", "1", "0"))
    assert m.reduction_per_kg_g("paper", "V8") == 0
    assert m.reduction_per_kg_g("plastic_hdpe", "V8") == (2763 - 1809 - 102) * 500 // 1000


def test_a_share_of_0_6_leaves_40_percent_floored() -> None:
    text = _broken("already_recycled = 0.8\n", "already_recycled = 0.6\n")
    m = parse_methodology(text)
    cardboard = m.categories["cardboard"]
    assert cardboard.already_recycled_permille == 600
    avoided = cardboard.avoided_per_kg_g(m.default_mix)
    assert avoided == 162  # ⌊162.7⌋
    assert m.reduction_per_kg_g("cardboard", "V1") == 64 == avoided * 4 // 10  # ⌊64.8⌋
    assert m.reduction_g("cardboard", "V1", 9_000) == 576  # ⌊9 × 64⌋
    # share 0 changes nothing, share 1 leaves nothing
    for share, per_kg in (("0", 162), ("1", 0), ("1.0", 0), ("0.001", 161)):
        m = parse_methodology(_broken("already_recycled = 0.8\n", f"already_recycled = {share}\n"))
        assert m.reduction_per_kg_g("cardboard", "V1") == per_kg, share


def test_a_village_overrides_some_shares_and_keeps_the_others() -> None:
    m = parse_methodology(_with_shares(BASE, "V9", "{ cardboard = 0.95, plastic_pet = 1 }"))
    assert m.already_recycled_for("cardboard", "V9") == 950
    assert m.reduction_per_kg_g("cardboard", "V9") == 162 * 50 // 1000 == 8
    assert m.reduction_per_kg_g("plastic_pet", "V9") == 0
    assert m.reduction_per_kg_g("paper", "V9") == 86  # not named: the category's share
    assert m.mix_for("V9") is m.default_mix  # shares alone leave the village's mix alone
    assert m.reduction_per_kg_g("cardboard", "V1") == 32
    assert m.already_recycled_for("gold", "V9") == 0
    assert m.village_already_recycled["V9"].source == "village survey"
    # with a mix of its own as well: both apply
    both = _with_shares(_with_mix(BASE, "V7", "1", "0", "0"), "V7", "{ paper = 0 }", header=False)
    m = parse_methodology(both)
    assert m.reduction_per_kg_g("paper", "V7") == 1107 - 102
    assert m.reduction_per_kg_g("cardboard", "V7") == (1107 - 102) * 200 // 1000


def test_village_ids_are_kiosk_ids() -> None:
    m = parse_methodology(_with_mix(BASE, '"cun-3.east"', "0.2", "0.8", "0"))
    assert set(m.village_mixes) == {"cun-3.east"}


@given(
    factors=st.lists(st.integers(min_value=0, max_value=50_000), min_size=5, max_size=5),
    shares=st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=2),
    already=st.integers(min_value=0, max_value=1000),
    grams=st.integers(min_value=0, max_value=10**8),
)
def test_the_reduction_is_never_negative(
    factors: list[int], shares: list[int], already: int, grams: int
) -> None:
    low, high = sorted(shares)
    mix = Mix(low, high - low, 1000 - high, "s")
    recycling, landfill, incineration, credit, dumping = factors
    cat = CategoryFactors(
        "x", recycling, landfill, incineration, credit, dumping, MappingProxyType({}), already
    )
    per_kg = cat.reduction_per_kg_g(mix, already)
    assert 0 <= per_kg <= cat.avoided_per_kg_g(mix)
    exact = (
        mix.landfill_permille * landfill
        + mix.incineration_permille * (incineration - credit)
        + mix.open_dumping_permille * dumping
        - 1000 * recycling
    )
    assert per_kg == max(0, exact // 1000) * (1000 - already) // 1000
    m = dataclasses.replace(
        default_methodology(), categories=MappingProxyType({"x": cat}), default_mix=mix
    )
    assert 0 <= m.reduction_g("x", "V1", grams) == grams * per_kg // 1000


def test_entries_are_floored_on_their_own() -> None:
    m = default_methodology()
    assert m.reduction_g("paper", "V1", 6) == 0  # 6 × 86 / 1000 = 0.516 g
    # two entries never earn more than their weight deposited at once
    assert m.reduction_g("paper", "V1", 6) * 2 <= m.reduction_g("paper", "V1", 12) == 1
    with pytest.raises(ValueError, match="negative"):
        m.reduction_g("paper", "V1", -1)


# --- the split ---------------------------------------------------------------------------


def _split(gross_g: int, uncertainty: str = "0.0", buffer: str = "0.10") -> tuple[int, int, int]:
    text = _broken("uncertainty_deduction = 0.10", f"uncertainty_deduction = {uncertainty}")
    text = text.replace("buffer_share = 0.10", f"buffer_share = {buffer}", 1)
    return parse_methodology(text).split(gross_g)


def test_split_edge_cases() -> None:
    assert _split(0) == (0, 0, 0)
    assert _split(999) == (0, 0, 0)  # below a whole kg: nothing issued
    assert _split(1000) == (1, 1, 0)  # one unit: the buffer's tenth rounds up to it
    assert _split(10_000) == (10, 1, 9)  # exactly 10 kg
    assert _split(10_999) == (10, 1, 9)  # the 999 g remainder is not issued
    assert _split(11_000) == (11, 2, 9)  # 1.1 buffer units round up to 2
    assert _split(11_000, buffer="0") == (11, 0, 11)
    # the uncertainty deduction comes first: 1,112 g → 1,000 g → 1 unit
    assert _split(1112, uncertainty="0.10") == (1, 1, 0)
    assert _split(1111, uncertainty="0.10") == (0, 0, 0)
    assert default_methodology().split(500 * 215) == (96, 10, 86)  # docs: a month of paper
    with pytest.raises(ValueError, match="negative"):
        default_methodology().split(-1)


@given(
    gross=st.integers(min_value=0, max_value=10**13),
    uncertainty=st.integers(min_value=0, max_value=999),
    buffer=st.integers(min_value=0, max_value=999),
)
def test_split_always_adds_up(gross: int, uncertainty: int, buffer: int) -> None:
    m = dataclasses.replace(
        default_methodology(), uncertainty_permille=uncertainty, buffer_permille=buffer
    )
    total, held, issued = m.split(gross)
    assert issued + held == total
    assert min(total, held, issued) >= 0
    assert total * 1000 <= gross * (1000 - uncertainty) // 1000 < (total + 1) * 1000
    assert held * 1000 >= total * buffer > (held - 1) * 1000  # rounded up, by less than one


# --- vintage -----------------------------------------------------------------------------


def test_vintage_is_the_local_calendar_month() -> None:
    m = default_methodology()

    def ms(month: int, day: int, hour: int, year: int = 2026) -> int:
        return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)

    assert m.vintage_of(ms(1, 31, 16) - 1) == "2026-01"  # 23:59:59.999 in Shanghai
    assert m.vintage_of(ms(1, 31, 16)) == "2026-02"  # midnight in Shanghai
    assert m.vintage_of(ms(12, 31, 16)) == "2027-01"


# --- malformed files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "needle", "message"),
    [
        (
            'vintage = "deposit_month"',
            'colour = "green"\nvintage = "deposit_month"',
            "colour",
            "colour",
            "unknown key",
        ),
        (
            "landfill = 1.107\n",
            "landfil = 1.107\n",
            "categories.paper.landfil",
            "landfil =",
            "unknown key",
        ),
        ("landfill = 1.107\n", "landfill = -1.107\n", "categories.paper.landfill", "-1.107", "≥ 0"),
        (
            "open_dumping = 0.492\n",
            "open_dumping = 0.4925\n",
            "categories.paper.open_dumping",
            "0.4925",
            "3 decimals",
        ),
        (
            "incineration = 2.304\n",
            'incineration = "2.3"\n',
            "categories.plastic_pet.incineration",
            '"2.3"',
            "number",
        ),
        (
            PAPER_SOURCE_LINE,
            'landfill_source = " "\n',
            "categories.paper.landfill_source",
            'landfill_source = " "',
            "empty",
        ),
        (
            "mix = { landfill = 0.5, incineration = 0.4, open_dumping = 0.1 }",
            "mix = { landfill = 0.5, incineration = 0.4, open_dumping = 0.2 }",
            "baseline.mix",
            "open_dumping = 0.2 }",
            "add up to 1 (they add up to 1.1)",
        ),
        (
            "mix = { landfill = 0.5, incineration = 0.4, open_dumping = 0.1 }",
            "mix = { landfill = 1.5, incineration = -0.4, open_dumping = -0.1 }",
            "baseline.mix.landfill",
            "landfill = 1.5",
            "at most 1",
        ),
        (
            "mix = { landfill = 0.5, incineration = 0.4, open_dumping = 0.1 }",
            "mix = { landfill = 0.5, incineration = 0.4, dumping = 0.1 }",
            "baseline.mix.dumping",
            "dumping = 0.1 }",
            "unknown key",
        ),
        (
            "mix = { landfill = 0.5, incineration = 0.4, open_dumping = 0.1 }",
            "mix = { landfill = 0.6, incineration = 0.4 }",
            "baseline.mix",
            "landfill = 0.6",
            "missing required key 'open_dumping'",
        ),
        (
            "uncertainty_deduction = 0.10",
            "uncertainty_deduction = 1",
            "uncertainty_deduction",
            "uncertainty_deduction = 1",
            "below 1",
        ),
        (
            "buffer_share = 0.10",
            "buffer_share = -0.05",
            "buffer_share",
            "buffer_share = -0.05",
            "≥ 0",
        ),
        (
            'vintage = "deposit_month"',
            'vintage = "deposit_day"',
            "vintage",
            "deposit_day",
            "deposit_month",
        ),
        (
            'timezone = "Asia/Shanghai"',
            'timezone = "Mars/Olympus"',
            "timezone",
            "Mars/Olympus",
            "time zone",
        ),
        (
            'version = "gp-recyclables-2026.12.1"',
            'version = ""',
            "version",
            'version = ""',
            "empty",
        ),
        (
            "already_recycled = 0.8\n",
            "already_recycled = 1.2\n",
            "categories.cardboard.already_recycled",
            "already_recycled = 1.2",
            "at most 1",
        ),
        (
            "already_recycled = 0.8\n",
            "already_recycled = -0.8\n",
            "categories.cardboard.already_recycled",
            "already_recycled = -0.8",
            "≥ 0",
        ),
        (
            "already_recycled = 0.8\n",
            "already_recycled = 0.8005\n",
            "categories.cardboard.already_recycled",
            "already_recycled = 0.8005",
            "3 decimals",
        ),
        (
            "already_recycled = 0.8\n",
            'already_recycled = "80 %"\n',
            "categories.cardboard.already_recycled",
            'already_recycled = "80 %"',
            "number",
        ),
        (
            "already_recycled = 0.8\n",
            "already_recyled = 0.8\n",
            "categories.cardboard.already_recyled",
            "already_recyled = 0.8",
            "unknown key",
        ),
        ("\n[sources]\n", "\n[sources]\nBad-Id = 'x'\n", "sources.Bad-Id", "Bad-Id", "source ids"),
    ],
)
def test_malformed_files_name_key_and_line(
    old: str, new: str, key: str, needle: str, message: str
) -> None:
    text = _broken(old, new)
    with pytest.raises(MethodologyError) as info:
        parse_methodology(text, "meth.toml")
    err = info.value
    assert err.key == key, str(err)
    assert err.line == _line(text, needle), str(err)
    assert f"meth.toml:{err.line}" in str(err) and key in str(err) and message in str(err)


@pytest.mark.parametrize(
    ("old", "table"),
    [
        (PAPER_SOURCE_LINE, "[categories.paper]"),  # a factor without its source
        ("recycling = 0.102\n", "[categories.paper]"),  # a source without its factor
        ('source = "PROXY: no published', "[baseline]"),  # a mix without its source
    ],
)
def test_a_missing_key_names_its_table(old: str, table: str) -> None:
    text = _broken(old, "# " + old)
    with pytest.raises(MethodologyError) as info:
        parse_methodology(text, "meth.toml")
    assert info.value.key == table.strip("[]")
    assert "missing required key" in str(info.value)
    assert info.value.line == _line(text, table)


def test_village_tables_are_checked_like_the_baseline() -> None:
    text = _with_mix(BASE, "V9", "0.5", "0.5", "0.1")
    with pytest.raises(MethodologyError) as info:
        parse_methodology(text)
    assert info.value.key == "villages.V9.mix" and "add up to 1" in str(info.value)
    assert info.value.line == len(text.splitlines()) - 1
    with pytest.raises(MethodologyError) as info:
        parse_methodology(_with_mix(BASE, "-x", "1", "0", "0"))
    assert info.value.key == "villages.-x" and "village ids" in str(info.value)
    with pytest.raises(MethodologyError) as info:
        parse_methodology(
            _with_mix(BASE, "V9", "1", "0", "0").replace('source = "county records"\n', "")
        )
    assert info.value.key == "villages.V9" and "'source'" in str(info.value)


def _last_line(text: str, prefix: str) -> int:
    """The last line that starts with `prefix` (the shipped file's comments show examples
    of the same keys, so the first match would be a comment)."""
    return max(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(prefix))


@pytest.mark.parametrize(
    ("shares", "key", "where", "message"),
    [
        ("{ gold = 0.5 }", "villages.V9.already_recycled.gold", "already_recycled =",
         "unknown category"),
        ("{ cardboard = 1.5 }", "villages.V9.already_recycled.cardboard", "already_recycled =",
         "at most 1"),
        ("{ cardboard = -0.5 }", "villages.V9.already_recycled.cardboard", "already_recycled =",
         "≥ 0"),
        ("{ cardboard = 0.9505 }", "villages.V9.already_recycled.cardboard",
         "already_recycled =", "3 decimals"),
        ("0.95", "villages.V9.already_recycled", "already_recycled =", "must be dict"),
        ("{}", "villages.V9.already_recycled", "already_recycled =", "at least one category"),
    ],
)  # fmt: skip
def test_bad_village_shares_name_key_and_line(
    shares: str, key: str, where: str, message: str
) -> None:
    text = _with_shares(BASE, "V9", shares)
    with pytest.raises(MethodologyError) as info:
        parse_methodology(text, "meth.toml")
    err = info.value
    assert err.key == key, str(err)
    assert err.line == _last_line(text, where), str(err)
    assert f"meth.toml:{err.line}" in str(err) and key in str(err) and message in str(err)


def test_a_village_table_needs_each_share_with_its_source() -> None:
    source_line = 'already_recycled_source = "village survey"\n'
    cases = [
        # a share without its source, a source without its share: the table is named
        (_with_shares(BASE, "V9", "{ cardboard = 0.9 }").replace(source_line, ""),
         "villages.V9", "[villages.V9]", "missing required key 'already_recycled_source'"),
        (BASE + '\n[villages.V9]\nalready_recycled_source = "survey"\n',
         "villages.V9", "[villages.V9]", "missing required key 'already_recycled'"),
        (_with_shares(BASE, "V9", "{ cardboard = 0.9 }").replace('"village survey"', '""'),
         "villages.V9.already_recycled_source", "already_recycled_source =", "empty"),
        (BASE + "\n[villages.V9]\n", "villages.V9", "[villages.V9]",
         "needs a mix or already_recycled"),
        (BASE + "\n[villages.V9]\nalready_recyled = { paper = 0.1 }\n",
         "villages.V9.already_recyled", "already_recyled =", "unknown key"),
    ]  # fmt: skip
    for text, key, where, message in cases:
        with pytest.raises(MethodologyError) as info:
            parse_methodology(text, "meth.toml")
        err = info.value
        assert (err.key, err.line) == (key, _last_line(text, where)), str(err)
        assert message in str(err), str(err)


def test_a_category_share_comes_with_its_source() -> None:
    lines = BASE.splitlines(keepends=True)
    glass = next(i for i, ln in enumerate(lines) if ln.startswith("already_recycled = 0.4"))
    share, source = lines[glass], lines[glass + 1]
    assert source.startswith("already_recycled_source = ")
    for text, message, where in (
        (BASE.replace(source, ""), "missing required key 'already_recycled_source'",
         "[categories.glass]"),
        (BASE.replace(share, ""), "missing required key 'already_recycled'", "[categories.glass]"),
        (BASE.replace(source, 'already_recycled_source = "  "\n'), "must not be empty",
         'already_recycled_source = "  "'),
    ):  # fmt: skip
        with pytest.raises(MethodologyError) as info:
            parse_methodology(text, "meth.toml")
        assert info.value.key is not None and info.value.key.startswith("categories.glass")
        assert info.value.line == _line(text, where) and message in str(info.value)


# --- the version before already-recycled shares ----------------------------------------


def test_the_old_version_is_unchanged_and_its_missing_shares_are_0() -> None:
    assert hashlib.sha256(OLD_PATH.read_bytes()).hexdigest() == OLD_SHA256
    old, new = load_methodology(OLD_PATH), default_methodology()
    assert old.version == "gp-recyclables-2026.12" != new.version
    assert "already_recycled" not in old.text
    assert old.village_already_recycled == {}
    for c in old.categories.values():
        assert c.already_recycled_permille == 0 and set(c.sources) == FACTOR_NAMES
    # what it gave when units were issued under it (its docs' worked example)
    assert old.reduction_per_kg_g("paper", "V1") == 173
    assert old.reduction_g("paper", "V1", 2500) == 432
    assert old.split(500 * 432) == (194, 20, 174)
    # the new version changes the shares only: every avoided figure is the old reduction
    assert set(new.categories) == set(old.categories)
    for key, c in new.categories.items():
        assert c.avoided_per_kg_g(new.default_mix) == old.reduction_per_kg_g(key, "V1"), key
        assert new.reduction_per_kg_g(key, "V1") <= old.reduction_per_kg_g(key, "V1")


def test_toml_syntax_errors_and_unreadable_files(tmp_path: Path) -> None:
    text = _broken("recycling = 0.102\n", "recycling = = 0.102\n")
    with pytest.raises(MethodologyError) as info:
        parse_methodology(text)
    assert info.value.line == _line(text, "recycling = = 0.102")
    with pytest.raises(MethodologyError, match="cannot read"):
        load_methodology(tmp_path / "nope.toml")
    assert issubclass(MethodologyError, ConfigError) and issubclass(MethodologyError, ValueError)


# --- docs --------------------------------------------------------------------------------


def test_every_key_is_documented() -> None:
    doc = (ROOT / "docs" / "methodology.md").read_text(encoding="utf-8")
    keys = set(re.findall(r"^([a-z_0-9]+) =", BASE, re.M))
    assert {"uncertainty_deduction", "mix", "incineration_credit", "ipcc2006_v5"} <= keys
    assert {"already_recycled", "already_recycled_source", "zhang_wen_2014"} <= keys
    assert not [k for k in keys if f"`{k}`" not in doc]
    assert "greenpass/record/data/methodology-default.toml" in doc
