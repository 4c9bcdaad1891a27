"""`greenpass demo --no-wait`: the whole demo in a subprocess on free ports.

Central, Mosquitto and two simulated kiosks start; the built-in scenario runs;
central's totals are compared with the two kiosks' own ledgers (here, read
independently of the demo's own check); and nothing is left running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from central.reports import village_totals
from central.store import CentralStore
from devkit.mqtt_broker import free_port, mosquitto_binary
from simulator.demo import DemoError, DemoInfo, Ports, check_folder, fresh_folder

ROOT = Path(__file__).resolve().parents[2]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that name `text` (e.g. the demo folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def kiosk_sums(db: Path) -> tuple[Counter[str], int, int, int, int]:
    """Grams per category, deposits, points issued, points redeemed, CO2e: one ledger,
    net of reversals (the scenario makes none, which the query also checks)."""
    with closing(sqlite3.connect(db)) as c:
        assert c.execute("SELECT COUNT(*) FROM entries WHERE kind = 'reversal'").fetchone() == (0,)
        grams: Counter[str] = Counter()
        for cat, g in c.execute(
            "SELECT category, SUM(grams) FROM entries WHERE kind = 'deposit' GROUP BY category"
        ):
            grams[cat] += g
        ((deposits, co2e),) = c.execute(
            "SELECT COUNT(*), COALESCE(SUM(co2e_g), 0) FROM entries WHERE kind = 'deposit'"
        )
        ((issued,),) = c.execute(
            "SELECT COALESCE(SUM(points), 0) FROM entries WHERE kind IN ('deposit', 'award')"
        )
        ((redeemed,),) = c.execute(
            "SELECT COALESCE(-SUM(points), 0) FROM entries WHERE kind = 'redeem'"
        )
    return grams, deposits, issued, redeemed, co2e


def test_the_demo_runs_the_village_day_and_central_matches_the_kiosks(tmp_path: Path) -> None:
    mosquitto_binary()  # skips without Mosquitto (fails under CI=true)
    folder = tmp_path / "demo-data"
    began = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "greenpass", "demo", "--dir", str(folder), "--base-port", "0",
         "--no-wait"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=180,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    took = time.monotonic() - began
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "K0001    online, central's state applied" in out
    assert "K0002    online, central's state applied" in out
    assert "scenario passed" in out
    assert "its totals match the kiosks' ledgers" in out
    for name in ("K0001", "K0002", "central", "mosquitto"):
        assert f"stopped {name}\n" in out, out
    assert not processes_mentioning(str(folder)), "left running"

    info = json.loads((folder / "demo.json").read_text(encoding="utf-8"))
    assert set(info["kiosks"]) == {"K0001", "K0002"}
    assert info["docs"].endswith("/docs") and info["staff_pin"] == "2468"
    assert info["kiosks"]["K0001"]["control"] == info["kiosks"]["K0001"]["url"] + "sim"

    # Central's copy, read from its database, against the two ledgers read here.
    grams: Counter[str] = Counter()
    deposits = issued = redeemed = co2e = 0
    heads = {}
    for device in ("K0001", "K0002"):
        db = folder / "kiosks" / device / "kiosk.db"
        g, d, i, red, c = kiosk_sums(db)
        grams += g
        deposits, issued, redeemed, co2e = deposits + d, issued + i, redeemed + red, co2e + c
        with closing(sqlite3.connect(db)) as conn:
            heads[device] = conn.execute("SELECT MAX(seq) FROM entries").fetchone()[0]
    with CentralStore.open(folder / "central.db") as store:
        totals = village_totals(store, "dongcun")
        acked = {d.device_id: d.acked_seq for d in store.devices()}
        assert store.count_entries() == sum(heads.values())
    assert acked == heads
    assert totals["grams_by_category"] == dict(grams)
    assert (totals["deposits"], totals["points_issued"]) == (deposits, issued)
    assert (totals["points_redeemed"], totals["co2e_g"]) == (redeemed, co2e)
    assert deposits == 8 and redeemed == 90 and grams["aluminium"] == 640
    assert took < 90, f"the demo took {took:.0f} s"


def test_the_village_day_runs_twice_on_one_demo(tmp_path: Path) -> None:
    """The built-in day on a demo that has been used (by the same day, just before):
    its expectations count from the state at the start, so it passes again."""
    mosquitto_binary()  # skips without Mosquitto (fails under CI=true)
    folder = tmp_path / "demo-data"
    log = (tmp_path / "demo.log").open("w+", encoding="utf-8")
    demo = subprocess.Popen(
        [sys.executable, "-m", "greenpass", "demo", "--dir", str(folder), "--base-port", "0"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "Stop everything with Ctrl-C" not in (tmp_path / "demo.log").read_text():
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.2)
        for run in (1, 2):
            r = subprocess.run(
                [sys.executable, "-m", "greenpass", "simulate", "scenario",
                 "simulator/scenarios/village-day.toml", "--demo-dir", str(folder)],
                capture_output=True, text=True, check=False, cwd=ROOT, timeout=180,
            )  # fmt: skip
            assert r.returncode == 0, f"run {run}:\n{r.stdout}{r.stderr}"
            assert "scenario passed" in r.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        finally:
            if demo.poll() is None:
                demo.kill()
            log.close()
    assert demo.returncode == 0, (tmp_path / "demo.log").read_text()
    with closing(sqlite3.connect(folder / "kiosks" / "K0002" / "kiosk.db")) as c:
        ((redeemed,),) = c.execute("SELECT -SUM(points) FROM entries WHERE kind = 'redeem'")
    assert redeemed == 2 * 90  # both days' redemptions; the soap beyond the balance refused
    assert not processes_mentioning(str(folder)), "left running"


def test_the_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(DemoError, match="holds files the demo did not make"):
        fresh_folder(tmp_path)
    assert (tmp_path / "thesis.tex").exists()
    ours = tmp_path / "demo"
    fresh_folder(ours)
    (ours / "central.db").write_text("old")
    fresh_folder(ours)  # a folder an earlier demo made is recreated
    assert not (ours / "central.db").exists()


def test_a_folder_whose_demo_still_runs_is_left_alone(tmp_path: Path) -> None:
    fresh_folder(tmp_path / "demo")
    alive = os.getppid()  # a process that surely runs: pytest's parent
    DemoInfo(str(tmp_path / "demo"), "dongcun", alive, "", "", "", "", "2468").write()
    with pytest.raises(DemoError, match=f"a demo is already running in .* \\(pid {alive}\\)"):
        check_folder(tmp_path / "demo")
    assert (tmp_path / "demo" / "demo.json").exists()


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    base = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 1))
        with pytest.raises(DemoError, match=f"port {base + 1} on 127.0.0.1 is in use"):
            Ports.choose(base, 2)
    ports = Ports.choose(0, 3)
    assert len({ports.central, ports.broker, *ports.kiosks}) == 5
