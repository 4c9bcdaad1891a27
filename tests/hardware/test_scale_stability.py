"""The stability rule, on hand-made sample sequences (no I/O, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.scale.stability import StabilityDetector, StabilityRule

RULE = StabilityRule(step_grams=2, hold_ms=500, min_samples=3)


def feed(det: StabilityDetector, samples: list[tuple[int, int | None, bool | None]]) -> list[bool]:
    return [det.update(t, g, flag) for t, g, flag in samples]


def test_stable_only_after_the_hold_time() -> None:
    det = StabilityDetector(RULE)
    results = feed(det, [(t, 1000, None) for t in range(0, 700, 100)])
    assert results == [False, False, False, False, False, True, True]


def test_within_one_step_is_stable_beyond_it_is_not() -> None:
    det = StabilityDetector(RULE)
    assert feed(det, [(t, 1000 + (t // 100) % 3, None) for t in range(0, 600, 100)])[-1]
    det = StabilityDetector(RULE)
    assert not any(feed(det, [(t, 1000 + (t // 100) % 4, None) for t in range(0, 2000, 100)]))


def test_a_change_restarts_the_hold_from_the_new_value() -> None:
    det = StabilityDetector(RULE)
    feed(det, [(t, 1000, None) for t in range(0, 1000, 100)])
    assert not det.update(1000, 1500, None)
    after = feed(det, [(t, 1500, None) for t in range(1100, 1700, 100)])
    assert after == [False, False, False, False, True, True]


def test_the_scales_own_unstable_flag_vetoes() -> None:
    det = StabilityDetector(RULE)
    results = feed(det, [(t, 1000, t < 600) for t in range(0, 900, 100)])
    assert results[5] is True
    assert results[6:] == [False, False, False]


def test_the_scales_stable_flag_alone_is_not_enough() -> None:
    det = StabilityDetector(RULE)
    assert feed(det, [(0, 1000, True), (100, 1000, True)]) == [False, False]


def test_non_weights_reset_the_window() -> None:
    det = StabilityDetector(RULE)
    feed(det, [(t, 1000, None) for t in range(0, 600, 100)])
    assert not det.update(600, None, None)
    assert not det.update(700, 1000, None)
    assert feed(det, [(t, 1000, None) for t in range(800, 1300, 100)])[-1]


def test_min_samples_stops_one_sample_after_a_gap_counting_as_held() -> None:
    det = StabilityDetector(StabilityRule(step_grams=1, hold_ms=100, min_samples=3))
    assert not det.update(0, 5, None)
    assert not det.update(10_000, 5, None)  # covers the span, but only two samples
    assert det.update(10_010, 5, None)


def test_clock_going_backwards_restarts() -> None:
    det = StabilityDetector(RULE)
    feed(det, [(t, 1000, None) for t in range(1000, 1700, 100)])
    assert not det.update(500, 1000, None)


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid stability rule"):
        StabilityRule(step_grams=-1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 200), st.one_of(st.none(), st.integers(-50, 50))),
        min_size=1,
        max_size=60,
    )
)
def test_stable_means_the_last_hold_window_really_held(steps: list[tuple[int, int | None]]) -> None:
    """Against a brute-force reading of the rule over the full history."""
    rule = StabilityRule(step_grams=3, hold_ms=300, min_samples=2)
    det = StabilityDetector(rule)
    history: list[tuple[int, int | None]] = []
    now = 0
    for gap, grams in steps:
        now += gap
        history.append((now, grams))
        said = det.update(now, grams, None)
        # Brute force: since the last non-weight, take the samples from the newest one
        # at or before now - hold onwards; they must exist and lie within one step.
        since = [i for i, (_, g) in enumerate(history) if g is None]
        run = history[since[-1] + 1 :] if since else history
        anchor = [i for i, (t, _) in enumerate(run) if t <= now - rule.hold_ms]
        if not anchor:
            assert not said
            continue
        window = [g for _, g in run[anchor[-1] :] if g is not None]
        expected = len(window) >= rule.min_samples and max(window) - min(window) <= rule.step_grams
        assert said == expected
