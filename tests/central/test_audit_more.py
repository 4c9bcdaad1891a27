"""The audit of accounts, device revocations, enrolment tokens and enrolments (issue 12),
on SQLite and PostgreSQL: each change writes exactly one row naming who, what and
which, and no password, hash or token appears anywhere in it. Then where the rows are
seen: the village's audit (API, console, CLI) and the county-wide one."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from sqlalchemy import select

from central import audit, db
from central.accounts import Accounts, LoginRefused
from central.enrolment import key_fingerprint
from central.store import CentralStore
from greenpass.errors import CentralError
from sync.keys import generate_key, public_bytes
from tests.central.conftest import NOW, SQLITE_ONLY
from tests.central.test_api import Api, app_api
from tests.central.test_auth import Site, site

# SQLite only: what is audited; tests/central/test_audit.py runs the audit log's queries
# on both.
pytestmark = SQLITE_ONLY

__all__ = ["app_api", "site"]  # the fixtures, imported for pytest
ROOT = Path(__file__).resolve().parents[2]
PW = "a long enough password"


def new_rows(store: CentralStore, seen: int) -> list[audit.AuditRow]:
    """The rows written since the newest id `seen`, oldest first."""
    return [r for r in reversed(audit.rows(store, limit=1000)) if r.id > seen]


def newest_id(store: CentralStore) -> int:
    found = audit.rows(store, limit=1)
    return found[0].id if found else 0


def one_row(store: CentralStore, seen: int, *secrets: str) -> audit.AuditRow:
    """The one row written since `seen`, with none of `secrets` anywhere in it."""
    rows = new_rows(store, seen)
    assert len(rows) == 1, rows
    text = json.dumps(asdict(rows[0]))
    for secret in secrets:
        assert secret not in text
    return rows[0]


def test_account_changes_are_audited_without_secrets(store: CentralStore) -> None:
    store.create_village("V2")
    accounts = Accounts(store)
    seen = newest_id(store)
    accounts.add("ann", "county", PW, NOW, actor="cli:root")
    with store.read() as conn:
        pw_hash = str(conn.scalar(select(db.accounts.c.password_hash)))
    row = one_row(store, seen, PW, pw_hash)
    assert (row.actor, row.action, row.target, row.village_id) == (
        "cli:root", "account.add", "ann", None
    )  # fmt: skip
    assert row.after == {"role": "county", "village_id": None}

    seen = newest_id(store)
    accounts.add("vic", "village", PW, NOW + 1, village_id="V2", actor="ann")
    row = one_row(store, seen, PW)
    assert (row.action, row.target, row.village_id, row.at_ms) == (
        "account.add", "vic", "V2", NOW + 1
    )  # fmt: skip

    seen = newest_id(store)
    token = accounts.issue_token("vic", NOW + 2, actor="ann")
    row = one_row(store, seen, token, hashlib.sha256(token.encode()).hexdigest(), PW)
    assert (row.actor, row.action, row.target, row.village_id) == (
        "ann", "account.token", "vic", "V2"
    )  # fmt: skip
    assert row.after == {"tokens": 1}

    for _ in range(5):  # locked out
        with pytest.raises(LoginRefused):
            accounts.login("vic", "not the password", NOW + 3)
    assert accounts.get("vic").locked_until_ms is not None  # type: ignore[union-attr]
    seen = newest_id(store)
    accounts.unlock("vic", NOW + 4, actor="ann")
    row = one_row(store, seen, PW, "not the password")
    assert (row.action, row.target, row.village_id) == ("account.unlock", "vic", "V2")
    assert row.before is not None and row.before["locked_until_ms"] is not None
    assert row.after == {"failed_logins": 0, "locked_until_ms": None}

    seen = newest_id(store)
    assert accounts.disable("vic", NOW + 5, actor="ann")
    row = one_row(store, seen, token, PW)
    assert (row.actor, row.action, row.target, row.village_id) == (
        "ann", "account.disable", "vic", "V2"
    )  # fmt: skip
    assert (row.before, row.after) == ({"active": True}, {"active": False})
    seen = newest_id(store)
    assert not accounts.disable("vic", NOW + 6, actor="ann")
    assert new_rows(store, seen) == []  # nothing changed, nothing recorded

    # A refused change leaves no row: it was rolled back with the change.
    with pytest.raises(Exception, match="already exists"):
        accounts.add("ann", "county", PW, NOW, actor="cli:root")
    assert new_rows(store, seen) == []


def test_enrol_token_enrolment_and_revocation_are_audited(store: CentralStore) -> None:
    seen = newest_id(store)
    token = store.create_enrol_token("K1", "V1", NOW, ttl_s=3600, actor="cli:tech")
    row = one_row(store, seen, token, hashlib.sha256(token.encode()).hexdigest())
    assert (row.actor, row.action, row.target, row.village_id) == (
        "cli:tech", "device.enrol_token", "K1", "V1"
    )  # fmt: skip
    assert row.after == {"expires_ms": NOW + 3_600_000}

    key = public_bytes(generate_key())
    seen = newest_id(store)
    enrolment = store.enrol(token, "K1", key, NOW + 1)
    row = one_row(store, seen, token, enrolment.mqtt_password)
    assert (row.actor, row.action, row.target, row.village_id) == (
        "device:K1", "device.enrol", "K1", "V1"
    )  # fmt: skip
    assert row.before is None and row.after == {"key": key_fingerprint(key)}

    again, new_key = (
        store.create_enrol_token("K1", "V1", NOW, actor="ops"),
        public_bytes(generate_key()),
    )
    seen = newest_id(store)
    enrolment = store.enrol(again, "K1", new_key, NOW + 2)
    row = one_row(store, seen, again, enrolment.mqtt_password)
    assert (row.action, row.before, row.after) == (
        "device.re_enrol", {"key": key_fingerprint(key)}, {"key": key_fingerprint(new_key)}
    )  # fmt: skip

    seen = newest_id(store)
    assert store.revoke_device("K1", NOW + 3, actor="ops")
    row = one_row(store, seen)
    assert (row.actor, row.action, row.target, row.village_id, row.at_ms) == (
        "ops", "device.revoke", "K1", "V1", NOW + 3
    )  # fmt: skip
    assert (row.before, row.after) == ({"status": "active"}, {"status": "revoked"})
    seen = newest_id(store)
    assert not store.revoke_device("K1", NOW + 4, actor="ops")
    with pytest.raises(CentralError, match="revoked"):
        store.create_enrol_token("K1", "V1", NOW, actor="ops")
    assert new_rows(store, seen) == []  # no change, and a refused one: no rows


def test_the_api_names_the_account(app_api: Api) -> None:
    store, c = app_api.store, app_api.client
    accounts = Accounts(store)
    accounts.add("ops", "county", PW, NOW, actor="cli:root")
    auth = {"Authorization": f"Bearer {accounts.issue_token('ops', NOW, actor='cli:root')}"}
    seen = newest_id(store)
    r = c.post("/api/v1/enrol-tokens", headers=auth, json={"device_id": "K5", "village_id": "V1"})
    assert r.status_code == 201, r.text
    row = one_row(store, seen, r.json()["token"])
    assert (row.actor, row.action, row.target) == ("ops", "device.enrol_token", "K5")
    assert app_api.enrol(r.json()["token"], "K5").status_code == 200
    seen = newest_id(store)
    assert c.post("/api/v1/devices/K5/revoke", headers=auth).status_code == 200
    assert c.post("/api/v1/devices/K5/revoke", headers=auth).status_code == 200  # idempotent
    row = one_row(store, seen)
    assert (row.actor, row.action, row.target, row.village_id) == (
        "ops", "device.revoke", "K5", "V1"
    )  # fmt: skip
    # The village's audit has the device's rows; the county account's are county-wide.
    village = [x["action"] for x in c.get("/api/v1/audit?village_id=V1", headers=auth).json()]
    assert village[:3] == ["device.revoke", "device.enrol", "device.enrol_token"]
    assert "account.add" not in village
    everything = [x["action"] for x in c.get("/api/v1/audit", headers=auth).json()]
    assert everything[-2:] == ["account.token", "account.add"]


def test_the_console_shows_them_where_they_belong(site: Site) -> None:
    site.store.revoke_device("K1", NOW, actor="ops")
    v1 = site.login("v1")
    page = v1.get("/villages/V1/audit").text
    for action in ("device.revoke", "device.enrol", "device.enrol_token", "account.add"):
        assert action in page, action
    table = page.split("<tbody>")[1]
    # v1's own account row is V1's; v2's is V2's and the county account's is county-wide.
    assert "<td>v1</td>" in table and "<td>v2</td>" not in table and "<td>county</td>" not in table
    assert v1.get("/audit").status_code == 403  # the county-wide audit: county only
    v1.cookies.clear()  # a new browser
    county = site.login("county")
    page = county.get("/audit").text
    assert page.count("account.add") == 3 and "device.revoke" in page
    assert PW not in page


def test_the_cli_passes_its_unix_user(central_url: str, tmp_path: Path) -> None:
    with CentralStore.open(central_url) as store:
        store.create_village("V1")
    env = {**os.environ, "GREENPASS_CENTRAL_DB": central_url, "PYTHONPATH": str(ROOT)}

    def gp(*args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [sys.executable, "-m", "greenpass", "central", *args],
            input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    token = gp("enrol-token", "--village", "V1", "--device", "K1").strip()
    gp("account", "add", "ops", "--role", "village", "--village", "V1", "--password-file", "-",
       stdin=PW + "\n")  # fmt: skip
    api_token = gp("account", "token", "ops").strip()
    rows = json.loads(gp("audit", "--village", "V1", "--json"))
    assert [r["action"] for r in rows] == ["account.token", "account.add", "device.enrol_token"]
    assert all(r["actor"].startswith("cli:") for r in rows)
    text = json.dumps(rows) + gp("audit")
    assert token not in text and api_token not in text and PW not in text
