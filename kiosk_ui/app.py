"""The touchscreen web app: one page, live state over Server-Sent Events, actions as POSTs.

    GET  /                     the page (Chromium in kiosk mode shows it full-screen)
    GET  /events               text/event-stream: the kiosk's view, each time it changes
    GET  /api/view             the current view (JSON)
    POST /api/category         {"category": "paper"}            villager: choose a category
    POST /api/cancel           {}                               back / done / sign out
    POST /api/language         {"lang": "en"}
    POST /api/staff/pin        {"pin": "1234"}
    POST /api/staff/task       {"task": "redeem"}               menu, redeem, enrol, award …
    POST /api/staff/signout    {}
    POST /api/staff/redeem     {"cart": [["rice-5kg", 1]]}      for the scanned villager
    POST /api/staff/award      {"points": 50, "reason": "…"}
    POST /api/staff/enrol      {"household": "张家"}            → passbook id and card QR
    POST /api/staff/reverse    {"seq": 12, "reason": "…"}, or {"entry": "K1#12", "reason": "…"}
                               for another kiosk's entry (reserved at central first)
    POST /api/staff/restock    {"item": "soap", "qty": 20}
    POST /api/staff/replace    {"passbook": "K0001-00003"}      a lost card → new passbook
                                                                and card QR, balance carried
    POST /api/staff/reprint    {}                               the scanned villager's last
                                                                receipt, again (answers once
                                                                printed, or 409 and why not)
    GET  /api/staff/passbooks?q=…  the village's passbooks by id or name (names masked)
    GET  /api/catalogue        goods and services with stock (and a picture URL or null)
    GET  /api/catalogue/I/picture  item I's JPEG thumbnail from central's catalogue
    GET  /api/staff/entries    recent entries (to pick one to reverse); `other`: whether
                               another kiosk's entry may be reversed here (central takes it)
    GET  /api/staff/other-entry?id=K1%2312  another kiosk's entry, reserved for this one
    GET  /api/staff/report     today's report
    GET  /api/card.svg?text=…  a QR code as SVG (printing a new passbook card)

Refusals answer 409 with {"code", "message"} and the refusal's details (e.g.
"tries_left" for a wrong PIN); malformed requests 400; staff
routes without a signed-in staff member 403. The page renders only what the
view says (see `edge.kiosk.view`).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from edge.kiosk import actions as act
from edge.kiosk import other_reversals as others
from edge.kiosk.daemon import Kiosk
from edge.kiosk.report import day_report
from greenpass.errors import Refused

HERE = Path(__file__).parent
KEEPALIVE_S = 15.0
RECONNECT_MS = 1000
Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    pass


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("the body must be JSON") from exc
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"{key!r} must be a {kind.__name__}")
    return value


def _cart(data: dict[str, Any]) -> list[tuple[str, int]]:
    cart = data.get("cart")
    if not isinstance(cart, list) or not cart:
        raise BadRequest("'cart' must be a non-empty list of [item, qty]")
    out = []
    for line in cart:
        if (
            not isinstance(line, list)
            or len(line) != 2
            or not isinstance(line[0], str)
            or not isinstance(line[1], int)
            or isinstance(line[1], bool)
        ):
            raise BadRequest("each cart line is [item id, quantity]")
        out.append((line[0], line[1]))
    return out


def _guard(fn: Callable[[Request], Awaitable[Any]]) -> Handler:
    """JSON in, JSON out; refusals become 409 with the code the page translates."""

    async def handler(request: Request) -> Response:
        try:
            result = await fn(request)
        except BadRequest as exc:
            return JSONResponse({"code": "bad_request", "message": str(exc)}, status_code=400)
        except Refused as exc:
            status = 403 if exc.code == "not_signed_in" else 409
            body = {**exc.details, "code": exc.code, "message": str(exc)}
            return JSONResponse(body, status_code=status)
        return JSONResponse({"ok": True, **(result or {})})

    return handler


def build_app(kiosk: Kiosk, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    k = kiosk

    async def page(request: Request) -> Response:
        return templates.TemplateResponse(request, "kiosk.html", {"view": k.view()})

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            q = k.subscribe()
            yield f"retry: {RECONNECT_MS}\n\n"  # a restarted kiosk is back on screen in 1 s
            try:
                while True:
                    try:
                        view = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    if view is None:  # the kiosk is stopping
                        return
                    yield f"data: {json.dumps(view, ensure_ascii=False)}\n\n"
            finally:
                k.unsubscribe(q)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def view(request: Request) -> Response:
        return JSONResponse(k.view())

    async def category(r: Request) -> None:
        await act.choose_category(k, _field(await _body(r), "category", str))

    async def cancel(r: Request) -> None:
        await act.cancel(k)

    async def language(r: Request) -> None:
        await act.set_language(k, _field(await _body(r), "lang", str))

    async def pin(r: Request) -> dict[str, Any]:
        return await act.staff_pin(k, _field(await _body(r), "pin", str))

    async def task(r: Request) -> None:
        await act.staff_task(k, _field(await _body(r), "task", str))

    async def signout(r: Request) -> None:
        await act.sign_out(k)

    async def redeem(r: Request) -> dict[str, Any]:
        return await act.redeem(k, _cart(await _body(r)))

    async def award(r: Request) -> dict[str, Any]:
        d = await _body(r)
        return await act.award(k, _field(d, "points", int), _field(d, "reason", str))

    async def enrol(r: Request) -> dict[str, Any]:
        return await act.enrol(k, _field(await _body(r), "household", str))

    async def reverse(r: Request) -> dict[str, Any]:
        d = await _body(r)
        if "entry" in d:
            return await others.reverse(k, _field(d, "entry", str), _field(d, "reason", str))
        return await act.reverse(k, _field(d, "seq", int), _field(d, "reason", str))

    async def other_entry(r: Request) -> dict[str, Any]:
        return {"entry": await others.find(k, r.query_params.get("id", ""))}

    async def restock(r: Request) -> dict[str, Any]:
        d = await _body(r)
        return await act.restock(k, _field(d, "item", str), _field(d, "qty", int))

    async def replace(r: Request) -> dict[str, Any]:
        return await act.replace(k, _field(await _body(r), "passbook", str))

    async def reprint(r: Request) -> dict[str, Any]:
        return await act.reprint(k)

    async def passbooks(r: Request) -> dict[str, Any]:
        act.require_staff(k)
        query = r.query_params.get("q", "")
        return {"passbooks": await k.in_db(act.find_passbooks, k, query)}

    async def catalogue(r: Request) -> dict[str, Any]:
        return {"items": await k.in_db(act.catalogue, k)}

    async def picture(r: Request) -> Response:
        found = await k.in_db(act.item_picture, k, r.path_params["item"])
        if found is None:
            return JSONResponse({"code": "not_found", "message": "no picture"}, status_code=404)
        # The URL carries the picture's digest (?v=), so a cached copy is never stale.
        return Response(
            found,
            media_type="image/jpeg",
            headers={"Cache-Control": "max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    async def entries(r: Request) -> dict[str, Any]:
        act.require_staff(k)
        up = k.uplink
        other = up is not None and up.other_reversals
        return {"entries": await k.in_db(act.recent_entries, k), "other": other}

    async def report(r: Request) -> dict[str, Any]:
        act.require_staff(k)
        return {"report": await k.in_db(day_report, k.require_ledger())}

    async def card_svg(request: Request) -> Response:
        import segno  # noqa: PLC0415 - only when a card is printed

        text = request.query_params.get("text", "")
        if not text or len(text) > 400:
            return JSONResponse({"code": "bad_request", "message": "text"}, status_code=400)
        out = io.BytesIO()
        segno.make(text, error="m").save(out, kind="svg", scale=4, border=2)
        return Response(out.getvalue(), media_type="image/svg+xml")

    post = ["POST"]
    routes: list[BaseRoute] = [
        Route("/", page),
        Route("/events", events),
        Route("/api/view", view),
        Route("/api/category", _guard(category), methods=post),
        Route("/api/cancel", _guard(cancel), methods=post),
        Route("/api/language", _guard(language), methods=post),
        Route("/api/staff/pin", _guard(pin), methods=post),
        Route("/api/staff/task", _guard(task), methods=post),
        Route("/api/staff/signout", _guard(signout), methods=post),
        Route("/api/staff/redeem", _guard(redeem), methods=post),
        Route("/api/staff/award", _guard(award), methods=post),
        Route("/api/staff/enrol", _guard(enrol), methods=post),
        Route("/api/staff/reverse", _guard(reverse), methods=post),
        Route("/api/staff/restock", _guard(restock), methods=post),
        Route("/api/staff/replace", _guard(replace), methods=post),
        Route("/api/staff/reprint", _guard(reprint), methods=post),
        Route("/api/staff/passbooks", _guard(passbooks)),
        Route("/api/catalogue", _guard(catalogue)),
        Route("/api/catalogue/{item}/picture", picture),
        Route("/api/staff/entries", _guard(entries)),
        Route("/api/staff/other-entry", _guard(other_entry)),
        Route("/api/staff/report", _guard(report)),
        Route("/api/card.svg", card_svg),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        *extra_routes,
    ]
    return Starlette(routes=routes)
