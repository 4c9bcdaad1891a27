"""The kiosk's ledger: append-only, hash-chained entries in one SQLite file.

Every write method validates inside one durable transaction and either appends
its entries (and updates the state tables beside them) or raises `Refused` with
a reason code and writes nothing. When a write method returns, the entry is on
disk: the kiosk may beep.

Balances and stock are derived from entries (plus central's snapshot, docs/design.md §3),
never stored, so they cannot drift from the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from edge.ledger import accounts, reversal, villagers
from edge.ledger import catalogue as goods
from edge.ledger import queries as q
from edge.ledger.active_rules import ActiveRules
from edge.ledger.appender import Appender
from edge.ledger.central_state import CentralState, apply_central_state
from edge.ledger.clock import Clock, SystemClock
from edge.ledger.deposits import DepositHistory
from edge.ledger.outbox import Outbox
from edge.ledger.personal_outbox import check_personal
from edge.ledger.queries import DayReport, DepositLine, Found, Item, Villager
from edge.ledger.rows import SELECT_ENTRY, entry_from_row
from edge.ledger.snapshot import apply_snapshot
from edge.ledger.staff import PinPolicy, StaffMember
from edge.ledger.store import Store
from greenpass.errors import IntegrityError, LedgerError, Refused, RulesError
from greenpass.record import ids
from greenpass.record.entries import GENESIS_H, ChainReport, Entry, Kind, check_chain
from greenpass.record.rules import Rules, weighable
from greenpass.record.targets import OtherEntry

# What a deposit must read before it may write, in one statement: the rules in force,
# the villager's standing and the chain head (NULLs for an unknown passbook, an empty chain).
_DEPOSIT_STATE_SQL = (
    "SELECT m.value, v.status, v.village, e.seq, e.h FROM meta m "
    "LEFT JOIN villagers v ON v.passbook_id = ?1 "
    "LEFT JOIN entries e ON e.seq = (SELECT max(seq) FROM entries) "
    "WHERE m.key = 'rules_version'"
)


@dataclass(frozen=True)
class StatementLine:
    entry: Entry
    balance: int  # the passbook's balance after this entry


class Ledger:
    """The ledger of one kiosk (one device id, one village)."""

    def __init__(
        self, store: Store, clock: Clock | None = None, *, pin_policy: PinPolicy | None = None
    ) -> None:
        self.store = store
        self.pin_policy = pin_policy or PinPolicy()
        meta = {r["key"]: r["value"] for r in store.query("SELECT key, value FROM meta")}
        if "device_id" not in meta:
            raise LedgerError(
                f"{store.path}: not an initialised ledger (run `greenpass ledger init`)"
            )
        self.device_id: str = meta["device_id"]
        self.village: str = meta["village"]
        self._appender = Appender(self.device_id, clock or SystemClock())
        self._rules = ActiveRules(store.path)
        self._rules.current(store.conn)  # fail now, not at the first deposit
        self._history = DepositHistory()
        self.outbox = Outbox(store)

    @property
    def clock(self) -> Clock:
        return self._appender.clock

    @property
    def rules(self) -> Rules:
        """The rules in force in the file now: another connection (the sync uplink's
        `Ledger`) may have installed new ones since the last look."""
        return self._rules.current(self.store.conn)

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        device_id: str,
        village: str,
        rules: Rules,
        clock: Clock | None = None,
    ) -> Ledger:
        """Initialise a new ledger file (refused if it already holds one)."""
        ids.check_device_id(device_id)
        ids.check_id("village", village)
        if rules.village not in ("*", village):
            raise RulesError(
                f"rules {rules.version!r} are for village {rules.village!r}, not {village!r}"
            )
        store = Store(path)
        clk = clock or SystemClock()
        if store.query("SELECT 1 FROM meta WHERE key = 'device_id'"):
            store.close()
            raise LedgerError(f"{path}: already holds a ledger; refusing to re-initialise")
        with store.write() as conn:
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [
                    ("device_id", device_id),
                    ("village", village),
                    ("rules_version", rules.version),
                    ("created_ms", str(clk.wall_ms())),
                ],
            )
            conn.execute(
                "INSERT INTO rules(version, text, installed_ms) VALUES (?, ?, ?)",
                (rules.version, rules.text, clk.wall_ms()),
            )
        return cls(store, clk)

    @classmethod
    def open(cls, path: str | Path, clock: Clock | None = None) -> Ledger:
        if str(path) != ":memory:" and not Path(path).exists():
            raise LedgerError(f"{path}: no ledger here (run `greenpass ledger init`)")
        return cls(Store(path), clock)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- villagers (edge.ledger.villagers) ----------------------------------------------

    def enrol(self, household_name: str, *, staff_id: str, passbook_id: str | None = None) -> Entry:
        return villagers.enrol(
            self.store,
            self._appender,
            self.village,
            household_name,
            staff_id=staff_id,
            passbook_id=passbook_id,
        )

    def set_villager_status(
        self, passbook_id: str, status: str, *, staff_id: str, reason: str
    ) -> Entry:
        return villagers.set_status(
            self.store, self._appender, passbook_id, status, staff_id=staff_id, reason=reason
        )

    def replace_passbook(
        self, old: str, *, staff_id: str, new_passbook_id: str | None = None
    ) -> tuple[Entry, Entry]:
        """Replace a lost card: a new passbook for the same household carrying the old
        one's balance, and the old one revoked, in one transaction. Returns the new
        passbook's `enrol` entry and the old one's `villager_status` entry."""
        return villagers.replace(
            self.store,
            self._appender,
            self.village,
            old,
            staff_id=staff_id,
            new_passbook_id=new_passbook_id,
        )

    # --- points -------------------------------------------------------------------------

    def deposit(self, passbook_id: str, category: str, grams: int) -> Entry:
        """Record a weighed deposit. Refused (nothing written) on any rule.

        The hot path of the kiosk (bench/ledger_commit.py): one read for the rules,
        the villager and the chain head; the look-back rules from memory
        (`edge.ledger.deposits`); one insert; the commit.
        """
        if isinstance(grams, bool) or not isinstance(grams, int) or grams <= 0:
            raise Refused(
                "bad_weight", f"weight must be a positive whole number of grams, got {grams!r}"
            )
        history = self._history
        with self.store.write() as conn:
            row = conn.execute(_DEPOSIT_STATE_SQL, (passbook_id,)).fetchone()
            if row is None:
                raise IntegrityError(f"{self.store.path}: no active rules version in meta")
            version, status, village, seq, h = row
            rules = self._rules.get(conn, version)
            cat = weighable(rules, category, grams)
            q.check_villager(passbook_id, status, village, self.village)
            head = (seq, bytes(h)) if seq is not None else (0, GENESIS_H)
            history.sync(conn, *head)
            now = self._appender.now()
            boot_id = self.clock.boot_id
            flags = history.check(conn, rules, cat, passbook_id, grams, now, boot_id)
            entry, h = self._appender.write(
                conn,
                head,
                Kind.DEPOSIT,
                now,
                {
                    "passbook_id": passbook_id,
                    "category": category,
                    "grams": grams,
                    "points": cat.points_for(grams),
                    "co2e_g": cat.co2e_for(grams),
                    "rules_version": version,
                    "flags": ",".join(flags),
                },
            )
        history.committed(entry, h)
        return entry

    def award(self, passbook_id: str, points: int, *, staff_id: str, reason: str) -> Entry:
        if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
            raise Refused("bad_points", f"an award is a positive number of points, got {points!r}")
        reason = q.check_reason(reason)
        with self.store.write() as conn:
            rules = self._rules.current(conn)
            if points > rules.max_award_points:
                raise Refused(
                    "bad_points", f"an award is 1 to {rules.max_award_points} points, got {points}"
                )
            q.require_staff(conn, staff_id, "staff", "admin")
            q.require_villager(conn, passbook_id, self.village)
            return self._appender.append(
                conn,
                Kind.AWARD,
                self._appender.now(),
                passbook_id=passbook_id,
                points=points,
                staff_id=staff_id,
                reason=reason,
                rules_version=rules.version,
            )

    def redeem(
        self, passbook_id: str, items: Sequence[tuple[str, int]], *, staff_id: str
    ) -> list[Entry]:
        """Exchange points for goods: one entry per item, all or nothing."""
        return goods.redeem(
            self.store,
            self._appender,
            self._rules,
            self.village,
            passbook_id,
            items,
            staff_id=staff_id,
        )

    def reverse(self, seq: int, *, staff_id: str, reason: str) -> Entry:
        """Cancel an earlier entry with a new one that negates it (at most once)."""
        return reversal.reverse(self.store, self._appender, seq, staff_id=staff_id, reason=reason)

    def reverse_other(self, target: OtherEntry, *, staff_id: str, reason: str) -> Entry:
        """Cancel another kiosk's entry that central reserved for this one (`sync.reserve`)."""
        return reversal.reverse_other(
            self.store, self._appender, target, staff_id=staff_id, reason=reason
        )

    # --- catalogue and stock (edge.ledger.catalogue) ------------------------------------

    def put_item(
        self,
        item_id: str,
        *,
        name_zh: str,
        name_en: str,
        points_price: int,
        staff_id: str,
        active: bool = True,
    ) -> None:
        """Add or change a catalogue item (admin). Stock moves only through entries."""
        goods.put_item(
            self.store,
            item_id,
            name_zh=name_zh,
            name_en=name_en,
            points_price=points_price,
            staff_id=staff_id,
            active=active,
        )

    def restock(self, item_id: str, qty: int, *, staff_id: str) -> Entry:
        return goods.restock(self.store, self._appender, item_id, qty, staff_id=staff_id)

    def adjust_stock(self, item_id: str, delta: int, *, staff_id: str, reason: str) -> Entry:
        """Correct stock after a count (breakage, loss): a signed delta with a reason."""
        return goods.adjust_stock(
            self.store, self._appender, item_id, delta, staff_id=staff_id, reason=reason
        )

    # --- rules and central's state ------------------------------------------------------

    def install_rules(self, rules: Rules) -> bool:
        """Make `rules` active. False if already active; a reused version with other text is
        refused, because entries name their rules by version."""
        return self._rules.install(self.store, rules, self.village, self.clock.wall_ms())

    def apply_snapshot(self, version: int, included_seq: int, balances: dict[str, int]) -> bool:
        """Take central's balances as of this device's `included_seq`. An older or equal
        version is ignored (False); the swap is atomic."""
        return apply_snapshot(self.store, version, included_seq, balances, self.clock.wall_ms())

    def apply_state(self, state: CentralState) -> bool:
        """Apply central's pushed state atomically (see `edge.ledger.central_state`)."""
        applied = apply_central_state(
            self.store, state, village=self.village, now=self.clock.wall_ms()
        )
        if applied.rules is not None:  # just installed in the file: no need to read it back
            self._rules.remember(applied.rules)
        return applied.changed

    def issuer_keys(self) -> dict[str, bytes]:
        """Public keys central trusts to sign passbook cards, by key id."""
        rows = self.store.conn.execute("SELECT key_id, public_key FROM issuer_keys").fetchall()
        return {k: bytes(v) for k, v in rows}

    # --- staff --------------------------------------------------------------------------

    def add_staff(
        self, staff_id: str, *, name: str, role: str, pin: str, by_staff_id: str | None = None
    ) -> StaffMember:
        """Add a staff member. Needs an admin, except for the very first one."""
        return q.add_staff(
            self.store, staff_id, name=name, role=role, pin=pin, by_staff_id=by_staff_id
        )

    def authenticate(self, staff_id: str, pin: str) -> StaffMember:
        """Check a PIN; wrong PINs count toward a lockout that survives restarts."""
        return q.authenticate(self.store, self.pin_policy, self.clock.wall_ms(), staff_id, pin)

    # --- reading ------------------------------------------------------------------------

    def entry(self, seq: int) -> Entry:
        return q.entry(self.store.conn, seq)

    def iter_entries(self, after_seq: int = 0) -> Iterator[tuple[Entry, bytes]]:
        cur = self.store.conn.execute(f"{SELECT_ENTRY} WHERE seq > ? ORDER BY seq", (after_seq,))
        for row in cur:
            yield entry_from_row(row)

    def balance(self, passbook_id: str) -> int:
        return q.balance(self.store.conn, passbook_id)

    def stock(self, item_id: str) -> int:
        return q.stock(self.store.conn, item_id)

    def villager(self, passbook_id: str) -> Villager | None:
        return q.villager(self.store.conn, passbook_id)

    def check_villager(self, passbook_id: str) -> None:
        """Refused (unknown_passbook, revoked_passbook, foreign_village,
        inactive_villager) unless the passbook may earn and spend at this kiosk."""
        q.require_villager(self.store.conn, passbook_id, self.village)

    def villagers(self, status: str = "active") -> list[Villager]:
        """This kiosk's village's villagers with `status`, by passbook id."""
        return q.villagers(self.store.conn, self.village, status)

    def find_villagers(self, query: str, limit: int = 30) -> list[Found]:
        """This village's passbooks whose id or household name holds `query`."""
        return q.find_villagers(self.store.conn, self.village, query, limit)

    def replaced_by(self, passbook_id: str) -> str | None:
        """The passbook that replaced this one at this kiosk, if any."""
        return accounts.replaced_by(self.store.conn, passbook_id)

    def staff(self) -> list[StaffMember]:
        """Every staff member (active or not), by id."""
        return q.staff_members(self.store.conn)

    def item(self, item_id: str) -> Item | None:
        return q.item(self.store.conn, item_id)

    def catalogue(self) -> list[Item]:
        return q.catalogue(self.store.conn)

    def item_picture(self, item_id: str) -> bytes | None:
        return q.item_picture(self.store.conn, item_id)

    def today_deposits(self, passbook_id: str) -> list[DepositLine]:
        """The passbook's deposits today (the village's calendar day) that were not
        reversed, newest first: the villager screen's list."""
        with self.store.read() as conn:
            start = q.day_start_ms(self._rules.current(conn), self.clock.wall_ms())
            return q.today_deposits(conn, passbook_id, start)

    def day_report(self) -> DayReport:
        """Today at this kiosk for staff: grams and points per category, points earned
        and spent, CO2e avoided, and the stock of every item (see `DayReport`)."""
        with self.store.read() as conn:
            start = q.day_start_ms(self._rules.current(conn), self.clock.wall_ms())
            return q.day_report(conn, start)

    def statement(self, passbook_id: str) -> list[StatementLine]:
        """The household's entries at this kiosk with the running balance: those of every
        card of its account (a card replaced here and the one that replaced it)."""
        with self.store.read() as conn:
            if q.villager(conn, passbook_id) is None:
                raise Refused("unknown_passbook", f"no villager with passbook {passbook_id!r}")
            account = accounts.account_of(conn, passbook_id)
            members = accounts.account_members(conn, account)
            marks = ", ".join("?" * len(members))
            rows = conn.execute(
                f"{SELECT_ENTRY} WHERE passbook_id IN ({marks}) ORDER BY seq", members
            ).fetchall()
            entries = [entry_from_row(r)[0] for r in rows]
            running = q.balance(conn, account) - sum(e.points for e in entries)
        lines = []
        for e in entries:
            running += e.points
            lines.append(StatementLine(e, running))
        return lines

    def head(self) -> tuple[int, str]:
        seq, h = self.store.conn.execute("SELECT seq, h FROM chain_head WHERE id = 1").fetchone()
        return int(seq), bytes(h).hex()

    def verify(self) -> ChainReport:
        """Recompute the whole chain and compare it with the recorded head; then check
        that every name this kiosk enrolled still matches its enrolment's commitment."""
        with self.store.read() as conn:
            report = check_chain(
                self.iter_entries(), device_id=self.device_id, expected_head=self.head()
            )
            bad = check_personal(conn) if report.ok else None
        if bad is not None:
            return replace(report, ok=False, first_bad_seq=bad[0], problem=bad[1])
        return report
