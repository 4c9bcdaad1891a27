"""Fuzzing every parser: arbitrary bytes never raise, and frames after junk are recovered.

Frames come from the simulator's encoders, written apart from the parsers.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.scale.and_ascii import AndParser
from hardware.scale.cas import CasParser
from hardware.scale.frames import Frame, Parser, WeightFrame
from hardware.scale.gpfw import GpfwParser
from hardware.scale.mtsics import MtSicsParser
from hardware.scale.xk3190 import Xk3190Parser
from simulator.scale import encoders
from simulator.scale.encoders import Display

PARSERS: dict[str, Callable[[], Parser]] = {
    "gpfw": GpfwParser,
    "mtsics": MtSicsParser,
    "and": AndParser,
    "cas": CasParser,
    "xk3190": Xk3190Parser,
}
ENCODERS: dict[str, Callable[[Display], bytes]] = {
    "gpfw": encoders.gpfw_weight,
    "mtsics": encoders.mtsics_weight,
    "and": encoders.and_weight,
    "cas": encoders.cas_weight,
    "xk3190": encoders.xk3190_weight,
}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

grams = st.integers(-99_999, 99_999)
displays = st.builds(Display, grams=grams, stable=st.booleans())


def feed_in_chunks(parser: Parser, data: bytes, cuts: list[int]) -> list[Frame]:
    frames: list[Frame] = []
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        frames += parser.feed(data[start:cut])
        start = max(start, cut)
    frames += parser.feed(data[start:])
    return frames


@pytest.mark.parametrize("protocol", list(PARSERS))
@FUZZ
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=8))
def test_arbitrary_bytes_never_raise(protocol: str, data: bytes, cuts: list[int]) -> None:
    parser = PARSERS[protocol]()
    frames = feed_in_chunks(parser, data, cuts)
    counters = parser.counters
    assert counters.ok == len(frames)
    assert min(counters.torn, counters.garbage, counters.unknown) >= 0


@pytest.mark.parametrize("protocol", list(PARSERS))
@FUZZ
@given(
    noise=st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=40),
            st.tuples(displays, st.integers(1, 30)),  # a frame cut short
        ),
        max_size=5,
    ),
    tail=st.lists(displays, min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_frames_after_junk_and_torn_frames_are_recovered(
    protocol: str,
    noise: list[bytes | tuple[Display, int]],
    tail: list[Display],
    cuts: list[int],
) -> None:
    encode = ENCODERS[protocol]
    junk = b"".join(
        piece if isinstance(piece, bytes) else encode(piece[0])[: piece[1]] for piece in noise
    )
    data = junk + b"".join(encode(d) for d in tail)
    parser = PARSERS[protocol]()
    frames = feed_in_chunks(parser, data, cuts)
    weights = [f.grams for f in frames if isinstance(f, WeightFrame)]
    expected = [d.grams for d in tail]
    assert weights[-len(expected) :] == expected
    assert parser.counters.ok == len(frames)
