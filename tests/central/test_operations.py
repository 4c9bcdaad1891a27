"""The operator's operations at store level (central.operations, central.passbooks):
villages, rules, catalogues, revocation and replacement, each audited, each reaching a
kiosk's ledger through the state it is pushed. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pytest
from PIL import Image

from central import audit, operations, passbooks, reports
from central.catalogue_file import (
    MAX_PICTURES_BYTES,
    THUMB_PX,
    CatalogueItem,
    parse_catalogue,
    thumbnail,
)
from central.ingest import ingest
from central.state import build_state
from central.store import CentralStore
from greenpass.errors import CentralError, ConfigError, ConflictError, Refused
from greenpass.record.rules import DEFAULT_RULES_PATH
from sync import protocol
from sync.keys import generate_key
from tests.central.conftest import NOW, Kiosk, enrol, new_kiosk

ME = "cli:tester"


def sync(store: CentralStore, k: Kiosk) -> None:
    result = ingest(store, k.topic, k.batch(k.ledger.outbox.acked_seq() + 1), NOW)
    assert result.ack is not None and result.ack.status == "ok", result.ack
    k.ledger.outbox.mark_acked(result.ack.acked_seq, NOW)


def push(store: CentralStore, k: Kiosk) -> None:
    assert k.apply(build_state(store, k.device_id, NOW))


def actions(store: CentralStore) -> list[str]:
    """The operators' actions, oldest first; the kiosk fixtures' own enrolment rows
    (device.*) are not what these tests are about."""
    return [r.action for r in reversed(audit.rows(store)) if not r.action.startswith("device.")]


def rules_text(version: str) -> str:
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    return text.replace('version = "cn-default-2026.11"', f'version = "{version}"', 1)


def test_village_add_update_list_and_audit(store: CentralStore) -> None:
    add = operations.add_village
    assert add(store, "dongcun", name_zh="东村", name_en="East", actor=ME, now_ms=NOW) == "created"
    assert add(store, "dongcun", name_zh="东村", name_en="East", actor=ME, now_ms=NOW) == (
        "unchanged"
    )
    assert add(store, "V1", name_zh="一村", name_en="One", actor=ME, now_ms=NOW) == "updated"
    with pytest.raises(ConfigError, match="unknown time zone"):
        add(store, "x1", name_zh="x", name_en="x", timezone="Mars/Olympus", actor=ME, now_ms=NOW)
    with pytest.raises(ConfigError, match="name_en"):
        add(store, "x1", name_zh="x", name_en=" ", actor=ME, now_ms=NOW)
    found = {v.village_id: v for v in operations.villages(store)}
    assert set(found) == {"V1", "dongcun"}  # nothing of the refused ones
    assert (found["dongcun"].name_zh, found["dongcun"].timezone) == ("东村", "Asia/Shanghai")
    rows = audit.rows(store)
    assert [r.action for r in rows] == ["village.update", "village.add"]
    assert rows[0].before is None  # V1 was made by the fixture, with no names
    assert rows[0].after["name_en"] == "One" and rows[0].actor == ME


def test_rules_set_show_refusals_and_the_kiosk_gets_them(store: CentralStore, k1: Kiosk) -> None:
    assert operations.rules(store, "V1").version is None
    assert operations.set_rules(
        store, "V1", rules_text("v1-a"), path="a.toml", actor=ME, now_ms=NOW
    )
    assert not operations.set_rules(
        store, "V1", rules_text("v1-a"), path="a.toml", actor=ME, now_ms=NOW
    )
    bad = rules_text("v1-b").replace("min_grams = 200", 'min_grams = "x"', 1)
    with pytest.raises(ConfigError) as exc:
        operations.set_rules(store, "V1", bad, path="b.toml", actor=ME, now_ms=NOW)
    assert "b.toml:" in str(exc.value) and ".min_grams" in str(exc.value)
    reused = rules_text("v1-a").replace("cooldown_seconds = 20", "cooldown_seconds = 21")
    assert reused != rules_text("v1-a")
    with pytest.raises(CentralError, match="different text"):
        operations.set_rules(store, "V1", reused, path="c.toml", actor=ME, now_ms=NOW)
    shown = operations.rules(store, "V1")
    assert shown.version == "v1-a" and shown.text == rules_text("v1-a")
    assert shown.versions == ["v1-a"]
    assert actions(store) == ["rules.set"]  # the refused ones changed nothing
    push(store, k1)
    assert k1.ledger.rules.version == "v1-a"


def test_catalogue_set_version_check_script_text_and_kiosk(store: CentralStore, k1: Kiosk) -> None:
    rice = CatalogueItem("rice", "大米", "Rice 1 kg", 50)
    script = CatalogueItem("soap", "肥皂", "<script>alert(1)</script>", 20)
    first = operations.set_catalogue(store, "V1", [rice, script], actor=ME, now_ms=NOW)
    assert first.version == 1
    # Another operator read version 1 too; the first one saves first.
    operations.set_catalogue(
        store, "V1", [CatalogueItem("rice", "大米", "Rice", 60)], actor="alice", now_ms=NOW,
        expected_version=1,
    )  # fmt: skip
    with pytest.raises(ConflictError, match="changed meanwhile"):
        operations.set_catalogue(store, "V1", [rice], actor="bob", now_ms=NOW, expected_version=1)
    now = operations.catalogue(store, "V1")
    assert now.version == 2
    assert {i.item_id: (i.points, i.active) for i in now.items} == {
        "rice": (60, True),
        "soap": (20, False),  # not listed: inactive, never deleted
    }
    assert now.items[1].name_en == "<script>alert(1)</script>"
    assert actions(store) == ["catalogue.set", "catalogue.set"]
    assert audit.rows(store)[0].actor == "alice"

    push(store, k1)
    item = k1.ledger.item("rice")
    assert item is not None and item.points_price == 60
    soap = k1.ledger.item("soap")
    assert soap is not None and soap.name_en == "<script>alert(1)</script>" and not soap.active


def _png(path: Path, size: tuple[int, int]) -> None:
    Image.new("RGB", size, (30, 160, 60)).save(path)


def test_catalogue_file_errors_name_key_and_line_and_pictures_shrink(
    store: CentralStore, tmp_path: Path
) -> None:
    _png(tmp_path / "rice.png", (1200, 800))
    text = (
        '[[item]]\nid = "rice"\nname_zh = "大米"\nname_en = "Rice"\npoints = 50\n'
        'picture = "rice.png"\n\n[[item]]\nid = "oil"\nname_zh = "油"\nname_en = "Oil"\n'
        "points = 70\nactive = false\n"
    )
    items = parse_catalogue(text, "cat.toml", tmp_path)
    assert [i.item_id for i in items] == ["rice", "oil"] and not items[1].active
    assert items[0].picture is not None and len(items[0].picture) < 8192
    with Image.open(io.BytesIO(items[0].picture)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == THUMB_PX
    operations.set_catalogue(store, "V1", items, actor=ME, now_ms=NOW)

    for bad, where in [
        (text.replace("points = 70", 'points = "70"'), "cat.toml:12, key 'item[2].points'"),
        (text.replace("points = 70", "points = 0"), "cat.toml:12, key 'item[2].points'"),
        (text.replace('id = "oil"', 'id = "rice"'), "cat.toml:9, key 'item[2].id'"),
        (text.replace("active = false", "stock = 5"), "cat.toml:13, key 'item[2].stock'"),
        (text.replace('name_en = "Oil"\n', ""), "cat.toml:8, key 'item[2].name_en'"),
        (text.replace("rice.png", "nope.png"), "cat.toml:6, key 'item[1].picture'"),
        (text + "[[item]\n", "cat.toml:14: not valid TOML"),
    ]:
        with pytest.raises(ConfigError) as exc:
            parse_catalogue(bad, "cat.toml", tmp_path)
        assert str(exc.value).startswith(where), str(exc.value)
    (tmp_path / "fake.png").write_bytes(b"not a picture")
    with pytest.raises(ConfigError, match="not a PNG or JPEG"):
        parse_catalogue(text.replace("rice.png", "fake.png"), "cat.toml", tmp_path)
    assert operations.catalogue(store, "V1").version == 1  # nothing changed by any


class ItemBeforePictures(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """WireItem as kiosks decoded it before item pictures."""

    item_id: str
    name_zh: str
    name_en: str
    points_price: int
    active: bool


def wire_catalogue(state: protocol.StateBody) -> bytes:
    """The catalogue as it goes over the wire, re-encoded alone."""
    payload = protocol.encode_state(state, generate_key())
    env = protocol.open_envelope(payload, "state", max_payload=protocol.MAX_STATE_PAYLOAD)
    raw = protocol.inflate(env, protocol.MAX_STATE_BODY, "state")
    return msgspec.msgpack.encode(msgspec.msgpack.decode(raw)["catalogue"])


def status_of(store: CentralStore, k: Kiosk, features: list[str]) -> None:
    status = protocol.Status(device_id=k.device_id, online=True, features=features)
    topic = protocol.topic(k.device_id, protocol.STATUS)
    assert store.record_status(topic, protocol.encode_status(status), NOW)


def test_pictures_are_capped_and_pushed_only_to_kiosks_that_take_them(
    store: CentralStore, k1: Kiosk
) -> None:
    noise = Image.effect_noise((96, 96), 100).convert("RGB")
    raw = io.BytesIO()
    noise.save(raw, "PNG")
    pic = thumbnail(raw.getvalue())
    item = CatalogueItem("rice", "大米", "Rice", 50, True, pic)
    operations.set_catalogue(store, "V1", [item], actor=ME, now_ms=NOW)
    assert operations.catalogue(store, "V1").items[0].picture == pic
    # A kiosk that has not said it takes pictures (no status yet, or older software)
    # gets each item as the five-element array its decoder insists on.
    for features in (None, []):
        if features is not None:
            status_of(store, k1, features)
        state = build_state(store, "K1", NOW)
        assert state.catalogue is not None and state.catalogue[0].picture is None
        old = msgspec.msgpack.decode(wire_catalogue(state), type=list[ItemBeforePictures])
        assert old == [ItemBeforePictures("rice", "大米", "Rice", 50, True)]
    # One that names the feature gets the picture, and shows it from its own ledger.
    status_of(store, k1, [protocol.FEATURE_ITEM_PICTURES])
    state = build_state(store, "K1", NOW)
    assert state.catalogue is not None and state.catalogue[0].picture == pic
    with pytest.raises(msgspec.ValidationError):  # what an old kiosk would say to it
        msgspec.msgpack.decode(wire_catalogue(state), type=list[ItemBeforePictures])
    assert k1.apply(state)
    assert k1.ledger.item_picture("rice") == pic
    shown = k1.ledger.item("rice")
    assert shown is not None and shown.picture_tag is not None
    # A picture dropped at central is dropped at the kiosk at the next push.
    operations.set_catalogue(
        store, "V1", [CatalogueItem("rice", "大米", "Rice", 50)], actor=ME, now_ms=NOW
    )
    assert k1.apply(build_state(store, "K1", NOW))
    assert k1.ledger.item_picture("rice") is None
    operations.set_catalogue(store, "V1", [item], actor=ME, now_ms=NOW)
    many = [CatalogueItem(f"i{n}", "x", "x", 1, True, pic) for n in range(400)]
    assert len(pic) * 400 > MAX_PICTURES_BYTES
    with pytest.raises(ConfigError, match="pictures come to"):
        operations.set_catalogue(store, "V1", many, actor=ME, now_ms=NOW)
    # Kept when a change brings none (the API), dropped when a file lists none.
    operations.set_catalogue(
        store, "V1", [CatalogueItem("rice", "大米", "Rice", 55)], actor=ME, now_ms=NOW,
        keep_pictures=True,
    )  # fmt: skip
    assert operations.catalogue(store, "V1").items[0].picture == pic
    operations.set_catalogue(
        store, "V1", [CatalogueItem("rice", "大米", "Rice", 55)], actor=ME, now_ms=NOW
    )
    assert operations.catalogue(store, "V1").items[0].picture is None


def _enrolled(k: Kiosk, household: str) -> str:
    pid = k.ledger.enrol(household, staff_id="S1").passbook_id
    assert pid is not None
    return pid


def test_revoke_reaches_the_kiosk_and_holds_until_reinstated(
    store: CentralStore, k1: Kiosk
) -> None:
    li = _enrolled(k1, "Li household")
    with pytest.raises(CentralError, match="no passbook"):
        passbooks.revoke(store, li, reason="lost", actor=ME, now_ms=NOW)  # not synced yet
    sync(store, k1)
    assert passbooks.revoke(store, li, reason="reported stolen", actor=ME, now_ms=NOW)
    assert not passbooks.revoke(store, li, reason="again", actor=ME, now_ms=NOW)
    state = build_state(store, "K1", NOW)
    assert li in state.revoked
    assert k1.apply(state)
    with pytest.raises(Refused) as refused:
        k1.ledger.deposit(li, "paper", 1000)
    assert refused.value.code == "revoked_passbook"
    # Staff at the kiosk make it active again: central's decision still holds.
    k1.ledger.set_villager_status(li, "active", staff_id="S1", reason="found it")
    sync(store, k1)
    assert li in build_state(store, "K1", NOW).revoked

    assert passbooks.reinstate(store, li, actor="alice", now_ms=NOW + 1)
    assert not passbooks.reinstate(store, li, actor="alice", now_ms=NOW + 1)
    push(store, k1)
    k1.ledger.deposit(li, "paper", 1000)
    assert actions(store) == ["passbook.revoke", "passbook.reinstate"]
    assert audit.rows(store)[1].after == {"status": "revoked", "reason": "reported stolen"}


def test_reinstate_a_card_a_kiosk_revoked(store: CentralStore, k1: Kiosk) -> None:
    li = _enrolled(k1, "Li household")
    k1.ledger.set_villager_status(li, "revoked", staff_id="S1", reason="lost")
    sync(store, k1)
    assert li in build_state(store, "K1", NOW).revoked
    assert passbooks.reinstate(store, li, actor=ME, now_ms=NOW + 10**9)
    push(store, k1)
    villager = k1.ledger.villager(li)
    assert villager is not None and villager.status == "active"


def test_replace_carries_the_balance_and_links_the_history(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    li = _enrolled(k1, "Li household")
    k1.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=10, staff_id="S1")
    k1.ledger.restock("rice", 10, staff_id="S1")
    k1.ledger.award(li, 60, staff_id="S1", reason="clean-up")
    earned = k1.ledger.balance(li)
    assert earned == 60
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    push(store, k2)

    new = passbooks.replace(store, li, actor=ME, now_ms=NOW)
    assert new.startswith("V1.R") and "." not in "K1-00001"
    with pytest.raises(CentralError, match="already replaced"):
        passbooks.replace(store, li, actor=ME, now_ms=NOW)
    with pytest.raises(CentralError, match="replaced by"):
        passbooks.reinstate(store, li, actor=ME, now_ms=NOW)

    # K2 is offline and has not heard: it lets the old card spend (as today) ...
    k2.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=10, staff_id="S1")
    k2.ledger.restock("rice", 10, staff_id="S1")
    k2.ledger.redeem(li, [("rice", 2)], staff_id="S1")
    # ... while K1 has the new state: old card refused, new one holds the balance.
    state = build_state(store, "K1", NOW)
    assert state.balances[new] == earned and li not in state.balances
    assert li in state.revoked
    push(store, k1)
    with pytest.raises(Refused):
        k1.ledger.deposit(li, "paper", 1000)
    assert k1.ledger.balance(new) == earned
    k1.ledger.redeem(new, [("rice", 3)], staff_id="S1")  # spends the carried points
    sync(store, k1)  # central's re-check counts the household's account: accepted
    sync(store, k2)
    assert reports.overdrafts(store, "V1") == []  # 20 + 30 of the household's 60

    lines = reports.statement(store, new)
    assert {x.entry.passbook_id for x in lines} == {li, new}  # the history, linked
    assert lines[-1].balance == earned - 50
    assert actions(store) == ["passbook.replace"]
    assert audit.rows(store)[0].after["passbook_id"] == new
    k2.ledger.close()


def test_an_old_card_spent_twice_offline_shows_as_an_overdraft(
    store: CentralStore, k1: Kiosk, tmp_path: Path
) -> None:
    li = _enrolled(k1, "Li household")
    for k in (k1,):
        k.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=10, staff_id="S1")
        k.ledger.restock("rice", 10, staff_id="S1")
    k1.ledger.award(li, 30, staff_id="S1", reason="clean-up")
    sync(store, k1)
    k2 = new_kiosk(tmp_path, "K2")
    enrol(store, k2)
    push(store, k2)  # K2 knows Li has 30
    k2.ledger.put_item("rice", name_zh="大米", name_en="Rice", points_price=10, staff_id="S1")
    k2.ledger.restock("rice", 10, staff_id="S1")
    new = passbooks.replace(store, li, actor=ME, now_ms=NOW)
    push(store, k1)
    k1.ledger.redeem(new, [("rice", 3)], staff_id="S1")  # the household spends 30 ...
    k2.clock.advance(60_000)
    k2.ledger.redeem(li, [("rice", 3)], staff_id="S1")  # ... and the old card, offline
    sync(store, k1)
    sync(store, k2)
    (over,) = reports.overdrafts(store, "V1")
    assert over.passbook_id == new and over.lowest == -30
    k2.ledger.close()
