"""`greenpass demo`: central, a broker and simulated kiosks on one machine, in one command.

What it builds, afresh each time, in the demo folder (default `demo-data/`)::

    central.db         central's SQLite database: village dongcun, its rules and
                       goods, the village office's card-signing key (an issuer)
    central-home/      central.key, central.password, admin.token, office-dongcun.key
    broker/            Mosquitto's folder from `central.broker` (TLS with a dev CA,
                       passwd, ACL), exactly what `greenpass central broker-config` writes
    kiosks/K0001/ …    each kiosk: ledger, kiosk.toml, device key, MQTT password, CA
    logs/              mosquitto.log, central.log, K0001.log …
    demo.json          the URLs (`greenpass simulate scenario --demo-dir` reads it)

Then it starts Mosquitto and `greenpass central`, enrols every kiosk through
central's real HTTP enrolment API (`sync.enrol`), starts `greenpass kiosk` for
each, waits until each is online and holds central's state, and prints the URLs.
Children run in their own sessions so Ctrl-C reaches only this process, which
stops them in order: kiosks (they publish "offline"), central, broker.

Modules: `demo_folder` (the folder and demo.json), `demo_setup` (central's data and
the kiosks' folders), `demo_procs` (ports and child processes), `demo_runner` (the
`Demo` that starts and stops them), `demo_totals` (the ledgers' totals); this module
is the command, and re-exports their public names.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

from simulator import scenario
from simulator.demo_folder import (
    BUILTIN_SCENARIO,
    MARKER,
    OFFICE_KEY_ID,
    ROOT,
    VILLAGE,
    DemoError,
    DemoInfo,
    KioskInfo,
    check_folder,
    fresh_folder,
    load_demo_info,
    say,
)
from simulator.demo_procs import KIOSK_PORT_OFFSET, Child, Ports, mosquitto_binary
from simulator.demo_runner import START_TIMEOUT_S, Demo
from simulator.demo_setup import DEMO_OPERATOR, DEMO_PASSWORD, PASSBOOKS_PER_KIOSK, SURNAMES
from simulator.demo_totals import ledger_totals, sum_totals

__all__ = [
    "BUILTIN_SCENARIO",
    "KIOSK_PORT_OFFSET",
    "MARKER",
    "OFFICE_KEY_ID",
    "PASSBOOKS_PER_KIOSK",
    "ROOT",
    "START_TIMEOUT_S",
    "SURNAMES",
    "VILLAGE",
    "Child",
    "Demo",
    "DemoError",
    "DemoInfo",
    "KioskInfo",
    "Ports",
    "check_folder",
    "fresh_folder",
    "ledger_totals",
    "load_demo_info",
    "mosquitto_binary",
    "print_urls",
    "run_demo",
    "say",
    "sum_totals",
]


# --- the command --------------------------------------------------------------------------


def print_urls(info: DemoInfo, *, no_wait: bool = False) -> None:
    lines = ["", "The demo is running. Open:"]
    for name, k in info.kiosks.items():
        lines.append(f"  {name} kiosk page      {k.url}")
        lines.append(f"  {name} control page    {k.control}   (the bag, the cards, the network)")
    lines += [
        f"  operator console      {info.central}/   (log in as {DEMO_OPERATOR} / {DEMO_PASSWORD})",
        f"  central admin API     {info.docs}",
        f"      its CA            {_shown(Path(info.central_ca))}   (the demo's own: a browser "
        "warns until it trusts it)",
        f"      API token         {info.admin_token}   (Authorize → Bearer; the demo operator's)",
        f"  staff PIN             {info.staff_pin}   (scan a staff card on the control page)",
        f"  a scripted day:       greenpass simulate scenario {BUILTIN_SCENARIO.relative_to(ROOT)}"
        f" --demo-dir {_shown(Path(info.folder))}",
        f"  logs                  {_shown(Path(info.folder) / 'logs')}/",
        "Running the built-in scenario, then stopping."
        if no_wait
        else "Stop everything with Ctrl-C.",
    ]
    say("\n".join(lines))


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def run_demo(folder: Path, *, kiosks: int, base_port: int, no_wait: bool) -> int:
    """`greenpass demo`: start, print, wait for Ctrl-C (or run the scenario), stop."""
    if no_wait and kiosks < 2:
        raise DemoError("--no-wait runs the built-in scenario, which needs --kiosks 2 or more")
    stop = threading.Event()
    watching = False

    def on_signal(_sig: int, _frame: object) -> None:
        # While starting or scripting: stop at once (the `finally` below cleans up).
        if not watching:
            raise KeyboardInterrupt
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    demo = Demo(folder, kiosks=kiosks, base_port=base_port)
    try:
        info = demo.start()
        print_urls(info, no_wait=no_wait)
        if no_wait:
            code = _run_builtin(demo, info)
        else:
            watching = True
            code = demo.watch(stop)
    finally:
        if demo.children():
            say("\nStopping: kiosks, central, broker")
            demo.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    return code


def _run_builtin(demo: Demo, info: DemoInfo) -> int:

    sc = scenario.load(BUILTIN_SCENARIO)
    say(f"\nScenario '{sc.name}' ({BUILTIN_SCENARIO.name})")
    try:
        took = scenario.run(sc, {name: k.url for name, k in info.kiosks.items()})
    except scenario.StepFailed as exc:
        say(f"FAILED {exc}")
        return 1
    say(f"scenario passed: {len(sc.steps)} steps in {took:.1f} s")
    demo.wait_synced()
    central, kiosks = demo.compare_totals()
    if central != kiosks:
        say(f"FAILED: central's totals {central}\n  differ from the kiosks' ledgers {kiosks}")
        return 1
    kg = sum(central["grams_by_category"].values()) / 1000
    say(
        f"central holds every entry; its totals match the kiosks' ledgers: "
        f"{central['deposits']} deposits, {kg:.2f} kg, {central['points_issued']} points "
        f"issued, {central['points_redeemed']} redeemed, "
        f"{central['co2e_g'] / 1000:.2f} kg CO2e avoided"
    )
    return 0
