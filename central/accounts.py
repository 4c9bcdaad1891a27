"""Operator accounts: who may use central's console and admin API, and how they prove it.

A **county** account sees and changes every village; a **village** account only its own
(`central.auth` turns an account into an `Actor` and answers 403 outside its village).
A **buyer** account is an enterprise's login to the reduction registry: it sees and acts
on its own registry account's units only, and no village at all (docs/registry.md).

- Passwords are stored as scrypt strings (``scrypt$N$r$p$salt$hash``, the standard
  library's `hashlib.scrypt`: memory-hard, no C extension to build on a Pi or a county
  office PC). The parameters are kept in each string, so raising them later only
  affects new passwords.
- Five wrong passwords in a row lock the account for 15 minutes. The count and the
  lock are columns of the account's row, so restarting central does not lift them.
- API tokens (for scripts) and console sessions are 192 random bits, stored only as
  their SHA-256, like enrolment tokens. Disabling an account deletes both at once.

Every method takes `now_ms`, as `CentralStore`'s do, so tests run on a fixed clock.
The operator's changes (add, disable, token, unlock) take `actor` and are audited
(`central.audit`) in the same transaction; the audit says what happened, never a
password, its hash or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from central import audit, db
from central.registry_db import registry_accounts
from central.store import CentralStore
from greenpass.errors import CentralError

ROLES = ("county", "village", "buyer")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # scrypt reads it all: bound what one login attempt costs
MAX_FAILED_LOGINS = 5
LOCKOUT_MS = 15 * 60 * 1000
SESSION_MS = 12 * 60 * 60 * 1000  # a working day; then log in again

# scrypt at N=2^15, r=8: 32 MiB and about 0.1 s per check on a laptop core. Enough to
# make a stolen database slow to crack, cheap enough for a handful of operators.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 * 1024 * 1024


class LoginRefused(CentralError):
    """A login was refused: `locked` says whether it was the lockout (with
    `retry_after_s`), not the name or the password."""

    def __init__(self, message: str, *, locked: bool = False, retry_after_s: int = 0) -> None:
        super().__init__(message)
        self.locked = locked
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Account:
    name: str
    role: str  # county / village
    village_id: str | None  # only for a village account
    active: bool
    created_ms: int
    disabled_ms: int | None
    failed_logins: int
    locked_until_ms: int | None
    registry_account: str | None = None  # only for a buyer account


# --- passwords ------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM, dklen=32
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, want = stored.split("$")
        if kind != "scrypt":
            return False
        dk = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=32,
        )
    except ValueError:
        return False
    return hmac.compare_digest(dk, base64.b64decode(want))


# Checked against for an unknown name, so that it costs as long as a known one.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise CentralError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise CentralError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _account(m: Any) -> Account:
    return Account(
        name=m["name"],
        role=m["role"],
        village_id=m["village_id"],
        active=bool(m["active"]),
        created_ms=int(m["created_ms"]),
        disabled_ms=None if m["disabled_ms"] is None else int(m["disabled_ms"]),
        failed_logins=int(m["failed_logins"]),
        locked_until_ms=None if m["locked_until_ms"] is None else int(m["locked_until_ms"]),
        registry_account=m["registry_account"],
    )


_COLUMNS = [c for c in db.accounts.c if c.name != "password_hash"]


class Accounts:
    """The accounts, their API tokens and console sessions, in central's database."""

    def __init__(self, store: CentralStore) -> None:
        self.store = store

    # --- the accounts ---------------------------------------------------------------------

    def add(
        self,
        name: str,
        role: str,
        password: str,
        now_ms: int,
        *,
        village_id: str | None = None,
        registry_account: str | None = None,
        actor: str,
    ) -> Account:
        if not NAME_RE.fullmatch(name):
            raise CentralError(
                f"account name {name!r} is not valid: letters, digits, '.', '_', '-', "
                "at most 64, starting with a letter or digit"
            )
        if role not in ROLES:
            raise CentralError(f"role {role!r}: give county, village or buyer")
        if role == "village" and not village_id:
            raise CentralError("a village account needs --village")
        if role != "village" and village_id:
            raise CentralError(f"a {role} account belongs to no village: give no --village")
        if role == "buyer" and not registry_account:
            raise CentralError(
                "a buyer account needs --registry-account: the enterprise's account in the "
                "registry (greenpass central registry account add)"
            )
        if role != "buyer" and registry_account:
            raise CentralError("only a buyer account has a --registry-account")
        hashed = hash_password(check_new_password(password))
        a = db.accounts
        with self.store.write("adding an account") as conn:
            if village_id is not None and village_id not in _villages(conn):
                raise CentralError(
                    f"no village {village_id!r} at central: add it first (greenpass "
                    "central village add)"
                )
            if registry_account is not None:
                _require_buyer_account(conn, registry_account)
            if conn.execute(select(a.c.name).where(a.c.name == name)).first() is not None:
                raise CentralError(f"an account {name!r} already exists")
            try:
                conn.execute(
                    insert(a).values(
                        name=name,
                        role=role,
                        village_id=village_id,
                        password_hash=hashed,
                        active=True,
                        created_ms=now_ms,
                        failed_logins=0,
                        registry_account=registry_account,
                    )
                )
            except DBIntegrityError as exc:  # a second `add` of the same name at once
                raise CentralError(f"an account {name!r} already exists") from exc
            audit.record(
                conn, actor=actor, action="account.add", target=name, village_id=village_id,
                now_ms=now_ms, after={"role": role, "village_id": village_id,
                                      **({"registry_account": registry_account}
                                         if registry_account else {})},
            )  # fmt: skip
        return _must(self.get(name))

    def get(self, name: str) -> Account | None:
        with self.store.read("reading an account") as conn:
            m = conn.execute(select(*_COLUMNS).where(db.accounts.c.name == name)).mappings()
            row = m.first()
        return None if row is None else _account(row)

    def all(self) -> list[Account]:
        with self.store.read("listing accounts") as conn:
            rows = conn.execute(select(*_COLUMNS).order_by(db.accounts.c.name)).mappings().all()
        return [_account(r) for r in rows]

    def has_active_county(self) -> bool:
        a = db.accounts
        q = select(func.count()).where((a.c.role == "county") & a.c.active.is_(True))
        with self.store.read("counting county accounts") as conn:
            return bool(conn.scalar(q))

    def disable(self, name: str, now_ms: int, *, actor: str) -> bool:
        """Disable `name`: its password, tokens and sessions stop working at once.
        False if it was already disabled (not audited: nothing changed)."""
        a = db.accounts
        with self.store.write("disabling an account") as conn:
            row = conn.execute(select(a.c.active, a.c.village_id).where(a.c.name == name)).first()
            if row is None:
                raise CentralError(f"no account {name!r}")
            conn.execute(delete(db.account_tokens).where(db.account_tokens.c.account == name))
            conn.execute(delete(db.console_sessions).where(db.console_sessions.c.account == name))
            if not row.active:
                return False
            conn.execute(update(a).where(a.c.name == name).values(active=False, disabled_ms=now_ms))
            audit.record(
                conn, actor=actor, action="account.disable", target=name,
                village_id=row.village_id, now_ms=now_ms,
                before={"active": True}, after={"active": False},
            )  # fmt: skip
        return True

    def unlock(self, name: str, now_ms: int, *, actor: str) -> None:
        a = db.accounts
        with self.store.write("unlocking an account") as conn:
            row = conn.execute(
                select(a.c.village_id, a.c.failed_logins, a.c.locked_until_ms).where(
                    a.c.name == name
                )
            ).first()
            if row is None:
                raise CentralError(f"no account {name!r}")
            conn.execute(
                update(a).where(a.c.name == name).values(failed_logins=0, locked_until_ms=None)
            )
            # Audited even when it was not locked: an operator asked, the record says so.
            audit.record(
                conn, actor=actor, action="account.unlock", target=name,
                village_id=row.village_id, now_ms=now_ms,
                before={"failed_logins": int(row.failed_logins),
                        "locked_until_ms": row.locked_until_ms},
                after={"failed_logins": 0, "locked_until_ms": None},
            )  # fmt: skip

    # --- passwords and the lockout ----------------------------------------------------------

    def login(self, name: str, password: str, now_ms: int) -> Account:
        """The account, when `password` is its password; else `LoginRefused`. A wrong
        password counts towards the lockout; an unknown name costs the same time."""
        a = db.accounts
        with self.store.read("checking a login") as conn:
            row = conn.execute(select(*_COLUMNS, a.c.password_hash).where(a.c.name == name))
            found = row.mappings().first()
        wrong = LoginRefused("wrong account name or password")
        if found is None or not found["active"] or len(password) > MAX_PASSWORD:
            verify_password(password[:MAX_PASSWORD], _DUMMY_HASH)
            raise wrong
        account = _account(found)
        if account.locked_until_ms is not None and account.locked_until_ms > now_ms:
            raise _locked(account.locked_until_ms, now_ms)
        if verify_password(password, found["password_hash"]):
            if account.failed_logins or account.locked_until_ms is not None:
                with self.store.write("resetting failed logins") as conn:
                    conn.execute(
                        update(a)
                        .where(a.c.name == name)
                        .values(failed_logins=0, locked_until_ms=None)
                    )
            return account
        with self.store.write("counting a failed login") as conn:
            # One UPDATE: two wrong passwords at once both count.
            conn.execute(
                update(a).where(a.c.name == name).values(failed_logins=a.c.failed_logins + 1)
            )
            failed = int(conn.scalar(select(a.c.failed_logins).where(a.c.name == name)) or 0)
            until = now_ms + LOCKOUT_MS if failed >= MAX_FAILED_LOGINS else None
            if until is not None:
                conn.execute(
                    update(a).where(a.c.name == name).values(failed_logins=0, locked_until_ms=until)
                )
        # Raised after the commit: inside the transaction it would roll the count back.
        raise wrong if until is None else _locked(until, now_ms)

    # --- API tokens ----------------------------------------------------------------------------

    def issue_token(self, name: str, now_ms: int, *, actor: str) -> str:
        """A new API token for `name` (shown once; only its hash is kept)."""
        token = secrets.token_urlsafe(24)
        t = db.account_tokens
        with self.store.write("issuing an API token") as conn:
            village_id = _require_active(conn, name)
            conn.execute(
                insert(t).values(token_hash=_digest(token), account=name, created_ms=now_ms)
            )
            # Tokens have no id, and their hash stays out of the audit: the row says
            # one was issued, and how many the account now holds.
            held = int(conn.scalar(select(func.count()).where(t.c.account == name)) or 0)
            audit.record(
                conn, actor=actor, action="account.token", target=name,
                village_id=village_id, now_ms=now_ms, after={"tokens": held},
            )  # fmt: skip
        return token

    def by_token(self, token: str) -> Account | None:
        t, a = db.account_tokens, db.accounts
        q = (
            select(*_COLUMNS)
            .select_from(t.join(a, a.c.name == t.c.account))
            .where((t.c.token_hash == _digest(token)) & a.c.active.is_(True))
        )
        with self.store.read("checking an API token") as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else _account(row)

    # --- console sessions ----------------------------------------------------------------------

    def open_session(self, name: str, now_ms: int) -> tuple[str, str]:
        """A new session for `name`: (session id for the cookie, CSRF token for forms)."""
        sid, csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        s = db.console_sessions
        with self.store.write("opening a session") as conn:
            _require_active(conn, name)
            conn.execute(delete(s).where(s.c.expires_ms <= now_ms))  # the expired ones
            conn.execute(
                insert(s).values(
                    session_hash=_digest(sid),
                    account=name,
                    csrf=csrf,
                    created_ms=now_ms,
                    expires_ms=now_ms + SESSION_MS,
                )
            )
        return sid, csrf

    def session(self, sid: str, now_ms: int) -> tuple[Account, str] | None:
        """The session's active account and its CSRF token, or None."""
        s, a = db.console_sessions, db.accounts
        q = (
            select(*_COLUMNS, s.c.csrf)
            .select_from(s.join(a, a.c.name == s.c.account))
            .where(
                (s.c.session_hash == _digest(sid))
                & (s.c.expires_ms > now_ms)
                & a.c.active.is_(True)
            )
        )
        with self.store.read("reading a session") as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else (_account(row), str(row["csrf"]))

    def close_session(self, sid: str) -> None:
        s = db.console_sessions
        with self.store.write("closing a session") as conn:
            conn.execute(delete(s).where(s.c.session_hash == _digest(sid)))


def _locked(until_ms: int, now_ms: int) -> LoginRefused:
    seconds = max(1, (until_ms - now_ms + 999) // 1000)
    return LoginRefused(
        f"too many wrong passwords: this account is locked for {(seconds + 59) // 60} min",
        locked=True,
        retry_after_s=seconds,
    )


def _villages(conn: Connection) -> set[str]:
    return set(conn.scalars(select(db.villages.c.village_id)))


def _require_buyer_account(conn: Connection, account_id: str) -> None:
    r = registry_accounts
    kind = conn.scalar(select(r.c.kind).where(r.c.account_id == account_id))
    if kind is None:
        raise CentralError(
            f"no registry account {account_id!r}: add it first (greenpass central registry "
            "account add)"
        )
    if kind != "buyer":
        raise CentralError(f"registry account {account_id!r} is a {kind}'s, not a buyer's")


def _require_active(conn: Connection, name: str) -> str | None:
    """The active account's village (None for a county account), or the refusal."""
    a = db.accounts
    row = conn.execute(select(a.c.active, a.c.village_id).where(a.c.name == name)).first()
    if row is None:
        raise CentralError(f"no account {name!r}")
    if not row.active:
        raise CentralError(f"account {name!r} is disabled")
    return None if row.village_id is None else str(row.village_id)


def _must(account: Account | None) -> Account:
    if account is None:
        raise CentralError("the account disappeared")
    return account
