"""RFC 9162 Merkle trees (SHA-256): hashing, proofs built from stored subtrees, verification.

Everything a verifier needs offline is here and pure: `verify_inclusion` and
`verify_consistency` follow RFC 9162 §2.1.3.2 and §2.1.4.2 step by step;
`range_proof` / `verify_range` prove a run of consecutive leaves at once.

Storage layout (what the log's appender writes, what the proof builders read)
-----------------------------------------------------------------------------
A *full subtree* node ``(level, index)`` is the hash of the perfect subtree over
the leaves ``[index·2^level, (index+1)·2^level)``; level 0 is the leaf hashes. Once
the tree holds ``(index+1)·2^level`` leaves the node exists and never changes, so
the store is append-only: `new_full_nodes` returns exactly the nodes an append
completes (the leaf itself plus one per trailing 1-bit of its index), which is
``2n - popcount(n)`` nodes for n leaves — one leaf row plus about one inner row
per leaf. Nothing is ever rewritten.

The tree of any size ``n <= stored size`` is made of such nodes: ``[0, n)`` splits
into perfect subtrees by the 1-bits of n, and the root folds them right to left.
Partial right edges (RFC's ``MTH(D[k:n])`` with n not a power of two) are computed
the same way on demand and never stored, because they change with every append.
So `stored_root`, `inclusion_proof` and `consistency_proof` answer for *past* sizes
too, calling ``get(level, index)`` O(log n) times each (at most about 2·log2 n).

A store that prefers one query per proof can first call the builder with a getter
that records the ``(level, index)`` pairs and returns any 32 bytes, fetch those
rows at once, then call it again with a dict: the pairs depend only on the sizes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

GetNode = Callable[[int, int], bytes]
"""``get(level, index)``: the stored hash of full subtree ``(level, index)``."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 ‖ data); the prefix keeps leaves and nodes apart."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a plain list of leaf hashes (any length).

    Pairing level by level and carrying an odd last node up unchanged gives the
    same tree as RFC 9162's split at the largest power of two below n."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _split(n: int) -> int:
    """RFC's k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(start: int, end: int, get: GetNode) -> bytes:
    """MTH of leaves [start, end), from full subtrees; `start` must be a multiple of
    the smallest power of two >= end - start (true of every range RFC 9162 splits
    a tree into). At most log2(end - start) + 1 calls to `get`."""
    parts: list[bytes] = []
    position, remaining = start, end - start
    while remaining:
        level = remaining.bit_length() - 1
        parts.append(get(level, position >> level))
        position += 1 << level
        remaining -= 1 << level
    result = parts.pop()
    while parts:
        result = node_hash(parts.pop(), result)
    return result


def stored_root(size: int, get: GetNode) -> bytes:
    """The root of the tree of the first `size` leaves."""
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return _range_root(0, size, get) if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, get: GetNode) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), the sibling nearest the leaf first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            path.append(_range_root(middle, end, get))
            end = middle
        else:
            path.append(_range_root(start, middle, get))
            start = middle
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, get: GetNode) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]); empty when the sizes are equal.

    A proof from size 0 is not defined (every tree extends the empty one), so a
    client that holds no checkpoint yet has nothing to check and none is built."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    proof: list[bytes] = []
    start, end, old = 0, new_size, old_size  # SUBPROOF(old, D[start:end], whole)
    whole = True
    while old != end - start:
        k = _split(end - start)
        if old <= k:
            proof.append(_range_root(start + k, end, get))
            end = start + k
        else:
            proof.append(_range_root(start, start + k, get))
            start, old, whole = start + k, old - k, False
    if not whole:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old tree's piece the verifier lacks.
        proof.append(_range_root(start, end, get))
    proof.reverse()
    return proof


def edge(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees [0, size) splits into, left to right: the
    tree's right edge, every left sibling an append can need."""
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


Node = tuple[int, int, bytes]  # (level, index, hash)


def carries(size: int, stack: list[Node], leaf_hashes: Iterable[bytes]) -> Iterator[Node]:
    """Append `leaf_hashes` to the tree of `size` whose right edge is `stack` (its
    nodes in `edge(size)` order; updated in place to the new edge): yields every full
    node the append completes, each leaf first, in the order they complete. The edge
    is a stack of falling levels, so an append is a binary counter's carry: each carry
    hashes one node from its left sibling on top of the stack."""
    index = size
    for leaf in leaf_hashes:
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash has {len(leaf)} bytes, not {HASH_SIZE}")
        level, idx, value = 0, index, leaf
        yield level, idx, value
        while stack and stack[-1][0] == level:
            value = hashlib.sha256(b"\x01" + stack.pop()[2] + value).digest()
            level, idx = level + 1, idx >> 1
            yield level, idx, value
        stack.append((level, idx, value))
        index += 1


def new_full_nodes(
    size_before: int, leaf_hashes: Sequence[bytes], get: GetNode
) -> list[tuple[int, int, bytes]]:
    """The ``(level, index, hash)`` of every full subtree completed by appending
    `leaf_hashes` to a tree of `size_before` leaves, in the order they complete.

    `get` reads the tree's right edge before the append (the only left siblings the
    new nodes can have); the batch can be written in one transaction after this."""
    if size_before < 0:
        raise ValueError(f"tree size {size_before} is negative")
    stack = [(lv, i, get(lv, i)) for lv, i in edge(size_before)]
    return list(carries(size_before, stack, leaf_hashes))


RangeRoot = Callable[[int, int], bytes]
"""``mth(low, high)``: the root of the subtree over leaves [low, high) RFC 9162 splits into."""


def _range_walk(start: int, end: int, size: int, inside: RangeRoot, outside: RangeRoot) -> bytes:
    """MTH of the tree of `size` leaves, split as RFC 9162 splits it: `inside` gives the
    subtrees within leaves [start, end), `outside` those disjoint from it (one hash
    each), and the ones across its edges are hashed from their two halves. Both range
    functions walk this way, so a proof's hashes are taken in the order they were made."""

    def mth(low: int, high: int) -> bytes:
        if high <= start or low >= end:
            return outside(low, high)
        if start <= low and high <= end:
            return inside(low, high)
        middle = low + _split(high - low)
        return node_hash(mth(low, middle), mth(middle, high))

    return mth(0, size)


def range_proof(start: int, end: int, size: int, get: GetNode) -> list[bytes]:
    """The proof that leaves [start, end) are leaves of the tree of `size`: the roots
    of the largest subtrees outside the range, along its two edges, at most about
    2·log2(size) hashes. It proves every leaf of the range at once — a kiosk's
    entries logged together — where one inclusion proof each would cost as many
    paths. For one leaf it holds the hashes of its inclusion proof (in another order).

    Not an RFC 9162 structure: the multi-leaf form of its inclusion proof, in the
    same tree (like transparency-dev's compact ranges)."""
    if not 0 <= start < end <= size:
        raise ValueError(f"leaves [{start}, {end}) are not a range of a tree of size {size}")
    proof: list[bytes] = []

    def outside(low: int, high: int) -> bytes:
        found = _range_root(low, high, get)
        proof.append(found)
        return found

    _range_walk(start, end, size, lambda _low, _high: bytes(HASH_SIZE), outside)
    return proof


def root_from_range(
    start: int, leaf_hashes: Sequence[bytes], size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that `proof` (from `range_proof`) leads to from `leaf_hashes` placed at
    leaves [start, start + len). ValueError when the proof cannot be one for this range
    and size (too short, too long, hashes not 32 bytes); compare the result with a
    trusted root."""
    end = start + len(leaf_hashes)
    if not 0 <= start < end <= size:
        raise ValueError(f"leaves [{start}, {end}) are not a range of a tree of size {size}")
    if not all(_is_hash(h) for h in leaf_hashes) or not all(_is_hash(p) for p in proof):
        raise ValueError(f"leaf and proof hashes must be {HASH_SIZE} bytes")
    given = iter(proof)

    def outside(_low: int, _high: int) -> bytes:
        found = next(given, None)
        if found is None:
            raise ValueError("proof is shorter than the range needs")
        return found

    def inside(low: int, high: int) -> bytes:
        return root(leaf_hashes[low - start : high - start])

    computed = _range_walk(start, end, size, inside, outside)
    if next(given, None) is not None:
        raise ValueError("proof is longer than the range needs")
    return computed


def verify_range(
    start: int, leaf_hashes: Sequence[bytes], size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """Whether `leaf_hashes` are leaves [start, start + len) of the tree of `size` leaves
    whose root is `root_hash`."""
    try:
        computed = root_from_range(start, leaf_hashes, size, proof)
    except ValueError:
        return False
    return _is_hash(root_hash) and computed == root_hash


def _is_hash(value: bytes) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-4: the root that `proof` leads to from `leaf`.

    ValueError when the proof cannot be one for this index and size (too short,
    too long, hashes not 32 bytes); compare the result with a trusted root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    if not _is_hash(leaf) or not all(_is_hash(p) for p in proof):
        raise ValueError(f"leaf and proof hashes must be {HASH_SIZE} bytes")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ValueError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:  # fn == sn: a right edge; skip levels with no sibling
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """Whether `leaf` is leaf `index` of the tree of `size` leaves whose root is `root_hash`."""
    try:
        computed = root_from_inclusion(leaf, index, size, proof)
    except ValueError:
        return False
    return _is_hash(root_hash) and computed == root_hash


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: whether the tree (new_size, new_root) extends (old_size, old_root).

    Equal sizes need an empty proof and equal roots. Size 0 is refused, as
    transparency-dev/merkle does: there is nothing to prove, and accepting any
    root there would let a caller mistake "no check" for a passed one."""
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        return False
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    # 1. An empty path fails.
    if not proof:
        return False
    path = list(proof)
    # 2. A power-of-two old tree is a node of the new one: its root starts the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3-4. Skip the levels where the old tree's last leaf is a right child.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5-6. fr rebuilds the old root, sr the new one, from the same path.
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. Both roots match and the path reached the top.
    return fr == old_root and sr == new_root and sn == 0
