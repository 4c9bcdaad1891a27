"""The kiosk session state machine, explored without I/O: no path writes an
unstable or unweighed deposit, weighs one bag twice, or confirms anything the
ledger has not committed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.kiosk.session import (
    Beep,
    Cancel,
    CategoryChosen,
    CommitRefused,
    Committed,
    Event,
    Limits,
    PassbookScanned,
    Reading,
    ScaleRead,
    Screen,
    Session,
    Tick,
    WriteDeposit,
    step,
)

LIMITS = Limits()

readings = st.builds(
    Reading,
    grams=st.one_of(st.integers(-100, 100), st.integers(51, 160_000), st.sampled_from([0, 49, 51])),
    stable=st.booleans(),
    status=st.sampled_from(["ok"] * 8 + ["overload", "underload", "error", "disconnected"]),
)
events = st.one_of(
    st.builds(
        PassbookScanned,
        passbook_id=st.sampled_from([None, "K1-00001", "K1-00002"]),
        refusal=st.sampled_from(["", "forged_card", "revoked_passbook"]),
    ),
    st.builds(
        CategoryChosen,
        category=st.sampled_from(["paper", "glass"]),
        min_grams=st.sampled_from([0, 200, 1000]),
    ),
    st.builds(ScaleRead, readings),
    st.builds(
        Committed,
        points=st.integers(0, 50),
        co2e_g=st.integers(0, 9000),
        balance=st.integers(0, 999),
    ),
    st.builds(CommitRefused, code=st.sampled_from(["daily_cap", "cooldown"])),
    st.just(Cancel()),
    st.integers(0, 120_000).map(Tick),  # relative; made absolute below
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(events, max_size=60))
def test_no_path_writes_or_confirms_what_it_must_not(seq: list[Event]) -> None:
    s = Session()
    now = 0
    last: Reading | None = None
    zero_since_write = True
    outstanding = 0  # writes asked for and not yet answered by the ledger
    for given_event in seq:
        event = given_event
        if isinstance(given_event, Tick):
            now += given_event.now_ms
            event = Tick(now)
        before = s
        s = step(s, event, LIMITS)
        if isinstance(event, ScaleRead):
            last = event.reading
            if last.status == "ok" and last.stable and abs(last.grams) <= LIMITS.zero_band_grams:
                zero_since_write = True
        writes = [e for e in s.effects if isinstance(e, WriteDeposit)]
        assert len(writes) <= 1
        for w in writes:
            # Weighed: the very reading that arrived now, stable, in range, heavy enough.
            assert isinstance(event, ScaleRead) and last is not None
            assert last.status == "ok" and last.stable and w.grams == last.grams
            assert before.category == w.category and w.grams >= before.min_grams
            assert LIMITS.zero_band_grams < w.grams <= LIMITS.capacity_grams
            assert before.passbook_id == w.passbook_id is not None
            # One bag cannot be weighed twice; one write at a time.
            assert zero_since_write and outstanding == 0
            zero_since_write = False
            outstanding += 1
            assert s.screen is Screen.COMMITTING
        if s.screen is Screen.CONFIRMED and before.screen is not Screen.CONFIRMED:
            # Confirmed only by the ledger's own answer to the write in flight.
            assert isinstance(event, Committed) and outstanding == 1
            assert Beep("ok") in s.effects and s.result == event
        if isinstance(event, (Committed, CommitRefused)) and before.screen is Screen.COMMITTING:
            outstanding -= 1
        assert outstanding == (1 if s.screen is Screen.COMMITTING else 0)


def run(*events: Event, s: Session | None = None) -> Session:
    s = s or Session()
    for e in events:
        s = step(s, e, LIMITS)
    return s


def test_a_deposit_from_scan_to_confirmation() -> None:
    s = run(PassbookScanned("K1-00001"), CategoryChosen("paper", 200))
    assert (s.screen, s.hint) == (Screen.WEIGHING, "place_bag")
    s = run(ScaleRead(Reading(1250, stable=False)), s=s)
    assert (s.screen, s.hint) == (Screen.WEIGHING, "hold_still")
    s = run(ScaleRead(Reading(1250, stable=True)), s=s)
    assert s.screen is Screen.COMMITTING and s.effects == (WriteDeposit("K1-00001", "paper", 1250),)
    s = run(Committed(points=12, co2e_g=4891, balance=40), s=s)
    assert s.screen is Screen.CONFIRMED and s.effects == (Beep("ok"),)
    # Another category while the first bag is still on the scale: remove it first.
    s = run(CategoryChosen("glass", 200), ScaleRead(Reading(1250, stable=True)), s=s)
    assert (s.screen, s.hint, s.effects) == (Screen.WEIGHING, "remove_bag", ())
    s = run(ScaleRead(Reading(3, stable=True)), ScaleRead(Reading(900, stable=True)), s=s)
    assert s.effects == (WriteDeposit("K1-00001", "glass", 900),)


def test_refusals_say_why() -> None:
    s = run(PassbookScanned(None, "forged_card"))
    assert (s.screen, s.refusal, s.effects) == (Screen.REFUSED, "forged_card", (Beep("error"),))
    s = run(PassbookScanned("P"), CategoryChosen("paper", 200))
    assert run(ScaleRead(Reading(150, True)), s=s).hint == "too_light"
    assert run(ScaleRead(Reading(0, False, "overload")), s=s).hint == "over_capacity"
    assert run(ScaleRead(Reading(0, False, "disconnected")), s=s).hint == "scale_disconnected"
    s = run(ScaleRead(Reading(800, True)), CommitRefused("daily_cap"), s=s)
    assert (s.screen, s.refusal) == (Screen.REFUSED, "daily_cap")


def test_timeouts_return_to_idle() -> None:
    s = run(PassbookScanned("P"), Tick(LIMITS.idle_timeout_ms - 1))
    assert s.screen is Screen.VILLAGER
    assert run(Tick(LIMITS.idle_timeout_ms), s=s).screen is Screen.IDLE
    s = run(PassbookScanned(None, "revoked_passbook"), Tick(LIMITS.result_ms))
    assert s.screen is Screen.IDLE


def test_a_bag_that_never_settles_must_come_off_and_go_back() -> None:
    settle = LIMITS.settle_timeout_ms
    s = run(PassbookScanned("P"), CategoryChosen("paper", 200), Tick(1_000))
    s = run(ScaleRead(Reading(1500, False)), Tick(1_000 + settle - 1), s=s)
    s = run(ScaleRead(Reading(1520, False)), s=s)
    assert (s.screen, s.hint, s.effects) == (Screen.WEIGHING, "hold_still", ())
    s = run(Tick(1_000 + settle), s=s)
    assert (s.screen, s.hint, s.effects) == (Screen.WEIGHING, "unsettled", (Beep("error"),))
    # It settles now, but the villager was told to take it off: nothing is weighed ...
    s = run(ScaleRead(Reading(1500, True)), s=s)
    assert (s.hint, s.effects) == ("unsettled", ())
    # ... until the scale has been empty; then the bag is weighed afresh.
    s = run(ScaleRead(Reading(2, True)), s=s)
    assert (s.hint, s.unsettled) == ("place_bag", False)
    s = run(ScaleRead(Reading(1500, False)), ScaleRead(Reading(1500, True)), s=s)
    assert s.effects == (WriteDeposit("P", "paper", 1500),)


def test_the_settle_time_counts_one_unbroken_wait() -> None:
    settle = LIMITS.settle_timeout_ms
    s = run(PassbookScanned("P"), CategoryChosen("paper", 200), Tick(1_000))
    s = run(ScaleRead(Reading(1500, False)), Tick(1_000 + settle - 1), s=s)
    s = run(ScaleRead(Reading(150, True)), s=s)  # it rested for a moment (too light)
    restarted = 1_000 + settle - 1
    s = run(ScaleRead(Reading(1500, False)), Tick(restarted + settle - 1), s=s)
    assert s.hint == "hold_still"
    s = run(Tick(restarted + settle), s=s)
    assert s.hint == "unsettled"
    # Back to the kinds and again: the bag that never settled must still come off.
    s = run(Cancel(), CategoryChosen("glass", 300), s=s)
    assert (s.screen, s.hint) == (Screen.WEIGHING, "unsettled")


def test_a_bag_left_moving_does_not_keep_the_villager_signed_in() -> None:
    settle, idle = LIMITS.settle_timeout_ms, LIMITS.idle_timeout_ms
    s = run(PassbookScanned("P"), CategoryChosen("paper", 200), Tick(1_000))
    s = run(ScaleRead(Reading(1500, False)), Tick(1_000 + settle), s=s)
    assert s.hint == "unsettled"
    now = 1_000 + settle
    while now < 1_000 + idle:  # the villager walked away; the bag goes on swinging
        now += 1_000
        s = run(ScaleRead(Reading(1500 + now % 7, False)), Tick(now), s=s)
    assert (s.screen, s.passbook_id) == (Screen.IDLE, None)


def test_a_second_card_cannot_take_over_a_weighing() -> None:
    s = run(PassbookScanned("A"), CategoryChosen("paper", 0), PassbookScanned("B"))
    assert (s.screen, s.passbook_id) == (Screen.WEIGHING, "A")


ALPHABET: tuple[Event, ...] = (
    PassbookScanned("K1-00001"),
    PassbookScanned("K1-00002"),
    PassbookScanned(None, "forged_card"),
    CategoryChosen("paper", 200),
    CategoryChosen("glass", 1000),
    ScaleRead(Reading(0, True)),
    ScaleRead(Reading(30, False)),
    ScaleRead(Reading(150, True)),  # too light for both
    ScaleRead(Reading(800, True)),  # enough for paper, not glass
    ScaleRead(Reading(1500, False)),
    ScaleRead(Reading(1500, True)),
    ScaleRead(Reading(200_000, True)),  # over capacity
    ScaleRead(Reading(0, False, "overload")),
    ScaleRead(Reading(0, False, "disconnected")),
    Committed(8, 3000, 50),
    CommitRefused("daily_cap"),
    Cancel(),
    Tick(1_000),  # relative steps of the clock
    Tick(7_000),
    Tick(61_000),
)


def test_every_reachable_state_keeps_the_rules() -> None:
    """Breadth-first over every state reachable with ALPHABET (time kept relative, so
    the space is finite): each transition is checked as in the property test above."""

    def key(s: Session, model: tuple[bool, int, int | None]) -> object:
        idle = min(s.now_ms - s.last_event_ms, 70_000)
        moving = s.moving_since_ms
        if moving is not None:
            moving = -min(s.now_ms - moving, LIMITS.settle_timeout_ms)
        times = {"now_ms": 0, "last_event_ms": -idle, "moving_since_ms": moving}
        return (s.__class__(**{**s.__dict__, "effects": (), **times}), model)

    start = (
        Session(),
        (True, 0, None),
    )  # zero seen since last write, outstanding, last reading grams
    seen = {key(*start)}
    frontier = [start]
    transitions = 0
    while frontier:
        nxt = []
        for s, (zero, outstanding, _) in frontier:
            for ev in ALPHABET:
                event = Tick(s.now_ms + ev.now_ms) if isinstance(ev, Tick) else ev
                after = step(s, event, LIMITS)
                transitions += 1
                z, out = zero, outstanding
                if isinstance(event, ScaleRead):
                    r = event.reading
                    if r.status == "ok" and r.stable and abs(r.grams) <= LIMITS.zero_band_grams:
                        z = True
                for w in (e for e in after.effects if isinstance(e, WriteDeposit)):
                    assert isinstance(event, ScaleRead) and event.reading.stable
                    assert event.reading.status == "ok" and w.grams == event.reading.grams
                    assert w.grams >= s.min_grams and w.grams <= LIMITS.capacity_grams
                    assert z and out == 0, "a bag weighed twice, or two writes in flight"
                    z, out = False, out + 1
                if after.screen is Screen.CONFIRMED and s.screen is not Screen.CONFIRMED:
                    assert isinstance(event, Committed) and out == 1
                if isinstance(event, (Committed, CommitRefused)) and s.screen is Screen.COMMITTING:
                    out -= 1
                assert out == (1 if after.screen is Screen.COMMITTING else 0)
                k = key(after, (z, out, None))
                if k not in seen:
                    seen.add(k)
                    nxt.append((after, (z, out, None)))
        frontier = nxt
    assert len(seen) > 100 and transitions > 1000  # the walk really explored the machine
