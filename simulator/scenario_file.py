"""The scenario file: its TOML parsed and checked whole into `Scenario` and `Step`s.

`load` and `parse` check every key before anything runs: an unknown key, a
wrong type or two actions in one step raise `ScenarioError`, naming the step
number and the key. Running the steps against kiosks is `simulator.scenario`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenpass.errors import ConfigError

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
    "redeem_beyond": _text,
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
        elif self.action == "redeem_beyond":
            return f"{self.kiosk} redeem {value} beyond the balance"
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
