"""A household's export and erasure through the console, the API and the CLI (issue 21),
on SQLite and PostgreSQL: scoped to the village, CSRF-checked, confirmed by typing the
passbook id, audited, and the name gone everywhere afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from central import audit, passbooks
from tests.central import test_auth
from tests.central.conftest import SQLITE_ONLY
from tests.central.test_auth import Site
from tests.central.test_personal import every_text

# SQLite only: the console's and CLI's personal-data pages;
# tests/central/test_personal.py runs their queries on both.
pytestmark = SQLITE_ONLY

site = test_auth.site  # the fixture: a kiosk's day at V1, county, v1 and v2 accounts
ROOT = Path(__file__).resolve().parents[2]
LI = "Li household"


def test_the_console_exports_and_erases_a_household(site: Site) -> None:
    li = site.passbooks["li"]
    page = f"/villages/V1/passbooks/{li}"
    c = site.login("v1")
    r = c.get(page)
    assert r.status_code == 200 and LI in r.text and 'data-testid="erase"' in r.text
    got = c.get(f"{page}/personal-data.json")
    assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
    held = got.json()
    assert held["passbooks"][0]["household_name"] == LI
    assert any(e["kind"] == "deposit" for e in held["entries"])

    csrf = site.csrf(page)
    r = c.post(f"{page}/correct", data={"csrf": csrf, "household": "Lee household"})
    assert r.status_code == 200 and "Lee household" in r.text, r.text
    assert passbooks.household(site.store, li) == "Lee household"
    assert (
        site.client.post(
            f"{page}/correct", data={"csrf": csrf, "household": " "}, follow_redirects=False
        ).status_code
        == 422
    )
    personal_correct = audit.rows(site.store, village_id="V1")[0]
    assert personal_correct.action == "passbook.correct"
    LI_NOW = "Lee household"
    for form, status in [
        ({"csrf": csrf, "confirm": "not-it"}, 422),  # the id typed wrong
        ({"csrf": "", "confirm": li}, 403),  # no CSRF token
    ]:
        r = c.post(f"{page}/erase", data=form, follow_redirects=False)
        assert r.status_code == status, r.text
    assert passbooks.household(site.store, li) == LI_NOW  # nothing erased by either
    r = c.post(f"{page}/erase", data={"csrf": csrf, "confirm": li}, follow_redirects=False)
    assert r.status_code == 303
    r = c.get(r.headers["location"])
    assert 'data-testid="done"' in r.text and LI_NOW not in r.text
    assert 'data-testid="erase"' not in r.text  # done once
    assert LI not in every_text(site.store) and LI_NOW not in every_text(site.store)
    row = audit.rows(site.store, village_id="V1")[0]
    assert (row.action, row.actor, row.target) == ("passbook.erase", "v1", li)


def test_another_villages_account_can_do_neither(site: Site) -> None:
    li = site.passbooks["li"]
    c = site.login("v2")
    assert c.get(f"/villages/V1/passbooks/{li}/personal-data.json").status_code == 403
    csrf = site.csrf("/villages/V2/passbooks")
    r = c.post(f"/villages/V1/passbooks/{li}/erase", data={"csrf": csrf, "confirm": li})
    assert r.status_code == 403
    v2 = site.bearer("v2")
    assert site.client.get(f"/api/v1/passbooks/{li}/personal-data", headers=v2).status_code == 403
    assert site.client.post(f"/api/v1/passbooks/{li}/erase", headers=v2).status_code == 403
    assert passbooks.household(site.store, li) == LI


def test_the_api_exports_and_erases(site: Site) -> None:
    wang = site.passbooks["wang"]
    county = site.bearer("county")
    r = site.client.get(f"/api/v1/passbooks/{wang}/personal-data", headers=county)
    assert r.status_code == 200 and r.json()["passbooks"][0]["household_name"] == "Wang household"
    assert (
        site.client.get("/api/v1/passbooks/NOPE-1/personal-data", headers=county).status_code == 404
    )
    r = site.client.post(
        f"/api/v1/passbooks/{wang}/correct", headers=county, json={"household_name": "Wong"}
    )
    assert r.status_code == 200 and r.json()["corrected"] == [wang], r.text
    bad = site.client.post(f"/api/v1/passbooks/{wang}/correct", headers=county, json={})
    assert bad.status_code == 422
    r = site.client.post(f"/api/v1/passbooks/{wang}/erase", headers=county)
    assert r.status_code == 200, r.text
    assert r.json() == {"passbook_id": wang, "village_id": "V1", "erased": [wang]}
    assert "Wang household" not in every_text(site.store) and "Wong" not in every_text(site.store)
    gone = site.client.post(
        f"/api/v1/passbooks/{wang}/correct", headers=county, json={"household_name": "X"}
    )
    assert gone.status_code == 409


def test_the_cli_exports_and_erases(site: Site, central_url: str, tmp_path: Path) -> None:
    zhao = site.passbooks["zhao"]
    env = {**os.environ, "GREENPASS_CENTRAL_DB": central_url}

    def gp(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "greenpass", "central", "passbook", *args],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r

    assert json.loads(gp("export", zhao).stdout)["passbooks"][0]["household_name"] == (
        "Zhao household"
    )
    out = tmp_path / "zhao.json"
    assert str(out) in gp("export", zhao, "--out", str(out)).stdout
    assert json.loads(out.read_text(encoding="utf-8"))["passbook_id"] == zhao
    fixed = json.loads(gp("correct", zhao, "--household", "赵家", "--json").stdout)
    assert fixed == {"passbook_id": zhao, "corrected": [zhao]}
    assert passbooks.household(site.store, zhao) == "赵家"
    assert json.loads(gp("erase", zhao, "--json").stdout) == {
        "passbook_id": zhao,
        "erased": [zhao],
    }
    assert "Zhao household" not in every_text(site.store) and "赵家" not in every_text(site.store)
    row = audit.rows(site.store)[0]
    assert row.action == "passbook.erase" and row.actor.startswith("cli:")
