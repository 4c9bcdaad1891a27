"""Scripted days at running kiosks: `greenpass simulate scenario FILE`.

A scenario is a TOML file of steps. Each step does at most one thing at one
kiosk, the way a villager, a staff member or the demo operator would (through
the kiosk's JSON API and its simulator routes at `/sim`, never its page), then
checks what the kiosk shows, waiting up to a timeout::

    name = "A morning in Dongcun"
    kiosk = "K0001"                 # default kiosk for the steps

    [[step]]
    say = "Zhang brings cardboard"
    scan = "villager 张家"
    expect = "villager"

    [[step]]
    category = "cardboard"
    expect = "weighing"

    [[step]]
    place = 3250
    expect = "confirmed"
    expect_points = 32

`load` checks the whole file before anything runs: an unknown key, a wrong
type or two actions in one step stop it with a message naming the step number
and the key. `run` prints one line per step and raises `StepFailed` on the
first expectation that does not hold. Every key is documented in docs/demo.md.

Balances are counted from the start of the run (`StartBalances`): `expect_balance`
is what the villager gained or spent since the run first showed them, which on a
fresh demo is their balance. So a scripted day runs again on a demo that has been
used, and `redeem_beyond` asks for more than the villager has, whatever they have.

The file's parsing and checking live in `simulator.scenario_file` (re-exported
here); this module runs the steps against kiosks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from greenpass.errors import GreenPassError
from simulator.scenario_balances import StartBalances, shown_villager
from simulator.scenario_file import (
    ACTIONS,
    CHECKS,
    DEFAULT_TIMEOUT_S,
    LANGUAGES,
    MAX_GRAMS,
    NETWORK_ACTIONS,
    OTHER_KEYS,
    PLUG_ACTIONS,
    RETRY_TIMEOUT_S,
    SCALE_ACTIONS,
    SCREENS,
    STEP_KEYS,
    TOP_KEYS,
    Scenario,
    ScenarioError,
    Step,
    load,
    parse,
)

__all__ = [
    "ACTIONS",
    "CHECKS",
    "DEFAULT_TIMEOUT_S",
    "LANGUAGES",
    "MAX_GRAMS",
    "NETWORK_ACTIONS",
    "OTHER_KEYS",
    "PLUG_ACTIONS",
    "RETRY_TIMEOUT_S",
    "SCALE_ACTIONS",
    "SCREENS",
    "STEP_KEYS",
    "TOP_KEYS",
    "Card",
    "KioskClient",
    "Outcome",
    "Scenario",
    "ScenarioError",
    "StartBalances",
    "Step",
    "StepFailed",
    "find_card",
    "load",
    "parse",
    "run",
    "run_step",
    "shown_villager",
]


class StepFailed(GreenPassError, AssertionError):
    """A step's expectation did not hold (or the kiosk refused what the step asked)."""

    def __init__(self, step: Step, message: str) -> None:
        super().__init__(f"step {step.number} ({step.describe()}): {message}")
        self.step = step


# --- running it -------------------------------------------------------------------------


class KioskClient:
    """One running kiosk, through its HTTP API only (as the page and the operator use it)."""

    def __init__(self, name: str, url: str, *, timeout_s: float = 10.0) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str) -> dict[str, Any]:
        try:
            r = self.http.get(path)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            raise GreenPassError(f"kiosk {self.name} at {self.url}{path}: {exc}") from exc
        body = r.json()
        if not isinstance(body, dict):
            raise GreenPassError(f"kiosk {self.name}: {path} did not answer a JSON object")
        return body

    def view(self) -> dict[str, Any]:
        return self._get("/api/view")

    def catalogue(self) -> list[dict[str, Any]]:
        items = self._get("/api/catalogue").get("items", [])
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    def sim_state(self) -> dict[str, Any]:
        return self._get("/sim/state")

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            return self.http.post(path, json=dict(body or {}))
        except httpx.HTTPError as exc:
            raise GreenPassError(f"kiosk {self.name} at {self.url}{path}: {exc}") from exc


@dataclass(frozen=True)
class Card:
    label: str
    index: int
    kind: str  # passbook / staff / ? (not a card)
    holder: str


def find_card(cards: list[dict[str, str]], label: str) -> Card:
    """The card whose label is `label`, starts with it, or (once only) contains it."""
    labels = [str(c.get("label", "")) for c in cards]
    for match in (
        lambda lab: lab == label,
        lambda lab: lab.startswith(label),
        lambda lab: label in lab,
    ):
        hits = [i for i, lab in enumerate(labels) if match(lab)]
        if len(hits) == 1:
            i = hits[0]
            parts = str(cards[i].get("payload", "")).split(":")
            kind = {"P": "passbook", "S": "staff"}.get(parts[1] if len(parts) > 1 else "", "?")
            holder = parts[3] if len(parts) > 3 else ""
            return Card(labels[i], i, kind, holder)
        if len(hits) > 1:
            raise LookupError(f"{label!r} matches {len(hits)} cards: {[labels[i] for i in hits]}")
    raise LookupError(f"no card labelled {label!r}; the cards are: {labels}")


@dataclass
class Outcome:
    """What the action answered: None, or the refusal code and message when it was refused."""

    refused: tuple[str, str] | None = None
    card: Card | None = None


def _act(k: KioskClient, step: Step) -> Outcome:
    a, v = step.action, step.value
    if a is None:
        return Outcome()
    if a == "sleep":
        time.sleep(v)
        return Outcome()
    card = None
    body: dict[str, Any]
    if a in ("scan", "scan_forged"):
        try:
            card = find_card(list(k.sim_state().get("cards", [])), v)
        except LookupError as exc:
            raise StepFailed(step, f"on {k.name}: {exc}") from None
        path, body = "/sim/scan", {"card" if a == "scan" else "forged": card.index}
    elif a in ("place", "wobble"):
        path, body = "/sim/scale", {"action": a, "grams": v}
    elif a == "remove":
        path, body = "/sim/scale", {"action": "remove"}
    elif a in ("scale", "scanner", "network"):
        path, body = f"/sim/{a}", {"action": v}
    elif a == "button":
        path, body = "/sim/button", {}
    elif a == "category":
        path, body = "/api/category", {"category": v}
    elif a == "cancel":
        path, body = "/api/cancel", {}
    elif a == "language":
        path, body = "/api/language", {"lang": v}
    elif a == "pin":
        path, body = "/api/staff/pin", {"pin": v}
    elif a == "task":
        path, body = "/api/staff/task", {"task": v}
    elif a == "redeem":
        path, body = "/api/staff/redeem", {"cart": [list(line) for line in v]}
    elif a == "redeem_beyond":
        path, body = "/api/staff/redeem", {"cart": [[v, _beyond_balance(k, step, v)]]}
    elif a == "award":
        path, body = "/api/staff/award", {"points": v[0], "reason": v[1]}
    elif a == "signout":
        path, body = "/api/staff/signout", {}
    else:  # pragma: no cover - ACTIONS and this list are kept together
        raise AssertionError(a)
    r = k.post(path, body)
    if r.status_code == 200:
        return Outcome(card=card)
    try:
        answer = r.json()
    except ValueError:
        answer = {}
    answer = answer if isinstance(answer, dict) else {}
    code = str(answer.get("code") or f"http_{r.status_code}")
    message = str(answer.get("message") or answer.get("error") or r.text[:200])
    if path.startswith("/sim/"):  # the simulator refused: the scenario asked something wrong
        raise StepFailed(step, f"{k.name} {path} answered {r.status_code}: {message}")
    return Outcome(refused=(code, message), card=card)


def _beyond_balance(k: KioskClient, step: Step, item: str) -> int:
    """How many of `item` are one more than the staff desk's villager can pay for."""
    villager = shown_villager(k.view())
    if villager is None or not isinstance(villager.get("balance"), int):
        raise StepFailed(step, f"no villager on {k.name}'s staff desk: scan a passbook first")
    prices = {i.get("id"): i.get("points") for i in k.catalogue()}
    price = prices.get(item)
    if not isinstance(price, int) or price <= 0:
        raise StepFailed(step, f"{k.name}'s catalogue has no item {item!r} with a price")
    return int(villager["balance"]) // price + 1


def _mismatches(
    step: Step, view: Mapping[str, Any], out: Outcome, balances: StartBalances
) -> list[str]:
    """What differs from the step's expectations (empty: all hold)."""
    c = step.checks
    bad = []
    villager = shown_villager(view)
    since = None if villager is None else balances.since_start(villager)

    def want(key: str, what: str, seen: Any) -> None:
        if key in c and seen != c[key]:
            bad.append(f"{what} {c[key]!r}, saw {seen!r}")

    want("expect", "screen", view.get("screen"))
    want("expect_hint", "hint", view.get("hint"))
    want("expect_refusal", "refusal", view.get("refusal"))
    want("expect_message", "staff message", (view.get("staff") or {}).get("message"))
    want("expect_points", "points", (view.get("result") or {}).get("points"))
    status = view.get("status") or {}
    want("expect_online", "online", status.get("online"))
    want("expect_backlog", "backlog", status.get("backlog"))
    if "expect_balance" in c:
        if since is None:
            bad.append(f"balance {c['expect_balance']!r} since the start, saw no villager")
        elif since[1] != c["expect_balance"]:
            start, gained = since
            bad.append(
                f"balance {c['expect_balance']!r} since the start, saw {gained!r} "
                f"({start} at the start, {start + gained} now)"
            )
    card = out.card
    if (
        card is not None
        and card.kind == "passbook"
        and step.action == "scan"
        and (c.get("expect") == "villager" or "expect_balance" in c)
    ):
        shown = (villager or {}).get("passbook")
        if shown != card.holder:
            bad.append(f"villager {card.holder!r} on screen, saw {shown!r}")
    return bad


def _checks_text(step: Step) -> str:
    names = {
        "expect": "",
        "expect_hint": "hint ",
        "expect_refusal": "refusal ",
        "expect_message": "staff message ",
        "expect_error": "refused ",
        "expect_points": "points ",
        "expect_balance": "balance ",
        "expect_online": "online ",
        "expect_backlog": "backlog ",
    }
    return ", ".join(f"{names[k]}{v}" for k, v in step.checks.items())


def run_step(
    k: KioskClient,
    step: Step,
    *,
    poll_s: float = 0.1,
    balances: StartBalances | None = None,
) -> float:
    """Do the step and wait for its expectations; the seconds it took. `StepFailed` if not.
    `balances`: the run's start balances (alone, the step's first sighting is the start)."""
    balances = balances if balances is not None else StartBalances()
    began = time.monotonic()
    while True:
        out = _act(k, step)
        problems: list[str] = []
        wanted = step.checks.get("expect_error")
        if out.refused is not None and out.refused[0] != wanted:
            problems.append(f"the kiosk refused: {out.refused[0]} ({out.refused[1]})")
        elif wanted is not None and out.refused is None:
            problems.append(f"expected it to be refused with {wanted!r}, but it was done")
        view: Mapping[str, Any] = {}
        if not problems:
            deadline = time.monotonic() + step.timeout
            while True:
                view = k.view()
                problems = _mismatches(step, view, out, balances)
                if not problems or time.monotonic() >= deadline:
                    break
                time.sleep(poll_s)
        if not problems:
            return time.monotonic() - began
        if step.retry_s and time.monotonic() - began < step.retry_s:
            time.sleep(0.5)
            continue
        waited = time.monotonic() - began
        context = ""
        if view:
            context = f" (screen {view.get('screen')!r}, hint {view.get('hint')!r}"
            context += f", refusal {view.get('refusal')!r})" if view.get("refusal") else ")"
        raise StepFailed(step, f"expected {'; '.join(problems)} after {waited:.1f} s{context}")


def run(
    scenario: Scenario,
    kiosks: Mapping[str, str],
    *,
    out: Callable[[str], None] = print,
) -> float:
    """Run every step against `kiosks` (name → base URL); the seconds it took.

    Prints one line per step; raises `StepFailed` at the first failed step.
    """
    missing = [name for name in scenario.kiosks if name not in kiosks]
    if missing:
        raise ScenarioError(
            scenario.path,
            0,
            "kiosk",
            f"the scenario uses {', '.join(missing)}, which is not among the running kiosks "
            f"({', '.join(kiosks) or 'none'})",
        )
    clients = {name: KioskClient(name, kiosks[name]) for name in scenario.kiosks}
    balances = StartBalances()
    began = time.monotonic()
    try:
        for step in scenario.steps:
            if step.say:
                out(f"  ── {step.say}")
            if step.action is None and not step.checks:
                continue
            took = run_step(clients[step.kiosk], step, balances=balances)
            checks = _checks_text(step)
            checks = f"→ {checks}" if checks else ""
            out(f"  {step.number:>3} {step.describe():<44} {checks:<36} ok {took:.1f}s")
    finally:
        for c in clients.values():
            c.close()
    return time.monotonic() - began
