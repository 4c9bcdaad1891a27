"""The console's reduction-unit pages (``/units``): a buyer's holdings, retirements and
certificates; the county's issuances, buyer accounts, transfers and retirements; a
village's units, read only. Who sees and does what: `central.registry_desk`.

A buyer who logs in lands here (`central.auth.console_actor` sends them); these are
the only pages that take `RegistryConsoleActor`. Forms post a CSRF token; a refusal
comes back as the page with the reason and nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from central import registry
from central.auth import ConsoleSession, RegistryConsoleActor, check_csrf, read_form
from central.registry_db import registry_accounts
from central.registry_desk import RegistryDesk, RegistryUnavailable
from central.registry_units import NotYours
from greenpass.errors import CentralError, ConfigError

PageFn = Callable[..., HTMLResponse]
ACTIONS = ("issue", "transfer", "retire", "account")


def install(router: APIRouter, desk: RegistryDesk, page: PageFn) -> None:
    store = desk.store

    def buyers() -> list[tuple[str, str]]:
        a = registry_accounts
        with store.read("listing registry accounts") as conn:
            rows = conn.execute(
                a.select().where(a.c.kind == "buyer").order_by(a.c.account_id)
            ).all()
        return [(r.account_id, r.name) for r in rows]

    def units_page(
        request: Request,
        session: ConsoleSession,
        status: int = 200,
        error: str = "",
        draft: dict[str, str] | None = None,
    ) -> HTMLResponse:
        actor = session.actor
        view = desk.view(actor)
        done = request.query_params.get("done", "")
        free = [h for h in view["holdings"] if not h["retirement"]]
        held = [h for h in free if not h["account"].startswith("buffer:")]
        buffered = [h for h in free if h["account"].startswith("buffer:")]
        may_act = actor.county or actor.buyer
        return page(
            request, "units.html", session, status, view=view, error=error,
            draft=draft or {}, may_act=may_act, done=done if done in ACTIONS else "",
            what=request.query_params.get("what", "")[:200],
            villages=sorted(store.villages()) if actor.county else [],
            buyers=buyers() if may_act else [], signing=desk.key is not None,
            held=held, buffered=buffered,
        )  # fmt: skip

    @router.get("/units")
    def units(request: Request, session: RegistryConsoleActor) -> Response:
        return units_page(request, session)

    @router.post("/units/{action}")
    async def act(request: Request, action: str, session: RegistryConsoleActor) -> Response:
        if action not in ACTIONS:
            raise HTTPException(404, f"no action {action!r}")
        form = await read_form(request)
        check_csrf(form, session.csrf)
        actor = session.actor
        try:
            done = _do(desk, action, actor, form)
        except NotYours as exc:
            return units_page(request, session, 403, str(exc), form)
        except RegistryUnavailable as exc:
            return units_page(request, session, 503, str(exc), form)
        except (CentralError, ConfigError) as exc:
            return units_page(request, session, 409 if _conflict(exc) else 422, str(exc), form)
        return RedirectResponse(
            f"/units?done={action}&what={quote(done, safe='')}", status_code=303
        )

    def certificate(request: Request, session: ConsoleSession, rid: int) -> dict[str, Any]:
        try:
            return desk.certificate(session.actor, rid, str(request.base_url))
        except RegistryUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        except CentralError as exc:
            raise HTTPException(404, str(exc)) from exc

    @router.get("/units/certificates/{rid}.json")
    def certificate_json(request: Request, rid: int, session: RegistryConsoleActor) -> Response:
        doc = certificate(request, session, rid)
        return Response(
            json.dumps(doc, ensure_ascii=False, indent=1).encode(),
            media_type="application/json; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="retirement-{rid}.json"'},
        )

    @router.get("/units/certificates/{rid}.pdf")
    def certificate_pdf(request: Request, rid: int, session: RegistryConsoleActor) -> Response:
        doc = certificate(request, session, rid)
        return Response(
            desk.certificate_pdf(doc),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="retirement-{rid}.pdf"'},
        )


def _conflict(exc: Exception) -> bool:
    text = str(exc)
    return "already" in text or "retired once" in text or "meanwhile" in text


def _do(desk: RegistryDesk, action: str, actor: Any, form: dict[str, str]) -> str:
    """Carry out one form's action; what was done, for the page's notice (the action
    names the sentence around it, in the page's language)."""
    if action == "issue":
        done = desk.issue(actor, form.get("village", ""), form.get("period", "").strip())
        return f"{done.issuance_id} ({done.issued or '-'}; {done.buffer or '-'})"
    if action == "transfer":
        s, holder = desk.transfer(actor, form.get("serials", ""), form.get("to", ""))
        return f"{s}: {holder} → {form.get('to', '').strip()}"
    if action == "retire":
        rid = desk.retire(
            actor, form.get("serials", ""), form.get("beneficiary", ""), form.get("purpose", "")
        )
        return f"#{rid} {form.get('serials', '').strip()}"
    if not actor.county:
        raise NotYours("only a county account adds registry accounts")
    account_id = form.get("account_id", "").strip()
    registry.add_account(
        desk.store, account_id, " ".join(form.get("name", "").split()) or account_id,
        actor=actor.name, now_ms=desk.clock(),
    )  # fmt: skip
    return account_id
