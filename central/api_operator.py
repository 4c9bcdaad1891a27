"""The operator's routes: villages, rules, catalogues, passbooks, the audit (issue 12).

The same operations as `greenpass central village|rules|catalogue|passbook|audit`
(`central.operations`, `central.passbooks`, `central.audit`), under ``/api/v1/``:

    GET  /villages                                  every village the caller may see
    PUT  /villages/{village_id}                     create, or set names and time zone
    GET  /villages/{village_id}
    GET  /villages/{village_id}/rules               in force, and every version
    PUT  /villages/{village_id}/rules               {"text"}: put a rules file in force
    GET  /villages/{village_id}/catalogue           items and the catalogue's version
    PUT  /villages/{village_id}/catalogue           {"version", "items"}: 409 if it moved
    GET  /villages/{village_id}/catalogue/{item_id}/picture   the JPEG thumbnail
    POST /passbooks/{passbook_id}/revoke            {"reason"}
    POST /passbooks/{passbook_id}/reinstate
    POST /passbooks/{passbook_id}/replace           a lost card: a new passbook, 201
    GET  /passbooks/{passbook_id}/personal-data     all held about the household (PIPL)
    POST /passbooks/{passbook_id}/erase             erase its name; points stay
    POST /passbooks/{passbook_id}/correct           {"household_name"}: correct its name
    GET  /audit?village_id=V&limit=N&before_id=I    newest first

Who did it is the caller's account (`central.auth.current_actor`), written to the
audit with every change. Errors: 404 unknown village or passbook, 409 a change
that conflicts (the catalogue changed meanwhile, a rules version reused with other
text, a card already replaced), 422 a rules file or item that does not parse, with
the key and line in `msg`.
"""

from typing import Annotated, Any, ClassVar, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from central import audit, operations, passbooks, personal, reports
from central.api_models import ID_PATTERN, Problem
from central.api_operator_models import (
    AuditOut,
    CatalogueIn,
    CatalogueOut,
    CorrectionIn,
    CorrectionOut,
    ErasureOut,
    PassbookOut,
    ReplacementOut,
    RevokeIn,
    RulesIn,
    RulesOut,
    VillageIn,
    VillageOut,
)
from central.auth import FORBIDDEN, CurrentActor, current_actor, require_county, require_village
from central.store import CentralStore
from greenpass.errors import CentralError, ConfigError, ConflictError

VillageId = Annotated[str, Path(pattern=ID_PATTERN, description="Village id")]
ItemId = Annotated[str, Path(pattern=ID_PATTERN, description="Item id")]
PassbookId = Annotated[str, Path(min_length=1, max_length=64, description="Passbook id")]

_VALIDATION = {
    "description": "Malformed input; for a rules file or item, `msg` names the key and line",
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        404: "No such village or passbook",
        409: "Conflicts with what is stored (changed meanwhile, a reused rules version, "
        "a card already replaced); nothing was changed",
    }
    return {c: {"model": Problem, "description": text[c]} for c in codes}


def _refused(exc: CentralError | ConfigError, field: str = "body") -> NoReturn:
    """The operation's refusal as an HTTP answer; nothing was changed."""
    if isinstance(exc, ConfigError):
        raise HTTPException(
            422, [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}]
        ) from exc
    if isinstance(exc, ConflictError):
        raise HTTPException(409, str(exc)) from exc
    message = str(exc)
    raise HTTPException(404 if message.startswith("no ") else 409, message) from exc


class _Route(APIRoute):
    """A route whose 405 lists every method of its path in `Allow`. Starlette answers
    an unsupported method from the first route of the path, so `GET` and `PUT` of one
    path as two routes would each claim to be the only one."""

    _methods: ClassVar[dict[str, set[str]]] = {}

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self._methods.setdefault(self.path_format, set()).update(self.methods or ())

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allow = ", ".join(sorted(self._methods.get(self.path_format, self.methods)))
            raise StarletteHTTPException(405, headers={"Allow": allow})
        await super().handle(scope, receive, send)


def operator_router(store: CentralStore, clock: Any) -> APIRouter:
    """The routes over `store`; `clock()` is central's time in ms."""
    r = APIRouter(
        route_class=_Route,
        prefix="/api/v1",
        dependencies=[Depends(current_actor)],
        responses={
            **FORBIDDEN,
            400: {"model": Problem, "description": "The body is not JSON"},
            401: {"model": Problem, "description": "No or wrong token"},
            413: {"model": Problem, "description": "The body is over 16 KiB"},
            503: {"model": Problem, "description": "The central database cannot be reached"},
        },
        tags=["operator"],
    )

    def village_seen(village_id: str, actor: CurrentActor) -> operations.Village:
        require_village(actor, village_id)  # 403 before 404: nothing about other villages
        try:
            return operations.village(store, village_id)
        except CentralError as exc:
            _refused(exc)

    def passbook_village(passbook_id: str, actor: CurrentActor) -> str:
        try:
            village = passbooks.village_of(store, passbook_id)
        except CentralError as exc:
            _refused(exc)
        require_village(actor, village)
        return village

    @r.get("/villages", response_model=list[VillageOut])
    def list_villages(actor: CurrentActor) -> list[VillageOut]:
        return [VillageOut.of(v) for v in operations.villages(store) if actor.can_see(v.village_id)]

    @r.put(
        "/villages/{village_id}",
        response_model=VillageOut,
        responses={201: {"model": VillageOut, "description": "Created"}, 422: _VALIDATION},
    )
    def put_village(
        village_id: VillageId, body: VillageIn, actor: CurrentActor, response: Response
    ) -> VillageOut:
        require_county(actor)
        try:
            outcome = operations.add_village(
                store, village_id, name_zh=body.name_zh, name_en=body.name_en,
                timezone=body.timezone, actor=str(actor), now_ms=clock(),
            )  # fmt: skip
        except (CentralError, ConfigError) as exc:
            _refused(exc)
        if outcome == "created":
            response.status_code = 201
        return VillageOut.of(operations.village(store, village_id))

    @r.get("/villages/{village_id}", response_model=VillageOut, responses=_responses(404))
    def get_village(village_id: VillageId, actor: CurrentActor) -> VillageOut:
        return VillageOut.of(village_seen(village_id, actor))

    @r.get("/villages/{village_id}/rules", response_model=RulesOut, responses=_responses(404))
    def get_rules(village_id: VillageId, actor: CurrentActor) -> RulesOut:
        village_seen(village_id, actor)
        return RulesOut.of(operations.rules(store, village_id))

    @r.put(
        "/villages/{village_id}/rules",
        response_model=RulesOut,
        responses={**_responses(404, 409), 422: _VALIDATION},
    )
    def put_rules(village_id: VillageId, body: RulesIn, actor: CurrentActor) -> RulesOut:
        village_seen(village_id, actor)
        try:
            operations.set_rules(
                store, village_id, body.text, path="rules", actor=str(actor), now_ms=clock()
            )
        except (CentralError, ConfigError) as exc:
            _refused(exc, "text")
        return RulesOut.of(operations.rules(store, village_id))

    @r.get(
        "/villages/{village_id}/catalogue", response_model=CatalogueOut, responses=_responses(404)
    )
    def get_catalogue(village_id: VillageId, actor: CurrentActor) -> CatalogueOut:
        village_seen(village_id, actor)
        return CatalogueOut.of(operations.catalogue(store, village_id))

    @r.put(
        "/villages/{village_id}/catalogue",
        response_model=CatalogueOut,
        responses={**_responses(404, 409), 422: _VALIDATION},
    )
    def put_catalogue(
        village_id: VillageId, body: CatalogueIn, actor: CurrentActor
    ) -> CatalogueOut:
        village_seen(village_id, actor)
        try:
            done = operations.set_catalogue(
                store, village_id, [i.item() for i in body.items], actor=str(actor),
                now_ms=clock(), expected_version=body.version, keep_pictures=True,
            )  # fmt: skip
        except (CentralError, ConfigError) as exc:
            _refused(exc, "items")
        return CatalogueOut.of(done)

    @r.get(
        "/villages/{village_id}/catalogue/{item_id}/picture",
        response_class=Response,
        responses={
            200: {"content": {"image/jpeg": {}}, "description": "The JPEG thumbnail"},
            **_responses(404),
        },
    )
    def get_picture(village_id: VillageId, item_id: ItemId, actor: CurrentActor) -> Response:
        village_seen(village_id, actor)
        for item in operations.catalogue(store, village_id).items:
            if item.item_id == item_id and item.picture is not None:
                return Response(item.picture, media_type="image/jpeg")
        raise HTTPException(404, f"no picture for item {item_id!r}")

    @r.post(
        "/passbooks/{passbook_id}/revoke", response_model=PassbookOut, responses=_responses(404)
    )
    def revoke(passbook_id: PassbookId, body: RevokeIn, actor: CurrentActor) -> PassbookOut:
        village = passbook_village(passbook_id, actor)
        try:
            changed = passbooks.revoke(
                store, passbook_id, reason=body.reason, actor=str(actor), now_ms=clock()
            )
        except (CentralError, ConfigError) as exc:
            _refused(exc, "reason")
        return PassbookOut(
            passbook_id=passbook_id, village_id=village, status="revoked", changed=changed
        )

    @r.post(
        "/passbooks/{passbook_id}/reinstate",
        response_model=PassbookOut,
        responses=_responses(404, 409),
    )
    def reinstate(passbook_id: PassbookId, actor: CurrentActor) -> PassbookOut:
        village = passbook_village(passbook_id, actor)
        try:
            changed = passbooks.reinstate(store, passbook_id, actor=str(actor), now_ms=clock())
        except CentralError as exc:
            _refused(exc)
        return PassbookOut(
            passbook_id=passbook_id, village_id=village, status="active", changed=changed
        )

    @r.post(
        "/passbooks/{passbook_id}/replace",
        response_model=ReplacementOut,
        status_code=201,
        responses=_responses(404, 409),
    )
    def replace(passbook_id: PassbookId, actor: CurrentActor) -> ReplacementOut:
        village = passbook_village(passbook_id, actor)
        try:
            new = passbooks.replace(store, passbook_id, actor=str(actor), now_ms=clock())
        except CentralError as exc:
            _refused(exc)
        lines = reports.statement(store, new)
        return ReplacementOut(
            old_passbook_id=passbook_id,
            new_passbook_id=new,
            village_id=village,
            household_name=passbooks.household(store, new),
            balance=lines[-1].balance if lines else 0,
        )

    @r.get("/passbooks/{passbook_id}/personal-data", responses=_responses(404))
    def export_personal(passbook_id: PassbookId, actor: CurrentActor) -> dict[str, Any]:
        """Everything central holds about the household (a request under the PIPL):
        its passbooks with their names, statuses and commitments, replacements, entries
        with the running balance, and the audit rows about it (docs/privacy.md)."""
        passbook_village(passbook_id, actor)
        try:
            return personal.export(store, passbook_id)
        except CentralError as exc:
            _refused(exc)

    @r.post(
        "/passbooks/{passbook_id}/correct",
        response_model=CorrectionOut,
        responses=_responses(404, 409),
    )
    def correct_personal(
        passbook_id: PassbookId, body: CorrectionIn, actor: CurrentActor
    ) -> CorrectionOut:
        """Correct the household's name on every passbook of its account (`409` once
        erased); kiosks take it with their next state; audited as `passbook.correct`."""
        village = passbook_village(passbook_id, actor)
        try:
            cards = personal.correct(
                store, passbook_id, body.household_name, actor=str(actor), now_ms=clock()
            )
        except (CentralError, ConfigError) as exc:
            _refused(exc, "household_name")
        return CorrectionOut(passbook_id=passbook_id, village_id=village, corrected=cards)

    @r.post("/passbooks/{passbook_id}/erase", response_model=ErasureOut, responses=_responses(404))
    def erase_personal(passbook_id: PassbookId, actor: CurrentActor) -> ErasureOut:
        """Erase the household's name (every passbook of its account); its points and
        CO2e stay under the pseudonymous ids; audited as `passbook.erase`."""
        village = passbook_village(passbook_id, actor)
        try:
            erased = personal.erase(store, passbook_id, actor=str(actor), now_ms=clock())
        except CentralError as exc:
            _refused(exc)
        return ErasureOut(passbook_id=passbook_id, village_id=village, erased=erased)

    @r.get("/audit", response_model=list[AuditOut], responses=_responses(404))
    def audit_rows(
        actor: CurrentActor,
        village_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> list[AuditOut]:
        if village_id is None:
            require_county(actor)  # a village account sees only its own village's
        else:
            village_seen(village_id, actor)
        found = audit.rows(store, village_id=village_id, limit=limit, before_id=before_id)
        return [AuditOut.of(row) for row in found]

    return r
