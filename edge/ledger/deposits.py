"""The deposit rules that look back: cooldown, daily cap and review flags (docs/design.md §3).

They need a villager's earlier deposits. Asking SQLite on every deposit took two
queries, one of them scanning the villager's whole history (time has no index),
against a budget of one raw durable insert (bench/ledger_commit.py). Instead,
`DepositHistory` reads a passbook's deposits once and keeps what the rules need
in memory. It stays exact because entries are append-only and ordered by seq:
inside each deposit's write transaction, `sync` compares the ledger's head with
the last seq the view has seen and reads only the entries appended since, by
this connection or by any other (the sync uplink, a second `Ledger`). A head
that went backwards or changed its hash (a replaced file) starts the view over.
The cost left is a passbook's first deposit after start: it reads that villager's
history once (about 0.3 ms for 300 earlier deposits; the SQL paid that each time).

The answers are those of the plain SQL the view replaced, kept as the test oracle
in tests/edge/test_deposit_history.py.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import deque
from dataclasses import dataclass, field

from edge.ledger.queries import day_start_ms
from greenpass.errors import Refused
from greenpass.record.entries import Entry
from greenpass.record.rules import Category, Rules

HISTORY = 20  # deposits per category the "heavy" flag takes the median of
SLACK_MS = 6 * 3600_000  # keep deposits this much older than needed: a clock step back
PRUNE_MS = 86_400_000  # forget older deposits once the window has moved on this much
MAX_REPLAY = 5_000  # more new entries than this since the view's seq: start over

_LOAD = (
    "SELECT seq, kind, category, grams, wall_ms, boot_id, mono_ms, ref_seq FROM entries "
    "WHERE passbook_id = ? AND kind IN ('deposit', 'reversal') AND ref_device IS NULL "
    "ORDER BY seq"
)
_TAIL = (
    "SELECT seq, kind, category, grams, wall_ms, boot_id, mono_ms, ref_seq, passbook_id "
    "FROM entries WHERE seq > ? AND kind IN ('deposit', 'reversal') AND ref_device IS NULL "
    "ORDER BY seq"
)


@dataclass
class _Passbook:
    """One passbook's deposits, as far as the rules look back."""

    horizon_ms: int  # every deposit with wall_ms >= horizon_ms is in `recent`
    recent: list[tuple[int, str, int, int]] = field(default_factory=list)  # seq, cat, g, wall
    reversed: set[int] = field(default_factory=set)  # seqs cancelled by a reversal
    last: dict[str, tuple[int, str, int]] = field(default_factory=dict)  # cat → wall, boot, mono
    weights: dict[str, deque[int]] = field(default_factory=dict)  # cat → latest grams

    def add(self, seq: int, cat: str, grams: int, wall: int, boot: str, mono: int) -> None:
        if wall >= self.horizon_ms:
            self.recent.append((seq, cat, grams, wall))
        self.last[cat] = (wall, boot, mono)
        weights = self.weights.get(cat)
        if weights is None:
            weights = self.weights[cat] = deque(maxlen=HISTORY)
        weights.append(grams)

    def prune(self, horizon_ms: int) -> None:
        """Forget deposits older than `horizon_ms` (no longer needed)."""
        self.recent = [r for r in self.recent if r[3] >= horizon_ms]
        self.horizon_ms = horizon_ms


class DepositHistory:
    """What the look-back rules need, per passbook, for one connection's ledger.

    Used inside the write transaction only: `sync` first, then `check`; after the
    commit, `committed` adds the new entry (a rolled-back one is never added).
    """

    def __init__(self, *, slack_ms: int = SLACK_MS, prune_ms: int = PRUNE_MS) -> None:
        self.slack_ms = slack_ms
        self.prune_ms = prune_ms
        self._seq = -1  # the head this view has seen; -1: nothing yet
        self._h = b""
        self._books: dict[str, _Passbook] = {}

    def sync(self, conn: sqlite3.Connection, head_seq: int, head_h: bytes) -> None:
        """Bring the view up to the ledger's head (read in this transaction)."""
        if head_seq == self._seq and head_h == self._h:
            return
        if self._books and self._seq < head_seq <= self._seq + MAX_REPLAY:
            for seq, kind, cat, grams, wall, boot, mono, ref_seq, passbook in conn.execute(
                _TAIL, (self._seq,)
            ):
                book = self._books.get(passbook)
                if book is None:
                    continue  # read whole when it is first needed
                if kind == "deposit":
                    book.add(seq, cat, grams, wall, boot, mono)
                else:
                    book.reversed.add(ref_seq)
        else:
            self._books.clear()  # first use, a long absence, or a head that moved back
        self._seq, self._h = head_seq, head_h

    def committed(self, entry: Entry, h: bytes) -> None:
        """Add this connection's own deposit once it is committed."""
        if entry.seq != self._seq + 1:
            return  # not in step: the next `sync` reads it from the table
        book = self._books.get(entry.passbook_id or "")
        if book is not None and entry.category is not None and entry.grams is not None:
            book.add(
                entry.seq, entry.category, entry.grams, entry.wall_ms, entry.boot_id, entry.mono_ms
            )
        self._seq, self._h = entry.seq, h

    def _load(self, conn: sqlite3.Connection, passbook_id: str, since_ms: int) -> _Passbook:
        book = _Passbook(horizon_ms=since_ms - self.slack_ms)
        for seq, kind, cat, grams, wall, boot, mono, ref_seq in conn.execute(_LOAD, (passbook_id,)):
            if kind == "deposit":
                book.add(seq, cat, grams, wall, boot, mono)
            else:
                book.reversed.add(ref_seq)
        self._books[passbook_id] = book
        return book

    def check(
        self,
        conn: sqlite3.Connection,
        rules: Rules,
        cat: Category,
        passbook_id: str,
        grams: int,
        now: tuple[int, bool, int],
        boot_id: str,
    ) -> list[str]:
        """Cooldown and daily cap (refused), then the review flags (returned)."""
        wall_ms = now[0]
        day_start = day_start_ms(rules, wall_ms)
        review = rules.review
        burst_since = wall_ms - review.burst_minutes * 60_000
        since = min(day_start, burst_since)
        book = self._books.get(passbook_id)
        if book is None or since < book.horizon_ms:
            book = self._load(conn, passbook_id, since)  # first time, or the clock went back
        elif since - self.slack_ms - book.horizon_ms >= self.prune_ms:
            book.prune(since - self.slack_ms)
        last = book.last.get(cat.key)
        if last is not None and rules.cooldown_seconds > 0:
            last_wall, last_boot, last_mono = last
            # Within one boot the monotonic clock is right even when the wall clock jumped.
            elapsed = now[2] - last_mono if last_boot == boot_id else wall_ms - last_wall
            wait_ms = rules.cooldown_seconds * 1000 - elapsed
            if wait_ms > 0:
                raise Refused(
                    "cooldown",
                    f"another {cat.key} deposit so soon: wait {(wait_ms + 999) // 1000} s",
                )
        today = burst = 0
        key, cancelled = cat.key, book.reversed
        for seq, c, g, wall in book.recent:
            if wall >= burst_since:
                burst += 1
            if c == key and wall >= day_start and seq not in cancelled:
                today += g
        if today + grams > cat.daily_cap_grams:
            left = max(0, cat.daily_cap_grams - today)
            raise Refused(
                "daily_cap",
                f"daily limit for {cat.name_en} is {cat.daily_cap_grams} g; "
                f"{today} g today, {left} g left",
            )
        # Unusual but allowed deposits are flagged for staff review (docs/design.md §3).
        flags = []
        history = book.weights.get(key, ())
        if len(history) >= review.heavy_min_history and grams > review.heavy_factor * (
            statistics.median(history)
        ):
            flags.append("heavy")
        if burst + 1 >= review.burst_count:
            flags.append("burst")
        return flags
