"""A village's pages in the console: its catalogue editor and its rules upload. The
passbook, overdraft, audit and dead-letter pages are in `village_records`.

Every change goes through `central.operations` (the same functions as the CLI and the
API), with the account's name as the audit's actor. Every post carries the session's
CSRF token (`central.auth.check_csrf`), and a village account is refused (403) any
village but its own before its form is even read.

Catalogue: one small form per item (the console's forms are capped at
`central.auth.MAX_FORM_FIELDS` fields, so the whole catalogue cannot be one form),
each carrying the catalogue version it was read at; a change made meanwhile by
someone else is a 409 that shows the operator's own values again, so nothing is lost.

Rules: a file read into the text box by the page script (so the post stays a plain
urlencoded form) or pasted; first a preview with a line diff against the rules in
force, then a confirm that applies it only if the rules in force are still those the
diff was made against.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from central import operations
from central.auth import ConsoleActor, ConsoleSession, check_csrf, read_form
from central.catalogue_file import CatalogueItem, check_item
from central.store import CentralStore
from greenpass.errors import CentralError, ConfigError, ConflictError
from greenpass.record.rules import parse_rules

PageFn = Callable[..., HTMLResponse]
RULES_PATH = "rules.toml"  # the name a rules error is reported under


@dataclass(frozen=True)
class VillagePages:
    """What the village pages share: the store, the clock, and routes.py's renderer."""

    store: CentralStore
    clock: Callable[[], int]
    page: PageFn

    def refused(
        self, request: Request, session: ConsoleSession, village_id: str
    ) -> Response | None:
        """The forbidden page for another village's account; 404 for no such village."""
        if not session.actor.can_see(village_id):
            return self.page(request, "forbidden.html", session, 403)
        if village_id not in self.store.villages():
            raise HTTPException(404, f"no village {village_id!r}")
        return None

    def render(
        self,
        request: Request,
        session: ConsoleSession,
        template: str,
        village_id: str,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        return self.page(request, template, session, status, nav=village_id, **context)


def url(village_id: str, *parts: str) -> str:
    return "/".join(["/villages", quote(village_id, safe=""), *(quote(p, safe="") for p in parts)])


def _item_from_form(form: dict[str, str]) -> CatalogueItem:
    """The item a catalogue form posts; a ConfigError names the field that is wrong."""
    try:
        points: object = int(form.get("points", "").strip())
    except ValueError:
        points = form.get("points", "")
    fields = {
        "id": form.get("item_id", "").strip(),
        "name_zh": form.get("name_zh", ""),
        "name_en": form.get("name_en", ""),
        "points": points,
        "active": form.get("active") == "1",
    }
    return CatalogueItem(*check_item(fields, "item"))


def install(router: APIRouter, pages: VillagePages) -> PageFn:
    """The catalogue and rules routes; returns the catalogue page's renderer (the
    picture upload in `central.console.pictures` shows it again on an error)."""
    store, clock = pages.store, pages.clock

    # --- catalogue --------------------------------------------------------------------------

    def catalogue_page(
        request: Request,
        session: ConsoleSession,
        village_id: str,
        status: int = 200,
        error: str = "",
        stale: bool = False,
        draft: dict[str, str] | None = None,
    ) -> HTMLResponse:
        cat = operations.catalogue(store, village_id)
        return pages.render(
            request, session, "catalogue.html", village_id, status,
            catalogue=cat, error=error, stale=stale, draft=draft or {},
            saved=request.query_params.get("saved", ""),
            current={i.item_id: i for i in cat.items},
        )  # fmt: skip

    @router.get("/villages/{village_id}/catalogue")
    def catalogue(request: Request, village_id: str, session: ConsoleActor) -> Response:
        return pages.refused(request, session, village_id) or catalogue_page(
            request, session, village_id
        )

    @router.post("/villages/{village_id}/catalogue")
    async def save_item(request: Request, village_id: str, session: ConsoleActor) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        form = await read_form(request)
        check_csrf(form, session.csrf)
        draft = {k: v for k, v in form.items() if k != "csrf"}
        try:
            version = int(form.get("version", ""))
        except ValueError:
            return catalogue_page(
                request, session, village_id, 422,
                "the form carries no catalogue version; reload the page", draft=draft,
            )  # fmt: skip
        try:
            item = _item_from_form(form)
            items = operations.catalogue(store, village_id).items
            known = {i.item_id for i in items}
            if form.get("new") == "1" and item.item_id in known:
                raise ConfigError(f"item {item.item_id!r} already exists", key="item.id")
            if form.get("new") != "1" and item.item_id not in known:
                raise ConfigError(f"no item {item.item_id!r}", key="item.id")
            items = [i for i in items if i.item_id != item.item_id] + [item]
            operations.set_catalogue(
                store, village_id, items, actor=str(session.actor), now_ms=clock(),
                expected_version=version, keep_pictures=True,
            )  # fmt: skip
        except ConflictError:
            return catalogue_page(request, session, village_id, 409, stale=True, draft=draft)
        except ConfigError as exc:
            return catalogue_page(request, session, village_id, 422, str(exc), draft=draft)
        target = url(village_id, "catalogue") + f"?saved={quote(item.item_id, safe='')}"
        return RedirectResponse(target, status_code=303)

    # --- rules --------------------------------------------------------------------------------

    def rules_page(
        request: Request,
        session: ConsoleSession,
        village_id: str,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        in_force = operations.rules(store, village_id)
        context.setdefault("text", "")
        context.setdefault("error", "")
        return pages.render(
            request, session, "rules.html", village_id, status, in_force=in_force,
            applied=request.query_params.get("applied", ""),
            unchanged=request.query_params.get("unchanged", ""), **context,
        )  # fmt: skip

    def check_rules(village_id: str, text: str) -> str:
        """The version of a rules text, or a ConfigError naming the key and line."""
        if not text.strip():
            raise ConfigError("the rules file is empty", path=RULES_PATH)
        rules = parse_rules(text, RULES_PATH)
        if rules.village not in ("*", village_id):
            raise ConfigError(
                f"the rules are for village {rules.village!r}, not {village_id!r}",
                path=RULES_PATH, key="village",
            )  # fmt: skip
        return rules.version

    @router.get("/villages/{village_id}/rules")
    def rules(request: Request, village_id: str, session: ConsoleActor) -> Response:
        return pages.refused(request, session, village_id) or rules_page(
            request, session, village_id
        )

    @router.post("/villages/{village_id}/rules/preview")
    async def preview_rules(request: Request, village_id: str, session: ConsoleActor) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        form = await read_form(request)
        check_csrf(form, session.csrf)
        text = form.get("text", "").replace("\r\n", "\n")
        try:
            version = check_rules(village_id, text)
        except ConfigError as exc:
            return rules_page(request, session, village_id, 422, text=text, error=str(exc))
        old = operations.rules(store, village_id).text or ""
        diff = list(
            difflib.unified_diff(
                old.splitlines(), text.splitlines(), "in force", RULES_PATH, lineterm=""
            )
        )[2:]  # the two file-name lines say nothing the page does not
        return rules_page(
            request, session, village_id, text=text, preview=True, version=version,
            diff=diff, base=hashlib.sha256(old.encode()).hexdigest(),
        )  # fmt: skip

    @router.post("/villages/{village_id}/rules/apply")
    async def apply_rules(request: Request, village_id: str, session: ConsoleActor) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        form = await read_form(request)
        check_csrf(form, session.csrf)
        text = form.get("text", "").replace("\r\n", "\n")
        # The diff the operator confirmed was made against these rules: if another
        # operator changed them since, show the new diff instead of applying blind.
        now_in_force = operations.rules(store, village_id).text or ""
        if form.get("base", "") != hashlib.sha256(now_in_force.encode()).hexdigest():
            return rules_page(request, session, village_id, 409, text=text, stale=True)
        try:
            version = check_rules(village_id, text)
            changed = operations.set_rules(
                store, village_id, text, path=RULES_PATH, actor=str(session.actor), now_ms=clock()
            )
        except (ConfigError, CentralError) as exc:
            return rules_page(request, session, village_id, 409, text=text, error=str(exc))
        done = "applied" if changed else "unchanged"
        return RedirectResponse(
            url(village_id, "rules") + f"?{done}={quote(version, safe='')}", status_code=303
        )

    return catalogue_page
