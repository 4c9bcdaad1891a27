"""Reading the transparency log (`central.tlog`): its nodes as proofs need them, and the
inclusion and consistency proofs central serves (docs/trust.md).

`Nodes` is `greenpass.merkle`'s `GetNode` over what `central.tlog` stores: the full
subtrees at levels STEP, 2·STEP, … from `tlog_nodes`, leaves recomputed from their
entries' hashes, and the levels between hashed up from below; what it reads or makes
is kept for the process (`central.node_cache`). State pushes, evidence packs and the
log's HTTP routes read the log through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, select, tuple_

from central import db
from central.node_cache import NodeCache
from central.tlog import STEP, tlog_checkpoints, tlog_nodes, tlog_runs
from greenpass import merkle
from greenpass.errors import CentralError
from greenpass.tlog_leaf import device_prefix

if TYPE_CHECKING:  # a type only: the store opens through modules that import this one
    from central.store import CentralStore


# A leaf block's entries (`Nodes.leaf`), with the run each is in, in one statement built
# once: a state push asks for them for every kiosk whose entries are new to this worker,
# and in a storm of 20-entry batches a query per run made ~4 round trips a block.
_r, _en = tlog_runs, db.entries
_BLOCK = (
    select(_r.c.first_idx, _r.c.device_id, _r.c.first_seq, _en.c.seq, _en.c.h)
    .join(
        _en,
        (_en.c.device_id == _r.c.device_id)
        & (_en.c.seq >= _r.c.first_seq)
        & (_en.c.seq < _r.c.first_seq + _r.c.count),
    )
    .where(
        # The run holding the block's first leaf, and those starting inside the block.
        (
            _r.c.first_idx
            >= select(func.max(_r.c.first_idx))
            .where(_r.c.first_idx <= bindparam("b_low"))
            .scalar_subquery()
        )
        & (_r.c.first_idx < bindparam("b_high"))
        # Of each, the entries at the block's leaves, as a range of seq: the primary
        # key's index finds them.
        & (_en.c.seq >= _r.c.first_seq + bindparam("b_low") - _r.c.first_idx)
        & (_en.c.seq < _r.c.first_seq + bindparam("b_high") - _r.c.first_idx)
    )
)


class Nodes:
    """`merkle.GetNode` over what is stored: levels STEP, 2·STEP, … from `tlog_nodes`,
    leaves from their entries, the rest hashed up from below; what it reads or makes
    is kept, and `prefetch` reads a proof's stored nodes in one query. One per read
    transaction; what it keeps goes into `shared` when given (the store's
    `log_nodes`, central.node_cache): a full node is the same in every snapshot of
    one log. (A database restored under a running central is another log: restart
    central after a restore.)"""

    def __init__(self, conn: Connection, shared: NodeCache | None = None) -> None:
        self.conn = conn
        self.cache = shared if shared is not None else NodeCache(limit=None)

    def fetch(self, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Read the stored nodes of `pairs` not kept yet; keep them, and return them
        (a shared cache may already have let them go)."""
        missing = [p for p in pairs if p[0] and not p[0] % STEP and p not in self.cache]
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = self.conn.execute(
                select(tlog_nodes.c.level, tlog_nodes.c.idx, tlog_nodes.c.hash).where(
                    tuple_(tlog_nodes.c.level, tlog_nodes.c.idx).in_(chunk)
                )
            )
            found.update(((int(r.level), int(r.idx)), bytes(r.hash)) for r in rows)
        self.cache.update(found.items())
        return found

    def leaf(self, index: int) -> bytes:
        """Leaf `index`, recomputed from its entry; the other leaves of its block of
        2^STEP come with it (every node below a stored level is hashed from one block,
        and a proof asks for several of them), in a query per run it crosses."""
        low = index - index % (1 << STEP)
        high = low + (1 << STEP)
        made: list[tuple[tuple[int, int], bytes]] = []
        prefixes: dict[str, bytes] = {}
        for first_idx, device_id, first_seq, seq, h in self.conn.execute(
            _BLOCK, {"b_low": low, "b_high": high}
        ):
            prefix = prefixes.get(device_id)
            if prefix is None:
                prefix = prefixes[device_id] = device_prefix(str(device_id))
            at = int(first_idx) + int(seq) - int(first_seq)
            data = prefix + int(seq).to_bytes(8, "big") + bytes(h)
            made.append(((0, at), merkle.leaf_hash(data)))
        self.cache.update(made)
        # From what was just made, not the cache: a shared one may have evicted it.
        found = dict(made).get((0, index))
        if found is None:
            raise CentralError(f"transparency log: leaf {index}'s entry is missing")
        return found

    def __call__(self, level: int, index: int) -> bytes:
        found = self.cache.get((level, index))
        if found is not None:
            return found
        if level == 0:
            found = self.leaf(index)
        elif level % STEP == 0:
            found = self.fetch({(level, index)}).get((level, index))
            if found is None:
                raise CentralError(f"transparency log: node ({level}, {index}) is missing")
        else:
            found = merkle.node_hash(self(level - 1, 2 * index), self(level - 1, 2 * index + 1))
        self.cache[level, index] = found
        return found

    def prove(self, build: Callable[..., list[bytes]], *args: Any) -> list[bytes]:
        """`build(*args, get)`, a proof builder of greenpass.merkle: in one pass when
        every node it reads is kept already (a state push's proofs, mostly), otherwise
        after one query for the stored nodes it reads (`prefetch`)."""
        proof, wanted, missed = self._walk(build, args)
        if not missed:
            return proof
        self._fetch_below(wanted)
        return build(*args, self)

    def prefetch(self, build: Callable[..., list[bytes]], *args: Any) -> None:
        """Run a proof builder once on what is kept, then fetch the stored nodes it read."""
        self._fetch_below(self._walk(build, args)[1])

    def _walk(
        self, build: Callable[..., list[bytes]], args: tuple[Any, ...]
    ) -> tuple[list[bytes], set[tuple[int, int]], bool]:
        """`build` run on the kept nodes alone (a placeholder for each one not kept):
        its proof, the nodes it asked for (they depend only on the sizes), and whether
        any was missing."""
        wanted: set[tuple[int, int]] = set()
        missed = False

        def kept(level: int, index: int) -> bytes:
            nonlocal missed
            wanted.add((level, index))
            found = self.cache.get((level, index))
            if found is None:
                missed = True
                return bytes(32)
            return found

        return build(*args, kept), wanted, missed

    def _fetch_below(self, wanted: set[tuple[int, int]]) -> None:
        # A node between stored levels is hashed from the 2^(level % STEP) stored nodes
        # below it: all of them, not the first alone (each missing one was a query).
        below = {
            (lv - lv % STEP, (i << (lv % STEP)) + k)
            for lv, i in wanted
            for k in range(1 << (lv % STEP))
        }
        self.fetch(wanted | below)


def _checked_size(conn: Connection, size: int | None) -> int:
    c = tlog_checkpoints
    newest = int(conn.scalar(select(func.max(c.c.size))) or 0)
    if size is None:
        if newest == 0:
            raise CentralError("the log has no checkpoint yet")
        return newest
    if not 0 < size <= newest:
        raise CentralError(f"no checkpoint covers size {size} (the newest is {newest})")
    return size


def inclusion(
    store: CentralStore, device_id: str, seq: int, size: int | None = None
) -> dict[str, object]:
    """Where entry (device, seq) is in the log, and the proof that a tree of `size`
    (default: the newest checkpoint's) includes it."""
    with store.read("proving an inclusion", snapshot=True) as conn:
        size = _checked_size(conn, size)
        r = tlog_runs
        run = conn.execute(
            select(r.c.first_idx, r.c.first_seq, r.c.count.label("entries"))
            .where((r.c.device_id == device_id) & (r.c.first_seq <= seq))
            .order_by(r.c.first_seq.desc())
            .limit(1)
        ).first()
        index = None
        if run is not None and seq < int(run.first_seq) + int(run.entries):
            index = int(run.first_idx) + seq - int(run.first_seq)
        if index is None or index >= size:
            raise CentralError(f"entry {device_id}:{seq} is not in the log at size {size}")
        nodes = Nodes(conn, store.log_nodes)
        proof = nodes.prove(merkle.inclusion_proof, int(index), size)
        leaf = nodes(0, int(index))
    return {
        "device_id": device_id, "seq": seq, "index": int(index), "size": size,
        "leaf_hash": leaf.hex(), "proof": [p.hex() for p in proof],
    }  # fmt: skip


def consistency(store: CentralStore, old: int, new: int) -> dict[str, object]:
    """The proof that the tree of size `new` extends the one of size `old`."""
    with store.read("proving consistency", snapshot=True) as conn:
        new = _checked_size(conn, new)
        if not 0 < old <= new:
            raise CentralError(f"a consistency proof needs 0 < from <= to, got {old}, {new}")
        nodes = Nodes(conn, store.log_nodes)
        proof = nodes.prove(merkle.consistency_proof, old, new)
    return {"from": old, "to": new, "proof": [p.hex() for p in proof]}
