"""Many-leaf proofs (greenpass.merkle_multi): any set of leaves proven at once, as an
evidence pack proves a village's entries scattered through the log. Checked against
the plain leaf list for every subset of small trees, against range and inclusion
proofs, against tampering, and for size."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenpass.merkle import inclusion_proof, range_proof, root
from greenpass.merkle_multi import multi_proof, root_from_multi, verify_multi
from tests.test_merkle import flip, getter, leaves_of, store_of


def test_every_subset_of_small_trees() -> None:
    leaves = leaves_of(9)
    get = getter(store_of(leaves))
    for size in range(1, len(leaves) + 1):
        top = root(leaves[:size])
        for k in range(1, size + 1):
            for chosen in combinations(range(size), k):
                proof = multi_proof(chosen, size, get)
                assert verify_multi(chosen, [leaves[i] for i in chosen], size, proof, top)
                if k == 1:
                    assert sorted(proof) == sorted(inclusion_proof(chosen[0], size, get))
                if chosen == tuple(range(chosen[0], chosen[-1] + 1)):
                    assert proof == range_proof(chosen[0], chosen[-1] + 1, size, get)


@settings(max_examples=80, deadline=None)
@given(size=st.integers(2, 700), data=st.data())
def test_random_subsets_and_tampering(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    get = getter(store_of(leaves))
    chosen = sorted(data.draw(st.sets(st.integers(0, size - 1), min_size=1, max_size=60)))
    top = root(leaves)
    proof = multi_proof(chosen, size, get)
    given_leaves = [leaves[i] for i in chosen]
    assert verify_multi(chosen, given_leaves, size, proof, top)

    at = data.draw(st.integers(0, len(chosen) - 1), label="at")
    changed = [*given_leaves[:at], flip(given_leaves[at]), *given_leaves[at + 1 :]]
    assert not verify_multi(chosen, changed, size, proof, top)  # an entry changed
    assert not verify_multi(chosen, given_leaves, size, proof, flip(top))
    if len(chosen) > 1:  # a leaf dropped from the set, the proof kept
        assert not verify_multi(chosen[1:], given_leaves[1:], size, proof, top)
    moved = [i + 1 for i in chosen]
    if moved[-1] < size:  # the same leaves claimed one place later
        assert not verify_multi(moved, given_leaves, size, proof, top)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="i")
        assert not verify_multi(
            chosen, given_leaves, size, [*proof[:i], flip(proof[i]), *proof[i + 1 :]], top
        )
        assert not verify_multi(chosen, given_leaves, size, proof[:-1], top)
    assert not verify_multi(chosen, given_leaves, size, [*proof, bytes(32)], top)


def test_malformed_sets_are_refused() -> None:
    leaves = leaves_of(8)
    get = getter(store_of(leaves))
    for chosen in ([], [3, 3], [4, 2], [-1], [8]):
        with pytest.raises(ValueError):
            multi_proof(chosen, 8, get)
    proof = multi_proof([1, 5], 8, get)
    with pytest.raises(ValueError, match="shorter"):
        root_from_multi([1, 5], [leaves[1], leaves[5]], 8, proof[:-1])
    with pytest.raises(ValueError, match="longer"):
        root_from_multi([1, 5], [leaves[1], leaves[5]], 8, [*proof, proof[0]])
    with pytest.raises(ValueError, match="32 bytes"):
        root_from_multi([1, 5], [b"short", leaves[5]], 8, proof)
    with pytest.raises(ValueError, match="leaf hashes"):
        root_from_multi([1, 5], [leaves[1]], 8, proof)


def test_scattered_leaves_share_their_hashes() -> None:
    # 1,000 leaves, one in eight: far fewer hashes than an inclusion proof each.
    size = 8_000
    leaves = leaves_of(size)
    get = getter(store_of(leaves))
    chosen = list(range(3, size, 8))
    proof = multi_proof(chosen, size, get)
    each = sum(len(inclusion_proof(i, size, get)) for i in chosen)
    assert len(proof) <= each // 3
    assert verify_multi(chosen, [leaves[i] for i in chosen], size, proof, root(leaves))
