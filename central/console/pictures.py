"""Item pictures in the console: shown beside each item of the catalogue editor,
uploaded (a PNG or JPEG, e.g. a phone photo) or removed one item at a time.

An upload is the one multipart form of the console: a file cannot travel in an
urlencoded form without a script. Its body may be up to a phone photo's size
(`central.http_guard.HttpLimits.picture_form_bytes`); central keeps only the small
JPEG thumbnail `central.catalogue_file.thumbnail` makes of it, which is what kiosks
get in their next state and show on the staff redeem screen. Like every catalogue
form, it carries the catalogue version it was read at (409 if someone changed the
catalogue meanwhile), and the change is audited through `central.operations`.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from central import operations
from central.auth import ConsoleActor, check_csrf
from central.catalogue_file import MAX_SOURCE_BYTES, thumbnail
from central.console.village import PageFn, VillagePages, url
from greenpass.errors import ConfigError, ConflictError

MAX_FIELDS = 4  # csrf, version, remove, and the file


async def _read_upload(request: Request) -> tuple[dict[str, str], bytes | None]:
    """The form's text fields and the picture file's bytes (None: no file chosen)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise HTTPException(415, "a picture is posted as multipart/form-data")
    form = await request.form(
        max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_SOURCE_BYTES + 1024
    )
    try:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("picture")
        raw = None
        if isinstance(upload, UploadFile) and upload.filename:
            raw = await upload.read(MAX_SOURCE_BYTES + 1)
        return fields, raw
    finally:
        await form.close()


def install(router: APIRouter, pages: VillagePages, catalogue_page: PageFn) -> None:
    """`catalogue_page`: the catalogue editor (`central.console.village`), shown again
    with the error or the 409 when an upload cannot be saved."""
    store, clock = pages.store, pages.clock

    def saved(village_id: str, item_id: str) -> RedirectResponse:
        target = url(village_id, "catalogue") + f"?saved={quote(item_id, safe='')}"
        return RedirectResponse(target, status_code=303)

    @router.get("/villages/{village_id}/catalogue/{item_id}/picture")
    def picture(request: Request, village_id: str, item_id: str, session: ConsoleActor) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        for item in operations.catalogue(store, village_id).items:
            if item.item_id == item_id and item.picture is not None:
                return Response(
                    item.picture,
                    media_type="image/jpeg",
                    headers={"Cache-Control": "private, no-cache"},
                )
        raise HTTPException(404, f"no picture for item {item_id!r}")

    @router.post("/villages/{village_id}/catalogue/{item_id}/picture")
    async def set_picture(
        request: Request, village_id: str, item_id: str, session: ConsoleActor
    ) -> Response:
        if denied := pages.refused(request, session, village_id):
            return denied
        fields, raw = await _read_upload(request)
        check_csrf(fields, session.csrf)
        catalogue = operations.catalogue(store, village_id)
        try:
            version = int(fields.get("version", ""))
        except ValueError:
            version = -1  # a form without a version: refused as out of date
        try:
            if item_id not in {i.item_id for i in catalogue.items}:
                raise ConfigError(f"no item {item_id!r}", key="item.id")
            remove = fields.get("remove") == "1"
            if not remove and raw is None:
                raise ConfigError("choose a PNG or JPEG picture first", key="item.picture")
            new = None if remove else thumbnail(raw or b"")
            items = [
                dataclasses.replace(i, picture=new) if i.item_id == item_id else i
                for i in catalogue.items
            ]
            operations.set_catalogue(
                store, village_id, items, actor=str(session.actor), now_ms=clock(),
                expected_version=version,
            )  # fmt: skip
        except ConflictError:
            return catalogue_page(request, session, village_id, 409, stale=True)
        except ConfigError as exc:
            return catalogue_page(request, session, village_id, 422, str(exc))
        return saved(village_id, item_id)
