"""The console's village pages in-process (TestClient): scoping, CSRF, the catalogue's
version check, rules refused by key and line with nothing changed, a preview before
a change, passbook revocation reaching the state, and names shown as text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from central import audit, operations, passbooks
from central.catalogue_file import CatalogueItem
from central.state import build_state
from greenpass.errors import Refused
from greenpass.record.rules import DEFAULT_RULES_PATH
from tests.central import test_auth
from tests.central.conftest import NOW, SQLITE_ONLY
from tests.central.test_auth import Site
from tests.central.test_evidence_other_reversal import reversed_at_both

# SQLite only: the village pages; tests/central/test_operations.py and test_reports.py
# run their queries on both.
pytestmark = SQLITE_ONLY

site = test_auth.site  # the fixture: a kiosk's day at V1, county, v1 and v2 accounts

XSS = "<script>alert(1)</script>"
PAGES = ["catalogue", "rules", "passbooks", "overdrafts", "audit"]


def _rice(points: int = 50, name_en: str = "Rice 1 kg") -> CatalogueItem:
    return CatalogueItem("rice", "大米", name_en, points)


def _item_form(site: Site, version: int, **fields: str) -> dict[str, str]:
    form = {"csrf": site.csrf("/villages/V1/catalogue"), "version": str(version)}
    form.update({"item_id": "rice", "name_zh": "大米", "name_en": "Rice 1 kg", "points": "50"})
    form.update({"active": "1", **fields})
    return form


def test_village_pages_are_scoped_to_the_account(site: Site) -> None:
    c = site.login("v2")
    for name in PAGES:
        r = c.get(f"/villages/V1/{name}")
        assert r.status_code == 403 and 'data-testid="forbidden"' in r.text, name
        assert c.get(f"/villages/V2/{name}").status_code == 200, name
    li = site.passbooks["li"]
    assert c.get(f"/villages/V1/passbooks/{li}").status_code == 403
    assert c.get(f"/villages/V2/passbooks/{li}").status_code == 404  # not V2's passbook
    csrf = site.csrf("/villages/V2/catalogue")
    r = c.post(f"/villages/V1/passbooks/{li}/revoke", data={"csrf": csrf, "reason": "x"})
    assert r.status_code == 403
    assert c.get("/dead-letters").status_code == 403  # county only, as in the API
    assert passbooks.status(site.store, li)["status"] == "active"
    c.cookies.clear()  # a new browser
    county = site.login("county")
    for name in PAGES:
        assert county.get(f"/villages/V1/{name}").status_code == 200, name
    assert county.get("/dead-letters").status_code == 200


def test_posts_without_the_csrf_token_are_refused(site: Site) -> None:
    c = site.login("county")
    li = site.passbooks["li"]
    for path, data in [
        ("/villages/V1/catalogue", _item_form(site, 0)),
        ("/villages/V1/rules/preview", {"text": "x"}),
        ("/villages/V1/rules/apply", {"text": "x"}),
        (f"/villages/V1/passbooks/{li}/revoke", {"reason": "lost"}),
        (f"/villages/V1/passbooks/{li}/replace", {}),
    ]:
        for token in ("", "x" * 32):
            r = c.post(path, data={**data, "csrf": token}, follow_redirects=False)
            assert r.status_code == 403, path
    assert operations.catalogue(site.store, "V1").version == 0
    assert passbooks.status(site.store, li)["status"] == "active"


def test_a_catalogue_item_is_edited_added_and_audited(site: Site) -> None:
    c = site.login("county")
    r = c.post("/villages/V1/catalogue", data=_item_form(site, 0, new="1"))
    assert r.status_code == 200 and "rice" in r.text
    r = c.post("/villages/V1/catalogue", data=_item_form(site, 1, points="60", active=""))
    assert r.status_code == 200
    (item,) = operations.catalogue(site.store, "V1").items
    assert (item.points, item.active) == (60, False)
    rows = audit.rows(site.store, village_id="V1")
    assert rows[0].actor == "county" and rows[0].action == "catalogue.set"
    assert "catalogue.set" in c.get("/villages/V1/audit").text
    r = c.post("/villages/V1/catalogue", data=_item_form(site, 2, points="many"))
    assert r.status_code == 422 and "item.points" in r.text
    r = c.post("/villages/V1/catalogue", data=_item_form(site, 2, new="1"))
    assert r.status_code == 422 and "already exists" in r.text


def test_a_stale_catalogue_version_is_a_409_and_nothing_is_lost(site: Site) -> None:
    c = site.login("county")
    operations.set_catalogue(site.store, "V1", [_rice()], actor="other", now_ms=NOW)
    page = c.get("/villages/V1/catalogue").text
    version = int(re.findall(r'name="version" value="(\d+)"', page)[0])
    # Another operator saves meanwhile.
    operations.set_catalogue(
        site.store, "V1", [_rice(70, "Rice (theirs)")], actor="other", now_ms=NOW,
        expected_version=version,
    )  # fmt: skip
    r = c.post("/villages/V1/catalogue", data=_item_form(site, version, name_en="Rice (mine)"))
    assert r.status_code == 409 and 'data-testid="stale"' in r.text
    assert "Rice (mine)" in r.text and "Rice (theirs)" in r.text  # both shown
    (item,) = operations.catalogue(site.store, "V1").items
    assert item.name_en == "Rice (theirs)"  # theirs kept


def test_malformed_rules_name_key_and_line_and_change_nothing(site: Site) -> None:
    c = site.login("county")
    good = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    bad = good.replace("cooldown_seconds = 20", 'cooldown_seconds = "twenty"')
    line = bad.splitlines().index(next(x for x in bad.splitlines() if "twenty" in x)) + 1
    csrf = site.csrf("/villages/V1/rules")
    r = c.post("/villages/V1/rules/preview", data={"csrf": csrf, "text": bad})
    assert r.status_code == 422
    assert f"rules.toml:{line}" in r.text and "cooldown_seconds" in r.text
    r = c.post("/villages/V1/rules/apply", data={"csrf": csrf, "text": bad, "base": ""})
    assert r.status_code in (409, 422)
    assert operations.rules(site.store, "V1").version is None
    r = c.post("/villages/V1/rules/preview", data={"csrf": csrf, "text": "a = [\n"})
    assert r.status_code == 422 and "rules.toml:" in r.text
    assert operations.rules(site.store, "V1").version is None


def test_rules_show_a_diff_and_apply_only_on_confirm(site: Site) -> None:
    c = site.login("county")
    good = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    csrf = site.csrf("/villages/V1/rules")
    r = c.post("/villages/V1/rules/preview", data={"csrf": csrf, "text": good})
    assert r.status_code == 200 and 'data-testid="confirm"' in r.text
    assert operations.rules(site.store, "V1").version is None  # a preview changes nothing
    base = re.findall(r'name="base" value="([0-9a-f]+)"', r.text)[0]
    r = c.post("/villages/V1/rules/apply", data={"csrf": csrf, "text": good, "base": base})
    assert r.status_code == 200 and 'data-testid="applied"' in r.text
    assert operations.rules(site.store, "V1").text == good
    assert audit.rows(site.store, village_id="V1")[0].actor == "county"
    newer = good.replace("cooldown_seconds = 20", "cooldown_seconds = 30").replace(
        'version = "cn-default-2026.11"', 'version = "cn-default-2026.12"'
    )
    r = c.post("/villages/V1/rules/preview", data={"csrf": csrf, "text": newer})
    diff = r.text.split('data-testid="diff"')[1].split("</pre>")[0]
    assert '<span class="del">-cooldown_seconds = 20' in diff
    assert '<span class="add">+cooldown_seconds = 30' in diff
    # A stale preview (made against other rules) is not applied.
    r = c.post("/villages/V1/rules/apply", data={"csrf": csrf, "text": newer, "base": base})
    assert r.status_code == 409 and operations.rules(site.store, "V1").text == good


def test_a_revocation_in_the_console_reaches_the_state(site: Site) -> None:
    c = site.login("v1")
    li = site.passbooks["li"]
    r = c.get("/villages/V1/passbooks", params={"q": "Li house"})
    assert li in r.text
    assert c.get("/villages/V1/passbooks", params={"q": li}).text.count(li) >= 1
    page = c.get(f"/villages/V1/passbooks/{li}")
    assert page.status_code == 200 and 'data-testid="statement"' in page.text
    csrf = site.csrf(f"/villages/V1/passbooks/{li}")
    r = c.post(f"/villages/V1/passbooks/{li}/revoke", data={"csrf": csrf, "reason": ""})
    assert r.status_code == 422
    r = c.post(f"/villages/V1/passbooks/{li}/revoke", data={"csrf": csrf, "reason": "lost"})
    assert r.status_code == 200 and 'data-testid="done"' in r.text
    state = build_state(site.store, "K1", NOW)
    assert li in state.revoked
    assert site.kiosk.apply(state)  # what the kiosk's downlink does with the push
    with pytest.raises(Refused) as refused:
        site.kiosk.ledger.deposit(li, "paper", 1000)
    assert refused.value.code == "revoked_passbook"
    assert audit.rows(site.store, village_id="V1")[0].actor == "v1"
    r = c.post(f"/villages/V1/passbooks/{li}/reinstate", data={"csrf": csrf})
    assert r.status_code == 200 and li not in build_state(site.store, "K1", NOW).revoked
    r = c.post(f"/villages/V1/passbooks/{li}/replace", data={"csrf": csrf})
    assert r.status_code == 200 and ".R" in str(r.url)


def test_no_page_shows_none_null_or_an_empty_cell(site: Site) -> None:
    operations.set_catalogue(site.store, "V1", [_rice()], actor="t", now_ms=NOW)
    li = site.passbooks["li"]
    passbooks.revoke(site.store, li, reason="lost", actor="t", now_ms=NOW)
    c = site.login("county")
    for lang in ("zh-CN", "en"):
        c.post("/lang", data={"csrf": site.csrf(), "lang": lang, "next": "/"})
        for path in [
            *(f"/villages/V1/{name}" for name in PAGES),
            "/villages/V1/passbooks?q=household",
            f"/villages/V1/passbooks/{li}",
            "/dead-letters",
        ]:
            r = c.get(path)
            assert r.status_code == 200 and f'<html lang="{lang}">' in r.text, path
            main = r.text.split("<main>")[1]
            for bad in (">None<", "None ", "null", "undefined", "NaN"):
                assert bad not in main, (path, bad)
            assert not re.search(r"<t[dh][^>]*>\s*</t[dh]>", main), path


def test_item_and_household_names_are_shown_as_text(site: Site) -> None:
    operations.set_catalogue(
        site.store, "V1", [CatalogueItem("x", XSS, XSS, 5)], actor="t", now_ms=NOW
    )
    c = site.login("county")
    for path in ["/villages/V1/catalogue", "/villages/V1/audit"]:
        text = c.get(path).text
        assert XSS not in text and "&lt;script&gt;" in text, path


def test_an_entry_reversed_at_two_kiosks_is_listed_for_the_village_office(
    site: Site, tmp_path: Path
) -> None:
    c = site.login("v1")
    r = c.get("/villages/V1/overdrafts")
    assert r.status_code == 200 and 'data-testid="double-reversals"' not in r.text
    race = reversed_at_both(site.store, site.kiosk, site.passbooks["li"], tmp_path)
    r = c.get("/villages/V1/overdrafts")
    table = r.text.split('data-testid="double-reversals"', 1)[1].split("</table>", 1)[0]
    assert f"K1 #{race.wrong.seq}" in table and f"K2 #{race.theirs.seq}" in table
    assert f"K1 #{race.mine.seq}" in table and f">{race.wrong.points}<" in table
    assert "撤销了两次的记录" in r.text
    api = c.get("/api/v1/villages/V1/double-reversals", headers=site.bearer("v1"))
    assert api.status_code == 200, api.text
    (row,) = api.json()
    assert row["reversals"] == [f"K1#{race.mine.seq}", f"K2#{race.theirs.seq}"]
    assert (row["device_id"], row["seq"]) == ("K1", race.wrong.seq)
    assert row["points"] == race.wrong.points
    theirs = c.get("/api/v1/villages/V1/double-reversals", headers=site.bearer("v2"))
    assert theirs.status_code == 403
