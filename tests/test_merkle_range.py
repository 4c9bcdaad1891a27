"""Range proofs (greenpass.merkle.range_proof / verify_range): a run of consecutive
leaves proven at once. Checked against the plain leaf list for every range of many
trees, against the RFC inclusion proof for one leaf, against tampering, and for size."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenpass.merkle import (
    inclusion_proof,
    range_proof,
    root,
    root_from_range,
    verify_range,
)
from tests.test_merkle import flip, getter, leaves_of, store_of


def test_every_range_of_every_small_tree() -> None:
    leaves = leaves_of(34)
    get = getter(store_of(leaves))
    for size in range(1, len(leaves) + 1):
        top = root(leaves[:size])
        for start in range(size):
            for end in range(start + 1, size + 1):
                proof = range_proof(start, end, size, get)
                assert verify_range(start, leaves[start:end], size, proof, top)
                if end == start + 1:  # one leaf: the hashes of its inclusion proof
                    assert sorted(proof) == sorted(inclusion_proof(start, size, get))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(2, 600), data=st.data())
def test_random_ranges_and_tampering(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    get = getter(store_of(leaves))
    new = data.draw(st.integers(2, size), label="new")  # a past tree from a bigger store
    start = data.draw(st.integers(0, new - 1), label="start")
    end = data.draw(st.integers(start + 1, new), label="end")
    top = root(leaves[:new])
    proof = range_proof(start, end, new, get)
    run = leaves[start:end]
    assert verify_range(start, run, new, proof, top)

    # Any changed leaf, a leaf dropped or added, another place, another root: refused.
    at = data.draw(st.integers(0, len(run) - 1), label="at")
    assert not verify_range(start, [*run[:at], flip(run[at]), *run[at + 1 :]], new, proof, top)
    if len(run) > 1:
        assert not verify_range(start, run[1:], new, proof, top)
        assert not verify_range(start, run[:-1], new, proof, top)
    if end < new:
        assert not verify_range(start, leaves[start : end + 1], new, proof, top)
    assert not verify_range(start, run, new, proof, flip(top))
    if start > 0:
        assert not verify_range(start - 1, run, new, proof, top)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="i")
        assert not verify_range(start, run, new, [*proof[:i], flip(proof[i]), *proof[i + 1 :]], top)
        assert not verify_range(start, run, new, proof[:-1], top)
    assert not verify_range(start, run, new, [*proof, bytes(32)], top)


def test_malformed_ranges_are_refused() -> None:
    leaves = leaves_of(8)
    get = getter(store_of(leaves))
    for start, end, size in [(0, 0, 8), (3, 2, 8), (7, 9, 8), (-1, 2, 8), (0, 1, 0)]:
        with pytest.raises(ValueError):
            range_proof(start, end, size, get)
    proof = range_proof(2, 5, 8, get)
    with pytest.raises(ValueError, match="shorter"):
        root_from_range(2, leaves[2:5], 8, proof[:-1])
    with pytest.raises(ValueError, match="longer"):
        root_from_range(2, leaves[2:5], 8, [*proof, proof[0]])
    with pytest.raises(ValueError, match="32 bytes"):
        root_from_range(2, [b"short", *leaves[3:5]], 8, proof)
    with pytest.raises(ValueError, match="not a range"):
        root_from_range(6, leaves[2:5], 8, proof)
    assert not verify_range(0, [], 8, [], root(leaves))


def test_a_range_costs_about_two_paths() -> None:
    """In a tree never built (any 32 bytes stand in for its nodes), a run of 20,000
    leaves costs its two edges, and reads only full nodes."""
    size = (1 << 40) - 12345
    reads: list[tuple[int, int]] = []

    def get(level: int, index: int) -> bytes:
        assert (index + 1) << level <= size, "read a node that is not full yet"
        reads.append((level, index))
        return hashlib.sha256(f"{level}/{index}".encode()).digest()

    for start, end in [(123_456_789, 123_476_789), (size - 20_000, size), (0, 1), (5, 6)]:
        reads.clear()
        proof = range_proof(start, end, size, get)
        assert len(proof) <= 2 * 40 and len(reads) <= 3 * 40
