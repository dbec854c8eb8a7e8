"""Chat completions: protocol model → gateway request → OpenAI-shaped output."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ...backends.base import Message
from ...gateway import Gateway, RequestContext
from .. import generation
from .protocol import ChatCompletionRequest


def to_generation_request(body: ChatCompletionRequest, gateway: Gateway) -> Any:
    req = generation.generation_request(
        body, gateway, max_tokens=body.max_completion_tokens or body.max_tokens
    )
    if body.max_completion_tokens is not None:
        req.max_tokens_param = "max_completion_tokens"
    req.messages = [
        Message(m.role, m.text(), m.name or None, calls=m.calls()) for m in body.messages
    ]
    return req


async def serve(
    gateway: Gateway, ctx: RequestContext, body: ChatCompletionRequest
) -> tuple[dict[str, Any] | AsyncIterator[bytes], dict[str, str]]:
    req = to_generation_request(body, gateway)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await generation.stream(
            gateway, ctx, req, generation.CHAT, include_usage=include_usage
        )
    return await generation.complete(gateway, ctx, req, generation.CHAT)
