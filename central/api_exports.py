"""The export routes (issue 12): a village's totals and entries, and a passbook's
statement, as CSV or XLSX over a range of local dates (`central.exports`).

    GET /api/v1/villages/{village_id}/totals.{csv|xlsx}?from=YYYY-MM-DD&to=YYYY-MM-DD&lang=en
    GET /api/v1/villages/{village_id}/entries.{csv|xlsx}?from=…&to=…&lang=…
    GET /api/v1/passbooks/{passbook_id}/statement.{csv|xlsx}?from=…&to=…&lang=…

Scoped like every admin route: a village account gets only its own village (403).
The console's Exports page serves the same files through `export_response`.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse

from central import exports, reports
from central.api_models import ID_PATTERN, Problem
from central.auth import FORBIDDEN, Actor, CurrentActor, current_actor, require_village
from central.export_files import csv_chunks, xlsx_bytes
from central.store import CentralStore
from greenpass.errors import CentralError

Format = Literal["csv", "xlsx"]
What = Literal["totals", "entries", "statement"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

FromDate = Annotated[
    date | None,
    Query(alias="from", description="First local day (YYYY-MM-DD), included; default: the start"),
]
ToDate = Annotated[
    date | None,
    Query(alias="to", description="Last local day (YYYY-MM-DD), included; default: today"),
]
Lang = Annotated[
    Literal["zh-CN", "en"],
    Query(description="Language of the headers and kinds (category names come in both)"),
]

VillageId = Annotated[str, Path(pattern=ID_PATTERN, description="Village id")]
PassbookId = Annotated[str, Path(min_length=1, max_length=64, description="Passbook id")]

_FILES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A CSV (UTF-8 with a byte order mark) or XLSX file",
        "content": {"text/csv": {}, XLSX_TYPE: {}},
    },
    404: {"model": Problem, "description": "No such village or passbook"},
    413: {"model": Problem, "description": "Too many rows for a spreadsheet: a shorter range"},
    422: {"description": "A malformed date (FastAPI's validation error)"},
}


def period_of(first: date | None, last: date | None, tz: ZoneInfo) -> exports.Period:
    return exports.Period(first, last, tz)


def export_response(
    store: CentralStore,
    what: What,
    fmt: Format,
    target: str,
    first: date | None,
    last: date | None,
    *,
    actor: Actor,
    default_tz: ZoneInfo,
    lang: str,
) -> Response:
    """The file for `what` of `target` (a village, or for a statement a passbook), with
    `actor`'s scope checked first (403 before 404: nothing leaks about other villages)."""
    if what == "statement":
        lines = reports.statement(store, target)
        villages = {_village_of(store, x.entry.device_id) for x in lines}
        for village in villages:
            require_village(actor, village)
        if not lines:
            raise HTTPException(404, f"no passbook {target!r}")
        village_id = sorted(villages)[0]
    else:
        village_id = target
        require_village(actor, village_id)
        if village_id not in store.villages():
            raise HTTPException(404, f"no village {village_id!r}")
    period = period_of(first, last, exports.village_tz(store, village_id, default_tz))
    if what == "totals":
        table = exports.totals_table(store, village_id, period, lang)
    elif what == "entries":
        table = exports.entries_table(store, village_id, period, lang)
    else:
        table = exports.statement_table(store, lines, village_id, period, lang)
    name = f"{target}-{what}-{period.label()}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "xlsx":
        about = [
            ("village" if what != "statement" else "passbook", target),
            ("from", str(period.first or "")),
            ("to", str(period.last or "")),
            ("time zone", str(period.tz)),
        ]
        try:
            body = xlsx_bytes([table], about)
        except CentralError as exc:
            raise HTTPException(413, str(exc)) from exc
        return Response(body, media_type=XLSX_TYPE, headers=disposition)
    chunks = csv_chunks(table)
    head = next(chunks)  # here, so a database error is still a 503, not a cut stream
    return StreamingResponse(
        itertools.chain([head], chunks), media_type="text/csv; charset=utf-8", headers=disposition
    )


def _village_of(store: CentralStore, device_id: str) -> str:
    device = store.device(device_id)
    return "" if device is None else device.village_id  # "": no village may see it


def export_router(store: CentralStore, tz: ZoneInfo) -> APIRouter:
    """The routes above; `tz` is the console's time zone (for a village with no
    profile)."""
    router = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(current_actor)],
        tags=["exports"],
        responses={
            401: {"model": Problem, "description": "No or wrong API token"},
            403: {"model": Problem, "description": FORBIDDEN[403]["description"]},
            503: {"model": Problem, "description": "The central database cannot be reached"},
        },
    )

    @router.get("/villages/{village_id}/totals.{fmt}", response_class=Response, responses=_FILES)
    def totals_file(
        village_id: VillageId,
        fmt: Format,
        actor: CurrentActor,
        first: FromDate = None,
        last: ToDate = None,
        lang: Lang = "en",
    ) -> Response:
        """Per category: deposits, grams (and kg), points issued and redeemed, grams
        (and kg) CO2e, net of reversals; a row for awards and redemptions, and the sum."""
        return export_response(
            store, "totals", fmt, village_id, first, last, actor=actor, default_tz=tz, lang=lang
        )

    @router.get("/villages/{village_id}/entries.{fmt}", response_class=Response, responses=_FILES)
    def entries_file(
        village_id: VillageId,
        fmt: Format,
        actor: CurrentActor,
        first: FromDate = None,
        last: ToDate = None,
        lang: Lang = "en",
    ) -> Response:
        """Every entry in the range, by local time, with household and category names."""
        return export_response(
            store, "entries", fmt, village_id, first, last, actor=actor, default_tz=tz, lang=lang
        )

    @router.get(
        "/passbooks/{passbook_id}/statement.{fmt}", response_class=Response, responses=_FILES
    )
    def statement_file(
        passbook_id: PassbookId,
        fmt: Format,
        actor: CurrentActor,
        first: FromDate = None,
        last: ToDate = None,
        lang: Lang = "en",
    ) -> Response:
        """The passbook's entries in the range, each with the balance after it."""
        return export_response(
            store, "statement", fmt, passbook_id, first, last, actor=actor, default_tz=tz, lang=lang
        )

    return router
