"""Central's public transparency log: every stored entry appended to an RFC 9162
Merkle tree in central's database, signed checkpoints, and proofs (docs/trust.md).

**Leaves.** One per entry, in the order the log's sequencer takes them:

    leaf bytes = "greenpass-leaf-v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ seq (8 bytes, big-endian) ‖ h

where `h` is the entry's chain hash (SHA-256 of the previous hash and the entry's
canonical bytes, `edge.entries`). The issue asked for the canonical bytes themselves;
the chain hash commits to them and to the device's whole history before the entry,
it is what a kiosk already holds for each of its entries (so it can compute its own
leaves), and it keeps the log free of any data field: a kiosk's enrolments from
before enrol data version 2 held a household's name, which must never be published
(docs/privacy.md). A verifier holding the entries recomputes `h` along the chain.

**Storage** (`greenpass.merkle`'s layout): `tlog_nodes` holds every full subtree
(level 0: the leaf hashes), written once, never changed — about two rows per leaf;
`tlog_leaves` maps an entry to its index; `tlog_progress` is how far each device's
entries are in the log; `tlog_head` the size; `tlog_checkpoints` every signed size.

**The sequencer** (`append_pending`) runs in central's service, outside ingest's
transaction: ingest stays as fast as before, and the log follows a tick later. It
locks `tlog_head` for its whole transaction (FOR UPDATE on PostgreSQL, SQLite's
BEGIN IMMEDIATE), so two central workers never append the same size twice: the log
cannot fork. A checkpoint is signed with central's key when `every_entries` entries
or `every_s` seconds have passed since the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    tuple_,
    update,
)

from central import db
from central.store import CentralStore
from greenpass import checkpoint, merkle
from greenpass.errors import CentralError, ConfigError

LEAF_PREFIX = b"greenpass-leaf-v1\x00"
DEFAULT_ORIGIN = "greenpass.local/log"
MAX_APPEND = 20_000  # leaves per sequencer transaction: a storm's backlog goes in steps

m = db.metadata
tlog_nodes = Table(
    "tlog_nodes",
    m,
    Column("level", SmallInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("level", "idx", name="tlog_nodes_pk"),
)
tlog_leaves = Table(
    "tlog_leaves",
    m,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("device_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    UniqueConstraint("device_id", "seq", name="tlog_leaves_entry"),
)
tlog_progress = Table(
    "tlog_progress",
    m,
    Column("device_id", Text, primary_key=True),
    Column("logged_seq", BigInteger, nullable=False),
)
tlog_head = Table(
    "tlog_head",
    m,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
)
tlog_checkpoints = Table(
    "tlog_checkpoints",
    m,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("made_ms", BigInteger, nullable=False),
)
TABLES = [tlog_nodes, tlog_leaves, tlog_progress, tlog_head, tlog_checkpoints]


def migrate_v7(conn: Connection) -> None:
    m.create_all(conn, tables=TABLES, checkfirst=False)
    conn.execute(insert(tlog_head).values(id=1, size=0))


def leaf_bytes(device_id: str, seq: int, h: bytes) -> bytes:
    return LEAF_PREFIX + device_id.encode() + b"\x00" + seq.to_bytes(8, "big") + h


def entry_leaf_hash(device_id: str, seq: int, h: bytes) -> bytes:
    return merkle.leaf_hash(leaf_bytes(device_id, seq, h))


@dataclass(frozen=True)
class LogSettings:
    origin: str = DEFAULT_ORIGIN  # the checkpoints' origin line and key name
    every_entries: int = 1000  # a new checkpoint after this many entries …
    every_s: float = 10.0  # … or this many seconds, whichever comes first

    def __post_init__(self) -> None:
        # The origin is also the signed note's key name: no spaces, no "+".
        if not self.origin or any(c.isspace() or c == "+" for c in self.origin):
            raise ConfigError(
                f"the log origin {self.origin!r} must be one word without '+', "
                "e.g. central.county.example/log",
                key="log_origin",
            )


class _Nodes:
    """`merkle.GetNode` over `tlog_nodes`, fetching what it is asked for in one query
    per proof (the pairs a proof needs depend only on the sizes)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cache: dict[tuple[int, int], bytes] = {}

    def fetch(self, pairs: set[tuple[int, int]]) -> None:
        missing = list(pairs - set(self.cache))
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = self.conn.execute(
                select(tlog_nodes.c.level, tlog_nodes.c.idx, tlog_nodes.c.hash).where(
                    tuple_(tlog_nodes.c.level, tlog_nodes.c.idx).in_(chunk)
                )
            )
            self.cache.update({(r.level, r.idx): bytes(r.hash) for r in rows})

    def __call__(self, level: int, index: int) -> bytes:
        found = self.cache.get((level, index))
        if found is None:
            self.fetch({(level, index)})
            found = self.cache.get((level, index))
            if found is None:
                raise CentralError(f"transparency log: node ({level}, {index}) is missing")
        return found

    def prefetch(self, build: object, *args: int) -> None:
        """Run a proof builder once with a recording getter, then fetch what it read."""
        wanted: set[tuple[int, int]] = set()

        def record(level: int, index: int) -> bytes:
            wanted.add((level, index))
            return bytes(32)

        build(*args, record)  # type: ignore[operator]
        self.fetch(wanted)


def append_pending(
    store: CentralStore, key: Ed25519PrivateKey, settings: LogSettings, now_ms: int
) -> int:
    """Append the entries stored since the last call to the log; sign a checkpoint when
    one is due. Returns the number of leaves appended."""
    d, e = db.devices, db.entries
    with store.write("appending to the transparency log") as conn:
        q = select(tlog_head.c.size).where(tlog_head.c.id == 1)
        size = int(conn.scalar(q.with_for_update() if store.postgres else q) or 0)
        logged = {r.device_id: int(r.logged_seq) for r in conn.execute(select(tlog_progress))}
        behind = [
            (r.device_id, logged.get(r.device_id, 0), int(r.acked_seq))
            for r in conn.execute(select(d.c.device_id, d.c.acked_seq).order_by(d.c.device_id))
            if int(r.acked_seq) > logged.get(r.device_id, 0)
        ]
        leaves: list[tuple[str, int, bytes]] = []
        for device_id, after, upto in behind:
            room = MAX_APPEND - len(leaves)
            if room <= 0:
                break
            rows = conn.execute(
                select(e.c.seq, e.c.h)
                .where((e.c.device_id == device_id) & (e.c.seq > after) & (e.c.seq <= upto))
                .order_by(e.c.seq)
                .limit(room)
            )
            leaves += [(device_id, int(r.seq), bytes(r.h)) for r in rows]
        if leaves:
            nodes = merkle.new_full_nodes(size, [entry_leaf_hash(*x) for x in leaves], _Nodes(conn))
            conn.execute(
                insert(tlog_nodes), [{"level": lv, "idx": i, "hash": h} for lv, i, h in nodes]
            )
            conn.execute(
                insert(tlog_leaves),
                [{"idx": size + n, "device_id": x[0], "seq": x[1]} for n, x in enumerate(leaves)],
            )
            last: dict[str, int] = {}
            for device_id, seq, _ in leaves:
                last[device_id] = seq
            for device_id, seq in last.items():
                if device_id in logged:
                    conn.execute(
                        update(tlog_progress)
                        .where(tlog_progress.c.device_id == device_id)
                        .values(logged_seq=seq)
                    )
                else:
                    conn.execute(insert(tlog_progress).values(device_id=device_id, logged_seq=seq))
            size += len(leaves)
            conn.execute(update(tlog_head).where(tlog_head.c.id == 1).values(size=size))
        _maybe_checkpoint(conn, size, key, settings, now_ms)
    return len(leaves)


def _maybe_checkpoint(
    conn: Connection, size: int, key: Ed25519PrivateKey, settings: LogSettings, now_ms: int
) -> None:
    c = tlog_checkpoints
    last = conn.execute(select(c.c.size, c.c.made_ms).order_by(c.c.size.desc()).limit(1)).first()
    if size == 0 or (last is not None and int(last.size) >= size):
        return
    due = last is None or (
        size - int(last.size) >= settings.every_entries
        or now_ms - int(last.made_ms) >= settings.every_s * 1000
    )
    if not due:
        return
    root = merkle.stored_root(size, _Nodes(conn))
    cp = checkpoint.Checkpoint(settings.origin, size, root)
    note = checkpoint.sign(cp, settings.origin, key).decode()
    conn.execute(insert(c).values(size=size, root=root, note=note, made_ms=now_ms))


# --- reading: what the public routes serve ----------------------------------------------


def latest_checkpoint(store: CentralStore) -> tuple[int, str] | None:
    """(size, signed note) of the newest checkpoint, or None before the first."""
    c = tlog_checkpoints
    with store.read("reading the log's checkpoint") as conn:
        row = conn.execute(select(c.c.size, c.c.note).order_by(c.c.size.desc()).limit(1)).first()
    return None if row is None else (int(row.size), str(row.note))


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
        index = conn.scalar(
            select(tlog_leaves.c.idx).where(
                (tlog_leaves.c.device_id == device_id) & (tlog_leaves.c.seq == seq)
            )
        )
        if index is None or int(index) >= size:
            raise CentralError(f"entry {device_id}:{seq} is not in the log at size {size}")
        nodes = _Nodes(conn)
        nodes.prefetch(merkle.inclusion_proof, int(index), size)
        proof = merkle.inclusion_proof(int(index), size, nodes)
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
        nodes = _Nodes(conn)
        nodes.prefetch(merkle.consistency_proof, old, new)
        proof = merkle.consistency_proof(old, new, nodes)
    return {"from": old, "to": new, "proof": [p.hex() for p in proof]}
