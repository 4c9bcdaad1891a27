"""The console's pages: login and logout, the language switch, Overview, Fleet,
Exports, and the API docs, all rendered by central from its own files (Jinja2 templates, and
`static/` for the stylesheet, the page script and the vendored Chart.js and Swagger UI).

Pages are server-rendered: every number is in the HTML the server sends, so a
phone on a slow village link gets a whole page in one request, and nothing but the
charts needs JavaScript. Chart data travels inside the page as JSON, not through a
second request. Every form posts a CSRF token (`central.auth.check_csrf`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from central import db
from central.accounts import LoginRefused
from central.api_exports import Format, What, export_response
from central.auth import (
    LOGIN_CSRF_COOKIE,
    ConsoleActor,
    ConsoleSession,
    RegistryConsoleActor,
    auth_of,
    check_csrf,
    console_session,
    end_session,
    login_csrf,
    read_form,
    safe_next,
    set_cookie,
    start_session,
)
from central.console import pictures, registry_pages, stats, village_records
from central.console import village as village_pages
from central.console.fleet import kiosk_rows
from central.console.i18n import LANGUAGES, language, translator
from central.console.settings import ConsoleSettings
from central.console.village import VillagePages
from central.registry_desk import RegistryDesk
from central.store import CentralStore
from greenpass.record.rules import default_rules

HERE = Path(__file__).parent
LANG_COOKIE = "gp_lang"
YEAR_S = 365 * 24 * 3600
# Scripts, styles and pictures from central only; no frames, no plugins, forms to here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def install(
    app: FastAPI,
    store: CentralStore,
    settings: ConsoleSettings,
    clock: Callable[[], int],
    desk: RegistryDesk | None = None,
) -> None:
    """Serve the console at ``/``, its files at ``/static`` and the API docs at ``/docs``
    (the app must have been made with ``docs_url=None``)."""
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    rules = default_rules()
    category_names = {k: {"zh-CN": c.name_zh, "en": c.name_en} for k, c in rules.categories.items()}
    router = APIRouter(include_in_schema=False)

    def page(
        request: Request,
        name: str,
        session: ConsoleSession | None,
        status: int = 200,
        csrf: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        lang = language(request.cookies.get(LANG_COOKIE))
        if context.get("nav"):  # a village's page: its name heads the village's menu
            context["nav_name"] = village_names(lang).get(context["nav"], context["nav"])
        response = templates.TemplateResponse(
            request,
            name,
            {
                "t": translator(lang),
                "lang": lang,
                "other_lang": next(code for code in LANGUAGES if code != lang),
                "session": session,
                "csrf": csrf if csrf is not None else (session.csrf if session else ""),
                "path": request.url.path,
                **context,
            },
            status_code=status,
        )
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def village_names(lang: str) -> dict[str, str]:
        p = db.village_profiles
        with store.read("reading village names") as conn:
            rows = conn.execute(select(p.c.village_id, p.c.name_zh, p.c.name_en)).all()
        names = {}
        for r in rows:
            name = r.name_zh if lang == "zh-CN" else r.name_en
            names[r.village_id] = name or r.name_en or r.name_zh or r.village_id
        return names

    # --- the API docs ----------------------------------------------------------------------

    @router.get("/docs")
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        )

    # --- login, logout, language -------------------------------------------------------------

    def login_page(
        request: Request, error: str = "", status: int = 200, next_path: str = "/"
    ) -> HTMLResponse:
        token, new = login_csrf(request)
        response = page(
            request, "login.html", None, status, csrf=token, error=error, next_path=next_path
        )
        if new:
            set_cookie(response, LOGIN_CSRF_COOKIE, token, 3600)
        return response

    @router.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:
        if console_session(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return login_page(request, next_path=safe_next(next))

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        check_csrf(form, request.cookies.get(LOGIN_CSRF_COOKIE, ""))
        next_path = safe_next(form.get("next"))
        accounts = auth_of(request).accounts
        try:
            account = accounts.login(form.get("name", ""), form.get("password", ""), clock())
        except LoginRefused as exc:
            refused = login_page(request, str(exc), 429 if exc.locked else 401, next_path)
            if exc.locked:
                refused.headers["Retry-After"] = str(exc.retry_after_s)
            return refused
        sid, _csrf = accounts.open_session(account.name, clock())
        response = RedirectResponse(next_path, status_code=303)
        start_session(response, sid)
        return response

    @router.post("/logout")
    async def logout(request: Request, session: RegistryConsoleActor) -> Response:
        check_csrf(await read_form(request), session.csrf)
        auth_of(request).accounts.close_session(session.sid)
        response = RedirectResponse("/login", status_code=303)
        end_session(response)
        return response

    @router.post("/lang")
    async def switch_language(request: Request) -> Response:
        form = await read_form(request)
        session = console_session(request)
        check_csrf(form, session.csrf if session else request.cookies.get(LOGIN_CSRF_COOKIE, ""))
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        set_cookie(response, LANG_COOKIE, language(form.get("lang")), YEAR_S)
        return response

    # --- Overview and Fleet ------------------------------------------------------------------

    def overview(
        request: Request, session: ConsoleSession, villages: list[str], nav: str = ""
    ) -> Response:
        lang = language(request.cookies.get(LANG_COOKIE))
        t = translator(lang)
        data = stats.overview(store, villages, clock(), settings.tz)
        names = village_names(lang)
        charts = {
            "days": [d.strftime("%m-%d") for d in data.days],
            "months": [m.strftime("%Y-%m") for m in data.months],
            "kg": [
                {
                    "label": category_names.get(cat, {}).get(lang, cat),
                    "data": [g / 1000 for g in grams],
                }
                for cat, grams in data.grams_by_category_day.items()
            ],
            "issued": data.issued_by_day,
            "redeemed": data.redeemed_by_day,
            "co2e": [g / 1000 for g in data.co2e_by_month],
            "labels": {"issued": t("issued"), "redeemed": t("redeemed"), "co2e": t("co2e_kg")},
        }
        rows = [(v, names.get(v, v), today, month) for v, (today, month) in data.villages.items()]
        return page(request, "overview.html", session, rows=rows, charts=charts, nav=nav)

    @router.get("/")
    def home(request: Request, session: ConsoleActor) -> Response:
        actor = session.actor
        villages = store.villages() if actor.county else [actor.village or ""]
        return overview(request, session, sorted(v for v in villages if v))

    @router.get("/villages/{village_id}")
    def village(request: Request, village_id: str, session: ConsoleActor) -> Response:
        if not session.actor.can_see(village_id):
            return page(request, "forbidden.html", session, 403)
        if village_id not in store.villages():
            raise HTTPException(404, f"no village {village_id!r}")
        return overview(request, session, [village_id], nav=village_id)

    @router.get("/fleet")
    def fleet(request: Request, session: ConsoleActor) -> Response:
        actor = session.actor
        now = clock()
        rows = kiosk_rows(store, None if actor.county else actor.village, settings.alerts, now)
        return page(
            request,
            "fleet.html",
            session,
            rows=rows,
            now_ms=now,
            alerts=settings.alerts,
            names=village_names(language(request.cookies.get(LANG_COOKIE))),
        )

    # --- Exports (files of central.exports, as the API's export routes serve them) ---------

    def exports_page(
        request: Request,
        session: ConsoleSession,
        selected: str = "",
        error: str = "",
        status: int = 200,
    ) -> Response:
        actor = session.actor
        villages = store.villages() if actor.county else [actor.village or ""]
        names = village_names(language(request.cookies.get(LANG_COOKIE)))
        today = datetime.fromtimestamp(clock() / 1000, settings.tz).date()
        return page(
            request,
            "exports.html",
            session,
            status,
            villages=[(v, names.get(v, v)) for v in sorted(villages) if v],
            selected=selected,
            first=today.replace(day=1).isoformat(),
            last=today.isoformat(),
            tz=settings.timezone,
            error=error,
        )

    @router.get("/exports")
    def exports_form(request: Request, session: ConsoleActor, village: str = "") -> Response:
        return exports_page(request, session, village)

    @router.get("/exports/download")
    def export_download(
        request: Request,
        session: ConsoleActor,
        village: str = "",
        what: str = "totals",
        fmt: str = "xlsx",
        passbook: str = "",
    ) -> Response:
        # Read here, not as typed parameters: the form sends "" for an empty date, and
        # a mistake should come back as the form with a sentence, not as JSON.
        try:
            if what not in ("totals", "entries", "statement") or fmt not in ("csv", "xlsx"):
                raise ValueError(f"{what}.{fmt}")
            since, until = (
                date.fromisoformat(d) if d else None
                for d in (request.query_params.get("from"), request.query_params.get("to"))
            )
            return export_response(
                store,
                cast(What, what),
                cast(Format, fmt),
                passbook.strip() if what == "statement" else village,
                since,
                until,
                actor=session.actor,
                default_tz=settings.tz,
                lang=language(request.cookies.get(LANG_COOKIE)),
            )
        except ValueError as exc:
            return exports_page(request, session, village, str(exc), 422)
        except HTTPException as exc:
            if exc.status_code == 403:
                return page(request, "forbidden.html", session, 403)
            return exports_page(request, session, village, str(exc.detail), exc.status_code)

    pages = VillagePages(store, clock, page)
    pictures.install(router, pages, village_pages.install(router, pages))
    village_records.install(router, pages)
    registry_pages.install(router, desk or RegistryDesk(store, clock), page)
    app.include_router(router)
    templates.env.filters["when"] = lambda ms: datetime.fromtimestamp(
        ms / 1000, settings.tz
    ).strftime("%Y-%m-%d %H:%M")
    templates.env.globals["as_text"] = village_records.as_text
    templates.env.filters["kg"] = lambda grams: f"{grams / 1000:.1f}"
    templates.env.filters["urlpart"] = lambda value: quote(str(value), safe="")
    templates.env.filters["digest"] = lambda data: hashlib.sha256(data).hexdigest()[:12]
    templates.env.globals["age"] = _age


def _age(t: Callable[..., str], ms: int | None) -> str:
    """A duration for people: "12 分钟" / "3 h" / "2 d"."""
    if ms is None:
        return t("none")
    minutes = ms // 60_000
    if minutes < 120:
        return f"{minutes} {t('minutes')}"
    if minutes < 48 * 60:
        return f"{minutes // 60} {t('hours')}"
    return f"{minutes // (24 * 60)} {t('days')}"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
