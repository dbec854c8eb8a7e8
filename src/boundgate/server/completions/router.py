"""Route for ``POST /v1/completions``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...gateway import RequestContext
from ..common import StrictJSONRoute, context, gateway_of, to_response, until_disconnected
from ..openapi import GENERATION_ERRORS, json_or_sse
from .protocol import CompletionRequest, TextCompletion
from .serving import serve

router = APIRouter(route_class=StrictJSONRoute)


@router.post(
    "/v1/completions",
    tags=["generation"],
    responses={**json_or_sse(TextCompletion), **GENERATION_ERRORS},
)
async def completions(
    body: CompletionRequest,
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
) -> Response:
    """Create a plain text completion (OpenAI-compatible)."""
    served = await until_disconnected(request, serve(gateway_of(request), ctx, body))
    if served is None:  # the client left before its answer: nobody reads this
        return Response(status_code=499)
    return to_response(*served)
