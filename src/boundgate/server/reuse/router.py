"""Reuse feedback, live reuse statistics, and bound documents."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ...errors import BoundgateError, ErrorCode, NotFoundError
from ...gateway import Gateway, RequestContext
from ...reuse.engine import ReuseEngine
from ...store import DocumentRow
from ..common import StrictJSONRoute, admin_context, context, gateway_of, refuse_unknown_query
from ..openapi import errors

router = APIRouter(route_class=StrictJSONRoute)


class FeedbackRequest(BaseModel):
    # strict, as the completions' parameters: "no", "false", 0 or 1 are not a boolean
    model_config = ConfigDict(extra="forbid", strict=True)
    request_id: str = Field(min_length=1, max_length=200)
    correct: bool


@router.post(
    "/v1/boundgate/feedback",
    tags=["reuse"],
    responses=errors(
        400,
        401,
        404,
        413,
        notes={
            400: "the request's answer was not reused (`not_a_reuse`)",
            404: "no such request (or another tenant's), or reuse is disabled (`reuse_disabled`)",
        },
    ),
)
async def feedback(
    body: FeedbackRequest,
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
) -> dict[str, Any]:
    """Tell the gateway whether a reused answer was right; the verifier learns from it
    (``status``: ``recorded``, ``duplicate``, or ``noted``: accepted, not learned by the
    threshold shared by every tenant: a non-admin key's ``correct: true``, or its
    ``correct: false`` beyond its tenant's ``reuse.feedback_labels_per_tenant_per_day``, which
    still stops that answer being served to the tenant for that question)."""
    gw = gateway_of(request)
    reuse = _reuse_enabled(gw)
    row = await gw.store.get_row(body.request_id)
    status = await reuse.feedback(row, body.correct, ctx.tenant.name, ctx.tenant.admin)
    return {"object": "boundgate.feedback", "request_id": body.request_id, "status": status}


@router.get("/v1/boundgate/stats", tags=["reuse"], responses=errors(400, 401))
async def stats(
    request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> dict[str, Any]:
    """Reuse statistics: threshold, live wrong-reuse estimate with its interval, counts,
    and today's feedback labels per tenant (``feedback_labels``).
    A non-admin key sees the deployment's threshold and bound and its own tenant's counts
    only (``ReuseEngine.stats``, ``feedback_counts``); counts of other tenants' traffic are
    an admin's. It takes no query parameter (400 ``unknown_parameter``: a trial's
    ``?tenant=…`` read as a filter would have been ignored)."""
    refuse_unknown_query(request, ())
    gw = gateway_of(request)
    tenant = None if ctx.tenant.admin else ctx.tenant.name
    reuse = None
    if gw.reuse is not None:  # (an engine without entries is falsy)
        reuse = gw.reuse.stats(tenant)
        reuse["feedback_labels"] = await gw.reuse.feedback_counts(tenant)
    return {"object": "boundgate.stats", "reuse": reuse}


def _doc_summary(row: DocumentRow) -> dict[str, Any]:
    body = json.loads(row.body)
    return {
        "id": row.id,
        "object": "boundgate.document",
        "@id": body.get("@id"),
        "question": body.get("name"),
        "model": row.model,
        "model_version": row.model_version,
        "tenant": row.tenant,
        "state": row.state,
        "supersedes": row.supersedes,
        "superseded_by": row.superseded_by,
        "askers": body.get("bg:askerCount"),
        "created": row.created,
    }


def _reuse_enabled(gw: Gateway) -> ReuseEngine:
    """The gateway's reuse engine; raise 404 ``reuse_disabled`` while reuse is off (a route
    that labels or changes what reuse serves: feedback, binding, revoking; reading the
    documents the store holds works either way)."""
    if gw.reuse is None:
        raise NotFoundError("reuse is disabled on this gateway", code=ErrorCode.REUSE_DISABLED)
    return gw.reuse


def _visible(row: DocumentRow, ctx: RequestContext) -> bool:
    return ctx.tenant.admin or row.tenant == ctx.tenant.name


@router.get("/v1/boundgate/documents", tags=["reuse"], responses=errors(400, 401))
async def list_documents(
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
    state: Annotated[str | None, Query(pattern="^(active|stale|superseded|revoked|all)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """Bound documents (your tenant's; all for admins), newest first: in every state, or in
    ``state`` (``all``: every state, as ``boundgate docs export --state all`` says it)."""
    refuse_unknown_query(request, ("state", "limit"))  # ("?tenant=" was ignored: a trial)
    rows = await gateway_of(request).store.documents(None if state == "all" else state, None)
    data = [_doc_summary(r) for r in rows if _visible(r, ctx)][:limit]
    return {"object": "list", "data": data}


@router.get(
    "/v1/boundgate/documents/{doc_id}",
    tags=["reuse"],
    response_class=Response,
    responses={
        200: {
            "description": "The signed JSON-LD document",
            "content": {"application/ld+json": {"schema": {"type": "object"}}},
        },
        **errors(401, 404),
    },
)
async def get_document(
    doc_id: str, request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> Response:
    """The signed JSON-LD document itself (what `boundgate docs verify FILE` accepts)."""
    row = await gateway_of(request).store.get_document(doc_id)
    if row is None or not _visible(row, ctx):
        raise NotFoundError(f"no document {doc_id!r}", param="doc_id")
    return Response(
        row.body,
        media_type="application/ld+json",
        headers={"x-boundgate-document-state": row.state},
    )


@router.post(
    "/v1/boundgate/documents/{doc_id}/revoke",
    tags=["reuse"],
    responses=errors(
        401, 403, 404, 413, notes={404: "no such document, or reuse is disabled (`reuse_disabled`)"}
    ),
)
async def revoke_document(
    doc_id: str, request: Request, ctx: Annotated[RequestContext, Depends(admin_context)]
) -> dict[str, Any]:
    """Stop serving a document's answer (admin). The document stays, marked revoked."""
    reuse = _reuse_enabled(gateway_of(request))
    if not await reuse.documents.revoke(doc_id):
        raise NotFoundError(f"no document {doc_id!r}", param="doc_id")
    return {"id": doc_id, "object": "boundgate.document", "state": "revoked"}


class BindRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer_id: str = Field(min_length=1, max_length=200)


@router.post(
    "/v1/boundgate/documents",
    tags=["reuse"],
    responses=errors(
        400,
        401,
        403,
        404,
        413,
        notes={404: "no such stored answer, or reuse is disabled (`reuse_disabled`)"},
    ),
)
async def bind_answer(
    body: BindRequest, request: Request, ctx: Annotated[RequestContext, Depends(admin_context)]
) -> dict[str, Any]:
    """Bind a stored answer now (admin), whatever its asker count."""
    gw = gateway_of(request)
    reuse = _reuse_enabled(gw)
    key = reuse.entry_key(body.answer_id)
    if key is None:
        raise NotFoundError(  # a revoked one is kept, but not to be served or bound again
            f"no stored answer {body.answer_id!r} that can be bound (never stored, evicted, "
            "or its document revoked)",
            param="answer_id",
        )
    row = await reuse.documents.bind(key)  # (an answer bound already: its document)
    if row is None:
        if (problem := await reuse.documents.signing_problem()) is not None:
            # the replica's configuration, not the request: every replica needs the same key
            raise BoundgateError(
                f"this gateway cannot bind documents: {problem}",
                code=ErrorCode.SIGNING_KEY_MISMATCH,
            )
        raise NotFoundError(f"answer {body.answer_id!r} cannot be bound", param="answer_id")
    return _doc_summary(row)
