"""The kiosk's cross-check of central's log (sync.log_check), against a log built here
the way central builds it (leaves, signed checkpoints, consistency and range proofs),
honest and then lying in each way the check must catch. The kiosk is a real ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from edge.ledger import log_record
from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass import checkpoint, merkle
from greenpass.cli import main
from greenpass.tlog_leaf import entry_leaf_hash
from sync import protocol as p
from sync.keys import Ed25519PrivateKey, generate_key
from sync.log_check import LATE_AFTER_MS, LogChecker
from tests.conftest import make_ledger

ORIGIN = "central.test/log"
KEY = generate_key()


class Log:
    """A transparency log as central keeps one: its leaves in order, and where each of
    the kiosk's entries is. `sign` and `part` are what central's state carries."""

    def __init__(self, key: Ed25519PrivateKey = KEY, origin: str = ORIGIN) -> None:
        self.key, self.origin = key, origin
        self.leaves: list[bytes] = []
        self.runs: list[tuple[int, int, int]] = []  # (index, first_seq, count) of K1's

    def add_own(
        self, ledger: Ledger, first: int, last: int, *, skip: int = 0, change: int = 0
    ) -> None:
        """K1's entries first … last as one run; a lying central leaves out `skip`, or
        holds another hash for `change`."""
        index = len(self.leaves)
        for entry, h in ledger.iter_entries(first - 1):
            if entry.seq > last:
                break
            if entry.seq != skip:
                held = hashlib.sha256(h).digest() if entry.seq == change else h
                self.leaves.append(entry_leaf_hash("K1", entry.seq, held))
        if skip:
            self.runs.append((index, first, skip - first))
            self.runs.append((index + skip - first, skip + 1, last - skip))
        else:
            self.runs.append((index, first, last - first + 1))

    def add_others(self, n: int) -> None:
        for _ in range(n):
            self.leaves.append(merkle.leaf_hash(hashlib.sha256(bytes(len(self.leaves))).digest()))

    @property
    def size(self) -> int:
        return len(self.leaves)

    def root(self, size: int | None = None) -> bytes:
        return merkle.root(self.leaves[: size or self.size])

    def sign(self, size: int | None = None) -> bytes:
        cp = checkpoint.Checkpoint(self.origin, size or self.size, self.root(size))
        return checkpoint.sign(cp, self.origin, self.key)

    def part(self, from_size: int = 0, from_seq: int = 0, size: int | None = None) -> p.StateLog:
        size = size or self.size
        get = self._get()
        runs = []
        upto = 0
        for index, first, count in self.runs:
            n = min(count, size - index)
            if n <= 0:
                continue
            upto = first + n - 1
            if upto > from_seq:
                skip = max(0, from_seq + 1 - first)
                start = index + skip
                proof = merkle.range_proof(start, index + n, size, get)
                runs.append(p.WireRun(start, first + skip, n - skip, proof))
        consistency = merkle.consistency_proof(from_size, size, get) if 0 < from_size < size else []
        return p.StateLog(
            checkpoint=self.sign(size),
            from_size=from_size,
            from_seq=from_seq,
            consistency=consistency,
            upto_seq=upto,
            runs=runs,
        )

    def _get(self) -> merkle.GetNode:
        def get(level: int, index: int) -> bytes:
            return merkle.root(self.leaves[index << level : (index + 1) << level])

        return get


class Kiosk:
    def __init__(self, tmp: Path) -> None:
        self.clock = FixedClock()
        self.ledger = make_ledger(tmp / "k1.db", self.clock)
        self.check = LogChecker(self.ledger, KEY.public_key())
        self.version = 0
        pid = self.ledger.enrol("Li household", staff_id="S1").passbook_id
        assert pid is not None
        self.pid = pid

    def deposit(self, n: int) -> None:
        for _ in range(n):
            self.clock.advance(11 * 60_000)
            self.ledger.deposit(self.pid, "paper", 1200)

    @property
    def head(self) -> int:
        return self.ledger.head()[0]

    def state(self, part: p.StateLog | None, included: int | None = None) -> None:
        """A state from central reaches the checker (the uplink's order: check, apply)."""
        self.version += 1
        body = p.StateBody(
            village="V1", device_id="K1", version=self.version,
            included_seq=self.head if included is None else included, issued_ms=0,
            balances={}, villagers=[], log=part,
        )  # fmt: skip
        self.check.check(body)

    def status(self) -> tuple[int, int, p.LogFault | None]:
        return self.check.status()

    def honest(self, log: Log) -> p.StateLog:
        """What an honest central sends for what this kiosk's status says it holds."""
        size, seq, _ = self.status()
        return log.part(size, seq)


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    k = Kiosk(tmp_path)
    yield k
    k.ledger.close()


def fault_of(k: Kiosk) -> p.LogFault:
    fault = k.status()[2]
    assert fault is not None
    return fault


def test_an_honest_log_is_followed_checkpoint_by_checkpoint(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    assert k.status() == (0, 0, None)
    k.state(None)  # a central without a log: nothing to check, nothing owed
    k.deposit(3)
    log.add_others(5)
    log.add_own(k.ledger, 1, 4)
    k.state(k.honest(log))
    assert k.status() == (log.size, 4, None) and k.check.take_due()
    assert not k.check.take_due()

    # More entries, another kiosk's between them: the next checkpoint extends the first.
    k.deposit(4)
    log.add_own(k.ledger, 5, 6)
    log.add_others(7)
    log.add_own(k.ledger, 7, 8)
    k.state(k.honest(log))
    assert k.status() == (log.size, 8, None)
    # The same checkpoint again, and a state not newer than the last: nothing changes.
    k.state(k.honest(log))
    k.version -= 2
    k.state(log.part(3, 1, size=9))
    assert k.status() == (log.size, 8, None)
    with k.ledger.store.read() as conn:
        acc = log_record.accepted(conn)
    assert acc is not None and acc.origin == ORIGIN and acc.root == log.root()
    assert acc.note == log.sign().decode()


def test_a_part_built_for_what_the_kiosk_no_longer_holds_is_skipped(kiosk: Kiosk) -> None:
    """Central read an older status (two states built at once, or a retained one): the
    part is not judged, and an overlap with what is proven already is fine."""
    k, log = kiosk, Log()
    k.deposit(2)
    log.add_own(k.ledger, 1, 3)
    k.state(k.honest(log))
    first = log.size
    k.deposit(2)
    log.add_others(3)
    log.add_own(k.ledger, 4, 5)
    k.state(log.part(0, 0))  # from an older status: skipped
    k.state(log.part(first + 1, 3))  # a size this kiosk never held: skipped
    assert k.status() == (first, 3, None)
    k.state(log.part(first, 1))  # proofs from seq 2: 2–3 again, then 4–5
    assert k.status() == (log.size, 5, None)
    # A smaller checkpoint from a part built before central knew the bigger one.
    k.state(log.part(first, 3, size=first))
    assert k.status() == (log.size, 5, None)


def test_a_checkpoint_not_signed_by_central(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    forged = Log(key=generate_key())
    forged.add_own(k.ledger, 1, 1)
    k.state(forged.part())
    fault = fault_of(k)
    assert fault.code == "log_bad_checkpoint" and "K1" in fault.message
    assert "not signed by" in fault.message and k.check.take_due()
    assert k.status()[:2] == (0, 0)  # nothing accepted

    # It stays: an honest checkpoint later does not clear it (it is the evidence) …
    log.add_own(k.ledger, 1, 1)
    k.state(k.honest(log))
    assert fault_of(k) == fault
    with k.ledger.store.read() as conn:
        (record,) = log_record.fault_history(conn)
    assert record.evidence == forged.sign().decode()
    # … until a technician resets the check; then the next checkpoint is taken afresh.
    assert log_record.reset(k.ledger.store, k.clock.wall_ms()) is not None
    assert k.status() == (0, 0, None)
    k.state(k.honest(log))
    assert k.status() == (log.size, 1, None)
    with k.ledger.store.read() as conn:
        assert [f.cleared_ms is not None for f in log_record.fault_history(conn)] == [True]


def test_a_checkpoint_of_another_log(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    log.add_own(k.ledger, 1, 1)
    k.state(k.honest(log))
    other = Log(origin="elsewhere.test/log")
    other.add_own(k.ledger, 1, 1)
    k.state(other.part(log.size, 1))
    fault = fault_of(k)
    assert fault.code == "log_bad_checkpoint" and "central.test/log" in fault.message


def test_a_smaller_checkpoint(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    k.deposit(3)
    log.add_others(2)
    log.add_own(k.ledger, 1, 4)
    k.state(k.honest(log))
    held = log.size
    # Central knows this kiosk holds size 6 and answers with a checkpoint of size 4.
    k.state(log.part(held, 4, size=4))
    fault = fault_of(k)
    assert fault.code == "log_not_extended" and fault.size == 4
    assert f"size 4, below the checkpoint of size {held}" in fault.message


def test_a_fork_of_the_same_size(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    log.add_others(3)
    log.add_own(k.ledger, 1, 1)
    k.state(k.honest(log))
    fork = Log()
    fork.add_others(2)  # another kiosk's entry dropped, one of ours in its place
    fork.add_own(k.ledger, 1, 1)
    fork.add_others(1)
    assert fork.size == log.size and fork.root() != log.root()
    k.state(fork.part(log.size, 1))
    fault = fault_of(k)
    assert fault.code == "log_not_extended" and "forked" in fault.message


def test_a_bigger_checkpoint_that_does_not_extend_the_accepted_one(kiosk: Kiosk) -> None:
    """A central that rewrote history (or shows this kiosk another kiosks' log): its
    new tree proves this kiosk's entries, but not that it extends the old one."""
    k, log = kiosk, Log()
    k.deposit(1)
    log.add_others(5)
    log.add_own(k.ledger, 1, 2)
    k.state(k.honest(log))
    rewritten = Log()
    rewritten.add_others(4)  # an entry of another kiosk is gone
    rewritten.add_own(k.ledger, 1, 2)
    rewritten.add_others(6)
    k.state(rewritten.part(log.size, 2))
    fault = fault_of(k)
    assert fault.code == "log_not_extended" and "does not extend" in fault.message
    assert fault.size == rewritten.size


def test_a_consistency_proof_that_fails(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    log.add_others(5)
    log.add_own(k.ledger, 1, 1)
    k.state(k.honest(log))
    log.add_others(9)
    part = k.honest(log)
    bad = [hashlib.sha256(part.consistency[0]).digest(), *part.consistency[1:]]
    k.state(msgspec.structs.replace(part, consistency=bad))
    assert fault_of(k).code == "log_not_extended"


def test_an_own_entry_missing_from_the_log(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    k.deposit(4)
    log.add_own(k.ledger, 1, 5, skip=3)  # central dropped K1:3
    k.state(k.honest(log))
    fault = fault_of(k)
    assert fault.code == "log_entry_missing" and fault.seq == 3
    assert "skips entry K1:3" in fault.message
    assert k.status()[:2] == (0, 0)  # nothing accepted from this checkpoint


def test_an_own_entry_said_to_be_logged_but_not_proven(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    k.deposit(2)
    log.add_own(k.ledger, 1, 1)
    k.state(k.honest(log))
    log.add_own(k.ledger, 2, 3)
    k.state(msgspec.structs.replace(k.honest(log), runs=[]))
    fault = fault_of(k)
    assert fault.code == "log_entry_missing" and fault.seq == 2


def test_a_log_that_no_longer_holds_what_it_proved(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    k.deposit(2)
    log.add_own(k.ledger, 1, 3)
    k.state(k.honest(log))
    k.state(msgspec.structs.replace(k.honest(log), upto_seq=1))
    fault = fault_of(k)
    assert fault.code == "log_entry_missing" and fault.seq == 2


def test_an_own_entry_changed_in_the_log(kiosk: Kiosk, tmp_path: Path) -> None:
    k, log = kiosk, Log()
    k.deposit(3)
    log.add_own(k.ledger, 1, 2)
    log.add_others(3)
    log.add_own(k.ledger, 3, 3, change=3)  # central holds another hash for K1:3
    log.add_own(k.ledger, 4, 4)
    k.state(k.honest(log))
    fault = fault_of(k)
    assert fault.code == "log_entry_changed" and fault.seq == 3 and fault.size == log.size
    assert "entry K1:3 as this kiosk has it" in fault.message
    # A changed entry inside a longer run names the run.
    (tmp_path / "k2").mkdir()
    k2 = Kiosk(tmp_path / "k2")
    try:
        k2.deposit(3)
        log2 = Log()
        log2.add_own(k2.ledger, 1, 4, change=2)
        k2.state(k2.honest(log2))
        fault = fault_of(k2)
        assert fault.code == "log_entry_changed" and fault.seq == 1
        assert "K1:1–4" in fault.message
    finally:
        k2.ledger.close()


def test_a_log_holding_entries_this_kiosk_never_made(kiosk: Kiosk) -> None:
    k, log = kiosk, Log()
    log.add_own(k.ledger, 1, 1)
    log.leaves.append(entry_leaf_hash("K1", 2, bytes(32)))
    log.runs[-1] = (0, 1, 2)
    k.state(k.honest(log))
    fault = fault_of(k)
    assert fault.code == "log_entry_changed" and fault.seq == 2
    assert "K1:2, which this ledger does not have" in fault.message


def test_entries_never_proven_are_late_then_cleared(kiosk: Kiosk) -> None:
    """A central that dodges the check (proofs only for what this kiosk does not hold,
    or none at all) is caught by time: a day without any acknowledged entry proven."""
    k, log = kiosk, Log()
    log.add_own(k.ledger, 1, 1)
    k.state(k.honest(log))
    k.deposit(3)  # acknowledged by central (included_seq 4), not in its log
    k.state(log.part(0, 0))  # a part built for another size: skipped
    k.clock.advance(LATE_AFTER_MS // 2)
    k.state(None)
    assert k.status()[2] is None
    k.clock.advance(LATE_AFTER_MS // 2)
    k.state(None)
    fault = fault_of(k)
    assert fault.code == "log_late" and fault.seq == 2 and "K1:2–4" in fault.message
    # Once central proves them, the fault clears by itself.
    log.add_own(k.ledger, 2, 4)
    k.state(k.honest(log))
    assert k.status() == (log.size, 4, None)
    # A kiosk offline for days, with everything proven before, is not late on return.
    k.clock.advance(3 * LATE_AFTER_MS)
    k.deposit(1)
    k.state(k.honest(log))
    assert k.status()[2] is None


def test_the_cli_shows_the_evidence_and_resets(
    kiosk: Kiosk, capsys: pytest.CaptureFixture[str]
) -> None:
    k, log = kiosk, Log()
    path = k.ledger.store.path
    assert main(["sync", "log", "--db", path]) == 0
    assert "none accepted yet" in capsys.readouterr().out
    k.deposit(1)
    log.add_own(k.ledger, 1, 2)
    k.state(k.honest(log))
    forged = Log(key=generate_key())
    forged.add_own(k.ledger, 1, 2)
    forged.add_others(1)
    k.state(forged.part(log.size, 2))
    assert main(["sync", "log", "--db", path]) == 0
    out = capsys.readouterr().out
    assert "log         central.test/log" in out and "up to seq 2" in out
    assert "fault       log_bad_checkpoint" in out and "the checkpoint central sent" in out
    assert forged.sign().decode() in out and log.sign().decode() in out  # the evidence
    assert main(["sync", "log", "--db", path, "--note"]) == 0
    assert capsys.readouterr().out == log.sign().decode()  # exactly as central signed it
    assert main(["sync", "log", "--db", path, "--reset"]) == 0
    assert "fault log_bad_checkpoint cleared" in capsys.readouterr().out
    assert main(["sync", "log", "--db", path, "--note"]) == 1  # none accepted now
    assert "no checkpoint accepted" in capsys.readouterr().err
    assert main(["sync", "log", "--db", path]) == 0
    out = capsys.readouterr().out
    assert "fault       none" in out and "1 earlier fault(s), cleared" in out
