"""Who is calling: the API's bearer tokens, the console's session cookie, CSRF, scoping.

Every route that needs a caller takes an `Actor`:

    from central.auth import CurrentActor, require_village

    @router.get("/villages/{village_id}/things")
    def things(village_id: str, actor: CurrentActor) -> ...:
        require_village(actor, village_id)      # 403 for another village's account
        ...                                     # str(actor) names them in the audit

`CurrentActor` (API routes) reads ``Authorization: Bearer``: an account's API token
(`greenpass central account token NAME`), or the bootstrap admin token (below).
`ConsoleActor` (console pages) reads the session cookie and sends a browser without
one to the login page.

**Buyers** (an enterprise's login to the reduction registry) are refused by both: 403
from `CurrentActor`, and `ConsoleActor` sends them to their holdings (``/units``). Only
the registry's routes take `RegistryActor` / `RegistryConsoleActor`, which let them in;
so a new page or route is closed to buyers unless it says otherwise.

The cookie is not an API credential: a script cannot be tricked by a page into using
it, so the JSON API needs no CSRF token.

**The admin token** (``HOME/admin.token``) is only for bootstrapping: it acts as a
county account named ``admin-token`` while central has no active county account, and
is refused (401) once one exists. The first account is made with the CLI, which needs
no token at all (it writes the database directly).

Cookies: ``__Host-gp_session`` (Secure, HttpOnly, SameSite=Strict, Path=/; the
``__Host-`` prefix makes browsers refuse one set by another host or over plain HTTP)
and, before login, ``__Host-gp_csrf`` for the login form (a double-submit token).
After login, every form carries the session's own CSRF token (`check_csrf`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, HTTPException, Request, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from central.accounts import SESSION_MS, Account, Accounts
from central.store import CentralStore

BOOTSTRAP_ACTOR = "admin-token"
SESSION_COOKIE = "__Host-gp_session"
LOGIN_CSRF_COOKIE = "__Host-gp_csrf"
MAX_FORM_FIELDS = 32

FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {
        "description": "The account may not do this: a village account outside its "
        "village, or a county-only route",
    }
}


@dataclass(frozen=True)
class Actor:
    """The caller: an account's name, its role, and for a village account its village."""

    name: str
    role: str  # county / village / buyer
    village: str | None = None
    registry_account: str | None = None  # a buyer's account in the registry

    @property
    def county(self) -> bool:
        return self.role == "county"

    @property
    def buyer(self) -> bool:
        return self.role == "buyer"

    def can_see(self, village_id: str) -> bool:
        return self.county or self.village == village_id

    def __str__(self) -> str:
        return self.name

    @classmethod
    def of(cls, account: Account) -> Actor:
        return cls(account.name, account.role, account.village_id, account.registry_account)


@dataclass(frozen=True)
class ConsoleSession:
    actor: Actor
    csrf: str  # what this session's forms must send back
    sid: str


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Auth:
    """Resolves credentials to actors; one per app, in ``app.state.auth``."""

    def __init__(
        self,
        store: CentralStore,
        *,
        admin_token: str | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.accounts = Accounts(store)
        self.clock = clock
        self._admin_digest = (
            None if admin_token is None else hashlib.sha256(admin_token.encode()).digest()
        )

    def from_bearer(self, token: str) -> Actor | None:
        if not token:
            return None
        given = hashlib.sha256(token.encode()).digest()
        # Constant time, and the digests hide the token's length.
        if self._admin_digest is not None and hmac.compare_digest(given, self._admin_digest):
            if self.accounts.has_active_county():
                raise HTTPException(
                    401,
                    "the admin token is retired once central has a county account: use "
                    "an account's API token (greenpass central account token NAME)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return Actor(BOOTSTRAP_ACTOR, "county")
        account = self.accounts.by_token(token)
        return None if account is None else Actor.of(account)

    def from_session(self, sid: str | None) -> ConsoleSession | None:
        if not sid:
            return None
        found = self.accounts.session(sid, self.clock())
        return None if found is None else ConsoleSession(Actor.of(found[0]), found[1], sid)


def auth_of(request: Request) -> Auth:
    auth = getattr(request.app.state, "auth", None)
    if not isinstance(auth, Auth):
        raise RuntimeError("the app has no central.auth.Auth in app.state.auth")
    return auth


# --- the API: bearer tokens ------------------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    # The name the API has always published, so clients' configurations keep working.
    scheme_name="AdminToken",
    description="An operator account's API token (`greenpass central account token "
    "NAME`); before the first county account exists, central's `admin.token`.",
)


def registry_actor(
    request: Request,
    cred: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Actor:
    """Any account, buyers included: for the registry's routes only."""
    actor = auth_of(request).from_bearer("" if cred is None else cred.credentials)
    if actor is None:
        raise HTTPException(
            401, "a valid API token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return actor


def current_actor(actor: Annotated[Actor, Depends(registry_actor)]) -> Actor:
    """An operator: a county or village account. A buyer gets 403."""
    if actor.buyer:
        raise HTTPException(
            403, f"account {actor.name!r} is a buyer's: it may use the registry's routes only"
        )
    return actor


RegistryActor = Annotated[Actor, Depends(registry_actor)]
CurrentActor = Annotated[Actor, Depends(current_actor)]


def require_village(actor: Actor, village_id: str) -> None:
    """403 unless `actor` may see and change `village_id`."""
    if not actor.can_see(village_id):
        raise HTTPException(403, f"account {actor.name!r} may only see village {actor.village!r}")


def require_county(actor: Actor) -> None:
    if not actor.county:
        raise HTTPException(403, f"only a county account may do this ({actor.name!r} is not)")


# --- the console: session cookie, CSRF ----------------------------------------------------------


def console_session(request: Request) -> ConsoleSession | None:
    return auth_of(request).from_session(request.cookies.get(SESSION_COOKIE))


BUYER_HOME = "/units"


def registry_console_actor(request: Request) -> ConsoleSession:
    """The logged-in console user, buyers included, or a redirect to the login page."""
    session = console_session(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "log in first", headers={"Location": login_url(target)})
    return session


def console_actor(
    session: Annotated[ConsoleSession, Depends(registry_console_actor)],
) -> ConsoleSession:
    """A logged-in operator; a buyer is sent to their holdings."""
    if session.actor.buyer:
        raise HTTPException(303, "a buyer's console", headers={"Location": BUYER_HOME})
    return session


RegistryConsoleActor = Annotated[ConsoleSession, Depends(registry_console_actor)]
ConsoleActor = Annotated[ConsoleSession, Depends(console_actor)]


def login_url(next_path: str = "/") -> str:
    return "/login" if next_path in ("", "/") else f"/login?next={quote(next_path, safe='')}"


def safe_next(value: str | None) -> str:
    """Where to go after login: only a path on this site (no //host, no scheme)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def set_cookie(response: Response, name: str, value: str, max_age_s: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age_s, path="/", secure=True, httponly=True, samesite="strict"
    )


def start_session(response: Response, sid: str) -> None:
    set_cookie(response, SESSION_COOKIE, sid, SESSION_MS // 1000)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/", secure=True, httponly=True)


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def login_csrf(request: Request) -> tuple[str, bool]:
    """The login form's token: the browser's ``__Host-gp_csrf`` cookie, or a new one
    (True: set it on the response)."""
    have = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if 20 <= len(have) <= 64:
        return have, False
    return secrets.token_urlsafe(24), True


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the only kind the console posts;
    its size is already bounded by `central.http_guard`). 415 for any other kind."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not kind and not await request.body():
        return {}  # an empty post: refused by its missing CSRF token, not its type
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "the console's forms post application/x-www-form-urlencoded")
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        raise HTTPException(400, "the form has too many fields") from exc
    return dict(pairs)


def check_csrf(form: dict[str, str], expected: str) -> None:
    """403 unless the form's ``csrf`` field is `expected` (constant time)."""
    given = form.get("csrf", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            403, "the form's security token is missing or out of date: reload the page"
        )
