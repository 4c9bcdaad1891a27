"""The `greenpass` command: a villager end to end through the real CLI, clear
errors for bad input, and every command documented."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from greenpass.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def gp(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GREENPASS_DB": str(db)}
    return subprocess.run(
        [sys.executable, "-m", "greenpass", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def ok(db: Path, *args: str, stdin: str = "") -> str:
    r = gp(db, *args, stdin=stdin)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_villager_from_enrolment_to_verify(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    ok(db, "ledger", "init", "--device-id", "K7", "--village", "V1")
    ok(db, "ledger", "staff-add", "--id", "A1", "--name", "Wang", "--role", "admin", stdin="1234\n")
    enrol = json.loads(
        ok(db, "ledger", "enrol", "--staff", "A1", "--household", "张家", "--json", stdin="1234\n")
    )
    pb = enrol["passbook"]
    assert pb == "K7-00001"
    d = json.loads(
        ok(
            db,
            "ledger",
            "deposit",
            "--passbook",
            pb,
            "--category",
            "aluminium",
            "--grams",
            "1500",
            "--json",
        )
    )
    assert d["entries"][0]["points"] == 90 and d["balance"] == 90
    ok(
        db,
        "ledger",
        "item",
        "--staff",
        "A1",
        "--id",
        "rice",
        "--name-zh",
        "大米",
        "--name-en",
        "Rice",
        "--price",
        "40",
        stdin="1234\n",
    )
    ok(db, "ledger", "restock", "--staff", "A1", "--item", "rice", "--qty", "3", stdin="1234\n")
    r = json.loads(
        ok(
            db,
            "ledger",
            "redeem",
            "--staff",
            "A1",
            "--passbook",
            pb,
            "--item",
            "rice:2",
            "--json",
            stdin="1234\n",
        )
    )
    assert r["balance"] == 10
    text = ok(db, "ledger", "statement", "--passbook", pb)
    assert "张家" in text and "balance: 10 points" in text and "CO2e avoided: 15.096 kg" in text
    assert "stock 1" in ok(db, "ledger", "catalogue")
    assert "chain intact, 4 entries" in ok(db, "verify", str(db))


def test_replace_a_lost_card(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    ok(db, "ledger", "init", "--device-id", "K7", "--village", "V1")
    ok(db, "ledger", "staff-add", "--id", "A1", "--name", "Wang", "--role", "admin", stdin="1234\n")
    ok(db, "ledger", "enrol", "--staff", "A1", "--household", "张家", stdin="1234\n")
    ok(
        db,
        "ledger",
        "deposit",
        "--passbook",
        "K7-00001",
        "--category",
        "aluminium",
        "--grams",
        "1500",
    )
    out = ok(db, "ledger", "replace", "--staff", "A1", "--passbook", "K7-00001", stdin="1234\n")
    assert "#3 enrol  K7-00002 replaces K7-00001" in out
    assert "#4 villager_status  (replaced by K7-00002)" in out
    assert "passbook: K7-00002\nbalance: 90" in out
    r = gp(db, "ledger", "replace", "--staff", "A1", "--passbook", "K7-00001", stdin="1234\n")
    assert r.returncode == 2 and "already replaced by 'K7-00002'" in r.stderr
    assert "balance: 90 points" in ok(db, "ledger", "statement", "--passbook", "K7-00002")


def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    ok(db, "ledger", "init", "--device-id", "K7", "--village", "V1")
    for args, message in [
        (
            ("ledger", "deposit", "--passbook", "NOPE", "--category", "paper", "--grams", "900"),
            "no villager with passbook 'NOPE'",
        ),
        (
            ("ledger", "deposit", "--passbook", "NOPE", "--category", "paper", "--grams", "-5"),
            "positive whole number of grams",
        ),
        (
            ("ledger", "deposit", "--passbook", "X", "--category", "gold", "--grams", "900"),
            "no waste category 'gold'",
        ),
        (("ledger", "enrol", "--staff", "A1", "--household", "x"), "no staff member 'A1'"),
        (("ledger", "balance", "--passbook", "NOPE"), "no villager with passbook 'NOPE'"),
    ]:
        r = gp(db, *args, stdin="1234\n")
        assert r.returncode == 2
        assert message in r.stderr and "Traceback" not in r.stderr
    assert "chain intact, 0 entries" in ok(db, "verify", str(db))
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'version = "x"\n[factors]\nsource = "s"\n[categories.paper]\n'
        'name_zh = 1\nname_en = "Paper"\npoints_per_kg = 1\nmin_grams = 1\n'
        'daily_cap_grams = 9\nco2e_kg_per_kg = 1\nfactor_source = "s"\n'
    )
    r = gp(db, "rules", "check", str(bad))
    assert r.returncode == 2 and "bad.toml:5" in r.stderr
    assert "categories.paper.name_zh" in r.stderr and "must be str" in r.stderr


def _commands(parser: argparse.ArgumentParser, prefix: str = "greenpass") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found += _commands(sub, f"{prefix} {name}")
    return found


def _options(parser: argparse.ArgumentParser, prefix: str = "greenpass") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _options(sub, f"{prefix} {name}")
        else:
            found += [f"{prefix} {o}" for o in action.option_strings if o.startswith("--")]
    return found


def test_every_command_and_option_is_documented() -> None:
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    docs += (ROOT / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    commands = _commands(parser)
    assert "greenpass ledger deposit" in commands
    undocumented = [c for c in commands if c not in docs]
    assert not undocumented, f"document these in docs/: {undocumented}"
    options = [o for o in _options(parser) if not o.endswith(("--help", "--version"))]
    missing = [o for o in options if o.rsplit(" ", 1)[1] not in docs]
    assert not missing, f"document these options in docs/: {missing}"


def test_every_rules_key_is_documented() -> None:
    doc = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    keys = set(
        re.findall(
            r"^([a-z_]+) =",
            (ROOT / "greenpass/record/data/default-rules.toml").read_text(encoding="utf-8"),
            re.M,
        )
    )
    assert keys, "no keys found"
    assert not [k for k in keys if f"`{k}`" not in doc]
