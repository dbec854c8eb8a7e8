"""Serving ``/v1/embeddings``: a request's checks and its answer, for the online endpoint and
for a batch's lines (``POST /v1/batches`` with ``endpoint: /v1/embeddings``)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from ...errors import (
    ContextLengthExceededError,
    ErrorCode,
    InvalidRequestError,
    NotFoundError,
    NotStoredError,
)
from ...gateway import Gateway, RequestContext
from ...reuse.embedder import MAX_TOKENS
from ...reuse.policy import check_cache_control, only_if_cached
from ..common import misspellings_error
from .protocol import EmbeddingRequest

MAX_INPUTS = 2048


def check_request(body: EmbeddingRequest) -> list[str]:
    """The checks that need no gateway: no misspelt parameter, a non-empty string or list of
    at most ``MAX_INPUTS`` non-empty strings. Returns the input as a list of strings. Raises
    InvalidRequestError (400) naming the parameter."""
    if misspelled := EmbeddingRequest.misspellings(body.model_extra or {}):
        raise misspellings_error(misspelled)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError(
            "input must be a non-empty string or list of strings (token arrays are not supported)",
            param="input",
        )
    if len(texts) > MAX_INPUTS:
        raise InvalidRequestError(f"at most {MAX_INPUTS} inputs per request", param="input")
    if any(not t for t in texts):
        raise InvalidRequestError("input strings must not be empty", param="input")
    return [str(t) for t in texts]


async def serve(
    gw: Gateway, ctx: RequestContext, body: EmbeddingRequest
) -> tuple[dict[str, Any], dict[str, str]]:
    """The embeddings of ``body``'s input as OpenAI's list object (vectors of unit length,
    384 float32 each, or base64 of their little-endian bytes), with the request's energy in
    ``boundgate``, and the response headers. Metered, charged to the key's daily token budget
    and ledgered (``Gateway.embed``). Raises NotFoundError (404: reuse disabled, an unknown
    model), InvalidRequestError (400: ``check_request``'s, ``dimensions``), a
    ContextLengthExceededError (400: an input longer than the model reads without
    ``truncate``), InvalidRequestError (400: a malformed Cache-Control), NotStoredError
    (504: ``Cache-Control: only-if-cached``)."""
    strings = check_request(body)
    if gw.reuse is None:
        raise NotFoundError("embeddings need the reuse layer, which is disabled")
    embedder = gw.reuse.embedder
    if body.model not in (None, embedder.name, "all-MiniLM-L6-v2"):
        generates = body.model in gw.backends or body.model in gw.aliases
        raise NotFoundError(
            f"The model '{body.model}' generates text (POST /v1/chat/completions) and makes no "
            "embeddings; embeddings use 'all-MiniLM-L6-v2'"
            if generates
            else f"The model '{body.model}' does not exist; embeddings use 'all-MiniLM-L6-v2'",
            param="model",
            code=ErrorCode.MODEL_NOT_FOUND,
        )
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise InvalidRequestError(
            f"dimensions must be {embedder.dim}, this model's: its vectors can be neither "
            f"shortened nor lengthened (got {body.dimensions})",
            param="dimensions",
        )
    too_long = [] if body.truncate else [i for i, t in enumerate(strings) if not embedder.fits(t)]
    if too_long:  # as OpenAI does: a vector of only the start would pass for the whole text
        many = len(too_long) > 1
        raise ContextLengthExceededError(
            f"input {too_long[0]} is longer than the {MAX_TOKENS} tokens all-MiniLM-L6-v2 "
            f"reads ({len(too_long)} such input{'s' if many else ''}); split "
            f'{"them" if many else "it"}, or send "truncate": true to embed only the start',
            param="input",
        )
    check_cache_control(ctx.cache_control)  # a malformed header was ignored here (a trial)
    if only_if_cached(ctx.cache_control):
        # RFC 9111 §5.2.1.7: nothing stored fits, so 504, not a fresh computation (a trial
        # was answered 200 with new vectors where chat answers 504)
        raise NotStoredError(
            "embeddings are never stored, and Cache-Control: only-if-cached says not to "
            "compute them",
            param="Cache-Control",
        )
    vectors, tokens, energy = await gw.embed(ctx, strings)
    data = []
    for i, v in enumerate(vectors):
        emb: Any = (
            base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else [float(x) for x in v]
        )
        data.append({"object": "embedding", "index": i, "embedding": emb})
    out: dict[str, Any] = {
        "object": "list",
        "data": data,
        "model": "all-MiniLM-L6-v2",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "boundgate": {"request_id": ctx.request_id, **energy.as_dict()},
    }
    return out, {"x-request-id": ctx.request_id, **energy.headers()}
