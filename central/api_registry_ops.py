"""The registry for accounts with a token: buyers, the county, villages
(`central.registry_desk` says who sees and does what; docs/registry.md).

    GET  /api/v1/registry                               what the caller may see
    POST /api/v1/registry/issuances                     {"village_id", "period"}: county
    POST /api/v1/registry/transfers                     {"serials", "to"}
    POST /api/v1/registry/retirements                   {"serials", "beneficiary", "purpose"}
    GET  /api/v1/registry/retirements/{id}/certificate      signed JSON
    GET  /api/v1/registry/retirements/{id}/certificate.pdf  the A4 page

These are the only API routes a buyer's token opens (`central.auth.RegistryActor`).
Errors: 403 units not the caller's (or a village account, which changes nothing),
404 no such village, serials or retirement, 409 a period issued already or units
retired already, 422 malformed input (FastAPI's shape: the reason in `msg`), 503 no
signing key here.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field

from central.api_models import ID_PATTERN, Problem
from central.auth import FORBIDDEN, RegistryActor
from central.registry_db import parse_serials
from central.registry_desk import RegistryDesk, RegistryUnavailable
from central.registry_units import NotYours
from greenpass.errors import CentralError, ConfigError, ConflictError

SERIALS_PATTERN = r"^GP-[A-Za-z0-9._-]{1,64}-\d{6}-[1-9]\d{0,17}-[1-9]\d{0,17}$"
RetirementId = Annotated[int, Path(ge=1, le=2**62, description="The retirement's number")]
Serial = Annotated[str, Field(pattern=SERIALS_PATTERN, examples=["GP-dongcun-202611-1-250"])]


class _In(BaseModel):
    model_config = {"extra": "forbid"}


class IssueIn(_In):
    village_id: str = Field(pattern=ID_PATTERN)
    period: str = Field(pattern=r"^2\d{3}-(0[1-9]|1[0-2])$", description="YYYY-MM")


class IssueOut(BaseModel):
    issuance_id: str
    issued: str | None = Field(description="Serials given to the village's issuer account")
    buffer: str | None = Field(description="Serials held in the village's buffer pool")
    entries: int
    gross_g: int
    left_out: list[str] = Field(description="device:seq of deposits not in the checkpoint")
    pack: str = Field(description="The evidence pack's file name (GET /registry/packs/…)")


class TransferIn(_In):
    serials: Serial
    to: str = Field(min_length=1, max_length=64, description="The receiving registry account")


class TransferOut(BaseModel):
    serials: str
    units: int
    from_account: str
    to_account: str


class RetireIn(_In):
    serials: Serial
    beneficiary: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=200)


class RetireOut(BaseModel):
    retirement_id: int
    serials: str
    units: int
    certificate: str = Field(description="Where its signed certificate is")


def _refused(exc: CentralError | ConfigError) -> NoReturn:
    """The desk's refusal as an HTTP answer; nothing was changed."""
    if isinstance(exc, NotYours):
        raise HTTPException(403, str(exc)) from exc
    if isinstance(exc, RegistryUnavailable):
        raise HTTPException(503, str(exc)) from exc
    if isinstance(exc, ConfigError):
        message = str(exc)
        if "no such serials" in message or message.startswith("no "):
            raise HTTPException(404, message) from exc
        # The shape of FastAPI's own 422, which the API documents for every route.
        raise HTTPException(
            422, [{"loc": ["body"], "msg": message, "type": "value_error"}]
        ) from exc
    if isinstance(exc, ConflictError):
        raise HTTPException(409, str(exc)) from exc
    message = str(exc)
    raise HTTPException(404 if message.startswith("no ") else 409, message) from exc


def _answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        403: "Not the caller's units, or a village account (which changes nothing)",
        404: "No such village, serials, account or retirement",
        409: "Issued already, retired already, or changed meanwhile; nothing changed",
        503: "This central process holds no signing key or evidence packs",
    }
    return {c: {"model": Problem, "description": text[c]} for c in codes}


def registry_ops_router(desk: RegistryDesk) -> APIRouter:
    r = APIRouter(
        prefix="/api/v1/registry",
        tags=["reduction registry"],
        responses={
            **FORBIDDEN,
            400: {"model": Problem, "description": "The body is not JSON"},
            401: {"model": Problem, "description": "No or wrong token"},
            413: {"model": Problem, "description": "The body is over 16 KiB"},
            503: {"model": Problem, "description": "The central database cannot be reached"},
        },
    )

    @r.get("", summary="The registry as the caller may see it")
    def view(actor: RegistryActor) -> dict[str, Any]:
        return desk.view(actor)

    @r.post(
        "/issuances",
        status_code=201,
        summary="Issue a village's month (county)",
        responses=_answers(403, 404, 409, 503),
    )
    def issue(body: IssueIn, actor: RegistryActor) -> IssueOut:
        try:
            done = desk.issue(actor, body.village_id, body.period)
        except (CentralError, ConfigError) as exc:
            _refused(exc)
        return IssueOut(
            issuance_id=done.issuance_id,
            issued=None if done.issued is None else str(done.issued),
            buffer=None if done.buffer is None else str(done.buffer),
            entries=done.entries,
            gross_g=done.gross_g,
            left_out=done.left_out,
            pack=done.pack.name,
        )

    @r.post(
        "/transfers",
        summary="Move units to another registry account",
        responses=_answers(403, 404, 409),
    )
    def transfer(body: TransferIn, actor: RegistryActor) -> TransferOut:
        try:
            s, holder = desk.transfer(actor, body.serials, body.to)
        except (CentralError, ConfigError) as exc:
            _refused(exc)
        return TransferOut(serials=str(s), units=s.count, from_account=holder, to_account=body.to)

    @r.post(
        "/retirements",
        status_code=201,
        summary="Retire units for a beneficiary, for good",
        responses=_answers(403, 404, 409),
    )
    def retire(body: RetireIn, actor: RegistryActor) -> RetireOut:
        try:
            rid = desk.retire(actor, body.serials, body.beneficiary, body.purpose)
        except (CentralError, ConfigError) as exc:
            _refused(exc)
        s = parse_serials(body.serials)
        return RetireOut(
            retirement_id=rid,
            serials=str(s),
            units=s.count,
            certificate=f"/api/v1/registry/retirements/{rid}/certificate",
        )

    @r.get(
        "/retirements/{retirement_id}/certificate",
        summary="A retirement's signed certificate (JSON)",
        responses=_answers(404, 503),
    )
    def certificate(retirement_id: RetirementId, actor: RegistryActor, request: Request) -> Any:
        try:
            return desk.certificate(actor, retirement_id, str(request.base_url))
        except (CentralError, ConfigError) as exc:
            _refused(exc)

    @r.get(
        "/retirements/{retirement_id}/certificate.pdf",
        summary="A retirement's certificate, for people (A4 PDF)",
        response_class=Response,
        responses={
            200: {"content": {"application/pdf": {}}, "description": "The certificate"},
            **_answers(404, 503),
        },
    )
    def certificate_pdf(
        retirement_id: RetirementId, actor: RegistryActor, request: Request
    ) -> Response:
        try:
            doc = desk.certificate(actor, retirement_id, str(request.base_url))
        except (CentralError, ConfigError) as exc:
            _refused(exc)
        return Response(
            desk.certificate_pdf(doc),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="retirement-{retirement_id}.pdf"'
            },
        )

    return r
