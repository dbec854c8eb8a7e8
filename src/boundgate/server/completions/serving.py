"""Plain text completions: protocol model → gateway request → OpenAI-shaped output."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ...gateway import Gateway, RequestContext
from .. import generation
from .protocol import CompletionRequest


async def serve(
    gateway: Gateway, ctx: RequestContext, body: CompletionRequest
) -> tuple[dict[str, Any] | AsyncIterator[bytes], dict[str, str]]:
    req = generation.generation_request(body, gateway)  # refuses suffix, as unsupported
    req.prompt = body.prompt_text()
    prefix = req.prompt if body.echo else ""
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await generation.stream(
            gateway, ctx, req, generation.TEXT, include_usage=include_usage, prefix=prefix
        )
    return await generation.complete(gateway, ctx, req, generation.TEXT, prefix=prefix)
