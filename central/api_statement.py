"""A villager's statement on a phone: ``GET /s/{token}``, public, no login (issue 16;
docs/villager.md, docs/central.md "Statement links").

The token is a signed statement link (`greenpass.statement_link`), checked by
`central.statement_access` on every visit; it opens one passbook's statement, read
only. The page is server-rendered HTML in large type with no script, its stylesheet
from central's own ``/static`` (nothing from elsewhere: the villages' phones are
often on slow links, and in mainland China), in Chinese unless ``?lang=en`` asks for
English (remembered in the console's language cookie).

A refusal is a page in plain words, in both languages, with no data: 403 for a
malformed, forged or untrusted link, 410 for an expired link or a revoked passbook,
404 for a well-signed link to a passbook central does not know, 503 when the
database cannot be reached. Every answer is ``no-store`` with no referrer and
``noindex``: the address is the credential, and must end up in no cache, no other
site's logs and no search engine.

Not rate-limited: `central.http_guard` limits only enrolment attempts. A forged link
costs central one signature check (and, for a kiosk's or an issuer's link, one key
lookup) before it is refused; uvicorn's connection limit bounds the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from central import exports, statement_access, statement_view
from central.statement_access import Granted, Refusal
from central.statement_view import Statement, co2, mass, signed
from central.statement_words import REFUSALS, WORDS, kind_word, language
from central.store import CentralStore
from greenpass.errors import StorageError

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "console" / "templates"
LANG_COOKIE = "gp_lang"  # the console's: one language choice per phone
HISTORY = 50  # entries shown, newest first; the paper statement has every month's
YEAR_S = 365 * 24 * 3600
# No script at all; the stylesheet from central; no frames, forms, plugins or base.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CSP,
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}

_HTML = {"text/html": {"schema": {"type": "string"}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The passbook's statement (HTML, no script)", "content": _HTML},
    403: {
        "description": "A malformed or forged link, or one whose kiosk is revoked or whose "
        "signer is of another village: a page saying so, with no data",
        "content": _HTML,
    },
    404: {
        "description": "A well-signed link to a passbook central does not know: no data",
        "content": _HTML,
    },
    410: {"description": "The link has expired, or the passbook is revoked", "content": _HTML},
    503: {"description": "The central database cannot be reached", "content": _HTML},
}


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def statement_router(
    store: CentralStore, central_key: bytes, clock: Callable[[], int], default_tz: ZoneInfo
) -> APIRouter:
    """The route over `store`; `central_key` is central's raw Ed25519 public key (the
    ``c`` links'), `clock` central's time in ms (expiry), `default_tz` the time zone of
    a village whose profile names none."""
    env = _env()
    page_t = env.get_template("statement.html")
    refused_t = env.get_template("statement_refused.html")
    r = APIRouter(tags=["statement"])

    def answer(html: str, status: int, lang: str | None = None) -> HTMLResponse:
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        if lang is not None:
            response.set_cookie(LANG_COOKIE, lang, max_age=YEAR_S, httponly=True, samesite="lax")
        return response

    def refused(why: Refusal | str) -> HTMLResponse:
        status = why.status if isinstance(why, Refusal) else 503
        (zh_title, zh_text), (en_title, en_text) = REFUSALS[why]
        html = refused_t.render(zh_title=zh_title, zh_text=zh_text, en_title=en_title,
                                en_text=en_text)  # fmt: skip
        return answer(html, status)

    @r.get("/s/{token}", response_class=HTMLResponse, responses=RESPONSES)
    def statement(
        request: Request,
        token: str,
        lang: Annotated[
            str | None,
            Query(description="zh-CN (the default) or en; remembered on the phone"),
        ] = None,
    ) -> HTMLResponse:
        """A passbook's statement for a villager, by the signed link in a receipt's,
        a card's or a paper statement's QR code: balance, history (newest first, with
        a mark where central's transparency log holds the entry), kilograms per kind
        and CO2e. No household name. Read only."""
        try:
            found = statement_access.check(store, token, central_key, clock())
            if not isinstance(found, Granted):
                return refused(found)
            chosen = language(lang, request.cookies.get(LANG_COOKIE))
            tz = exports.village_tz(store, found.village_id, default_tz)
            view = statement_view.build(store, found.passbook_id, found.village_id, tz)
        except StorageError as exc:
            log.warning("statement page unavailable: %s", exc)
            return refused("unavailable")
        html = page_t.render(**_context(view, chosen, tz, clock()))
        return answer(html, 200, chosen if lang == chosen else None)

    return r


def _context(view: Statement, lang: str, tz: ZoneInfo, now_ms: int) -> dict[str, Any]:
    """Everything the template shows, as text: the template only lays it out."""
    w = WORDS[lang]
    i = 0 if lang == "zh-CN" else 1
    shown = view.newest(HISTORY)
    lines = []
    for x in shown:
        when = x.local.strftime("%Y-%m-%d %H:%M") if x.local else w["no_time"]
        what = x.what[i]
        if x.qty is not None and what:
            what = f"{what} × {x.qty}"
        lines.append(
            {
                "when": when,
                "clock_off": not x.clock_ok,
                "kiosk": w["kiosk"].format(id=x.device_id),
                "kind": kind_word(x.kind, lang),
                "what": what,
                "kg": None if x.grams is None else mass(x.grams, lang),
                "points": signed(x.points),
                "negative": x.points < 0,
                "verified": x.verified,
            }
        )
    now = exports.Period(None, None, tz).local(now_ms)
    return {
        "w": w,
        "lang": lang,
        "other": "en" if lang == "zh-CN" else "zh-CN",
        "village": view.village[i],
        "passbook": view.passbook_id,
        "balance": view.balance,
        "as_of": w["as_of"].format(time=now.strftime("%Y-%m-%d %H:%M") if now else ""),
        "lines": lines,
        "more": w["shown"].format(n=len(shown), total=len(view.lines))
        if len(view.lines) > len(shown)
        else "",
        "categories": [(names[i], mass(g, lang)) for names, g in view.kg_by_category],
        "co2e": co2(view.co2e_g),
    }
