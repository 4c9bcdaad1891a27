"""RFC 9162 Merkle trees: published vectors, then every proof of many trees built from
stored full subtrees, checked against the plain leaf list and against tampering."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenpass.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    new_full_nodes,
    node_hash,
    root,
    root_from_inclusion,
    stored_root,
    verify_consistency,
    verify_inclusion,
)

# --- Vectors from github.com/transparency-dev/merkle at commit
# 417fb0c314750d94e53942e9f92e79b6d35915db:
#   testonly/constants.go  LeafInputs(), NodeHashes(), RootHashes()
#   cmd/proofgen/main.go   inclusionProofs, consistencyProofs (the generator of
#                          testdata/inclusion/* and testdata/consistency/*)
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
NODE_HASHES = {  # (level, index) -> hash of that full subtree of the 8-leaf tree
    (0, 0): "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    (0, 1): "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    (0, 2): "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    (0, 3): "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    (0, 4): "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    (0, 5): "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    (0, 6): "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    (0, 7): "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 1): "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (1, 3): "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (2, 1): "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
ROOTS = [  # by tree size 0..8
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
N = NODE_HASHES
# proofgen numbers leaves from 1 (it hashes leaves[leafIdx-1]); here they are 0-based.
INCLUSION = [  # (index, size, proof)
    (0, 1, []),
    (0, 8, [N[0, 1], N[1, 1], N[2, 1]]),
    (5, 8, [N[0, 4], N[1, 3], N[2, 0]]),
    (2, 3, [N[1, 0]]),
    (1, 5, [N[0, 0], N[1, 1], N[0, 4]]),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, [N[0, 1], N[1, 1], N[2, 1]]),
    (6, 8, [N[1, 2], N[1, 3], N[2, 0]]),
    (2, 5, [N[1, 1], N[0, 4]]),
    (6, 7, [N[1, 2], N[0, 6], N[2, 0]]),
]
# The hashes proofgen uses to corrupt probes.
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]


def h(hex_hash: str) -> bytes:
    return bytes.fromhex(hex_hash)


def hs(hex_hashes: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hex_hashes]


def store_of(leaves: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
    """What central would store: full subtrees, appended one leaf at a time."""
    store: dict[tuple[int, int], bytes] = {}
    for size, leaf in enumerate(leaves):
        for level, index, value in new_full_nodes(size, [leaf], lambda lv, i: store[lv, i]):
            assert (level, index) not in store, "an append rewrote a stored node"
            store[level, index] = value
    return store


def getter(store: dict[tuple[int, int], bytes]) -> Callable[[int, int], bytes]:
    return lambda level, index: store[level, index]


# --- The RFC's recursive definitions over a plain list, as an independent reference.
def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, leaves[:k]), root(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), root(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], whole), root(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def flip(value: bytes, bit: int = 3) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


# --- Published vectors ---


def test_hashes_and_roots_match_the_reference_tree() -> None:
    assert EMPTY_ROOT == h(ROOTS[0]) == hashlib.sha256(b"").digest()
    assert [x.hex() for x in LEAVES] == [NODE_HASHES[0, i] for i in range(8)]
    assert node_hash(LEAVES[0], LEAVES[1]) == h(NODE_HASHES[1, 0])
    store = store_of(LEAVES)
    assert {k: v.hex() for k, v in store.items()} == NODE_HASHES
    for size in range(9):
        assert root(LEAVES[:size]) == h(ROOTS[size])
        assert stored_root(size, getter(store)) == h(ROOTS[size])


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, proof: list[str]) -> None:
    built = inclusion_proof(index, size, getter(store_of(LEAVES)))
    assert built == hs(proof)
    assert verify_inclusion(LEAVES[index], index, size, built, h(ROOTS[size]))
    assert root_from_inclusion(LEAVES[index], index, size, built) == h(ROOTS[size])


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors_corrupted_as_proofgen_does(
    index: int, size: int, proof: list[str]
) -> None:
    """Each probe of proofgen's invalidInclusionProof must fail."""
    leaf, good, top = LEAVES[index], hs(proof), h(ROOTS[size])
    probes: list[tuple[int, int, bytes, list[bytes], bytes]] = [
        (index - 1, size, leaf, good, top),
        (index + 1, size, leaf, good, top),
        (index ^ 2, size, leaf, good, top),
        (index, size * 2, leaf, good, top),
        (index, size // 2, leaf, good, top),
        (index, size, b"WrongLeaf", good, top),
        (index, size, leaf, good, EMPTY_ROOT),
        (index, size, leaf, good, SOME_HASH),
        (index, size, leaf, [*good, b""], top),
        (index, size, leaf, [*good, top], top),
        (index, size, leaf, [b"", *good], top),
        (index, size, leaf, [top, *good], top),
    ]
    probes += [
        (index, size, leaf, [*good[:i], flip(good[i]), *good[i + 1 :]], top)
        for i in range(len(good))
    ]
    if good:
        probes.append((index, size, leaf, good[:-1], top))
    if len(good) > 1:
        probes.append((index, size, leaf, [good[0], SOME_HASH, *good[1:]], top))
    for i, s, lf, pr, rt in probes:
        assert not verify_inclusion(lf, i, s, pr, rt), (i, s, lf, pr, rt)


def test_inclusion_static_probes() -> None:
    """proofgen's singleEntryInclusionProbes and staticInclusionProbes."""
    one = leaf_hash(b"data")
    assert verify_inclusion(one, 0, 1, [], one)
    assert not verify_inclusion(b"", 0, 1, [], one)
    assert not verify_inclusion(one, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], b"")
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        assert not verify_inclusion(SOME_HASH, index, size, [], b"")
        assert not verify_inclusion(b"", index, size, [], EMPTY_ROOT)
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_vectors(old: int, new: int, proof: list[str]) -> None:
    built = consistency_proof(old, new, getter(store_of(LEAVES)))
    assert built == hs(proof)
    assert verify_consistency(old, new, h(ROOTS[old]), h(ROOTS[new]), built)


@pytest.mark.parametrize(("old", "new", "proof"), [c for c in CONSISTENCY if c[2]])
def test_consistency_vectors_corrupted_as_proofgen_does(
    old: int, new: int, proof: list[str]
) -> None:
    """Each probe of proofgen's invalidConsistencyProof must fail."""
    r1, r2, good = h(ROOTS[old]), h(ROOTS[new]), hs(proof)
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old - 1, new, r1, r2, good),
        (old + 1, new, r1, r2, good),
        (old ^ 2, new, r1, r2, good),
        (old, new * 2, r1, r2, good),
        (old, new // 2, r1, r2, good),
        (old, new, b"WrongRoot", r2, good),
        (old, new, r1, b"WrongRoot", good),
        (old, new, r2, r1, good),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*good, b""]),
        (old, new, r1, r2, [*good, r1]),
        (old, new, r1, r2, [*good, r2]),
        (old, new, r1, r2, [b"", *good]),
        (old, new, r1, r2, [r1, *good]),
        (old, new, r1, r2, [r2, *good]),
        (old, new, r1, r2, [good[0], *good]),
        (old, new, r1, r2, good[:-1]),
    ]
    probes += [
        (old, new, r1, r2, [*good[:i], flip(good[i], 4), *good[i + 1 :]]) for i in range(len(good))
    ]
    for s1, s2, a, b, pr in probes:
        assert not verify_consistency(s1, s2, a, b, pr), (s1, s2, a, b, pr)


def test_consistency_static_probes() -> None:
    """proofgen's staticConsistencyProbes. Its one accepted probe, sizes (1, 1) with
    equal roots and no proof, uses a 12-byte "root"; we refuse any root that is not
    32 bytes, so it is checked here with a real one."""
    r1, r2 = b"don't care 1", b"don't care 2"
    refused = [
        (0, 0, r1, r2, []),
        (1, 1, r1, r2, []),
        (0, 0, r1, r1, []),
        (0, 1, r1, r2, []),
        (1, 0, r1, r2, []),
        (2, 1, r1, r2, []),
        (1, 2, r1, r2, []),
        (0, 0, EMPTY_ROOT, r2, []),
        (1, 1, EMPTY_ROOT, r2, []),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (0, 1, EMPTY_ROOT, r2, []),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, r2, r2, []),  # proofgen accepts this one; see above
    ]
    for s1, s2, a, b, pr in refused:
        assert not verify_consistency(s1, s2, a, b, pr), (s1, s2, a, b, pr)
    assert verify_consistency(1, 1, SOME_HASH, SOME_HASH, [])
    assert verify_consistency(8, 8, h(ROOTS[8]), h(ROOTS[8]), [])


# --- Every proof of many trees, against the RFC's definitions over the plain list ---


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_every_proof_of_every_small_tree() -> None:
    leaves = leaves_of(40)
    get = getter(store_of(leaves))
    for new in range(1, len(leaves) + 1):
        top = root(leaves[:new])
        assert stored_root(new, get) == top
        for index in range(new):
            proof = inclusion_proof(index, new, get)
            assert proof == ref_path(index, leaves[:new])
            assert verify_inclusion(leaves[index], index, new, proof, top)
        for old in range(1, new + 1):
            proof = consistency_proof(old, new, get)
            assert proof == ref_subproof(old, leaves[:new], True)
            assert verify_consistency(old, new, root(leaves[:old]), top, proof)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_random_trees(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    get = getter(store_of(leaves))
    top = root(leaves)
    assert stored_root(size, get) == top
    for index in range(size):
        assert verify_inclusion(leaves[index], index, size, inclusion_proof(index, size, get), top)
    for old in range(1, size + 1):
        proof = consistency_proof(old, size, get)
        assert verify_consistency(old, size, root(leaves[:old]), top, proof)

    # A past tree served from the same (bigger) store.
    new = data.draw(st.integers(1, size), label="new")
    old = data.draw(st.integers(1, new), label="old")
    index = data.draw(st.integers(0, new - 1), label="index")
    new_root, old_root = root(leaves[:new]), root(leaves[:old])
    inclusion = inclusion_proof(index, new, get)
    consistency = consistency_proof(old, new, get)
    assert verify_inclusion(leaves[index], index, new, inclusion, new_root)
    assert verify_consistency(old, new, old_root, new_root, consistency)

    # Any change fails.
    assert not verify_inclusion(flip(leaves[index]), index, new, inclusion, new_root)
    assert not verify_inclusion(leaves[index], index, new, inclusion, flip(new_root))
    other = data.draw(st.integers(0, size).filter(lambda i: i != index), label="other")
    assert not verify_inclusion(leaves[index], other, new, inclusion, new_root)
    if inclusion:
        at = data.draw(st.integers(0, len(inclusion) - 1), label="at")
        bad = [*inclusion[:at], flip(inclusion[at]), *inclusion[at + 1 :]]
        assert not verify_inclusion(leaves[index], index, new, bad, new_root)
    assert not verify_consistency(old, new, old_root, flip(new_root), consistency)
    if old < new:
        assert not verify_consistency(old, new, flip(old_root), new_root, consistency)
        at = data.draw(st.integers(0, len(consistency) - 1), label="at")
        bad = [*consistency[:at], flip(consistency[at]), *consistency[at + 1 :]]
        assert not verify_consistency(old, new, old_root, new_root, bad)


def test_batches_store_the_same_nodes_as_single_appends() -> None:
    leaves = leaves_of(100)
    one_by_one = store_of(leaves)
    batched: dict[tuple[int, int], bytes] = {}
    size = 0
    for batch in (leaves[0:1], leaves[1:9], leaves[9:10], leaves[10:77], leaves[77:]):
        for level, index, value in new_full_nodes(size, batch, getter(batched)):
            assert (level, index) not in batched
            batched[level, index] = value
        size += len(batch)
    assert batched == one_by_one
    assert len(batched) == 2 * 100 - (100).bit_count()


def test_proofs_read_only_a_logarithmic_number_of_nodes() -> None:
    """A big tree that is never built: any 32 bytes stand in for its nodes."""
    size = (1 << 40) - 12345
    reads: list[tuple[int, int]] = []

    def get(level: int, index: int) -> bytes:
        assert (index + 1) << level <= size, "read a node that is not full yet"
        reads.append((level, index))
        return hashlib.sha256(f"{level}/{index}".encode()).digest()

    for build in (
        lambda: stored_root(size, get),
        lambda: inclusion_proof(size - 3, size, get),
        lambda: inclusion_proof(123456789, size, get),
        lambda: consistency_proof(size - 77777, size, get),
        lambda: consistency_proof(3, size, get),
    ):
        reads.clear()
        build()
        assert len(reads) <= 2 * 40 + 2
