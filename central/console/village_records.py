"""A village's passbooks (search, statement, revoke / reinstate / replace, a household's
personal data exported or erased), its
overdrafts and its audit log in the console; the county-wide audit (every village's
rows and the county accounts') and central's dead letters (county accounts only, as in
the API: a refused message has no village it can be trusted to belong to).

Revoke, reinstate and replace are `central.passbooks`' functions, audited with the
account's name; the village's next state push carries them to its kiosks.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from central import audit, passbooks, personal, reports
from central.auth import ConsoleActor, ConsoleSession, check_csrf, read_form
from central.console.village import VillagePages, url
from greenpass.errors import CentralError, ConfigError

AUDIT_PAGE = 50
STATEMENT_LINES = 200  # the newest; the whole statement is an export
ACTIONS = ("revoke", "reinstate", "replace", "erase", "correct")


def as_text(value: Any) -> str:
    """An audit value for people, on one line: ``key: value`` pairs, lists in brackets,
    and a missing value as a dash (never "null" or a blank cell)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {as_text(v)}" for k, v in sorted(value.items())) or "—"
    if isinstance(value, list):
        return (
            "["
            + "; ".join(f"({as_text(v)})" if isinstance(v, dict) else as_text(v) for v in value)
            + "]"
        )
    return str(value)


def install(router: APIRouter, pages: VillagePages) -> None:
    store, clock = pages.store, pages.clock

    # --- passbooks ----------------------------------------------------------------------------

    @router.get("/villages/{village_id}/passbooks")
    def search(request: Request, village_id: str, session: ConsoleActor, q: str = "") -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        q = q.strip()[:64]
        found = passbooks.search(store, village_id, q)
        return pages.render(request, session, "passbooks.html", village_id, q=q, found=found)

    def passbook_of(village_id: str, passbook_id: str) -> dict[str, str | None]:
        """The passbook's status; 404 unless central knows it in this village."""
        try:
            info = passbooks.status(store, passbook_id)
        except CentralError as exc:
            raise HTTPException(404, str(exc)) from exc
        if info["village_id"] != village_id:
            raise HTTPException(404, f"no passbook {passbook_id!r} in village {village_id!r}")
        return info

    def passbook_page(
        request: Request,
        session: ConsoleSession,
        village_id: str,
        passbook_id: str,
        status: int = 200,
        error: str = "",
    ) -> HTMLResponse:
        info = passbook_of(village_id, passbook_id)
        lines = reports.statement(store, passbook_id)
        return pages.render(
            request, session, "passbook.html", village_id, status, passbook_id=passbook_id,
            info=info, lines=list(reversed(lines[-STATEMENT_LINES:])), total=len(lines),
            balance=lines[-1].balance if lines else 0, error=error,
            done=request.query_params.get("done", ""),
            erased_ms=personal.erased_at(store, passbook_id),
        )  # fmt: skip

    @router.get("/villages/{village_id}/passbooks/{passbook_id}")
    def passbook(
        request: Request, village_id: str, passbook_id: str, session: ConsoleActor
    ) -> Response:
        return pages.refused(request, session, village_id) or passbook_page(
            request, session, village_id, passbook_id
        )

    @router.get("/villages/{village_id}/passbooks/{passbook_id}/personal-data.json")
    def export(
        request: Request, village_id: str, passbook_id: str, session: ConsoleActor
    ) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        passbook_of(village_id, passbook_id)
        body = json.dumps(personal.export(store, passbook_id), ensure_ascii=False, indent=2)
        name = f"personal-data-{passbook_id}.json"
        return Response(
            body.encode(),
            media_type="application/json; charset=utf-8",
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
                "Cache-Control": "no-store",  # a household's data stays off shared caches
            },
        )

    @router.post("/villages/{village_id}/passbooks/{passbook_id}/{action}")
    async def change(
        request: Request, village_id: str, passbook_id: str, action: str, session: ConsoleActor
    ) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        if action not in ACTIONS:
            raise HTTPException(404, f"no action {action!r}")
        form = await read_form(request)
        check_csrf(form, session.csrf)
        passbook_of(village_id, passbook_id)
        actor, now, target = str(session.actor), clock(), passbook_id
        try:
            if action == "revoke":
                passbooks.revoke(
                    store, passbook_id, reason=form.get("reason", ""), actor=actor, now_ms=now
                )
            elif action == "reinstate":
                passbooks.reinstate(store, passbook_id, actor=actor, now_ms=now)
            elif action == "erase":
                # Irreversible: the operator types the passbook id to say it is this one.
                if form.get("confirm", "").strip() != passbook_id:
                    raise ConfigError("type the passbook id to confirm the erasure")
                personal.erase(store, passbook_id, actor=actor, now_ms=now)
            elif action == "correct":
                personal.correct(
                    store, passbook_id, form.get("household", ""), actor=actor, now_ms=now
                )
            else:
                target = passbooks.replace(store, passbook_id, actor=actor, now_ms=now)
        except ConfigError as exc:
            return passbook_page(request, session, village_id, passbook_id, 422, str(exc))
        except CentralError as exc:
            return passbook_page(request, session, village_id, passbook_id, 409, str(exc))
        return RedirectResponse(
            url(village_id, "passbooks", target) + f"?done={action}", status_code=303
        )

    # --- overdrafts, audit, dead letters ----------------------------------------------------------

    @router.get("/villages/{village_id}/overdrafts")
    def overdrafts(request: Request, village_id: str, session: ConsoleActor) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        rows = reports.overdrafts(store, village_id)
        doubles = reports.double_reversals(store, village_id)
        return pages.render(
            request, session, "overdrafts.html", village_id, rows=rows, doubles=doubles
        )

    @router.get("/villages/{village_id}/audit")
    def audit_log(
        request: Request, village_id: str, session: ConsoleActor, before: int | None = None
    ) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        rows = audit.rows(store, village_id=village_id, limit=AUDIT_PAGE, before_id=before)
        return pages.render(
            request, session, "audit.html", village_id, rows=rows,
            older=rows[-1].id if len(rows) == AUDIT_PAGE else None,
        )  # fmt: skip

    @router.get("/audit")
    def audit_all(request: Request, session: ConsoleActor, before: int | None = None) -> Response:
        # County accounts only: it holds every village's rows and the county accounts'
        # own (which belong to no village, so no village page shows them).
        if not session.actor.county:
            return pages.page(request, "forbidden.html", session, 403)
        rows = audit.rows(store, limit=AUDIT_PAGE, before_id=before)
        return pages.page(
            request, "audit_all.html", session, rows=rows,
            older=rows[-1].id if len(rows) == AUDIT_PAGE else None,
        )  # fmt: skip

    @router.get("/dead-letters")
    def dead_letters(request: Request, session: ConsoleActor) -> Response:
        if not session.actor.county:
            return pages.page(request, "forbidden.html", session, 403)
        rows = reports.dead_letters(store, 100)
        return pages.page(request, "dead_letters.html", session, rows=rows)
