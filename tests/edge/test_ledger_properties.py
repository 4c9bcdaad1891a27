"""Property-based (stateful) test: any sequence of operations keeps the ledger's
invariants — balance = sum of points, seq gapless, chain valid, stock and
balances never negative, each entry reversed at most once — and agrees with a
plain model of what the operations should have done."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
)

from edge.ledger.clock import FixedClock
from edge.ledger.ledger import Ledger
from greenpass.errors import Refused
from greenpass.record.entries import REVERSIBLE, Kind
from greenpass.record.rules import default_rules

CATEGORIES = sorted(default_rules().categories)
ITEMS = {"rice": 40, "soap": 7, "vinegar": 12}


class LedgerMachine(RuleBasedStateMachine):
    passbooks = Bundle("passbooks")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock()
        self.ledger = Ledger.create(
            ":memory:", device_id="K1", village="V1", rules=default_rules(), clock=self.clock
        )
        self.ledger.add_staff("S1", name="Staff", role="admin", pin="2468")
        for item, price in ITEMS.items():
            self.ledger.put_item(
                item, name_zh=item, name_en=item, points_price=price, staff_id="S1"
            )
        self.points: dict[str, int] = {}
        self.stock = dict.fromkeys(ITEMS, 0)
        self.reversed: set[int] = set()
        self.refusals = 0

    def teardown(self) -> None:
        self.ledger.close()

    @rule(target=passbooks, name=st.text(min_size=1, max_size=12).filter(str.isprintable))
    def enrol(self, name: str) -> object:
        if not name.strip():
            return multiple()
        e = self.ledger.enrol(name, staff_id="S1")
        assert e.passbook_id is not None
        self.points[e.passbook_id] = 0
        return e.passbook_id

    @rule(
        pb=passbooks,
        cat=st.sampled_from(CATEGORIES),
        grams=st.integers(min_value=-100, max_value=70_000),
        wait_s=st.integers(min_value=0, max_value=7_200),
    )
    def deposit(self, pb: str, cat: str, grams: int, wait_s: int) -> None:
        self.clock.advance(wait_s * 1000)
        try:
            e = self.ledger.deposit(pb, cat, grams)
        except Refused as exc:
            self.refusals += 1
            c = self.ledger.rules.categories[cat]
            if grams <= 0:
                assert exc.code == "bad_weight"
            elif not c.min_grams <= grams <= c.max_grams:
                assert exc.code in ("too_light", "too_heavy")
            else:
                assert exc.code in ("cooldown", "daily_cap", "inactive_villager")
            return
        assert e.points == grams * self.ledger.rules.categories[cat].points_per_tonne // 10**6
        self.points[pb] += e.points

    @rule(pb=passbooks, pts=st.integers(min_value=-5, max_value=600))
    def award(self, pb: str, pts: int) -> None:
        try:
            self.ledger.award(pb, pts, staff_id="S1", reason="volunteer")
        except Refused as exc:
            assert exc.code in ("bad_points", "inactive_villager")
            return
        self.points[pb] += pts

    @rule(item=st.sampled_from(sorted(ITEMS)), qty=st.integers(min_value=1, max_value=5))
    def restock(self, item: str, qty: int) -> None:
        self.ledger.restock(item, qty, staff_id="S1")
        self.stock[item] += qty

    @rule(
        pb=passbooks,
        cart=st.lists(
            st.tuples(st.sampled_from(sorted(ITEMS)), st.integers(min_value=1, max_value=3)),
            min_size=1,
            max_size=3,
        ),
    )
    def redeem(self, pb: str, cart: list[tuple[str, int]]) -> None:
        want: dict[str, int] = {}
        for item, qty in cart:
            want[item] = want.get(item, 0) + qty
        cost = sum(ITEMS[i] * q for i, q in want.items())
        try:
            self.ledger.redeem(pb, cart, staff_id="S1")
        except Refused as exc:
            short = any(self.stock[i] < q for i, q in want.items())
            assert exc.code in ("out_of_stock", "insufficient_points", "inactive_villager")
            assert short or cost > self.points[pb] or exc.code == "inactive_villager"
            return
        assert cost <= self.points[pb]
        self.points[pb] -= cost
        for i, q in want.items():
            self.stock[i] -= q

    @precondition(lambda self: self.ledger.head()[0] > 0)
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(min_value=1, max_value=self.ledger.head()[0]))
        target = self.ledger.entry(seq)
        try:
            r = self.ledger.reverse(seq, staff_id="S1", reason="mistake")
        except Refused as exc:
            if target.kind not in REVERSIBLE:
                assert exc.code == "not_reversible"
            elif seq in self.reversed:
                assert exc.code == "already_reversed"
            else:
                assert exc.code in ("insufficient_points", "out_of_stock")
            return
        assert target.kind in REVERSIBLE and seq not in self.reversed
        self.reversed.add(seq)
        if target.passbook_id:
            self.points[target.passbook_id] -= target.points
        if target.item_id:
            self.stock[target.item_id] -= target.qty or 0
        assert r.ref_seq == seq

    @rule(pb=consumes(passbooks), status=st.sampled_from(["inactive", "active"]))
    def status(self, pb: str, status: str) -> None:
        self.ledger.set_villager_status(pb, status, staff_id="S1", reason="office")

    @invariant()
    def balances_match_model_and_sums(self) -> None:
        for pb, pts in self.points.items():
            bal = self.ledger.balance(pb)
            assert bal == pts >= 0
            assert bal == sum(
                e.points for e, _ in self.ledger.iter_entries() if e.passbook_id == pb
            )

    @invariant()
    def stock_matches_model(self) -> None:
        for item, qty in self.stock.items():
            assert self.ledger.stock(item) == qty >= 0

    @invariant()
    def chain_gapless_and_valid(self) -> None:
        entries = [e for e, _ in self.ledger.iter_entries()]
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        refs = [e.ref_seq for e in entries if e.kind is Kind.REVERSAL]
        assert len(refs) == len(set(refs)) == len(self.reversed)
        report = self.ledger.verify()
        assert report.ok, report.problem
        assert report.head_seq == len(entries)


LedgerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedgerProperties = LedgerMachine.TestCase
