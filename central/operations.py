"""The operator's operations on villages, rules and catalogues (issue 12), one per
function over a `CentralStore`: the CLI (`central.cli_operator`), the HTTP API
(`central.api_operator`) and the web console call these and nothing below them.

Each change is one write transaction holding the change, the village's `changed_ms`
(the central service pushes the village's state when it moves, which is how a change
reaches every kiosk) and its audit row (`central.audit`). `actor` says who: the CLI
passes `cli:<unix user>`, the API what its auth dependency resolved.

Passbook revocation and replacement are in `central.passbooks`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, delete, func, insert, select, update

from central import audit, db, rules_versions
from central.catalogue_file import MAX_PICTURES_BYTES, CatalogueItem
from central.store import CentralStore
from greenpass.errors import CentralError, ConfigError, ConflictError
from greenpass.record.ids import ID_RE
from greenpass.record.rules import parse_rules

MAX_NAME = 64
DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Village:
    village_id: str
    name_zh: str
    name_en: str
    timezone: str
    devices: int  # active kiosks
    rules_version: str | None  # None: no rules set at central (kiosks keep their own)
    catalogue_version: int  # 0: never set here


@dataclass(frozen=True)
class RulesInForce:
    village_id: str
    version: str | None
    text: str | None
    sha256: str | None
    versions: list[str] = field(default_factory=list)  # every version ever set, oldest first


@dataclass(frozen=True)
class Catalogue:
    village_id: str
    version: int  # give it back to `set_catalogue` to be told of another's change (409)
    items: list[CatalogueItem]


def _check_name(what: str, value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME or not value.isprintable():
        raise ConfigError(f"{what} must be 1 to {MAX_NAME} printable characters", key=what)
    return value


def _check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {tz!r}", key="timezone") from exc
    return tz


def _require_village(conn: Connection, village_id: str) -> None:
    v = db.villages
    if conn.scalar(select(v.c.village_id).where(v.c.village_id == village_id)) is None:
        raise CentralError(f"no village {village_id!r}: create it first")


def _touch(conn: Connection, village_id: str, now_ms: int) -> None:
    v = db.villages
    conn.execute(
        update(v).where(v.c.village_id == village_id).values(changed_ms=db.village_changed(now_ms))
    )


def _profile(conn: Connection, village_id: str) -> dict[str, Any] | None:
    p = db.village_profiles
    row = conn.execute(select(p).where(p.c.village_id == village_id)).first()
    return None if row is None else dict(row._mapping)


def _ensure_profile(conn: Connection, village_id: str) -> dict[str, Any]:
    """The village's profile row; a village made by `enrol-token` gets an empty one."""
    found = _profile(conn, village_id)
    if found is None:
        conn.execute(insert(db.village_profiles).values(village_id=village_id))
        found = _profile(conn, village_id)
        assert found is not None
    return found


# --- villages -----------------------------------------------------------------------------


def add_village(
    store: CentralStore,
    village_id: str,
    *,
    name_zh: str,
    name_en: str,
    timezone: str = DEFAULT_TIMEZONE,
    actor: str,
    now_ms: int,
) -> str:
    """Create a village, or set the names and time zone of one that exists (a village
    made by `enrol-token` has none). Returns "created", "updated" or "unchanged"."""
    if not isinstance(village_id, str) or not ID_RE.fullmatch(village_id):
        raise ConfigError(f"village id {village_id!r} is not a valid id", key="village_id")
    after = {
        "name_zh": _check_name("name_zh", name_zh),
        "name_en": _check_name("name_en", name_en),
        "timezone": _check_timezone(timezone),
    }
    v, p = db.villages, db.village_profiles
    with store.write("adding a village") as conn:
        exists = conn.scalar(select(v.c.village_id).where(v.c.village_id == village_id))
        if exists is None:
            conn.execute(insert(v).values(village_id=village_id, changed_ms=now_ms))
        before = _profile(conn, village_id)
        if before is None:
            conn.execute(insert(p).values(village_id=village_id, **after))
        else:
            old = {k: before[k] for k in after}
            if old == after:
                return "unchanged"
            conn.execute(update(p).where(p.c.village_id == village_id).values(**after))
        outcome = "created" if exists is None else "updated"
        audit.record(
            conn, actor=actor, action=f"village.{'add' if exists is None else 'update'}",
            target=village_id, village_id=village_id, now_ms=now_ms,
            before=None if before is None else {k: before[k] for k in after}, after=after,
        )  # fmt: skip
        return outcome


def villages(store: CentralStore) -> list[Village]:
    v, p, d, r = db.villages, db.village_profiles, db.devices, db.village_rules
    kiosks = (
        select(func.count())
        .where((d.c.village_id == v.c.village_id) & (d.c.status == "active"))
        .scalar_subquery()
    )
    q = (
        select(v.c.village_id, p.c.name_zh, p.c.name_en, p.c.timezone, p.c.catalogue_version,
               r.c.version, kiosks.label("kiosks"))
        .select_from(v.outerjoin(p, p.c.village_id == v.c.village_id)
                     .outerjoin(r, r.c.village_id == v.c.village_id))
        .order_by(v.c.village_id)
    )  # fmt: skip
    with store.read("listing villages") as conn:
        return [
            Village(
                village_id=row.village_id,
                name_zh=row.name_zh or "",
                name_en=row.name_en or "",
                timezone=row.timezone or DEFAULT_TIMEZONE,
                devices=int(row.kiosks or 0),
                rules_version=row.version,
                catalogue_version=int(row.catalogue_version or 0),
            )
            for row in conn.execute(q)
        ]


def village(store: CentralStore, village_id: str) -> Village:
    for found in villages(store):
        if found.village_id == village_id:
            return found
    raise CentralError(f"no village {village_id!r}")


# --- rules --------------------------------------------------------------------------------


def _rules_summary(version: str | None, text: str | None) -> dict[str, Any] | None:
    if version is None or text is None:
        return None
    return {"version": version, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def set_rules(
    store: CentralStore, village_id: str, text: str, *, path: str, actor: str, now_ms: int
) -> bool:
    """Put a rules file in force for the village (pushed to its kiosks); False if it is
    already. Parsed by the kiosk's own parser: an error names `path`, the key and the
    line. A version already used with other text is refused (entries name rules by
    version), as `CentralStore.set_rules` does."""
    rules = parse_rules(text, path)
    if rules.village not in ("*", village_id):
        raise ConfigError(
            f"the rules are for village {rules.village!r}, not {village_id!r}",
            path=path, key="village",
        )  # fmt: skip
    t = db.village_rules
    with store.write("saving village rules") as conn:
        _require_village(conn, village_id)
        row = conn.execute(
            select(t.c.version, t.c.text).where(t.c.village_id == village_id)
        ).first()
        if row is not None and row.version == rules.version:
            if row.text != text:
                raise CentralError(
                    f"rules version {rules.version!r} is already in force for {village_id!r} "
                    "with different text; give the new file a new version"
                )
            return False
        rules_versions.record(conn, village_id, rules, now_ms)  # refuses a reused version
        if row is None:
            conn.execute(insert(t).values(village_id=village_id, version=rules.version, text=text))
        else:
            conn.execute(
                update(t)
                .where(t.c.village_id == village_id)
                .values(version=rules.version, text=text)
            )
        _touch(conn, village_id, now_ms)
        audit.record(
            conn, actor=actor, action="rules.set", target=village_id, village_id=village_id,
            now_ms=now_ms, before=None if row is None else _rules_summary(row.version, row.text),
            after=_rules_summary(rules.version, text),
        )  # fmt: skip
        return True


def rules(store: CentralStore, village_id: str) -> RulesInForce:
    t, h = db.village_rules, db.rules_versions
    with store.read("reading village rules") as conn:
        _require_village(conn, village_id)
        row = conn.execute(
            select(t.c.version, t.c.text).where(t.c.village_id == village_id)
        ).first()
        history = list(
            conn.scalars(
                select(h.c.version)
                .where(h.c.village_id == village_id)
                .order_by(h.c.added_ms, h.c.version)
            )
        )
    if row is None:
        return RulesInForce(village_id, None, None, None, history)
    digest = hashlib.sha256(row.text.encode()).hexdigest()
    return RulesInForce(village_id, row.version, row.text, digest, history)


# --- catalogue ----------------------------------------------------------------------------


def _items(conn: Connection, village_id: str) -> list[CatalogueItem]:
    c, pic = db.catalogue, db.item_pictures
    pictures = {
        r.item_id: bytes(r.jpeg)
        for r in conn.execute(
            select(pic.c.item_id, pic.c.jpeg).where(pic.c.village_id == village_id)
        )
    }
    return [
        CatalogueItem(r.item_id, r.name_zh, r.name_en, int(r.points_price), bool(r.active),
                      pictures.get(r.item_id))
        for r in conn.execute(select(c).where(c.c.village_id == village_id).order_by(c.c.item_id))
    ]  # fmt: skip


def catalogue(store: CentralStore, village_id: str) -> Catalogue:
    with store.read("reading a catalogue") as conn:
        _require_village(conn, village_id)
        profile = _profile(conn, village_id)
        version = 0 if profile is None else int(profile["catalogue_version"])
        return Catalogue(village_id, version, _items(conn, village_id))


def _summary(items: list[CatalogueItem]) -> list[dict[str, Any]]:
    """An item list for the audit: the picture as a short hash, not its bytes."""
    return [
        {
            "id": i.item_id,
            "name_zh": i.name_zh,
            "name_en": i.name_en,
            "points": i.points,
            "active": i.active,
            "picture": None if i.picture is None else hashlib.sha256(i.picture).hexdigest()[:16],
        }
        for i in items
    ]


def set_catalogue(
    store: CentralStore,
    village_id: str,
    items: list[CatalogueItem],
    *,
    actor: str,
    now_ms: int,
    expected_version: int | None = None,
    keep_pictures: bool = False,
) -> Catalogue:
    """Make `items` the village's catalogue (pushed to its kiosks). An item it had that
    `items` does not list is made inactive, never deleted (entries name it).

    `expected_version`: the catalogue's version when the operator read it; if another
    change came in between, `ConflictError` (HTTP 409) and nothing is changed. None:
    the last writer wins (a script that owns the file). `keep_pictures`: an item's
    stored picture stays when it brings none (the API, whose bodies carry none)."""
    ids = [i.item_id for i in items]
    if len(set(ids)) != len(ids):
        raise ConfigError("an item is listed twice", key="items")
    c, pic, p = db.catalogue, db.item_pictures, db.village_profiles
    with store.write("saving a catalogue") as conn:
        _require_village(conn, village_id)
        version = int(_ensure_profile(conn, village_id)["catalogue_version"])
        if expected_version is not None and expected_version != version:
            raise ConflictError(
                f"the catalogue of {village_id!r} changed meanwhile (version {version}, "
                f"this change was made on version {expected_version}); reload it and "
                "make the change again"
            )
        before = _items(conn, village_id)
        old = {i.item_id: i for i in before}
        listed = set(ids)
        after = [
            CatalogueItem(i.item_id, i.name_zh, i.name_en, i.points, i.active,
                          old[i.item_id].picture if keep_pictures and i.picture is None
                          and i.item_id in old else i.picture)
            for i in items
        ]  # fmt: skip
        after += [
            CatalogueItem(o.item_id, o.name_zh, o.name_en, o.points, False, o.picture)
            for o in before
            if o.item_id not in listed
        ]
        after.sort(key=lambda i: i.item_id)
        total = sum(len(i.picture) for i in after if i.picture is not None)
        if total > MAX_PICTURES_BYTES:
            raise ConfigError(
                f"the pictures come to {total} bytes, over the {MAX_PICTURES_BYTES} a "
                "village's state can carry; leave some out",
                key="picture",
            )
        if after == before:
            return Catalogue(village_id, version, before)
        for i in after:
            values = {"name_zh": i.name_zh, "name_en": i.name_en, "points_price": i.points,
                      "active": i.active}  # fmt: skip
            where = (c.c.village_id == village_id) & (c.c.item_id == i.item_id)
            if i.item_id in old:
                conn.execute(update(c).where(where).values(**values))
            else:
                conn.execute(insert(c).values(village_id=village_id, item_id=i.item_id, **values))
        conn.execute(delete(pic).where(pic.c.village_id == village_id))
        pictures = [
            {"village_id": village_id, "item_id": i.item_id, "jpeg": i.picture}
            for i in after
            if i.picture is not None
        ]
        if pictures:
            conn.execute(insert(pic), pictures)
        conn.execute(
            update(p).where(p.c.village_id == village_id).values(catalogue_version=version + 1)
        )
        _touch(conn, village_id, now_ms)
        audit.record(
            conn, actor=actor, action="catalogue.set", target=village_id, village_id=village_id,
            now_ms=now_ms, before={"version": version, "items": _summary(before)},
            after={"version": version + 1, "items": _summary(after)},
        )  # fmt: skip
        return Catalogue(village_id, version + 1, after)
