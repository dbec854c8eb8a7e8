"""Serving logic shared by chat and plain completions: run the gateway, shape the output.

No HTTP response classes here: functions return a JSON body or an async iterator of SSE
bytes, plus headers; the routers wrap them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..backends.base import Chunk, GenerationRequest, Usage
from ..errors import BoundgateError, InvalidRequestError
from ..gateway import Finished, Gateway, RequestContext
from ..store import StoreUnavailableError
from .chat.protocol import SamplingParams
from .common import (
    misspellings_error,
    sse_error,
    sse_event,
    store_unavailable,
    unsupported_parameter,
)


@dataclass(frozen=True)
class Shape:
    """How one endpoint family spells a completion and its stream chunks."""

    chat: bool

    @property
    def object(self) -> str:
        return "chat.completion" if self.chat else "text_completion"

    @property
    def chunk_object(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"

    def choice(self, text: str, finish: str, refusal: str | None = None) -> dict[str, Any]:
        if self.chat:
            # OpenAI's refusal: content null beside it
            content = None if refusal and not text else text
            return {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish,
            }
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    def delta(
        self, text: str | None, finish: str | None, first: bool = False, refusal: str = ""
    ) -> dict[str, Any]:
        if self.chat:
            d: dict[str, Any] = {}
            if first:
                d["role"] = "assistant"
            if refusal:
                d["refusal"] = refusal
            elif text is not None:
                d["content"] = text
            return {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}


CHAT = Shape(chat=True)
TEXT = Shape(chat=False)


def refuse_unsupported(params: SamplingParams) -> None:
    """Raises ``InvalidRequestError`` (400 ``unsupported_parameter``) naming the first
    parameter of ``params`` this gateway does not implement yet, or (400
    ``unknown_parameter``, as OpenAI's) the first that is a misspelling of a known one, the
    others after it."""
    misspelled = params.misspelled()
    if misspelled:
        raise misspellings_error(misspelled)
    wrong = params.wrongly_typed()
    if wrong is not None:
        raise InvalidRequestError(wrong[1], param=wrong[0])
    unsupported = params.unsupported()
    if unsupported is not None:
        raise unsupported_parameter(unsupported)


def generation_request(
    params: SamplingParams, gateway: Gateway, *, max_tokens: int | None = None
) -> GenerationRequest:
    refuse_unsupported(params)
    return GenerationRequest(
        model=params.model or gateway.default_model,
        max_tokens=max_tokens or params.max_tokens or 0,
        # left out: OpenAI's default (1), unless the operator set reuse.default_temperature
        temperature=params.temperature
        if params.temperature is not None
        else (1.0 if gateway.default_temperature is None else gateway.default_temperature),
        top_p=1.0 if params.top_p is None else params.top_p,
        stop=params.stop_list(),
        seed=params.seed,
        user=params.user,
        left_out=_left_out(params, gateway),
        passthrough=params.passthrough(),
        options=(params.model_extra or {}).get("boundgate"),
    )


def _left_out(params: SamplingParams, gateway: Gateway) -> frozenset[str]:
    """The sampling parameters neither the client nor the gateway chose
    (``GenerationRequest.left_out``): ``temperature`` unless ``reuse.default_temperature``
    is set, ``top_p`` always, each when the request does not give it."""
    out = set()
    if params.temperature is None and gateway.default_temperature is None:
        out.add("temperature")
    if params.top_p is None:
        out.add("top_p")
    return frozenset(out)


def _usage(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


async def complete(
    gateway: Gateway, ctx: RequestContext, req: GenerationRequest, shape: Shape, prefix: str = ""
) -> tuple[dict[str, Any], dict[str, str]]:
    result = await gateway.complete(ctx, req)
    body = {
        "id": _completion_id(ctx, shape),
        "object": shape.object,
        "created": int(ctx.started),
        "model": result.model,
        "system_fingerprint": None,
        "choices": [
            shape.choice(
                prefix + result.completion.text,
                result.completion.finish_reason,
                result.completion.refusal,
            )
        ],
        "usage": _usage(result.completion.usage),
        "boundgate": {
            "request_id": ctx.request_id,
            **result.energy.as_dict(),
            **(result.reuse.fields(result.energy.gco2_per_kwh) if result.reuse else {}),
            **(result.route.fields() if result.route else {}),
        },
    }
    headers = {"x-request-id": ctx.request_id, **result.headers(ctx.started)}
    return body, headers


def _completion_id(ctx: RequestContext, shape: Shape) -> str:
    return ("chatcmpl-" if shape.chat else "cmpl-") + ctx.request_id.removeprefix("req_")


async def stream(
    gateway: Gateway,
    ctx: RequestContext,
    req: GenerationRequest,
    shape: Shape,
    *,
    include_usage: bool,
    prefix: str = "",
) -> tuple[AsyncIterator[bytes], dict[str, str]]:
    """Start a stream. Errors before the first token surface here, as a normal HTTP error."""
    events = gateway.stream(ctx, req)
    try:
        first: Chunk | Finished | None = await anext(events)
    except StopAsyncIteration:  # pragma: no cover - the gateway always finishes with Finished
        first = None
    base = {
        "id": _completion_id(ctx, shape),
        "object": shape.chunk_object,
        "created": int(ctx.started),
        "model": req.model,
        "system_fingerprint": None,
    }
    if include_usage:
        # OpenAI: "All other chunks will also include a usage field, but with a null value"
        # (stream_options.include_usage; an SDK trial found the key left out)
        base["usage"] = None

    async def body() -> AsyncIterator[bytes]:
        try:
            if shape.chat:
                yield sse_event({**base, "choices": [shape.delta(prefix, None, first=True)]})
            elif prefix:
                yield sse_event({**base, "choices": [shape.delta(prefix, None)]})
            event = first
            while event is not None:
                if isinstance(event, Finished):
                    info = {
                        "request_id": ctx.request_id,
                        **event.energy.as_dict(),
                        **(event.reuse.fields(event.energy.gco2_per_kwh) if event.reuse else {}),
                        **(event.route.fields() if event.route else {}),
                    }
                    last = {**base, "choices": [shape.delta(None, event.finish_reason)]}
                    if include_usage:
                        yield sse_event(last)
                        last = {**base, "choices": [], "usage": _usage(event.usage)}
                    yield sse_event({**last, "boundgate": info})
                    yield b"data: [DONE]\n\n"
                    return
                yield sse_event(
                    {**base, "choices": [shape.delta(event.text, None, refusal=event.refusal)]}
                )
                event = await anext(events, None)
        except BoundgateError as err:
            yield sse_error(err)
        except StoreUnavailableError as exc:  # e.g. the ledger row's commit, after the text
            yield sse_error(store_unavailable(exc))
        finally:
            await events.aclose()

    headers = {"x-request-id": ctx.request_id, "x-boundgate-grid-zone": gateway.grid_zone}
    if ctx.reuse is not None:
        headers.update(ctx.reuse.headers(ctx.started))
    if ctx.route is not None:
        headers["x-boundgate-route"] = ctx.route.header()
    return body(), headers
