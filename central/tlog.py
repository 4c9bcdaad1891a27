"""Central's public transparency log: every stored entry appended to an RFC 9162
Merkle tree in central's database and signed checkpoints (docs/trust.md); it is read,
and proofs made, through `central.tlog_proofs`.

**Leaves.** One per entry, in the order the log's sequencer takes them
(`greenpass.tlog_leaf`, which kiosks import too):

    leaf bytes = "greenpass-leaf-v1" ‖ 0x00 ‖ device id ‖ 0x00 ‖ seq (8 bytes, big-endian) ‖ h

where `h` is the entry's chain hash (SHA-256 of the previous hash and the entry's
canonical bytes, `greenpass.record.entries`). The issue asked for the canonical bytes themselves;
the chain hash commits to them and to the device's whole history before the entry,
it is what a kiosk already holds for each of its entries (so it can compute its own
leaves), and it keeps the log free of any data field: a kiosk's enrolments from
before enrol data version 2 held a household's name, which must never be published
(docs/privacy.md). A verifier holding the entries recomputes `h` along the chain.

**Storage**, small enough that the log costs ingest little (`python -m
bench.sync_drain`): leaf hashes are not stored — a leaf is recomputed from its entry's
`h` — and of the full subtrees (`greenpass.merkle`'s layout) only those at levels 4,
8, 12, … are (`tlog_nodes`, about one row per 15 leaves, written once, never changed);
a node at another level is hashed up from at most 8 below it when a proof needs it.
`tlog_runs` maps a leaf index to its entry: each sequencer pass appends each device's
new entries as one contiguous run. `tlog_head` holds the size and the tree's right
edge (the hashes of the perfect subtrees the size splits into: every left sibling an
append needs), `tlog_progress` how far each device's entries are logged,
`tlog_checkpoints` every signed size.

**The sequencer** (`append_pending`) runs beside central's service — in a child
process under `greenpass central` (`central.sequencer`), in a thread when the service
is run in-process — outside ingest's transaction: ingest stays as fast as before, and
the log follows a tick later. It
locks `tlog_head` for its whole transaction (FOR UPDATE on PostgreSQL, SQLite's
BEGIN IMMEDIATE), so two central workers never append the same size twice: the log
cannot fork. A checkpoint is signed with central's key when `every_entries` entries
or `every_s` seconds have passed since the last one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from central import db
from central.db import storage_error
from greenpass import checkpoint, merkle
from greenpass.errors import CentralError, ConfigError
from greenpass.tlog_leaf import device_prefix

if TYPE_CHECKING:  # a type only: the store opens through modules that import this one
    from central.store import CentralStore

DEFAULT_ORIGIN = "greenpass.local/log"
MAX_APPEND = 20_000  # leaves per sequencer transaction: a storm's backlog goes in steps

m = db.metadata
STEP = 4  # only levels STEP, 2·STEP, … are stored
tlog_nodes = Table(
    "tlog_nodes",
    m,
    Column("level", SmallInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("level", "idx", name="tlog_nodes_pk"),
    sqlite_with_rowid=False,
)
tlog_runs = Table(
    "tlog_runs",
    m,
    Column("first_idx", BigInteger, primary_key=True, autoincrement=False),
    Column("device_id", Text, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Index("tlog_runs_entry", "device_id", "first_seq"),
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
    Column("edge", LargeBinary, nullable=False),  # the right edge's hashes, 32 bytes each
)
tlog_checkpoints = Table(
    "tlog_checkpoints",
    m,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("made_ms", BigInteger, nullable=False),
)
TABLES = [tlog_nodes, tlog_runs, tlog_progress, tlog_head, tlog_checkpoints]


def migrate_v7(conn: Connection) -> None:
    m.create_all(conn, tables=TABLES, checkfirst=False)
    conn.execute(insert(tlog_head).values(id=1, size=0, edge=b""))


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


@dataclass
class _Plan:
    """What one append will write, worked out from a read snapshot, outside the lock."""

    size: int  # the log's size it was planned on
    leaves: int = 0
    nodes: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    new_size: int = 0
    edge: bytes = b""
    root: bytes = merkle.EMPTY_ROOT
    checkpoint_due: bool = False


# PostgreSQL advisory lock of the log's planner (migrations hold 7412).
_PLANNER_LOCK = 7413


@contextmanager
def _planner(store: CentralStore, wait: bool) -> Iterator[bool]:
    """Whether this process may plan the next append now. Planning hashes every new
    entry; two workers' sequencers planning the same append did all that twice and
    threw one away (the write's size check below), so with N workers the log cost N
    times its CPU. On PostgreSQL one planner at a time holds a session advisory lock;
    without `wait` the others skip their turn. SQLite (one site, one worker as a rule)
    relies on the size check alone."""
    if not store.postgres:
        yield True
        return
    try:
        conn = store.engine.connect()
    except SQLAlchemyError as exc:
        raise storage_error(exc, "taking the transparency log's planner lock") from exc
    try:
        try:
            if wait:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PLANNER_LOCK})
                got = True
            else:
                got = bool(
                    conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PLANNER_LOCK})
                )
            conn.commit()  # the lock is the session's: it outlives the transaction
        except SQLAlchemyError as exc:
            conn.invalidate()  # a session that may hold the lock never goes back to the pool
            raise storage_error(exc, "taking the transparency log's planner lock") from exc
        try:
            yield got
        finally:
            if got:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PLANNER_LOCK})
                    conn.commit()
                except SQLAlchemyError:
                    conn.invalidate()  # its session ends, and the lock with it
    finally:
        conn.close()


def append_pending(
    store: CentralStore,
    key: Ed25519PrivateKey,
    settings: LogSettings,
    now_ms: int,
    *,
    wait: bool = True,
) -> int:
    """Append the entries stored since the last call to the log; sign a checkpoint when
    one is due. Returns the number of leaves appended (0 if another worker appended
    meanwhile, or, without `wait`, is appending now: the next call takes what is left)."""
    with _planner(store, wait) as mine:
        return _append(store, key, settings, now_ms) if mine else 0


def _append(store: CentralStore, key: Ed25519PrivateKey, settings: LogSettings, now_ms: int) -> int:
    with store.read("reading what the log lacks", snapshot=True) as conn:
        plan = _plan(conn, settings, now_ms)
    if not plan.leaves and not plan.checkpoint_due:
        return 0
    # Hashing is done: the write lock is held only to check and write.
    with store.write("appending to the transparency log") as conn:
        q = select(tlog_head.c.size).where(tlog_head.c.id == 1)
        if int(conn.scalar(q.with_for_update() if store.postgres else q) or 0) != plan.size:
            return 0  # another worker appended first: never two leaves at one index
        if plan.leaves:
            if plan.nodes:
                conn.execute(insert(tlog_nodes), plan.nodes)
            conn.execute(insert(tlog_runs), plan.runs)
            for run in plan.runs:
                seq = run["first_seq"] + run["count"] - 1
                done = conn.execute(
                    update(tlog_progress)
                    .where(tlog_progress.c.device_id == run["device_id"])
                    .values(logged_seq=seq)
                )
                if not done.rowcount:
                    conn.execute(
                        insert(tlog_progress).values(device_id=run["device_id"], logged_seq=seq)
                    )
            conn.execute(
                update(tlog_head)
                .where(tlog_head.c.id == 1)
                .values(size=plan.new_size, edge=plan.edge)
            )
        if plan.checkpoint_due:
            cp = checkpoint.Checkpoint(settings.origin, plan.new_size, plan.root)
            note = checkpoint.sign(cp, settings.origin, key).decode()
            conn.execute(
                insert(tlog_checkpoints).values(
                    size=plan.new_size, root=plan.root, note=note, made_ms=now_ms
                )
            )
    return plan.leaves


def _grow(
    size: int, edge: dict[tuple[int, int], bytes], leaves: list[bytes]
) -> tuple[list[dict[str, Any]], dict[tuple[int, int], bytes]]:
    """Append `leaves` to the tree of `size` whose right edge is `edge`: the new nodes
    of the stored levels, and the new edge."""
    stack = [(lv, i, edge[lv, i]) for lv, i in merkle.edge(size)]
    nodes = [
        {"level": lv, "idx": i, "hash": h}
        for lv, i, h in merkle.carries(size, stack, leaves)
        if lv and not lv % STEP
    ]
    return nodes, {(lv, i): h for lv, i, h in stack}


def _plan(conn: Connection, settings: LogSettings, now_ms: int) -> _Plan:
    d, e = db.devices, db.entries
    head = conn.execute(select(tlog_head.c.size, tlog_head.c.edge).where(tlog_head.c.id == 1)).one()
    size, raw = int(head.size), bytes(head.edge)
    hashes = [raw[i : i + 32] for i in range(0, len(raw), 32)]
    edge = dict(zip(merkle.edge(size), hashes, strict=True))
    plan = _Plan(size=size, new_size=size, edge=raw)
    pr = tlog_progress
    after_seq = func.coalesce(pr.c.logged_seq, 0)
    # Only the devices with entries the log lacks: asked every second by every worker.
    behind = conn.execute(
        select(d.c.device_id, after_seq, d.c.acked_seq)
        .select_from(d.outerjoin(pr, pr.c.device_id == d.c.device_id))
        .where(d.c.acked_seq > after_seq)
        .order_by(d.c.device_id)
    ).all()
    leaves: list[bytes] = []
    for device_id, after, upto in behind:
        room = MAX_APPEND - len(leaves)
        if room <= 0:
            break
        # A device's stored entries are consecutive (ingest stores no gap), so only the
        # hashes are read, in seq order: the sequencer's largest read, one column of it.
        first, want = int(after) + 1, min(room, int(upto) - int(after))
        found = conn.scalars(
            select(e.c.h)
            .where((e.c.device_id == device_id) & (e.c.seq >= first) & (e.c.seq <= upto))
            .order_by(e.c.seq)
            .limit(room)
        ).all()
        if len(found) != want:
            raise CentralError(
                f"transparency log: {device_id}'s entries {first}..{upto} are not all stored"
            )
        if found:
            plan.runs.append({"first_idx": size + len(leaves), "device_id": device_id,
                              "first_seq": first, "count": want})  # fmt: skip
            prefix = b"\x00" + device_prefix(device_id)  # RFC 9162's leaf prefix, then ours
            leaves += [
                sha256(prefix + seq.to_bytes(8, "big") + h).digest()
                for seq, h in enumerate(found, first)
            ]
    if leaves:
        plan.nodes, edge = _grow(size, edge, leaves)
        plan.leaves, plan.new_size = len(leaves), size + len(leaves)
        plan.edge = b"".join(edge.values())
    plan.root = merkle.stored_root(plan.new_size, lambda lv, i: edge[lv, i])
    c = tlog_checkpoints
    last = conn.execute(select(c.c.size, c.c.made_ms).order_by(c.c.size.desc()).limit(1)).first()
    plan.checkpoint_due = plan.new_size > 0 and (
        last is None
        or (
            plan.new_size > int(last.size)
            and (
                plan.new_size - int(last.size) >= settings.every_entries
                or now_ms - int(last.made_ms) >= settings.every_s * 1000
            )
        )
    )
    return plan


# --- reading: what the public routes serve ----------------------------------------------


def latest_checkpoint(store: CentralStore, size: int | None = None) -> tuple[int, str] | None:
    """(size, signed note) of the newest checkpoint — or of the one of `size` — or None."""
    c = tlog_checkpoints
    q = select(c.c.size, c.c.note).order_by(c.c.size.desc()).limit(1)
    if size is not None:
        q = q.where(c.c.size == size)
    with store.read("reading the log's checkpoint") as conn:
        row = conn.execute(q).first()
    return None if row is None else (int(row.size), str(row.note))
