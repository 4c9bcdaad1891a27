"""Central re-checks what every entry means, not only who signed it (docs/design.md §6).

A valid signature proves which kiosk sent an entry, not that the entry is right: a
stolen or modified kiosk signs whatever it writes. So before a batch is stored, each
entry is checked the way the kiosk's own write methods would have made it, entry by
entry, with no database state (this module, outside the ingest transaction):

- its kind is one the ledger knows, and it carries the fields its kind needs and none
  of the amounts its kind never has (an enrolment or a restock credits no points);
- any rules version it names is known to central (`central.rules_versions`);
- a deposit's category is in those rules, its grams within the category's bounds, and
  its points and CO2e are the ones those rules give for its grams — computed by the
  code the kiosk prices with (`greenpass.record.rules`: `weighable`, `Category`), not
  a copy;
- an award is 1 to `max_award_points` of its rules; a redemption takes points and
  stock, never gives them; a restock adds stock; an adjustment changes it; an
  enrolment that replaces a lost card (`data.replaces`) names another passbook.

What needs earlier entries (stock, balances, reversal targets) is checked inside the
transaction by `central.recheck_state`. A failure raises `ProtocolError("rejected")`
naming the first entry that fails, which ingest turns into a dead letter.

Not checked, because central cannot know them: that a bag was really weighed, staff
ids and PINs (kiosk-local), the price of a redemption (a kiosk may hold an older
price or its own catalogue), daily caps and cooldowns (kept per kiosk, by the kiosk's
clock), the review flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from central import rules_versions
from greenpass.errors import ProtocolError, Refused
from greenpass.record.entries import Kind
from greenpass.record.personal import LEGACY_NAME_KEY, PERSONAL_KEY, is_commitment
from greenpass.record.rules import Rules, weighable
from sync import protocol

if TYPE_CHECKING:
    from central.store import CentralStore

# Positions in a `protocol.Batch` row (also used by central.recheck_state).
_ROW = {name: n for n, name in enumerate(protocol.ROW_FIELDS)}
SEQ, KIND, DATA = _ROW["seq"], _ROW["kind"], _ROW["data"]
PASSBOOK, CATEGORY, GRAMS = _ROW["passbook_id"], _ROW["category"], _ROW["grams"]
POINTS, CO2E, RULES = _ROW["points"], _ROW["co2e_g"], _ROW["rules_version"]
ITEM, QTY, REF = _ROW["item_id"], _ROW["qty"], _ROW["ref_seq"]
REF_DEVICE = _ROW["ref_device"]

# Stock entries belong to no villager; enrolments and status changes move nothing.
_STOCK_NEVER = ("passbook_id", "category", "grams", "points", "co2e_g", "ref_seq")
_VILLAGER_NEVER = ("category", "grams", "points", "co2e_g", "item_id", "qty", "ref_seq")

# Per kind: the fields it must carry and the amounts it must not (None; 0 for points
# and CO2e), as the kiosk's write methods make them (docs/ledger.md, "Entry kinds").
# A reversal's amounts are those of its target, negated (`central.recheck_state`).
SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Kind.DEPOSIT: (("passbook_id", "category", "grams", "rules_version"),
                   ("item_id", "qty", "ref_seq")),
    Kind.AWARD: (("passbook_id", "staff_id", "reason", "rules_version"),
                 ("category", "grams", "co2e_g", "item_id", "qty", "ref_seq")),
    Kind.REDEEM: (("passbook_id", "item_id", "qty", "staff_id", "rules_version"),
                  ("category", "grams", "co2e_g", "ref_seq")),
    Kind.REVERSAL: (("ref_seq", "staff_id", "reason"), ()),
    Kind.RESTOCK: (("item_id", "qty", "staff_id"), _STOCK_NEVER),
    Kind.ADJUST_STOCK: (("item_id", "qty", "staff_id", "reason"), _STOCK_NEVER),
    Kind.ENROL: (("passbook_id", "staff_id"), _VILLAGER_NEVER),
    Kind.VILLAGER_STATUS: (("passbook_id", "staff_id", "reason"), _VILLAGER_NEVER),
}  # fmt: skip
# An enrolment also needs its household: the commitment (data.personal, enrol data
# version 2) or, from a kiosk before it, the name (data.household_name): `_household`.
_DATA_KEYS = {Kind.ENROL: ("village",), Kind.VILLAGER_STATUS: ("status",)}
# Positions, built once: this runs for every synced entry.
_SHAPE_AT = {
    kind: (tuple((_ROW[f], f) for f in need), tuple((_ROW[f], f) for f in never))
    for kind, (need, never) in SHAPES.items()
}
if set(SHAPES) != set(Kind):  # pragma: no cover
    raise RuntimeError("central.recheck.SHAPES does not cover every entry kind")


def _household(seq: int, data: dict[str, str]) -> None:
    if PERSONAL_KEY in data:
        if not is_commitment(data[PERSONAL_KEY]):
            raise refuse(seq, "data.personal is not a commitment (64 hex digits)")
        if LEGACY_NAME_KEY in data:
            raise refuse(seq, "an enrolment with a commitment carries no household name")
    elif not data.get(LEGACY_NAME_KEY):
        raise refuse(seq, "enrol entries need data.personal (or, before it, a household name)")


def refuse(seq: int, message: str) -> ProtocolError:
    return ProtocolError("rejected", f"entry seq {seq}: {message}")


def check_meaning(store: CentralStore, batch: protocol.Batch, village_id: str) -> None:
    """Refuse the batch if any entry is not what the kiosk's rules would have written."""
    versions = {r[RULES] for r in batch.rows if r[RULES] is not None and r[KIND] != Kind.REVERSAL}
    known = rules_versions.known_rules(store, village_id, versions) if versions else {}
    for row in batch.rows:
        check_row(row, known, village_id)


def check_row(row: tuple[Any, ...], known: Mapping[str, Rules], village_id: str) -> None:
    """One entry (a `protocol.Batch` row) against its kind's shape and its rules."""
    seq, kind = row[SEQ], row[KIND]
    shape = _SHAPE_AT.get(kind)
    if shape is None:
        raise refuse(seq, f"unknown kind {kind!r}")
    need, never = shape
    for n, name in need:
        if row[n] is None or row[n] == "":
            raise refuse(seq, f"{kind} entries need {name}")
    for n, name in never:
        if row[n] is not None and row[n] != 0:
            raise refuse(seq, f"{kind} entries carry no {name}, got {row[n]!r}")
    for key in _DATA_KEYS.get(kind, ()):
        if not row[DATA].get(key):
            raise refuse(seq, f"{kind} entries need data.{key}")
    if kind == Kind.ENROL:
        _household(seq, row[DATA])
    rules: Rules | None = None
    version = row[RULES]
    if version is not None and kind != Kind.REVERSAL:
        rules = known.get(version)
        if rules is None:
            raise refuse(
                seq,
                f"rules version {version!r} is unknown to central (neither the shipped "
                f"default nor rules ever set for village {village_id!r}); set those rules "
                "at central and the kiosk's next resend is accepted",
            )
    check = _BY_KIND.get(kind)
    if check is not None:
        check(seq, row, rules)


def _deposit(seq: int, row: tuple[Any, ...], rules: Rules | None) -> None:
    assert rules is not None  # a deposit needs a rules version (SHAPES)
    category, grams, points, co2e = row[CATEGORY], row[GRAMS], row[POINTS], row[CO2E]
    try:
        cat = weighable(rules, category, grams)  # the kiosk's own bounds check
    except Refused as exc:
        raise refuse(seq, f"{exc.code}: {exc}") from exc
    want = cat.points_for(grams)
    if points != want:
        raise refuse(
            seq,
            f"{points} points for {grams} g of {category}, but rules {rules.version} give {want}",
        )
    want = cat.co2e_for(grams)
    if co2e != want:
        raise refuse(
            seq,
            f"{co2e} g CO2e for {grams} g of {category}, but rules {rules.version} give {want}",
        )


def _award(seq: int, row: tuple[Any, ...], rules: Rules | None) -> None:
    assert rules is not None  # an award needs a rules version (SHAPES)
    if not 1 <= row[POINTS] <= rules.max_award_points:
        raise refuse(
            seq,
            f"an award is 1 to {rules.max_award_points} points (rules {rules.version}), "
            f"got {row[POINTS]}",
        )


def _redeem(seq: int, row: tuple[Any, ...], _rules: Rules | None) -> None:
    if row[QTY] >= 0 or row[POINTS] >= 0:
        raise refuse(
            seq,
            f"a redemption takes points and stock, got points {row[POINTS]} and qty {row[QTY]}",
        )


def _enrol(seq: int, row: tuple[Any, ...], _rules: Rules | None) -> None:
    # A replacement card (`data.replaces`, central.kiosk_replacements) is a new passbook.
    if row[DATA].get("replaces") == row[PASSBOOK]:
        raise refuse(seq, f"an enrolment of {row[PASSBOOK]!r} cannot replace that passbook")


def _restock(seq: int, row: tuple[Any, ...], _rules: Rules | None) -> None:
    if row[QTY] <= 0:
        raise refuse(seq, f"a restock adds stock, got qty {row[QTY]}")


def _adjust_stock(seq: int, row: tuple[Any, ...], _rules: Rules | None) -> None:
    if row[QTY] == 0:
        raise refuse(seq, "a stock adjustment changes stock, got qty 0")


_BY_KIND = {
    Kind.ENROL.value: _enrol,
    Kind.DEPOSIT.value: _deposit,
    Kind.AWARD.value: _award,
    Kind.REDEEM.value: _redeem,
    Kind.RESTOCK.value: _restock,
    Kind.ADJUST_STOCK.value: _adjust_stock,
}
