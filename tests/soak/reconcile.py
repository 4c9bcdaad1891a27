"""What the soak checks: during it, that no kiosk holds an ack for an entry central has
not stored; at the end, every kiosk's ledger against central's copy entry by entry,
and every balance at every kiosk against central's."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass, field

import psycopg

from central import reports
from central.store import CentralStore
from edge.ledger.ledger import Ledger
from greenpass.record.entries import check_chain
from tests.soak.fleet import SoakKiosk
from tests.soak.postgres import PostgresCluster


def central_counts(pg: PostgresCluster) -> dict[str, int]:
    """Entries central holds per device (raises psycopg.Error while it is down)."""
    with psycopg.connect(pg.url, connect_timeout=3) as conn:
        rows = conn.execute("SELECT device_id, count(*) FROM entries GROUP BY device_id")
        return {str(d): int(n) for d, n in rows}


def kiosk_acked(kiosk: SoakKiosk) -> tuple[int, int]:
    """(acked_seq, head seq) from the kiosk's ledger file, read-only."""
    with sqlite3.connect(f"file:{kiosk.db}?mode=ro", uri=True, timeout=10) as conn:
        acked = conn.execute("SELECT acked_seq FROM outbox WHERE id = 1").fetchone()[0]
        head = conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()[0]
    return int(acked), int(head)


class AckWatch:
    """Every half second: a kiosk's acked_seq (read first) must not exceed what central
    holds for it (read after; central's count only grows). An ack for an entry central
    did not commit would show here as soon as it happened, disk full or not."""

    def __init__(self, pg: PostgresCluster, kiosks: list[SoakKiosk]) -> None:
        self.pg, self.kiosks = pg, kiosks
        self.violations: list[str] = []
        self.checks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ack-watch", daemon=True)

    def start(self) -> AckWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                acked = {k.device_id: kiosk_acked(k)[0] for k in self.kiosks}
                stored = central_counts(self.pg)
            except (psycopg.Error, sqlite3.Error):
                continue  # PostgreSQL is down or restarting, or a kiosk file is busy
            self.checks += 1
            for device, seq in acked.items():
                if seq > stored.get(device, 0):
                    self.violations.append(
                        f"{device}: kiosk holds an ack to {seq}, central has "
                        f"{stored.get(device, 0)} entries"
                    )


def log_caught_up(pg: PostgresCluster, kiosks: list[SoakKiosk]) -> bool:
    """The transparency log holds every entry central stored (its sequencers, child
    processes of the workers, outlived the faults too)."""
    with psycopg.connect(pg.url, connect_timeout=3) as conn:
        rows = conn.execute("SELECT device_id, logged_seq FROM tlog_progress").fetchall()
    logged = {str(d): int(str(n)) for d, n in rows}
    return all(logged.get(k.device_id) == kiosk_acked(k)[1] for k in kiosks)


def fully_synced(pg: PostgresCluster, kiosks: list[SoakKiosk]) -> bool:
    try:
        stored = central_counts(pg)
    except psycopg.Error:
        return False
    for k in kiosks:
        acked, head = kiosk_acked(k)
        if not acked == head == stored.get(k.device_id, 0):
            return False
    return True


@dataclass
class Reconciliation:
    written: int = 0  # entries in the kiosks' ledgers
    reconciled: int = 0  # of those, in central with the same device, seq, hash and content
    lost: int = 0  # in a kiosk's ledger, not in central
    duplicated: int = 0  # stored more than once by central
    extra: int = 0  # in central but in no kiosk's ledger (or different there)
    problems: list[str] = field(default_factory=list)


def reconcile(store: CentralStore, pg: PostgresCluster, kiosks: list[SoakKiosk]) -> Reconciliation:
    r = Reconciliation()
    with psycopg.connect(pg.url) as conn:
        dups = conn.execute(
            "SELECT device_id, seq, count(*) FROM entries GROUP BY device_id, seq "
            "HAVING count(*) > 1"
        ).fetchall()
        by_id = conn.execute("SELECT count(*) - count(DISTINCT entry_id) FROM entries").fetchone()
    r.duplicated = sum(int(n) - 1 for _, _, n in dups) + int(by_id[0] if by_id else 0)
    for k in kiosks:
        with Ledger.open(k.db) as ledger:
            mine = list(ledger.iter_entries())
            head = ledger.head()
        theirs = reports.device_chain(store, k.device_id)
        r.written += len(mine)
        central = {e.seq: (e, h) for e, h in theirs}
        for e, h in mine:
            if central.get(e.seq) == (e, h):
                r.reconciled += 1
            elif e.seq in central:
                r.problems.append(f"{k.device_id} seq {e.seq}: central's copy differs")
            else:
                r.lost += 1
        kiosk_seqs = {e.seq for e, _ in mine}
        r.extra += sum(1 for seq in central if seq not in kiosk_seqs)
        if not check_chain(theirs, device_id=k.device_id, expected_head=head).ok:
            r.problems.append(f"{k.device_id}: central's copy of the chain does not verify")
    return r


def balance_mismatches(
    store: CentralStore, pg: PostgresCluster, kiosks: list[SoakKiosk]
) -> list[str]:
    """Every villager central knows, at every kiosk (its own and the others, which know
    it from central's state pushes), against central's statement."""
    with psycopg.connect(pg.url) as conn:
        passbooks = [str(r[0]) for r in conn.execute("SELECT passbook_id FROM villagers")]
    central: dict[str, int] = {}
    for pb in passbooks:
        lines = reports.statement(store, pb)
        central[pb] = lines[-1].balance if lines else 0
    out = []
    for k in kiosks:
        with Ledger.open(k.db) as ledger:
            for pb, balance in central.items():
                if (mine := ledger.balance(pb)) != balance:
                    out.append(f"{k.device_id}: {pb} has {mine}, central says {balance}")
    return out


def dead_letter_statuses(store: CentralStore) -> Counter[str]:
    return Counter(d.status for d in reports.dead_letters(store, 10_000))
