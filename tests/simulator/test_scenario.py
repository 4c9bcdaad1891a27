"""Scenario files: every mistake is caught before anything runs, and named by step and key;
the runner drives a real kiosk and stops at the first expectation that fails."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import scenario
from simulator.demo import BUILTIN_SCENARIO
from simulator.kiosk_home import make_kiosk_home
from simulator.scenario import ScenarioError, find_card, parse
from tests.kiosk.conftest import RunningKiosk, start_kiosk, stop_kiosk

ROOT = Path(__file__).resolve().parents[2]
HEAD = 'kiosk = "K0001"\n'


def fails(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse(text, Path("day.toml"))
    return info.value


def step(body: str, before: str = "[[step]]\nexpect = 'idle'\n") -> str:
    return HEAD + before + "[[step]]\n" + body


@pytest.mark.parametrize(
    ("text", "number", "key", "words"),
    [
        (step("scna = 'villager 张家'\n"), 2, "scna", "unknown key"),
        (step("place = '3250'\n"), 2, "place", "whole number"),
        (step("place = 0\n"), 2, "place", "between 1 and"),
        (step("place = true\n"), 2, "place", "whole number"),
        (step("expect = 'done'\n"), 2, "expect", "one of idle, villager"),
        (step("scan = 'x'\ncategory = 'paper'\n"), 2, "category", "already has 'scan'"),
        (step("remove = false\n"), 2, "remove", "must be true"),
        (step("network = 'unplug'\n"), 2, "network", "cut, restore, stall, resume"),
        (step("redeem = [['soap', 0]]\n"), 2, "redeem", "quantity > 0"),
        (step("redeem = []\n"), 2, "redeem", "non-empty list"),
        (step("award = { points = 20 }\n"), 2, "award", "points = 20, reason"),
        (step("award = { points = -1, reason = 'x' }\n"), 2, "award", "more than 0"),
        (step("expect_online = 'yes'\n"), 2, "expect_online", "true or false"),
        (step("expect_error = 'insufficient_points'\n"), 2, "expect_error", "needs an action"),
        (step("retry_s = 5\nexpect = 'idle'\n"), 2, "retry_s", "needs an action"),
        (step("timeout = 0\ncancel = true\n"), 2, "timeout", "more than 0"),
        (step("sleep = -1\n"), 2, "sleep", "seconds from 0 to 3600"),
        (step("scan = ''\n"), 2, "scan", "non-empty string"),
        (step("[step.nested]\n"), 2, "nested", "unknown key"),
        (step("kiosk = 'K0002'\n"), 2, None, "does nothing"),
        ("[[step]]\ncancel = true\n", 1, "kiosk", "missing"),
        (HEAD + "[[step]]\ncancel = true\n[[step]]\nwobble = 1.5\n", 2, "wobble", "whole number"),
    ],
)
def test_a_bad_step_is_named_by_number_and_key(
    text: str, number: int, key: str | None, words: str
) -> None:
    err = fails(text)
    assert (err.step, err.step_key) == (number, key)
    where = f"step {number}" + (f", key '{key}'" if key else "")
    assert str(err).startswith(f"day.toml: {where}: ")
    assert words in str(err)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (HEAD, "step", "no steps"),
        (HEAD + "steps = 1\n", "steps", "unknown key"),
        ("timeout = -3\n[[step]]\nsay = 'x'\n", "timeout", "from 0 to 3600"),
        ("step = 3\n", "step", "no steps"),
    ],
)
def test_a_bad_file_is_named(text: str, key: str, words: str) -> None:
    err = fails(text)
    assert (err.step, err.step_key) == (0, key)
    assert str(err).startswith(f"day.toml: the file, key '{key}': ")
    assert words in str(err)


def test_invalid_toml_is_refused_with_its_line() -> None:
    err = fails("[[step]]\nscan = villager\n")
    assert "not valid TOML" in str(err) and "line 2" in str(err)


def test_steps_inherit_the_kiosk_and_the_file_timeout() -> None:
    sc = parse(
        'kiosk = "K0001"\ntimeout = 4\n'
        "[[step]]\nsay = 'morning'\n"
        "[[step]]\nscan = 'villager 张家'\nexpect = 'villager'\n"
        "[[step]]\nkiosk = 'K0002'\nplace = 1250\nexpect = 'confirmed'\ntimeout = 20\n"
        "[[step]]\nredeem = [['soap', 2]]\nretry_s = 30\n",
        Path("day.toml"),
    )
    assert [s.kiosk for s in sc.steps] == ["K0001", "K0001", "K0002", "K0002"]
    assert [s.timeout for s in sc.steps] == [4, 4, 20, 2]  # a retried step waits 2 s a try
    assert sc.steps[0].action is None and sc.steps[0].say == "morning"
    assert sc.steps[3].value == [("soap", 2)] and sc.steps[3].retry_s == 30
    assert sc.kiosks == ("K0001", "K0002")
    assert sc.steps[2].describe() == "K0002 place 1250 g"


def test_the_builtin_scenario_parses_and_visits_both_kiosks() -> None:
    sc = scenario.load(BUILTIN_SCENARIO)
    assert sc.kiosks == ("K0001", "K0002")
    actions = {s.action for s in sc.steps}
    assert {"scan", "scan_forged", "place", "wobble", "network", "pin", "redeem"} <= actions
    assert any(s.checks.get("expect_hint") == "too_light" for s in sc.steps)


CARDS = [
    {"label": "staff 王丽 Wang Li (admin)", "payload": "GP1:S:dongcun:wang:office:SIG"},
    {"label": "villager 张家 DC1-0001 (K0001)", "payload": "GP1:P:dongcun:DC1-0001:office:SIG"},
    {"label": "villager 张家 DC3-0001 (K0003)", "payload": "GP1:P:dongcun:DC3-0001:office:SIG"},
    {"label": "villager 李家 DC1-0002 (K0001)", "payload": "GP1:P:dongcun:DC1-0002:office:SIG"},
]


def test_cards_are_found_by_label_start_or_part() -> None:
    assert find_card(CARDS, "staff 王丽").holder == "wang"
    card = find_card(CARDS, "villager 李家")
    assert (card.index, card.kind, card.holder) == (3, "passbook", "DC1-0002")
    assert find_card(CARDS, "DC3-0001").index == 2
    with pytest.raises(LookupError, match="matches 2 cards"):
        find_card(CARDS, "villager 张家")
    with pytest.raises(LookupError, match="no card labelled 'villager 周家'"):
        find_card(CARDS, "villager 周家")


# --- against a real kiosk process ---------------------------------------------------------


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningKiosk]:
    folder = tmp_path_factory.mktemp("scenario")
    k = start_kiosk(make_kiosk_home(folder / "K0001", "K0001", "dongcun"), folder / "kiosk.log")
    try:
        yield k
    finally:
        stop_kiosk(k)


def simulate(path: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenpass", "simulate", "scenario", str(path),
         "--kiosk", f"K0001={url}"],
        capture_output=True, text=True, check=False, cwd=ROOT, env=dict(os.environ),
        timeout=120,
    )  # fmt: skip


def test_a_scenario_runs_a_villager_and_staff_through_the_cli(
    kiosk: RunningKiosk, tmp_path: Path
) -> None:
    day = tmp_path / "day.toml"
    day.write_text(
        'name = "a short day"\nkiosk = "K0001"\n'
        "[[step]]\nsay = 'Zhang brings cans'\nscan = 'villager 张家'\nexpect = 'villager'\n"
        "expect_balance = 0\n"
        "[[step]]\ncategory = 'aluminium'\nexpect = 'weighing'\nexpect_hint = 'place_bag'\n"
        "[[step]]\nplace = 1000\nexpect = 'confirmed'\nexpect_points = 60\n"
        "expect_balance = 60\n"
        "[[step]]\nremove = true\n"
        "[[step]]\ncancel = true\nexpect = 'idle'\n"
        "[[step]]\nscan = 'staff 王丽'\nexpect = 'staff_pin'\n"
        "[[step]]\npin = '2468'\nexpect = 'staff'\n"
        "[[step]]\ntask = 'redeem'\n"
        "[[step]]\nscan = 'villager 张家'\nexpect_balance = 60\n"
        "[[step]]\nredeem = [['soap', 1]]\nexpect_message = 'ok'\nexpect_balance = 35\n"
        "[[step]]\nredeem = [['rice-5kg', 1]]\nexpect_error = 'insufficient_points'\n"
        "[[step]]\nsignout = true\nexpect = 'idle'\n",
        encoding="utf-8",
    )
    r = simulate(day, kiosk.url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "scenario 'a short day'" in r.stdout
    assert "── Zhang brings cans" in r.stdout
    assert "K0001 place 1000 g" in r.stdout and "points 60, balance 60" in r.stdout
    assert "scenario passed: 12 steps" in r.stdout


# Points change through staff only (no deposit's cooldown between two runs), for a
# villager the other tests leave alone.
AWARD_DAY = (
    'name = "an award day"\nkiosk = "K0001"\n'
    "[[step]]\nscan = 'villager 王家'\nexpect = 'villager'\nexpect_balance = 0\n"
    "[[step]]\ncancel = true\nexpect = 'idle'\n"
    "[[step]]\nscan = 'staff 王丽'\nexpect = 'staff_pin'\n"
    "[[step]]\npin = '2468'\nexpect = 'staff'\n"
    "[[step]]\ntask = 'award'\n"
    "[[step]]\nscan = 'villager 王家'\nexpect_balance = 0\n"
    "[[step]]\naward = { points = 60, reason = 'clean-up' }\nexpect_balance = 60\n"
    "[[step]]\ntask = 'redeem'\n"
    "[[step]]\nscan = 'villager 王家'\nexpect_balance = 60\n"
    "[[step]]\nredeem = [['soap', 2]]\nexpect_message = 'ok'\nexpect_balance = 10\n"
    "[[step]]\nredeem_beyond = 'soap'\nexpect_error = 'insufficient_points'\n"
    "expect_balance = 10\n"
    "[[step]]\nsignout = true\nexpect = 'idle'\n"
)


def test_a_day_runs_again_on_the_same_ledger(kiosk: RunningKiosk, tmp_path: Path) -> None:
    """Balances count from the start of each run: the second run starts where the first
    left the villager (10 points more), and "more soap than he has" still is."""
    day = tmp_path / "award-day.toml"
    day.write_text(AWARD_DAY, encoding="utf-8")
    for run in (1, 2):
        r = simulate(day, kiosk.url)
        assert r.returncode == 0, f"run {run}:\n{r.stdout}{r.stderr}"
        assert "K0001 redeem soap beyond the balance" in r.stdout
        assert "scenario passed: 12 steps" in r.stdout
    kiosk.scan("villager 王家")
    shown = kiosk.wait_view("villager", lambda v: v["screen"] == "villager")["villager"]
    assert shown["balance"] == 20  # two runs: 60 awarded, 50 spent, each time
    kiosk.post("/api/cancel")

    # A balance that does not hold names both ends.
    day.write_text(
        'kiosk = "K0001"\n[[step]]\nscan = "villager 王家"\nexpect_balance = 5\ntimeout = 0.5\n'
    )
    r = simulate(day, kiosk.url)
    assert r.returncode == 1
    assert "expected balance 5 since the start, saw 0 (20 at the start, 20 now)" in r.stderr
    kiosk.post("/api/cancel")


def test_the_first_failed_expectation_stops_the_run_with_exit_1(
    kiosk: RunningKiosk, tmp_path: Path
) -> None:
    day = tmp_path / "wrong.toml"
    day.write_text(
        'kiosk = "K0001"\n'
        "[[step]]\nscan = 'villager 李家'\nexpect = 'villager'\n"
        "[[step]]\ncategory = 'glass'\nexpect = 'weighing'\nexpect_hint = 'place_bag'\n"
        "[[step]]\nplace = 120\nexpect = 'confirmed'\ntimeout = 2\n"
        "[[step]]\nremove = true\n",
        encoding="utf-8",
    )
    r = simulate(day, kiosk.url)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED step 3 (K0001 place 120 g): expected screen 'confirmed', saw 'weighing'" in (
        r.stderr
    )
    assert "hint 'too_light'" in r.stderr and "step 4" not in r.stdout
    kiosk.sim("scale", action="remove")
    kiosk.post("/api/cancel")
    kiosk.post("/api/cancel")


def test_a_bad_file_touches_no_kiosk_and_exits_2(tmp_path: Path) -> None:
    day = tmp_path / "bad.toml"
    day.write_text('kiosk = "K0001"\n[[step]]\nscan = "x"\n[[step]]\nplace = "heavy"\n')
    r = simulate(day, "http://127.0.0.1:9")  # nothing listens there: never contacted
    assert r.returncode == 2
    assert f"{day}: step 2, key 'place': must be a whole number" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_unknown_card_or_kiosk_is_a_clear_failure(kiosk: RunningKiosk, tmp_path: Path) -> None:
    day = tmp_path / "cards.toml"
    day.write_text('kiosk = "K0001"\n[[step]]\nscan = "villager 周家"\nexpect = "villager"\n')
    r = simulate(day, kiosk.url)
    assert r.returncode == 1
    assert "step 1 (K0001 scan 'villager 周家'): on K0001: no card labelled" in r.stderr
    day.write_text('kiosk = "K0009"\n[[step]]\ncancel = true\n')
    r = simulate(day, kiosk.url)
    assert r.returncode == 2
    assert "uses K0009, which is not among the running kiosks (K0001)" in r.stderr
