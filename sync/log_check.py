"""The kiosk's cross-check of central's transparency log (issue 13; docs/trust.md).

Every state central pushes to a kiosk that names `FEATURE_LOG_PROOFS` carries
central's newest signed checkpoint and proofs (`sync.log_wire.StateLog`). Before the
state is applied, the uplink hands it here, and the kiosk accepts the checkpoint only
if all of this holds:

1. it is signed by central's key (`[sync] central_public_key`, the key that signs
   states) and is of the log this kiosk follows (the origin pinned from the first
   checkpoint it accepted);
2. it extends the checkpoint accepted last: a bigger size with a consistency proof
   that verifies, or the same size and root;
3. the runs of this kiosk's own entries it proves are where central says, with the
   leaves this kiosk computes from its own ledger (`greenpass.tlog_leaf`), in seq
   order from the first not yet proven, skipping none.

Each accepted checkpoint moves `checked_seq` over the entries proven. As each
accepted checkpoint extends the one before, an entry proven once stays in every later
one: each entry is checked once, and over successive states every one is.

A failure is a *log fault* (`sync.protocol.LOG_FAULTS`): recorded in the ledger file
with the failing checkpoint as evidence (`edge.ledger.log_record`), logged at error level,
published at once in the kiosk's status (`log_fault`), shown on the kiosk's screen
and by `greenpass doctor`. It stays until a technician resets the check
(`greenpass sync log --reset`), and meanwhile nothing more is checked: the first
failure is the evidence. Sync and the applying of states go on: the kiosk's own
entries are safe in its ledger whatever central does, and its villagers still need
central's revocations and balances; what the fault says is that central's word on
history cannot be trusted until someone looks.

A state whose log part was built for another checkpoint or proven seq than this
kiosk holds (central read an older status, or the kiosk was reset since) is skipped,
not judged. So that a central cannot dodge the check by sending only such parts, or
none, `log_late` is raised when entries central acknowledged have waited
`late_after_ms` (a day) without any of them being proven; it clears itself once they
are.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace

from edge.ledger import log_record as rec
from edge.ledger.central_state import state_version
from edge.ledger.ledger import Ledger
from greenpass import checkpoint, merkle
from greenpass.errors import ProtocolError
from greenpass.tlog_leaf import device_prefix
from sync import protocol as p
from sync.keys import Ed25519PublicKey

log = logging.getLogger(__name__)

LATE_AFTER_MS = 24 * 3600 * 1000
MAX_RUNS = 64  # what one state may make this kiosk check; the rest waits for the next
MAX_ENTRIES = 50_000


class _Fail(Exception):
    def __init__(self, code: str, message: str, seq: int = 0, size: int = 0) -> None:
        super().__init__(message)
        self.code, self.message, self.seq, self.size = code, message, seq, size


class LogChecker:
    """Runs in the uplink's thread, on the uplink's own `Ledger`."""

    def __init__(
        self,
        ledger: Ledger,
        central_key: Ed25519PublicKey,
        *,
        late_after_ms: int = LATE_AFTER_MS,
    ) -> None:
        self.ledger = ledger
        self.device_id = ledger.device_id
        self.central_key = central_key
        self.late_after_ms = late_after_ms
        self._due = False

    # --- what the status says -----------------------------------------------------------

    def status(self) -> tuple[int, int, p.LogFault | None]:
        """(log_size, log_seq, log_fault) for the kiosk's status, from the file (a
        technician's reset takes effect without restarting the kiosk)."""
        with self.ledger.store.read() as conn:
            acc = rec.accepted(conn)
            f = rec.current_fault(conn)
        fault = None
        if f is not None:
            fault = p.LogFault(
                code=f.code, message=f.message, since_ms=f.since_ms, seq=f.seq, size=f.size
            )
        return (0, 0, fault) if acc is None else (acc.size, acc.checked_seq, fault)

    def take_due(self) -> bool:
        """Whether what the status says changed since the last call: publish it now."""
        due, self._due = self._due, False
        return due

    # --- checking a state ---------------------------------------------------------------

    def check(self, state: p.StateBody) -> None:
        """Judge the log part of a state from central before it is applied. Only a state
        newer than the one applied is judged: a retained one delivered again may carry
        an older checkpoint."""
        now = self.ledger.clock.wall_ms()
        store = self.ledger.store
        with store.read() as conn:
            if state.version <= state_version(conn):
                return
            acc = rec.accepted(conn)
            fault = rec.current_fault(conn)
            head = int(conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()[0])
        if fault is not None and fault.code in p.STICKY_LOG_FAULTS:
            return  # the first failure is the evidence; a technician resets the check
        new, failed = acc, None
        if state.log is not None:
            try:
                new = self._judge(state.log, acc, head, now) or acc
            except _Fail as exc:
                failed = exc
        late = None
        if failed is None and new is not None:
            new, late = self._owed(new, acc, state.included_seq, now)
        clears = fault is not None and new is not None and new.checked_seq >= fault.seq
        if failed is None and new == acc and not clears and (late is None or fault is not None):
            return  # nothing to write
        with store.write() as conn:
            if (rec.accepted(conn), rec.current_fault(conn)) != (acc, fault):
                return  # reset by a technician meanwhile: the next state is judged afresh
            if failed is not None:
                self._raise(conn, failed, fault, now, evidence=state.log)
                return
            if new is not None and new != acc:
                rec.save_accepted(conn, new)
                if acc is None or (new.size, new.checked_seq) != (acc.size, acc.checked_seq):
                    self._due = True
            if clears and fault is not None:
                rec.clear_fault(conn, now)  # a late proof came: log_late is over
                self._due = True
                log.info("log check %s: %s cleared", self.device_id, fault.code)
            elif late is not None and fault is None:
                self._raise(conn, late, None, now, evidence=None)

    def _raise(
        self,
        conn: sqlite3.Connection,
        failed: _Fail,
        fault: rec.LogFaultRecord | None,
        now: int,
        evidence: p.StateLog | None,
    ) -> None:
        if fault is not None:
            rec.clear_fault(conn, now)  # a log_late, overtaken by a real failure
        note = "" if evidence is None else evidence.checkpoint.decode("utf-8", "replace")
        rec.raise_fault(
            conn,
            rec.LogFaultRecord(failed.code, failed.message, failed.seq, failed.size, now, note),
        )
        self._due = True
        log.error("log check %s: log fault %s: %s", self.device_id, failed.code, failed.message)

    def _owed(
        self, new: rec.Accepted, old: rec.Accepted | None, included: int, now: int
    ) -> tuple[rec.Accepted, _Fail | None]:
        """When central acknowledged entries (up to `included`) not yet proven, how long
        they have waited without any progress: `log_late` after `late_after_ms`."""
        if new.checked_seq >= included:
            owed = None
        elif new.owed_ms is None or old is None or new.checked_seq > old.checked_seq:
            owed = now
        else:
            owed = new.owed_ms
        new = replace(new, owed_ms=owed)
        if owed is None or now - owed < self.late_after_ms:
            return new, None
        dev, first = self.device_id, new.checked_seq + 1
        hours = (now - owed) // 3_600_000
        return new, _Fail(
            "log_late",
            f"{dev}: entries {dev}:{first}–{included} were acknowledged by central, but it "
            f"has proven none of them in its log for {hours} h",
            first,
            new.size,
        )

    def _judge(
        self, part: p.StateLog, acc: rec.Accepted | None, head: int, now: int
    ) -> rec.Accepted | None:
        """The checkpoint to accept, None to skip the part (built for what this kiosk no
        longer holds), or `_Fail`."""
        dev = self.device_id
        origin = acc.origin if acc is not None else _origin(part.checkpoint)
        try:
            cp = checkpoint.open_checkpoint(
                part.checkpoint, origin, self.central_key, origin=origin
            )
        except ProtocolError as exc:
            raise _Fail(
                "log_bad_checkpoint", f"{dev}: central's log checkpoint is not valid: {exc}"
            ) from None
        size, root = cp.size, cp.root_hash
        if size <= 0:
            raise _Fail("log_bad_checkpoint", f"{dev}: central sent a checkpoint of size 0")
        if acc is not None:
            held = acc.size
            if size < held:
                if part.from_size != held:
                    return None
                raise _Fail(
                    "log_not_extended",
                    f"{dev}: central's log is at size {size}, below the checkpoint of size "
                    f"{held} this kiosk accepted: it lost or dropped entries",
                    0,
                    size,
                )
            if size == held and root != acc.root:
                raise _Fail(
                    "log_not_extended",
                    f"{dev}: central signed two checkpoints of size {size} with different "
                    "roots: its log forked",
                    0,
                    size,
                )
            if size > held:
                if part.from_size != held:
                    return None
                if not merkle.verify_consistency(held, size, acc.root, root, part.consistency):
                    raise _Fail(
                        "log_not_extended",
                        f"{dev}: central's checkpoint of size {size} does not extend the one "
                        f"of size {held} this kiosk accepted: history was rewritten, or the "
                        "log forked",
                        0,
                        size,
                    )
        checked = acc.checked_seq if acc is not None else 0
        if part.upto_seq < checked:
            raise _Fail(
                "log_entry_missing",
                f"{dev}: central's log of size {size} holds this kiosk's entries only up to "
                f"seq {part.upto_seq}, but {dev}:{part.upto_seq + 1} was proven in it before",
                part.upto_seq + 1,
                size,
            )
        if part.upto_seq > head:
            raise _Fail(
                "log_entry_changed",
                f"{dev}: central's log holds an entry {dev}:{head + 1}, which this ledger "
                f"does not have (it ends at seq {head})",
                head + 1,
                size,
            )
        if part.from_seq <= checked:
            checked = self._prove_runs(part, size, root, checked)
        same = acc is not None and acc.size == size
        return rec.Accepted(
            origin=origin,
            size=size,
            root=root,
            note=part.checkpoint.decode(),
            checked_seq=checked,
            accepted_ms=acc.accepted_ms if same and acc is not None else now,
            owed_ms=None if acc is None else acc.owed_ms,
        )

    def _prove_runs(self, part: p.StateLog, size: int, root: bytes, checked: int) -> int:
        """Check the runs in order from `checked + 1`; the last seq proven."""
        dev, upto = self.device_id, part.upto_seq
        want = checked + 1
        if not part.runs and upto >= want and upto > part.from_seq:
            raise _Fail(
                "log_entry_missing",
                f"{dev}: central says its log of size {size} holds this kiosk's entries up "
                f"to seq {upto}, but proves none from {dev}:{want}",
                want,
                size,
            )
        budget = MAX_ENTRIES
        for run in part.runs[:MAX_RUNS]:
            last = run.first_seq + run.count - 1
            if run.count < 1 or last < want:
                continue  # proven already (central read an older status)
            if run.first_seq > want:
                raise _Fail(
                    "log_entry_missing",
                    f"{dev}: central's log of size {size} skips entry {dev}:{want}: its "
                    f"proofs go on from {dev}:{run.first_seq}",
                    want,
                    size,
                )
            if run.count > budget:
                break
            leaves = self._leaves(run.first_seq, last)
            if len(leaves) != run.count:
                raise _Fail(
                    "log_entry_changed",
                    f"{dev}: central's log holds entries {dev}:{run.first_seq}–{last}, "
                    "which this ledger does not all have",
                    run.first_seq + len(leaves),
                    size,
                )
            if not merkle.verify_range(run.index, leaves, size, run.proof, root):
                which = f"{dev}:{run.first_seq}" + ("" if run.count == 1 else f"–{last}")
                raise _Fail(
                    "log_entry_changed",
                    f"{dev}: central's log of size {size} does not hold entry {which} as "
                    f"this kiosk has it (at leaf {run.index}): changed or replaced",
                    run.first_seq,
                    size,
                )
            want = last + 1
            budget -= run.count
        return want - 1

    def _leaves(self, first: int, last: int) -> list[bytes]:
        """This kiosk's own leaves for its entries first … last."""
        prefix = device_prefix(self.device_id)
        rows = self.ledger.store.conn.execute(
            "SELECT seq, h FROM entries WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)
        ).fetchall()
        return [merkle.leaf_hash(prefix + int(s).to_bytes(8, "big") + bytes(h)) for s, h in rows]


def _origin(note: bytes) -> str:
    """The origin line of a checkpoint not yet verified: the name its signature is
    checked under, pinned once it verifies."""
    return note.split(b"\n", 1)[0].decode("utf-8", "replace")
