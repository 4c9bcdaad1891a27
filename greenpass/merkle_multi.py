"""One proof for many leaves of an RFC 9162 tree: what an evidence pack carries.

A village's entries are scattered through central's log between other villages'. One
inclusion proof each would cost about log2(size) hashes per entry; `multi_proof`
gives the roots of the largest subtrees holding none of the chosen leaves, walked
in the order RFC 9162 splits the tree, so hashes shared by neighbouring leaves are
given once and a stretch of consecutive leaves costs nothing inside it. For one leaf
it is its inclusion proof's hashes (in another order); for a range, `range_proof`'s.

Not an RFC 9162 structure: the many-leaf form of its inclusion proof in the same
tree. Pure, like `greenpass.merkle`.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Sequence

from greenpass.merkle import HASH_SIZE, GetNode, _range_root, _split, node_hash, root


def _check(indices: Sequence[int], size: int) -> None:
    if not indices:
        raise ValueError("a proof needs at least one leaf")
    if indices[0] < 0 or indices[-1] >= size:
        raise ValueError(f"leaves {indices[0]}..{indices[-1]} are not all in a tree of size {size}")
    if any(b <= a for a, b in itertools.pairwise(indices)):
        raise ValueError("leaf indices must be sorted and distinct")


def multi_proof(indices: Sequence[int], size: int, get: GetNode) -> list[bytes]:
    """The proof that the leaves at `indices` (sorted, distinct) are in the tree of `size`."""
    _check(indices, size)
    proof: list[bytes] = []

    def walk(low: int, high: int, first: int, last: int) -> None:
        # indices[first:last] are the chosen leaves in [low, high)
        if first == last:
            proof.append(_range_root(low, high, get))
        elif last - first < high - low:  # not every leaf here is chosen
            middle = low + _split(high - low)
            split = bisect_left(indices, middle, first, last)
            walk(low, middle, first, split)
            walk(middle, high, split, last)

    walk(0, size, 0, len(indices))
    return proof


def root_from_multi(
    indices: Sequence[int], leaf_hashes: Sequence[bytes], size: int, proof: Sequence[bytes]
) -> bytes:
    """The root `proof` leads to from `leaf_hashes` placed at `indices`. ValueError when
    it cannot be a proof for these leaves and size; compare the result with a trusted
    root."""
    _check(indices, size)
    if len(leaf_hashes) != len(indices):
        raise ValueError(f"{len(leaf_hashes)} leaf hashes for {len(indices)} indices")
    if any(len(h) != HASH_SIZE for h in leaf_hashes) or any(len(p) != HASH_SIZE for p in proof):
        raise ValueError(f"leaf and proof hashes must be {HASH_SIZE} bytes")
    given = iter(proof)

    def walk(low: int, high: int, first: int, last: int) -> bytes:
        if first == last:
            found = next(given, None)
            if found is None:
                raise ValueError("the proof is shorter than these leaves need")
            return found
        if last - first == high - low:  # every leaf here is given: hash them up
            return root(leaf_hashes[first:last])
        middle = low + _split(high - low)
        split = bisect_left(indices, middle, first, last)
        left = walk(low, middle, first, split)
        return node_hash(left, walk(middle, high, split, last))

    computed = walk(0, size, 0, len(indices))
    if next(given, None) is not None:
        raise ValueError("the proof is longer than these leaves need")
    return computed


def verify_multi(
    indices: Sequence[int],
    leaf_hashes: Sequence[bytes],
    size: int,
    proof: Sequence[bytes],
    root_hash: bytes,
) -> bool:
    """Whether `leaf_hashes` are the leaves at `indices` of the tree (size, root_hash)."""
    try:
        computed = root_from_multi(indices, leaf_hashes, size, proof)
    except ValueError:
        return False
    return len(root_hash) == HASH_SIZE and computed == root_hash
