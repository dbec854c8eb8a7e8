"""Reuse feedback and live reuse statistics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ...errors import NotFoundError
from ...gateway import RequestContext
from ..common import context, gateway_of

router = APIRouter()


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    correct: bool


@router.post("/v1/boundgate/feedback", tags=["reuse"])
async def feedback(
    body: FeedbackRequest,
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
) -> dict[str, Any]:
    """Tell the gateway whether a reused answer was right; the verifier learns from it."""
    gw = gateway_of(request)
    if gw.reuse is None:
        raise NotFoundError("reuse is disabled on this gateway", code="reuse_disabled")
    row = await asyncio.to_thread(gw.store.get_row, body.request_id)
    status = await gw.reuse.feedback(row, body.correct, ctx.tenant.name, ctx.tenant.admin)
    return {"object": "boundgate.feedback", "request_id": body.request_id, "status": status}


@router.get("/v1/boundgate/stats", tags=["reuse"])
async def stats(
    request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> dict[str, Any]:
    """Reuse statistics: threshold, live wrong-reuse estimate with its interval, counts."""
    gw = gateway_of(request)
    return {"object": "boundgate.stats", "reuse": gw.reuse.stats() if gw.reuse else None}
