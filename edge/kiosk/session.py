"""The kiosk session: what the villager sees and what the kiosk may do next.

Pure: no screen, no scale, no ledger, no clock of its own. The daemon feeds it
events (a scanned passbook, a touched category, scale readings, the ledger's
answer, time) and carries out the effects it returns (write a deposit, beep,
light an LED). That makes the rules that protect the ledger checkable without
hardware (tests/edge/test_session.py explores every path with hypothesis):

- a deposit is written only for a reading the scale reported stable, of at
  least the category's minimum and within the scale's range, after the scale
  came back near zero since the previous deposit (one bag cannot be weighed
  twice, docs/design.md §3);
- the villager is told "done" only after the ledger reported the commit;
- at most one deposit is in flight; nothing else happens until it is answered;
- a bag that never settles is not waited on for ever: after `settle_timeout_ms`
  the villager is told to take it off and put it down again (or ask staff), and
  nothing is weighed until the scale has been back near zero.

    IDLE ─scan ok→ VILLAGER ─category→ WEIGHING ─stable reading→ COMMITTING
      ↑                ↑                   │                         │
      └── timeout ─────┴── cancel ─────────┘          committed → CONFIRMED
                                                       refused   → REFUSED
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Screen(StrEnum):
    IDLE = "idle"  # "scan your green passbook"
    VILLAGER = "villager"  # name, balance, today's deposits, category buttons
    WEIGHING = "weighing"  # live weight, "hold still"
    COMMITTING = "committing"  # the ledger is writing (a fraction of a second)
    CONFIRMED = "confirmed"  # points and CO2e earned, new balance
    REFUSED = "refused"  # plain words and an icon: why not


@dataclass(frozen=True)
class Reading:
    grams: int
    stable: bool
    status: str = "ok"  # ok / overload / underload / error / disconnected


# --- events (in) --------------------------------------------------------------------------


@dataclass(frozen=True)
class PassbookScanned:
    passbook_id: str | None  # None: the card was refused (forged, revoked, foreign …)
    refusal: str = ""  # the reason code when refused


@dataclass(frozen=True)
class CategoryChosen:
    category: str
    min_grams: int


@dataclass(frozen=True)
class ScaleRead:
    reading: Reading


@dataclass(frozen=True)
class Committed:
    points: int
    co2e_g: int
    balance: int


@dataclass(frozen=True)
class CommitRefused:
    code: str  # the ledger's reason code: daily_cap, cooldown, too_light …


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Tick:
    now_ms: int


Event = PassbookScanned | CategoryChosen | ScaleRead | Committed | CommitRefused | Cancel | Tick


# --- effects (out) ------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteDeposit:
    passbook_id: str
    category: str
    grams: int


@dataclass(frozen=True)
class Beep:
    kind: str  # ok / error


Effect = WriteDeposit | Beep


@dataclass(frozen=True)
class Limits:
    capacity_grams: int = 150_000  # the scale's range; above it the reading is refused
    zero_band_grams: int = 50  # "back to zero": the scale reads at most this much
    idle_timeout_ms: int = 60_000  # a villager who walked away
    settle_timeout_ms: int = 15_000  # a bag still moving after this long: start it again
    result_ms: int = 6_000  # how long "done" or "refused" stays before the villager screen


@dataclass(frozen=True)
class Session:
    screen: Screen = Screen.IDLE
    passbook_id: str | None = None
    category: str | None = None
    min_grams: int = 0
    grams: int = 0  # the live weight shown
    stable: bool = False
    zero_seen: bool = True  # the scale read ~0 since the last deposit was written
    hint: str = ""  # what the villager must do: place_bag, hold_still, remove_bag …
    moving_since_ms: int | None = None  # when the bag on the scale began not to settle
    unsettled: bool = False  # it never settled: it must come off before anything is weighed
    refusal: str = ""  # why the last action was refused
    result: Committed | None = None
    last_event_ms: int = 0
    now_ms: int = 0
    effects: tuple[Effect, ...] = field(default=())


def step(s: Session, event: Event, limits: Limits = Limits()) -> Session:
    """The session after `event`; `effects` holds what the daemon must do now."""
    s = replace(s, effects=())
    if isinstance(event, Tick):
        return _tick(s, event.now_ms, limits)
    if isinstance(event, ScaleRead):
        return _reading(s, event.reading, limits)
    s = replace(s, last_event_ms=s.now_ms)
    if isinstance(event, PassbookScanned):
        if s.screen not in (Screen.IDLE, Screen.VILLAGER, Screen.CONFIRMED, Screen.REFUSED):
            return s  # mid-weighing or mid-commit: a second card must not swap the villager
        if event.passbook_id is None:
            return replace(
                _idle(s), screen=Screen.REFUSED, refusal=event.refusal or "bad_card",
                effects=(Beep("error"),),
            )  # fmt: skip
        return replace(
            s, screen=Screen.VILLAGER, passbook_id=event.passbook_id, category=None,
            refusal="", result=None, hint="choose_category",
        )  # fmt: skip
    if isinstance(event, CategoryChosen):
        if s.screen not in (Screen.VILLAGER, Screen.CONFIRMED, Screen.REFUSED) or not s.passbook_id:
            return s
        s = replace(
            s, screen=Screen.WEIGHING, category=event.category, min_grams=event.min_grams,
            refusal="", result=None, moving_since_ms=None,
        )  # fmt: skip
        return replace(s, hint="place_bag" if s.zero_seen else _remove_hint(s))
    if isinstance(event, Committed):
        if s.screen is not Screen.COMMITTING:
            return s  # an answer nobody asked for confirms nothing
        return replace(
            s, screen=Screen.CONFIRMED, result=event, hint="remove_bag", effects=(Beep("ok"),)
        )
    if isinstance(event, CommitRefused):
        if s.screen is not Screen.COMMITTING:
            return s
        return replace(s, screen=Screen.REFUSED, refusal=event.code, effects=(Beep("error"),))
    if isinstance(event, Cancel):
        if s.screen is Screen.COMMITTING:
            return s  # the write is under way; its answer decides
        if s.screen is Screen.WEIGHING:
            return replace(s, screen=Screen.VILLAGER, category=None, hint="choose_category")
        return _idle(s)
    raise TypeError(f"not a session event: {event!r}")


def _idle(s: Session) -> Session:
    return replace(
        s, screen=Screen.IDLE, passbook_id=None, category=None, min_grams=0, hint="",
        refusal="", result=None,
    )  # fmt: skip


def _tick(s: Session, now_ms: int, limits: Limits) -> Session:
    s = replace(s, now_ms=now_ms)
    idle_for = now_ms - s.last_event_ms
    if s.screen in (Screen.CONFIRMED, Screen.REFUSED) and idle_for >= limits.result_ms:
        if s.passbook_id is None:
            return _idle(s)
        return replace(s, screen=Screen.VILLAGER, category=None, hint="choose_category")
    if s.screen in (Screen.VILLAGER, Screen.WEIGHING) and idle_for >= limits.idle_timeout_ms:
        return _idle(s)
    moving = s.moving_since_ms
    if (
        s.screen is Screen.WEIGHING
        and moving is not None
        and now_ms - moving >= limits.settle_timeout_ms
    ):
        # A swinging bag, a hand on it, wind, a failing load cell: waiting longer will
        # not help. Say what to do, and weigh nothing until the scale has been cleared.
        return replace(
            s, hint="unsettled", unsettled=True, zero_seen=False, moving_since_ms=None,
            effects=(Beep("error"),),
        )  # fmt: skip
    return s


def _remove_hint(s: Session) -> str:
    """Why the scale must be cleared first: a bag that never settled, or the last one."""
    return "unsettled" if s.unsettled else "remove_bag"


def _reading(s: Session, r: Reading, limits: Limits) -> Session:
    ok = r.status == "ok"
    near_zero = ok and abs(r.grams) <= limits.zero_band_grams
    cleared = near_zero and r.stable
    s = replace(
        s, grams=r.grams if ok else 0, stable=r.stable and ok,
        zero_seen=s.zero_seen or cleared, unsettled=s.unsettled and not cleared,
    )  # fmt: skip
    if s.screen is not Screen.WEIGHING:
        return replace(s, moving_since_ms=None)
    # A bag being placed is activity: the villager has not walked away. A bag left
    # moving after they were told to take it off is not: the session still times out.
    active = not near_zero and not s.unsettled
    s = replace(s, refusal="", last_event_ms=s.now_ms if active else s.last_event_ms)
    s = _hint(s, r, limits, ok=ok, near_zero=near_zero)
    if s.hint != "hold_still":
        return replace(s, moving_since_ms=None)
    return s if s.moving_since_ms is not None else replace(s, moving_since_ms=s.now_ms)


def _hint(s: Session, r: Reading, limits: Limits, *, ok: bool, near_zero: bool) -> Session:
    """The weighing screen's next hint for reading `r`, or the deposit it allows."""
    if r.status == "disconnected":
        return replace(s, hint="scale_disconnected")
    if r.status == "overload" or (ok and r.grams > limits.capacity_grams):
        return replace(s, hint="over_capacity")
    if not ok:
        return replace(s, hint="scale_error")
    if not s.zero_seen:
        return replace(s, hint=_remove_hint(s))  # the previous bag is still on the scale
    if near_zero:
        return replace(s, hint="place_bag")
    if not r.stable:
        return replace(s, hint="hold_still")
    if r.grams < s.min_grams:
        return replace(s, hint="too_light")
    assert s.passbook_id is not None and s.category is not None
    return replace(
        s, screen=Screen.COMMITTING, hint="", zero_seen=False,
        effects=(WriteDeposit(s.passbook_id, s.category, r.grams),),
    )  # fmt: skip
