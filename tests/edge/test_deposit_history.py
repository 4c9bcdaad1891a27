"""The look-back rules kept in memory (`edge.ledger.deposits`) answer exactly what plain SQL
over the entries table answers: the cooldown, the daily cap and the review flags,
through reversals, clock steps, reboots, day changes and entries written by a
second `Ledger` on the same file (the sync uplink's, or another process's)."""

from __future__ import annotations

import re
import shutil
import sqlite3
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from edge.ledger.appender import Appender
from edge.ledger.clock import FixedClock
from edge.ledger.deposits import DepositHistory
from edge.ledger.ledger import Ledger
from edge.ledger.queries import day_start_ms
from greenpass.errors import Refused, StorageError
from greenpass.record.entries import Kind
from greenpass.record.rules import DEFAULT_RULES_PATH, Category, Rules, default_rules, parse_rules
from tests.conftest import make_ledger

CATEGORIES = ("paper", "batteries", "plastic_pet")
NEAR_MIDNIGHT = 1_767_282_900_000  # 2026-01-01 23:55 in Asia/Shanghai, the rules' zone


def touchy_rules() -> Rules:
    """The default rules with a short cooldown and review flags that trip easily."""
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    for key, value in (
        ("cooldown_seconds", 5),
        ("heavy_min_history", 2),
        ("heavy_factor", 2),
        ("burst_count", 3),
    ):
        text = re.sub(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
    return parse_rules(text.replace('version = "', 'version = "touchy-'))


def sql_checks(
    conn: sqlite3.Connection,
    rules: Rules,
    cat: Category,
    passbook_id: str,
    grams: int,
    now: tuple[int, bool, int],
    boot_id: str,
) -> list[str]:
    """The oracle: the SQL the in-memory view replaced (edge/ledger/queries.py before it)."""
    wall_ms = now[0]
    recent = conn.execute(
        "SELECT grams, wall_ms, boot_id, mono_ms FROM entries WHERE passbook_id = ? AND "
        "kind = 'deposit' AND category = ? ORDER BY seq DESC LIMIT 20",
        (passbook_id, cat.key),
    ).fetchall()
    if recent and rules.cooldown_seconds > 0:
        _, last_wall, last_boot, last_mono = recent[0]
        elapsed = now[2] - last_mono if last_boot == boot_id else wall_ms - last_wall
        wait_ms = rules.cooldown_seconds * 1000 - elapsed
        if wait_ms > 0:
            raise Refused(
                "cooldown",
                f"another {cat.key} deposit so soon: wait {(wait_ms + 999) // 1000} s",
            )
    day_start = day_start_ms(rules, wall_ms)
    burst_since = wall_ms - rules.review.burst_minutes * 60_000
    today, burst = conn.execute(
        "SELECT coalesce(sum(CASE WHEN category = ?2 AND wall_ms >= ?3 AND seq NOT IN "
        "(SELECT ref_seq FROM entries WHERE passbook_id = ?1 AND kind = 'reversal') "
        "THEN grams END), 0), count(CASE WHEN wall_ms >= ?4 THEN 1 END) "
        "FROM entries WHERE passbook_id = ?1 AND kind = 'deposit' AND wall_ms >= min(?3, ?4)",
        (passbook_id, cat.key, day_start, burst_since),
    ).fetchone()
    if today + grams > cat.daily_cap_grams:
        left = max(0, cat.daily_cap_grams - today)
        raise Refused(
            "daily_cap",
            f"daily limit for {cat.name_en} is {cat.daily_cap_grams} g; "
            f"{today} g today, {left} g left",
        )
    flags = []
    history = [r[0] for r in recent]
    review = rules.review
    if len(history) >= review.heavy_min_history and grams > review.heavy_factor * (
        statistics.median(history)
    ):
        flags.append("heavy")
    if burst + 1 >= review.burst_count:
        flags.append("burst")
    return flags


def outcome(fn: Callable[[], list[str]]) -> list[str] | str:
    try:
        return fn()
    except Refused as exc:
        return f"{exc.code}: {exc}"


class TwoLedgers(RuleBasedStateMachine):
    """A kiosk's `Ledger` and a second one on the same file, sharing one clock, and a
    third view that keeps nothing it does not need (no slack, pruned at every check)
    and learns every entry by reading the table, to stress reloading and pruning."""

    passbooks = Bundle("passbooks")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="gp-history-"))
        self.clock = FixedClock(NEAR_MIDNIGHT)
        first = Ledger.create(
            self.dir / "k.db", device_id="K1", village="V1", rules=touchy_rules(), clock=self.clock
        )
        first.add_staff("S1", name="Staff One", role="admin", pin="2468")
        self.ledgers = [first]
        self.ledgers.append(Ledger.open(self.dir / "k.db", self.clock))
        self.deposits: list[int] = []
        self.last: tuple[str, str] | None = None
        self.lean = DepositHistory(slack_ms=0, prune_ms=0)

    def teardown(self) -> None:
        for ledger in self.ledgers:
            ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(target=passbooks, by=st.integers(0, 1))
    def enrol(self, by: int) -> str:
        entry = self.ledgers[by].enrol("household", staff_id="S1")
        assert entry.passbook_id is not None
        return entry.passbook_id

    @rule(
        pb=passbooks,
        by=st.integers(0, 1),
        cat=st.sampled_from(CATEGORIES),
        share=st.integers(0, 100),
    )
    def deposit(self, pb: str, by: int, cat: str, share: int) -> None:
        self.last = (pb, cat)
        ledger = self.ledgers[by]
        c = ledger.rules.categories[cat]
        grams = c.min_grams + (c.max_grams - c.min_grams) * share**3 // 100**3
        conn = ledger.store.conn
        now = (self.clock.wall_ms(), True, self.clock.mono_ms())
        rules, boot = ledger.rules, self.clock.boot_id
        want = outcome(lambda: sql_checks(conn, rules, c, pb, grams, now, boot))
        conn.execute("BEGIN")
        try:
            self.lean.sync(conn, *Appender.head(conn))
            lean = outcome(lambda: self.lean.check(conn, rules, c, pb, grams, now, boot))
        finally:
            conn.execute("ROLLBACK")
        assert lean == want
        try:
            got: list[str] | str = ledger.deposit(pb, cat, grams).flags.split(",")
            got = [f for f in got if f]
            self.deposits.append(ledger.head()[0])
        except Refused as exc:
            got = f"{exc.code}: {exc}"
        assert got == want
        event(want.split(":")[0] if isinstance(want, str) else ",".join(want) or "ok")

    @rule(by=st.integers(0, 1), share=st.integers(0, 100), wait_s=st.sampled_from([0, 6, 60]))
    def deposit_again(self, by: int, share: int, wait_s: int) -> None:
        """The same villager and category again: where cooldown, caps and flags bite."""
        if self.last is not None:
            self.clock.advance(wait_s * 1000)
            self.deposit(*self.last[:1], by, self.last[1], share)

    @rule(by=st.integers(0, 1), pick=st.integers(0, 10**6))
    def reverse(self, by: int, pick: int) -> None:
        if not self.deposits:
            return
        seq = self.deposits.pop(pick % len(self.deposits))
        try:
            self.ledgers[by].reverse(seq, staff_id="S1", reason="weighed with the basket")
        except Refused as exc:
            assert exc.code == "insufficient_points"

    @rule(seconds=st.sampled_from([1, 4, 5, 6, 60, 600, 3600, 6 * 3600, 86_400, 3 * 86_400]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds * 1000)

    @rule(seconds=st.sampled_from([30, 3600, 86_400, 2 * 86_400]))
    def wall_clock_steps_back(self, seconds: int) -> None:
        self.clock._wall -= seconds * 1000  # NTP corrects a clock that ran fast

    @rule(n=st.integers(0, 3))
    def reboot(self, n: int) -> None:
        self.clock.boot_id = f"00000000-0000-4000-8000-00000000000{n}"

    @invariant()
    def chain_intact(self) -> None:
        assert self.ledgers[0].verify().ok


TwoLedgers.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestTwoLedgers = TwoLedgers.TestCase


def test_a_deposit_written_by_another_ledger_counts_toward_cap_and_cooldown(
    tmp_path: Path, clock: FixedClock
) -> None:
    kiosk = make_ledger(tmp_path / "k.db", clock)
    other = Ledger.open(tmp_path / "k.db", clock)
    pb = kiosk.enrol("Li household", staff_id="S1").passbook_id
    assert pb is not None
    first = kiosk.deposit(pb, "batteries", 1_000)  # the kiosk's view now holds this passbook
    clock.advance(60_000)
    other.deposit(pb, "batteries", 900)
    assert refusal_code(kiosk, pb, "batteries", 200) == "cooldown"
    clock.advance(60_000)
    assert refusal_code(kiosk, pb, "batteries", 200) == "daily_cap"
    other.deposit(pb, "paper", 1_000)
    assert refusal_code(kiosk, pb, "paper", 1_000) == "cooldown"
    other.reverse(first.seq, staff_id="S1", reason="weighed with the basket")
    assert kiosk.deposit(pb, "batteries", 1_100).kind is Kind.DEPOSIT  # 900 + 1100 = the cap
    kiosk.close()
    other.close()


def test_a_wall_clock_stepped_back_a_day_still_sees_that_days_deposits(
    tmp_path: Path, clock: FixedClock
) -> None:
    ledger = make_ledger(tmp_path / "k.db", clock)
    pb = ledger.enrol("Li household", staff_id="S1").passbook_id
    assert pb is not None
    ledger.deposit(pb, "batteries", 1_500)  # day 1, 08:00 in Shanghai
    clock.advance(28 * 3600_000)  # day 2, noon: the view now keeps only from day 1, 18:00
    ledger.close()
    ledger = Ledger.open(tmp_path / "k.db", clock)
    ledger.deposit(pb, "paper", 1_000)
    clock._wall -= 27 * 3600_000  # NTP: the clock ran a day fast; it is day 1, 09:00
    assert refusal_code(ledger, pb, "batteries", 600) == "daily_cap"
    ledger.close()


def refusal_code(ledger: Ledger, pb: str, cat: str, grams: int) -> str:
    before = ledger.head()
    try:
        ledger.deposit(pb, cat, grams)
    except Refused as exc:
        assert ledger.head() == before
        return exc.code
    raise AssertionError("the deposit was not refused")


def test_a_rolled_back_deposit_is_not_remembered(tmp_path: Path, clock: FixedClock) -> None:
    """A deposit whose write fails is rolled back and must not count afterwards."""
    ledger = make_ledger(tmp_path / "k.db", clock)
    pb = ledger.enrol("Li household", staff_id="S1").passbook_id
    assert pb is not None
    ledger.deposit(pb, "batteries", 1_500)
    clock.advance(60_000)
    conn = ledger.store.conn
    # Make the next insert fail inside the transaction (as a full disk would).
    conn.execute(
        "CREATE TEMP TRIGGER fail_once BEFORE INSERT ON main.entries "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    try:
        ledger.deposit(pb, "batteries", 400)
    except StorageError as exc:
        assert "full" in str(exc)
    else:
        raise AssertionError("the deposit should have failed")
    conn.execute("DROP TRIGGER fail_once")
    # Had the failed 400 g been remembered, 500 g would pass the 2000 g cap.
    assert refusal_code(ledger, pb, "batteries", 501) == "daily_cap"
    assert ledger.deposit(pb, "batteries", 500).grams == 500
    ledger.close()


def test_rules_fixture_categories_exist() -> None:
    assert set(CATEGORIES) <= set(default_rules().categories)
