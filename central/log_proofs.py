"""The log proofs in a kiosk's state: what lets the kiosk cross-check central's
transparency log (issue 13; docs/trust.md, "Kiosks cross-check central").

Built for a kiosk that names `FEATURE_LOG_PROOFS`, from what its last status says
it holds: the checkpoint it accepted (`log_size`) and how far its own entries are
proven (`log_seq`). The state's `log` then carries

- the newest signed checkpoint,
- the consistency proof from `log_size` to it (none when equal, or when the kiosk
  holds none yet),
- `upto_seq`, how far this device's entries are in that checkpoint's tree,
- range proofs for the next runs of its entries after `log_seq` (a run: one device's
  entries one sequencer pass appended, consecutive leaves), at most `RUNS_PER_STATE`
  runs and `ENTRIES_PER_STATE` entries. The kiosk proves them in seq order and moves
  its `log_seq` over what it proved; as every checkpoint it accepts extends the last,
  an entry proven once is in every later one, so each entry is checked once and, over
  successive states, every one is.

Everything is read in the caller's snapshot (the state's), with one `tlog_proofs.Nodes`
shared by the village's kiosks: they ask for the same tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from central import tlog, tlog_proofs
from central.store import CentralStore
from greenpass import merkle
from sync.protocol import StateLog, Status, WireRun

RUNS_PER_STATE = 16  # each run's proof is at most ~2·log2(size) hashes of 32 bytes
ENTRIES_PER_STATE = 20_000  # leaves a kiosk recomputes for one state (a few ms on a Pi)


@dataclass(frozen=True)
class Newest:
    size: int
    note: bytes


def newest_checkpoint(conn: Connection) -> Newest | None:
    c = tlog.tlog_checkpoints
    row = conn.execute(select(c.c.size, c.c.note).order_by(c.c.size.desc()).limit(1)).first()
    return None if row is None else Newest(int(row.size), str(row.note).encode())


def logged_upto(conn: Connection, device_id: str, size: int) -> int:
    """The last of this device's seqs at a leaf below `size` (0: none)."""
    run = conn.execute(_LAST_RUN, {"b_device": device_id, "b_size": size}).first()
    return 0 if run is None else _upto([run], size)


def _upto(runs: Sequence[Any], size: int) -> int:
    """`logged_upto` from the device's runs below `size`, its last one last (a state's
    runs are all of them past what the kiosk proved, when fewer than the limit)."""
    run = runs[-1]
    return int(run.first_seq) + min(int(run.entries), size - int(run.first_idx)) - 1


def state_log(
    conn: Connection, nodes: tlog_proofs.Nodes, newest: Newest, device_id: str, status: Status
) -> StateLog:
    size = newest.size
    held, proven = max(0, status.log_size), max(0, status.log_seq)
    consistency = nodes.prove(merkle.consistency_proof, held, size) if 0 < held < size else []
    rows = list(
        conn.execute(_RUNS_TO_PROVE, {"b_device": device_id, "b_after": proven + 1, "b_size": size})
    )
    runs: list[WireRun] = []
    budget = ENTRIES_PER_STATE
    for row in rows:
        first_idx, first_seq = int(row.first_idx), int(row.first_seq)
        skip = max(0, proven + 1 - first_seq)  # the part the kiosk has proven already
        count = min(int(row.entries), size - first_idx) - skip
        count = min(count, budget)
        if count <= 0:
            break
        start = first_idx + skip
        proof = nodes.prove(merkle.range_proof, start, start + count, size)
        runs.append(WireRun(start, first_seq + skip, count, proof))
        budget -= count
    return StateLog(
        checkpoint=newest.note,
        from_size=held,
        from_seq=proven,
        consistency=consistency,
        upto_seq=_upto(rows, size)
        if 0 < len(rows) < RUNS_PER_STATE
        else logged_upto(conn, device_id, size),
        runs=runs,
    )


def wants_proofs(store: CentralStore, device_id: str, status: Status) -> bool:
    """Whether a kiosk's status shows entries of its own in a newer checkpoint than the
    one it holds: then it gets a state now, not at its village's next change (which
    may be tomorrow). Only its new entries count: a kiosk still proving older ones
    catches up with the states its village gets anyway, rather than pulling one a
    minute while other kiosks grow the log. None while it reports a log fault."""
    with store.read("checking a kiosk's log proofs") as conn:
        return wants_proofs_in(conn, device_id, status)


def wants_proofs_in(conn: Connection, device_id: str, status: Status) -> bool:
    """`wants_proofs` in the caller's transaction."""
    if status.log_fault is not None:
        return False
    newer = conn.scalar(_NEWER_RUN, {"b_device": device_id, "b_held": status.log_size})
    return newer is not None


_c, _r = tlog.tlog_checkpoints, tlog.tlog_runs
# Built once: asked for every status a kiosk sends.
_NEWEST_SIZE = select(func.max(_c.c.size))
# Built once: a state push asks them for every kiosk of a village.
_RUN_COLUMNS = (_r.c.first_idx, _r.c.first_seq, _r.c.count.label("entries"))
_RUNS_TO_PROVE = (
    select(*_RUN_COLUMNS)
    .where(
        (_r.c.device_id == bindparam("b_device"))
        & (_r.c.first_seq + _r.c.count > bindparam("b_after"))
        & (_r.c.first_idx < bindparam("b_size"))
    )
    .order_by(_r.c.first_seq)
    .limit(RUNS_PER_STATE)
)
_LAST_RUN = (
    select(*_RUN_COLUMNS)
    .where((_r.c.device_id == bindparam("b_device")) & (_r.c.first_idx < bindparam("b_size")))
    .order_by(_r.c.first_seq.desc())
    .limit(1)
)
# One statement, not two (the newest size, then the runs below it): asked for every
# status a kiosk sends, ten thousand of them in a storm of ten thousand kiosks.
_NEWEST = _NEWEST_SIZE.scalar_subquery()
_NEWER_RUN = (
    select(_r.c.first_idx)
    .where(
        (_r.c.device_id == bindparam("b_device"))
        & (_r.c.first_idx < _NEWEST)
        & (_r.c.first_idx + _r.c.count > bindparam("b_held"))
        & (bindparam("b_held") < _NEWEST)
    )
    .limit(1)
)
