"""Text controls for a running `SimulatedScale`, one per line (for `greenpass simulate scale`).

place GRAMS        the load becomes GRAMS         remove        empty the platform
noise GRAMS        +- jitter per sample           settle MS     settling time
drift G_PER_S      slow creep                     overload      more than capacity
miscalibrate F     span error factor (e.g. 1.02)  garbage [TEXT]  send junk bytes
torn               send half a frame              unplug / replug  the cable
status             show the displayed weight      help          this list
quit               stop (end of input does too)
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.scale.device import DEFAULT_GARBAGE, SimulatedScale

Action = Callable[[SimulatedScale, float], str]
HELP = __doc__.split("\n\n", 1)[1].rstrip() if __doc__ else ""


class ControlError(ValueError):
    """A control line the simulator does not understand; the message says why."""


def apply(sim: SimulatedScale, line: str) -> str:
    """Carry out one control line and return a short confirmation. Raises ControlError."""
    words = line.split()
    if not words:
        return ""
    name, args = words[0].lower(), words[1:]
    if name == "garbage":
        sim.inject_garbage(" ".join(args).encode() if args else DEFAULT_GARBAGE)
        return "sent garbage"
    action = _ACTIONS.get(name)
    if action is None:
        raise ControlError(f"unknown control {name!r}; type 'help'")
    takes_number, run = action
    if takes_number and len(args) != 1:
        raise ControlError(f"{name} takes one number")
    if not takes_number and args:
        raise ControlError(f"{name} takes no arguments")
    try:
        number = float(args[0]) if takes_number else 0.0
    except ValueError as exc:
        raise ControlError(f"{name}: {args[0]!r} is not a number") from exc
    return run(sim, number)


def _status(sim: SimulatedScale) -> str:
    d = sim.platform.display()
    state = "overload" if d.overload else ("stable" if d.stable else "unstable")
    return f"{d.grams} g {state} ({'plugged' if sim.plugged else 'unplugged'})"


def _place(sim: SimulatedScale, n: float) -> str:
    sim.place(round(n))
    return f"placed {round(n)} g"


def _noise(sim: SimulatedScale, n: float) -> str:
    sim.noise(round(n))
    return f"noise +-{round(n)} g"


def _settle(sim: SimulatedScale, n: float) -> str:
    sim.settle_time(round(n))
    return f"settle time {round(n)} ms"


def _drift(sim: SimulatedScale, n: float) -> str:
    sim.drift(n)
    return f"drift {n:g} g/s"


def _miscalibrate(sim: SimulatedScale, n: float) -> str:
    sim.miscalibrate(n)
    return f"span factor {n:g}"


def _simple(method: Callable[[SimulatedScale], object], said: str) -> Action:
    def run(sim: SimulatedScale, _: float) -> str:
        method(sim)
        return said

    return run


# name -> (takes one number, action)
_ACTIONS: dict[str, tuple[bool, Action]] = {
    "place": (True, _place),
    "noise": (True, _noise),
    "settle": (True, _settle),
    "drift": (True, _drift),
    "miscalibrate": (True, _miscalibrate),
    "remove": (False, _simple(SimulatedScale.remove, "platform empty")),
    "overload": (False, _simple(SimulatedScale.overload, "overloaded")),
    "unplug": (False, _simple(SimulatedScale.unplug, "unplugged")),
    "replug": (False, _simple(SimulatedScale.replug, "plugged back in")),
    "torn": (False, _simple(SimulatedScale.inject_torn, "sent a torn frame")),
    "status": (False, lambda sim, _: _status(sim)),
    "help": (False, lambda sim, _: HELP),
}
