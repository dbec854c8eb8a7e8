"""``POST /v1/embeddings``, served by the reuse layer's embedder (OpenAI's shapes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ...gateway import RequestContext
from ..common import StrictJSONRoute, context, gateway_of, until_disconnected
from ..openapi import errors, ok
from .protocol import EmbeddingList, EmbeddingRequest
from .serving import serve

router = APIRouter(route_class=StrictJSONRoute)


@router.post(
    "/v1/embeddings",
    tags=["embeddings"],
    response_model=None,
    responses={
        **ok(EmbeddingList),
        **errors(
            400,
            401,
            404,
            413,
            429,
            504,
            notes={
                400: "an input longer than the model reads (`context_length_exceeded`), "
                "more tokens than the key's whole daily budget (`invalid_value`)",
                404: "an unknown model (`model_not_found`), or reuse is disabled",
                504: "`Cache-Control: only-if-cached`: embeddings are never stored (`not_stored`)",
            },
        ),
    },
)
async def embeddings(
    body: EmbeddingRequest,
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
) -> Response:
    """Sentence embeddings (all-MiniLM-L6-v2, 384 dimensions, unit length)."""
    served = await until_disconnected(request, serve(gateway_of(request), ctx, body))
    if served is None:  # the client left before its vectors: ledgered as cancelled
        return Response(status_code=499)
    out, headers = served
    return JSONResponse(out, headers=headers)
