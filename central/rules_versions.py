"""The rules versions central knows, so it can re-price the entries that name them.

A kiosk records on each priced entry the rules version it used (docs/rules.md), and
central re-checks the entry against that version (`central.recheck`). Central knows:

- **the shipped default** (`greenpass/record/data/default-rules.toml`), for every village. Every
  kiosk is created with it (`greenpass provision`, `Ledger.create`) and prices with it
  until central pushes its village's rules, so its entries must sync whether or not
  an operator ever set rules. Its text ships inside this software, identical at both
  ends: a kiosk cannot choose its numbers. A release that changes the default keeps
  the old file beside it (`greenpass/record/data/default-rules-<old version>.toml`): kiosks not
  yet upgraded still price with it, and central must still know it.
- **every version ever set for the village** (`CentralStore.set_rules`), kept in
  `rules_versions` after newer rules replace it: a kiosk offline across the change
  still sends entries priced with the old version.

Any other version is unknown and entries naming it are refused, since central cannot
tell whether their points are right. When a technician installed a file by hand on a
kiosk, the operator can add it with `remember_rules` (it is not pushed to kiosks) and
the kiosk's next resend is accepted.

A version's text never changes once known (a reused version with other text is
refused), so parsed rules are cached per engine for good; an unknown version is
looked up again each time, so it is known as soon as an operator adds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, insert, select

from central import db
from greenpass.errors import CentralError, ConfigError, ProtocolError, RulesError
from greenpass.record.rules import DEFAULT_RULES_PATH, Rules, load_rules, parse_rules

if TYPE_CHECKING:
    from central.store import CentralStore


@lru_cache(maxsize=1)
def shipped() -> dict[str, Rules]:
    """The default rules this software ships and has shipped, by version (known for
    every village)."""
    files = sorted(DEFAULT_RULES_PATH.parent.glob("default-rules*.toml"))
    return {r.version: r for r in map(load_rules, files)}


@lru_cache(maxsize=64)
def _parsed(text: str) -> Rules:
    return parse_rules(text, "<rules at central>")


def record(conn: Connection, village_id: str, rules: Rules, now_ms: int) -> bool:
    """Keep `rules` as a version of the village's, in the caller's write transaction;
    False if already kept. A version's text must never change: entries name their
    rules by version, so one name for two texts would make their points ambiguous."""
    default = shipped().get(rules.version)
    if default is not None and default.text != rules.text:
        raise CentralError(
            f"rules version {rules.version!r} is the shipped default's, with other text; "
            "give the file a new version"
        )
    t = db.rules_versions
    text = conn.scalar(
        select(t.c.text).where((t.c.village_id == village_id) & (t.c.version == rules.version))
    )
    if text is not None:
        if text != rules.text:
            raise CentralError(
                f"rules version {rules.version!r} was already used for {village_id!r} with "
                "different text; give the new file a new version"
            )
        return False
    conn.execute(
        insert(t).values(
            village_id=village_id, version=rules.version, text=rules.text, added_ms=now_ms
        )
    )
    return True


def remember_rules(store: CentralStore, village_id: str, text: str, *, now_ms: int = 0) -> bool:
    """Know a village's rules version without putting it in force (kiosks are not sent
    it): for entries a kiosk priced with a file installed there by hand. False if known."""
    rules = parse_rules(text, f"<rules for {village_id}>")
    if rules.village not in ("*", village_id):
        raise ConfigError(
            f"rules {rules.version!r} are for village {rules.village!r}, not {village_id!r}"
        )
    with store.write("remembering village rules") as conn:
        v = db.villages
        if conn.scalar(select(v.c.village_id).where(v.c.village_id == village_id)) is None:
            raise CentralError(f"no village {village_id!r}: create it first")
        return record(conn, village_id, rules, now_ms)


_cache: WeakKeyDictionary[Engine, dict[tuple[str, str], Rules]] = WeakKeyDictionary()


def known_rules(store: CentralStore, village_id: str, versions: Iterable[str]) -> dict[str, Rules]:
    """The rules of each of `versions` that central knows for the village (the unknown
    ones are left out). Reads the database only for versions not seen before."""
    cache = _cache.setdefault(store.engine, {})
    found: dict[str, Rules] = {}
    missing: list[str] = []
    for version in set(versions):
        rules = shipped().get(version) or cache.get((village_id, version))
        if rules is None:
            missing.append(version)
        else:
            found[version] = rules
    if missing:
        t = db.rules_versions
        with store.read("reading rules versions") as conn:
            rows = conn.execute(
                select(t.c.version, t.c.text).where(
                    (t.c.village_id == village_id) & t.c.version.in_(missing)
                )
            ).all()
        for version, text in rows:
            try:
                rules = _parsed(text)
            except RulesError as exc:  # checked when stored: the database was changed
                raise ProtocolError(
                    "rejected", f"rules {version!r} stored at central do not parse: {exc}"
                ) from exc
            found[version] = cache[(village_id, version)] = rules
    return found
