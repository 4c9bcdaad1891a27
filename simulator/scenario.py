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
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from greenpass.errors import ConfigError, GreenPassError

SCREENS = (
    "idle",
    "villager",
    "weighing",
    "committing",
    "confirmed",
    "refused",
    "staff_pin",
    "staff",
)
SCALE_ACTIONS = ("unplug", "replug", "overload", "torn", "garbage")
PLUG_ACTIONS = ("unplug", "replug")
NETWORK_ACTIONS = ("cut", "restore", "stall", "resume")
LANGUAGES = ("zh", "en")
TOP_KEYS = ("name", "description", "kiosk", "timeout", "step")
DEFAULT_TIMEOUT_S = 10.0
RETRY_TIMEOUT_S = 2.0  # the default wait for a step that is retried
MAX_GRAMS = 1_000_000


class ScenarioError(ConfigError):
    """The scenario file is wrong; `step` (1-based, 0 for the file) and `key` say where."""

    def __init__(self, path: Path, step: int, key: str | None, message: str) -> None:
        where = f"step {step}" if step else "the file"
        if key is not None:
            where += f", key '{key}'"
        super().__init__(f"{path}: {where}: {message}")
        self.step = step
        self.step_key = key


class StepFailed(GreenPassError, AssertionError):
    """A step's expectation did not hold (or the kiosk refused what the step asked)."""

    def __init__(self, step: Step, message: str) -> None:
        super().__init__(f"step {step.number} ({step.describe()}): {message}")
        self.step = step


# --- the file ---------------------------------------------------------------------------


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {v!r}")
        return str(v)

    return check


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"must be a whole number; got {v!r}")
    return v


def _grams(v: Any) -> int:
    g = _int(v)
    if not 0 < g <= MAX_GRAMS:
        raise ValueError(f"must be grams between 1 and {MAX_GRAMS}; got {g}")
    return g


def _true(v: Any) -> bool:
    if v is not True:
        raise ValueError("must be true (write e.g. `remove = true`)")
    return True


def _seconds(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 3600:
        raise ValueError(f"must be a number of seconds from 0 to 3600; got {v!r}")
    return float(v)


def _positive_seconds(v: Any) -> float:
    s = _seconds(v)
    if s <= 0:
        raise ValueError("must be more than 0 seconds")
    return s


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false; got {v!r}")
    return v


def _cart(v: Any) -> list[tuple[str, int]]:
    if not isinstance(v, list) or not v:
        raise ValueError('must be a non-empty list of [item, quantity], e.g. [["soap", 2]]')
    cart = []
    for line in v:
        if (
            not isinstance(line, list)
            or len(line) != 2
            or not isinstance(line[0], str)
            or isinstance(line[1], bool)
            or not isinstance(line[1], int)
            or line[1] <= 0
        ):
            raise ValueError(f"each line is [item id, quantity > 0]; got {line!r}")
        cart.append((line[0], line[1]))
    return cart


def _award(v: Any) -> tuple[int, str]:
    if not isinstance(v, dict) or set(v) != {"points", "reason"}:
        raise ValueError('must be a table { points = 20, reason = "…" }')
    points = _int(v["points"])
    if points <= 0:
        raise ValueError("points must be more than 0")
    return points, _text(v["reason"])


# Actions: what a step does (at most one per step). Checks: what it then expects.
ACTIONS: dict[str, Callable[[Any], Any]] = {
    "scan": _text,
    "scan_forged": _text,
    "category": _text,
    "place": _grams,
    "wobble": _grams,
    "remove": _true,
    "scale": _one_of(*SCALE_ACTIONS),
    "scanner": _one_of(*PLUG_ACTIONS),
    "button": _true,
    "network": _one_of(*NETWORK_ACTIONS),
    "cancel": _true,
    "language": _one_of(*LANGUAGES),
    "pin": _text,
    "task": _text,
    "redeem": _cart,
    "award": _award,
    "signout": _true,
    "sleep": _seconds,
}
CHECKS: dict[str, Callable[[Any], Any]] = {
    "expect": _one_of(*SCREENS),
    "expect_hint": _text,
    "expect_refusal": _text,
    "expect_message": _text,
    "expect_error": _text,
    "expect_points": _int,
    "expect_balance": _int,
    "expect_online": _bool,
    "expect_backlog": _int,
}
OTHER_KEYS: dict[str, Callable[[Any], Any]] = {
    "kiosk": _text,
    "say": _text,
    "timeout": _positive_seconds,
    "retry_s": _positive_seconds,
}
STEP_KEYS = (*ACTIONS, *CHECKS, *OTHER_KEYS)


@dataclass(frozen=True)
class Step:
    number: int
    kiosk: str
    action: str | None = None
    value: Any = None
    checks: Mapping[str, Any] = field(default_factory=dict)
    say: str = ""
    timeout: float = DEFAULT_TIMEOUT_S
    retry_s: float = 0.0

    def describe(self) -> str:
        if self.action is None:
            return f"{self.kiosk} check"
        value = self.value
        if self.action == "redeem":
            value = ", ".join(f"{item} ×{qty}" for item, qty in value)
        elif self.action == "award":
            value = f"{value[0]} points ({value[1]})"
        elif self.action in ("place", "wobble"):
            value = f"{value} g"
        elif self.action == "sleep":
            value = f"{value:g} s"
        elif value is True:
            return f"{self.kiosk} {self.action}"
        elif isinstance(value, str):
            value = repr(value)
        return f"{self.kiosk} {self.action} {value}"


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    description: str
    steps: tuple[Step, ...]

    @property
    def kiosks(self) -> tuple[str, ...]:
        """The kiosks the steps use, in order of first use."""
        return tuple(dict.fromkeys(s.kiosk for s in self.steps if s.action or s.checks))


def load(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(path, 0, None, f"cannot read it ({exc.strerror})") from exc
    return parse(text, path)


def parse(text: str, path: Path) -> Scenario:
    """The scenario in `text`, checked whole; `ScenarioError` names the step and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, 0, None, f"not valid TOML ({exc})") from exc
    for key in data:
        if key not in TOP_KEYS:
            raise ScenarioError(path, 0, key, f"unknown key (known: {', '.join(TOP_KEYS)})")

    def top(key: str, check: Callable[[Any], Any], default: Any) -> Any:
        if key not in data:
            return default
        try:
            return check(data[key])
        except ValueError as exc:
            raise ScenarioError(path, 0, key, str(exc)) from None

    name = top("name", _text, path.stem)
    description = top("description", _text, "")
    kiosk = top("kiosk", _text, None)
    timeout = top("timeout", _positive_seconds, DEFAULT_TIMEOUT_S)
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(path, 0, "step", "no steps: add [[step]] tables")
    steps = []
    for number, raw in enumerate(raw_steps, start=1):
        step = _parse_step(path, number, raw, kiosk, timeout)
        kiosk = step.kiosk
        steps.append(step)
    return Scenario(path, name, description, tuple(steps))


def _parse_step(path: Path, number: int, raw: Any, kiosk: str | None, timeout: float) -> Step:
    if not isinstance(raw, dict):
        raise ScenarioError(path, number, None, "must be a [[step]] table")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        check = ACTIONS.get(key) or CHECKS.get(key) or OTHER_KEYS.get(key)
        if check is None:
            raise ScenarioError(
                path, number, key, "unknown key (docs/demo.md lists every step key)"
            )
        try:
            values[key] = check(value)
        except ValueError as exc:
            raise ScenarioError(path, number, key, str(exc)) from None
    actions = [k for k in values if k in ACTIONS]
    if len(actions) > 1:
        raise ScenarioError(
            path, number, actions[1], f"a step does one thing; it already has '{actions[0]}'"
        )
    checks = {k: v for k, v in values.items() if k in CHECKS}
    if not actions and not checks and "say" not in values:
        raise ScenarioError(path, number, None, "does nothing: give an action, a check or say")
    kiosk = values.get("kiosk", kiosk)
    if kiosk is None and (actions or checks):
        raise ScenarioError(path, number, "kiosk", "missing (no earlier step or top key names one)")
    action = actions[0] if actions else None
    if "expect_error" in checks and action is None:
        raise ScenarioError(path, number, "expect_error", "needs an action to be refused")
    if "retry_s" in values and action is None:
        raise ScenarioError(path, number, "retry_s", "needs an action to repeat")
    retry_s = values.get("retry_s", 0.0)
    return Step(
        number=number,
        kiosk=kiosk or "",
        action=action,
        value=values[action] if action else None,
        checks=checks,
        say=values.get("say", ""),
        timeout=values.get("timeout", RETRY_TIMEOUT_S if retry_s else timeout),
        retry_s=retry_s,
    )


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


def shown_villager(view: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The villager on screen: the staff desk's (when staff serve one) or the session's."""
    staff = view.get("staff") or {}
    v = staff.get("villager") or view.get("villager")
    return v if isinstance(v, dict) else None


def _mismatches(step: Step, view: Mapping[str, Any], out: Outcome) -> list[str]:
    """What differs from the step's expectations (empty: all hold)."""
    c = step.checks
    bad = []

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
    villager = shown_villager(view)
    if "expect_balance" in c:
        want("expect_balance", "balance", (villager or {}).get("balance"))
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


def run_step(k: KioskClient, step: Step, *, poll_s: float = 0.1) -> float:
    """Do the step and wait for its expectations; the seconds it took. `StepFailed` if not."""
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
                problems = _mismatches(step, view, out)
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
    began = time.monotonic()
    try:
        for step in scenario.steps:
            if step.say:
                out(f"  ── {step.say}")
            if step.action is None and not step.checks:
                continue
            took = run_step(clients[step.kiosk], step)
            checks = _checks_text(step)
            checks = f"→ {checks}" if checks else ""
            out(f"  {step.number:>3} {step.describe():<44} {checks:<36} ok {took:.1f}s")
    finally:
        for c in clients.values():
            c.close()
    return time.monotonic() - began
