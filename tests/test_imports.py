"""scripts/check_imports.py: the import rules of docs/design.md §2, on a planted tree
that breaks each of them and on the real one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_imports.py"


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_real_tree_keeps_the_rules() -> None:
    r = check(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


def test_a_planted_tree_fails_on_each_offence_with_its_file_and_line(tmp_path: Path) -> None:
    plant(
        tmp_path,
        {
            "edge/__init__.py": "",
            # a cycle through a lazy import inside a function
            "edge/a.py": "from edge import b\n",
            "edge/b.py": "def f():\n    from edge.a import X\n    return X\n",
            # a cycle through TYPE_CHECKING only: never runs, not reported
            "edge/c.py": "from typing import TYPE_CHECKING\n\nfrom edge import d\n",
            "edge/d.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
            "    from edge.c import Y\n",
            "edge/ledger.py": "",
            "sync/__init__.py": "",
            "sync/x.py": "import json\nimport simulator.kiosk\n",
            "greenpass/__init__.py": "",
            "greenpass/cli.py": "import importlib\n\nMODULES = ('edge.cli', 'simulator.cli')\n\n"
            "def load():\n    return importlib.import_module('simulator.demo')\n",
            "central/__init__.py": "",
            "central/y.py": '"""Mentions simulator.kiosk in prose, which is fine."""\n\n'
            "from edge.ledger import thing\n",
            "central/z.py": "from provisioning import p\n",
            "provisioning/__init__.py": "",
            "provisioning/p.py": "from edge import ledger\n",
            # the simulator itself and tests may import anything
            "simulator/__init__.py": "",
            "simulator/kiosk.py": "from edge import a\n",
            "tests/test_x.py": "import simulator.kiosk\n",
            "tests/harness.py": "",
            "bench/__init__.py": "",
            "bench/run.py": "def main():\n    from tests.harness import Broker\n",
        },
    )
    r = check(tmp_path)
    assert r.returncode == 1
    lines = [line for line in r.stdout.splitlines() if not line.startswith("    ")]
    assert sorted(lines) == [
        "bench/run.py:2: bench/ imports tests.harness",
        "central/y.py:3: central imports the kiosk's edge.ledger",
        "central/z.py:1: central reaches the kiosk's edge.ledger <- provisioning.p <- central.z",
        "edge/a.py:1: import cycle: edge.a -> edge.b -> edge.a",
        "greenpass/cli.py:3: names a simulator module ('simulator.cli')",
        "greenpass/cli.py:6: imports the simulator (simulator.demo)",
        "sync/x.py:2: imports the simulator (simulator.kiosk)",
    ], r.stdout
    # Each step of a cycle is named with its file and line.
    assert "    edge/a.py:1 (edge.a -> edge.b)\n    edge/b.py:2 (edge.b -> edge.a)" in r.stdout
    assert "edge.c" not in r.stdout and "tests/" not in r.stdout and "simulator/" not in r.stdout
    assert "7 offence(s)" in r.stderr
