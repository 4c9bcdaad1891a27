"""Operator accounts on SQLite and PostgreSQL: the store (passwords, lockout, tokens,
sessions, disabling) and the `greenpass central account` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from central import db
from central.accounts import (
    LOCKOUT_MS,
    MAX_FAILED_LOGINS,
    SESSION_MS,
    Accounts,
    LoginRefused,
    hash_password,
    verify_password,
)
from central.store import CentralStore
from greenpass.errors import CentralError
from tests.central.conftest import NOW, SQLITE_ONLY

ROOT = Path(__file__).resolve().parents[2]
PW = "a long enough password"


@pytest.fixture
def accounts(store: CentralStore) -> Accounts:
    store.create_village("V2")
    return Accounts(store)


def test_passwords_are_stored_as_scrypt_never_in_clear(accounts: Accounts) -> None:
    accounts.add("ann", "county", PW, NOW, actor="test")
    with accounts.store.read() as conn:
        stored = str(conn.scalar(select(db.accounts.c.password_hash)))
    assert stored.startswith("scrypt$32768$8$1$") and PW not in stored
    assert verify_password(PW, stored) and not verify_password(PW + "x", stored)
    assert hash_password(PW) != hash_password(PW)  # salted
    assert not verify_password(PW, "bcrypt$whatever") and not verify_password(PW, "junk")


def test_roles_villages_and_names_are_checked(accounts: Accounts) -> None:
    for args, message in [
        (("bad name", "county"), "not valid"),
        (("x", "mayor"), "give county, village or buyer"),
        (("x", "village"), "needs --village"),
    ]:
        with pytest.raises(CentralError, match=message):
            accounts.add(*args, PW, NOW, actor="test")
    with pytest.raises(CentralError, match="give no --village"):
        accounts.add("x", "county", PW, NOW, village_id="V1", actor="test")
    with pytest.raises(CentralError, match="no village 'V9'"):
        accounts.add("x", "village", PW, NOW, village_id="V9", actor="test")
    with pytest.raises(CentralError, match="at least 10"):
        accounts.add("x", "county", "short", NOW, actor="test")
    accounts.add("vic", "village", PW, NOW, village_id="V1", actor="test")
    with pytest.raises(CentralError, match="already exists"):
        accounts.add("vic", "county", PW, NOW, actor="test")
    assert [(a.name, a.role, a.village_id) for a in accounts.all()] == [("vic", "village", "V1")]


def test_login_and_the_persisted_lockout(accounts: Accounts, central_url: str) -> None:
    accounts.add("ann", "county", PW, NOW, actor="test")
    assert accounts.login("ann", PW, NOW).name == "ann"
    for _ in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(LoginRefused, match="wrong account name or password") as wrong:
            accounts.login("ann", "wrong password", NOW)
        assert not wrong.value.locked
    with pytest.raises(LoginRefused, match="locked for 15 min") as locked:
        accounts.login("ann", "wrong password", NOW)
    assert locked.value.locked and locked.value.retry_after_s == LOCKOUT_MS // 1000
    # Locked even with the right password, and after a restart (a new store).
    again = Accounts(CentralStore.open(central_url))
    try:
        with pytest.raises(LoginRefused, match="locked"):
            again.login("ann", PW, NOW + 1000)
        assert again.login("ann", PW, NOW + LOCKOUT_MS + 1).name == "ann"
        # A success resets the count: four more wrong ones do not lock it.
        for _ in range(MAX_FAILED_LOGINS - 1):
            with pytest.raises(LoginRefused, match="wrong"):
                again.login("ann", "nope nope nope", NOW + LOCKOUT_MS + 2)
        again.unlock("ann", NOW, actor="test")
        assert again.get("ann") is not None
    finally:
        again.store.close()
    with pytest.raises(LoginRefused, match="wrong account name or password"):
        accounts.login("nobody", PW, NOW)  # the same words as a wrong password


def test_tokens_and_sessions_end_when_the_account_is_disabled(accounts: Accounts) -> None:
    accounts.add("vic", "village", PW, NOW, village_id="V2", actor="test")
    token = accounts.issue_token("vic", NOW, actor="test")
    found = accounts.by_token(token)
    assert found is not None and found.village_id == "V2"
    assert accounts.by_token(token + "x") is None
    with accounts.store.read() as conn:  # only the hash is kept
        assert token not in str(conn.execute(select(db.account_tokens)).all())
    sid, csrf = accounts.open_session("vic", NOW)
    session = accounts.session(sid, NOW + 1)
    assert session is not None and session[1] == csrf
    assert accounts.session(sid, NOW + SESSION_MS) is None  # expired
    assert accounts.disable("vic", NOW, actor="test") is True
    assert accounts.disable("vic", NOW, actor="test") is False
    assert accounts.by_token(token) is None and accounts.session(sid, NOW + 1) is None
    with pytest.raises(LoginRefused):
        accounts.login("vic", PW, NOW)
    with pytest.raises(CentralError, match="disabled"):
        accounts.issue_token("vic", NOW, actor="test")
    with pytest.raises(CentralError, match="no account 'zed'"):
        accounts.disable("zed", NOW, actor="test")


def test_closing_a_session(accounts: Accounts) -> None:
    accounts.add("ann", "county", PW, NOW, actor="test")
    sid, _ = accounts.open_session("ann", NOW)
    accounts.close_session(sid)
    assert accounts.session(sid, NOW) is None


def _gp(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GREENPASS_CENTRAL_DB": url}
    return subprocess.run(
        [sys.executable, "-m", "greenpass", "central", *args], input=stdin, env=env,
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip


@SQLITE_ONLY  # the CLI's words; the account queries run on both in the tests above
def test_the_account_commands(store: CentralStore, central_url: str, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PW + "\n")
    r = _gp(central_url, "account", "add", "ann", "--role", "county", "--password-file", str(pw))
    assert r.returncode == 0 and "added county account ann (every village)" in r.stdout, r.stderr
    r = _gp(central_url, "account", "add", "vic", "--role", "village", "--village", "V1",
            "--password-file", "-", stdin=PW + "\n")  # fmt: skip
    assert r.returncode == 0 and "of village V1" in r.stdout, r.stderr
    r = _gp(central_url, "account", "add", "bad", "--role", "village", "--village", "NOPE",
            "--password-file", str(pw))  # fmt: skip
    assert r.returncode == 2 and "no village 'NOPE'" in r.stderr and "Traceback" not in r.stderr
    token = _gp(central_url, "account", "token", "vic").stdout.strip()
    found = Accounts(store).by_token(token)
    assert found is not None and found.name == "vic"
    assert _gp(central_url, "account", "disable", "vic").stdout.strip() == "disabled vic"
    assert Accounts(store).by_token(token) is None
    listed = _gp(central_url, "account", "list").stdout.splitlines()
    assert [line.split()[:4] for line in listed[1:]] == [
        ["ann", "county", "-", "active"],
        ["vic", "village", "V1", "disabled"],
    ]
    assert _gp(central_url, "account", "unlock", "ann").stdout.strip() == "unlocked ann"
    r = _gp(central_url, "account", "token", "zed")
    assert r.returncode == 2 and "no account 'zed'" in r.stderr
