"""The transparency log's public routes: no login, for kiosks, auditors and anyone
(`central.tlog`, docs/trust.md).

    GET /log/checkpoint[?size=S]                       the newest signed checkpoint (text),
                                                       or the one of size S
    GET /log/proof/inclusion?device=D&seq=N[&size=S]   entry D:N is in the tree of size S
    GET /log/proof/consistency?from=A&to=B             the tree of size B extends size A

Hashes are lower-case hex. A proof is checked against a checkpoint's root with
`greenpass.merkle.verify_inclusion` / `verify_consistency`; the leaf is
`greenpass.tlog_leaf.entry_leaf_hash(device, seq, h)` of the entry's chain hash `h`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from central import tlog, tlog_proofs
from central.api_models import DEVICE_ID_PATTERN, Problem
from central.store import CentralStore
from greenpass.errors import CentralError

MAX_SIZE = 2**62  # sizes and seqs beyond this are no log's


class InclusionOut(BaseModel):
    device_id: str
    seq: int
    index: int = Field(description="The leaf's index in the log")
    size: int = Field(description="The tree size the proof is for")
    leaf_hash: str = Field(description="RFC 9162 leaf hash, hex")
    proof: list[str] = Field(description="RFC 9162 inclusion proof (audit path), hex")


class ConsistencyOut(BaseModel):
    from_: int = Field(alias="from")
    to: int
    proof: list[str] = Field(description="RFC 9162 consistency proof, hex")


_MISSING: dict[int | str, dict[str, Any]] = {
    404: {
        "model": Problem,
        "description": "No checkpoint covers it, no such entry, or from > to",
    }
}


def log_router(store: CentralStore) -> APIRouter:
    r = APIRouter(prefix="/log", tags=["transparency log"])

    def refused(exc: CentralError) -> HTTPException:
        return HTTPException(404, str(exc))

    @r.get(
        "/checkpoint",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "The signed checkpoint"},
            404: {
                "model": Problem,
                "content": {"application/json": {}},
                "description": "The log has no checkpoint yet, or none of that size",
            },
        },
    )
    def get_checkpoint(size: Annotated[int | None, Query(ge=1, le=MAX_SIZE)] = None) -> Response:
        """The newest checkpoint: a C2SP tlog-checkpoint body in a signed note, signed
        with central's key (the one that signs the kiosks' states). With `size`, the
        checkpoint central signed at that size (an issuance names one; a checkpoint
        never changes, so it may be cached)."""
        found = tlog.latest_checkpoint(store, size)
        if found is None:
            raise HTTPException(
                404,
                "the log has no checkpoint yet"
                if size is None
                else f"no checkpoint of size {size}",
            )
        cache = "no-cache" if size is None else "public, max-age=86400"
        return PlainTextResponse(found[1], headers={"Cache-Control": cache})

    @r.get("/proof/inclusion", response_model=InclusionOut, responses=_MISSING)
    def get_inclusion(
        device: Annotated[str, Query(pattern=DEVICE_ID_PATTERN)],
        seq: Annotated[int, Query(ge=1, le=MAX_SIZE)],
        size: Annotated[int | None, Query(ge=1, le=MAX_SIZE)] = None,
    ) -> InclusionOut:
        try:
            return InclusionOut.model_validate(tlog_proofs.inclusion(store, device, seq, size))
        except CentralError as exc:
            raise refused(exc) from exc

    @r.get(
        "/proof/consistency",
        response_model=ConsistencyOut,
        response_model_by_alias=True,
        responses=_MISSING,
    )
    def get_consistency(
        from_: Annotated[int, Query(alias="from", ge=1, le=MAX_SIZE)],
        to: Annotated[int, Query(ge=1, le=MAX_SIZE)],
    ) -> ConsistencyOut:
        if from_ > to:  # no such proof, as for a size no checkpoint covers
            raise HTTPException(404, "from must not be more than to")
        try:
            return ConsistencyOut.model_validate(tlog_proofs.consistency(store, from_, to))
        except CentralError as exc:
            raise refused(exc) from exc

    return r
