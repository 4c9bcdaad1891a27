"""Rules files: the shipped defaults, the integer rounding rule, and clear errors
that name the key and line of a malformed file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenpass.errors import RulesError
from greenpass.record.rules import DEFAULT_RULES_PATH, default_rules, load_rules, parse_rules

BASE = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
CATEGORIES = {
    "paper",
    "cardboard",
    "plastic_pet",
    "plastic_hdpe",
    "plastic_mixed",
    "metal",
    "aluminium",
    "glass",
    "textiles",
    "batteries",
    "kitchen",
    "ewaste",
}


def test_defaults_cover_every_category_and_cite_their_factors() -> None:
    rules = default_rules()
    assert set(rules.categories) == CATEGORIES
    assert "(WARM) Version 16" in rules.factors_source
    for c in rules.categories.values():
        assert c.factor_source, c.key
        assert c.name_zh and c.name_en
        assert c.min_grams <= c.max_grams and c.daily_cap_grams >= c.min_grams
    # the proxies are named as such, and only they
    proxies = {k for k, c in rules.categories.items() if c.proxy}
    assert proxies == {"textiles", "batteries", "kitchen"}
    # WARM v16 recycling factors, MTCO2E/short ton → kg/kg (× 1000 / 907.18474)
    assert rules.categories["aluminium"].co2e_g_per_kg == 10_064  # −9.13
    assert rules.categories["paper"].co2e_g_per_kg == 3_913  # −3.55
    assert rules.categories["batteries"].co2e_g_per_kg == 0


@given(
    grams=st.integers(min_value=1, max_value=10**7),
    ppk=st.decimals(min_value=0, max_value=1000, places=3),
)
def test_points_are_floored_exactly(grams: int, ppk) -> None:
    text = BASE.replace("points_per_kg = 8\n", f"points_per_kg = {ppk}\n", 1)
    paper = parse_rules(text).categories["paper"]
    assert paper.points_for(grams) == int(grams * ppk / 1000)  # exact Decimal floor
    assert paper.points_for(grams) >= 0


def _broken(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def _line(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


@pytest.mark.parametrize(
    ("old", "new", "key", "needle"),
    [
        (
            "points_per_kg = 8\n",
            'points_per_kg = "eight"\n',
            "categories.paper.points_per_kg",
            'points_per_kg = "eight"',
        ),
        (
            "points_per_kg = 8\n",
            "points_per_kg = 8.0001\n",
            "categories.paper.points_per_kg",
            "8.0001",
        ),
        ("min_grams = 200\n", "min_grams = -1\n", "categories.paper.min_grams", "min_grams = -1"),
        (
            "max_grams = 50000\n",
            "max_grams = 100\n",
            "categories.paper.max_grams",
            "max_grams = 100",
        ),
        ("cooldown_seconds = 20", "cooldwn_seconds = 20", "cooldwn_seconds", "cooldwn_seconds"),
        (
            'name_en = "Glass"\n',
            'name_en = "Glass"\ncolour = "green"\n',
            "categories.glass.colour",
            "colour =",
        ),
        ('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"', "timezone", "Mars/Olympus"),
        (
            "co2e_kg_per_kg = 0.309",
            "co2e_kg_per_kg = -0.309",
            "categories.glass.co2e_kg_per_kg",
            "-0.309",
        ),
    ],
)
def test_malformed_rules_name_key_and_line(old, new, key, needle) -> None:
    text = _broken(old, new)
    with pytest.raises(RulesError) as info:
        parse_rules(text, "village.toml")
    err = info.value
    assert err.key == key
    assert err.line == _line(text, needle), str(err)
    assert f"village.toml:{err.line}" in str(err) and key in str(err)


def test_missing_key_names_its_table() -> None:
    text = _broken(
        'factor_source = "US EPA WARM v16 (Dec 2023), Containers, Packaging and '
        "Non-Durable Good Materials chapters, Glass: Glass",
        "# ",
    )
    with pytest.raises(RulesError) as info:
        parse_rules(text, "v.toml")
    assert info.value.key == "categories.glass"
    assert "factor_source" in str(info.value)
    assert info.value.line == _line(text, "[categories.glass]")


def test_toml_syntax_error_names_the_line() -> None:
    text = _broken("min_grams = 300\n", "min_grams = = 300\n")
    with pytest.raises(RulesError) as info:
        parse_rules(text, "v.toml")
    assert info.value.line == _line(text, "min_grams = = 300")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "nope.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "bin.toml")


def test_rules_install_versioning(ledger) -> None:
    newer = parse_rules(
        _broken('version = "cn-default-2026.11"', 'version = "v2"').replace(
            "points_per_kg = 8\n", "points_per_kg = 9\n", 1
        )
    )
    assert ledger.install_rules(newer)
    assert not ledger.install_rules(newer)
    clash = parse_rules(newer.text.replace("points_per_kg = 9\n", "points_per_kg = 7\n", 1))
    with pytest.raises(RulesError, match="already installed with different content"):
        ledger.install_rules(clash)
    other = parse_rules(
        newer.text.replace('village = "*"', 'village = "V2"').replace(
            'version = "v2"', 'version = "v3"'
        )
    )
    with pytest.raises(RulesError, match="for village 'V2'"):
        ledger.install_rules(other)
    pb = ledger.enrol("Ma household", staff_id="S1").passbook_id
    assert ledger.deposit(pb, "paper", 1000).rules_version == "v2"
