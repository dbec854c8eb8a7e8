"""Any OpenAI-compatible server as a backend.

Retries are bounded and only where a retry can help: connection failures, 429 and 5xx, with
exponential backoff and jitter (honouring a short ``Retry-After``). Other 4xx answers are
the client's problem and pass through unchanged. A stream is retried only before its first
byte: once text has reached the client, a retry would duplicate it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from ..errors import (
    BoundgateError,
    UpstreamClientError,
    UpstreamError,
    UpstreamTimeoutError,
)
from .base import Backend, CancelToken, Chunk, Completion, GenerationRequest, Usage

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 10.0


def _estimate_tokens(text: str) -> int:
    """Fallback when an upstream omits usage: ~4 characters a token (OpenAI's rule of thumb)."""
    return max(1, (len(text) + 3) // 4) if text else 0


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str | None = None,
        upstream_model: str | None = None,
        params_b: float | None = None,
        context_length: int | None = None,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(name, params_b=params_b or 8.0, context_length=context_length)
        self.base_url = base_url.rstrip("/")
        self.upstream_model = upstream_model or name
        self.version = f"{self.base_url}#{self.upstream_model}"
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- request building --------------------------------------------------------------------
    def _body(self, req: GenerationRequest, stream: bool) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = dict(req.passthrough)
        body.update(
            model=self.upstream_model,
            max_tokens=req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            stream=stream,
        )
        if req.stop:
            body["stop"] = req.stop
        if req.seed is not None:
            body["seed"] = req.seed
        if req.user is not None:
            body["user"] = req.user
        if stream:
            body["stream_options"] = {"include_usage": True}
        if req.messages is not None:
            body["messages"] = [{"role": m.role, "content": m.content} for m in req.messages]
            return "/chat/completions", body
        body["prompt"] = req.prompt or ""
        return "/completions", body

    def _delay(self, attempt: int, resp: httpx.Response | None) -> float:
        if resp is not None:
            ra = resp.headers.get("retry-after")
            try:
                if ra is not None:
                    return min(float(ra), MAX_RETRY_AFTER_S)
            except ValueError:
                pass
        return float(self.backoff_s * (2**attempt) * (0.5 + random.random()))

    @staticmethod
    def _error_for(resp: httpx.Response, body: bytes) -> BoundgateError:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if resp.status_code in RETRY_STATUSES:
            detail = body[:200].decode(errors="replace")
            return UpstreamError(f"upstream answered {resp.status_code}: {detail}")
        return UpstreamClientError(
            resp.status_code, parsed, f"upstream answered {resp.status_code}"
        )

    async def _send(self, path: str, body: dict[str, Any], stream: bool) -> httpx.Response:
        """POST with bounded retries; returns an open (possibly streaming) 2xx response."""
        attempt = 0
        while True:
            resp: httpx.Response | None = None
            try:
                request = self._client.build_request("POST", path, json=body)
                resp = await self._client.send(request, stream=stream)
                if resp.status_code < 400:
                    return resp
                content = await resp.aread()
                await resp.aclose()
                err = self._error_for(resp, content)
                if resp.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise err
            except httpx.TimeoutException as exc:
                if attempt >= self.max_retries:
                    raise UpstreamTimeoutError(
                        f"upstream timed out after {attempt + 1} attempt(s) of {self.timeout_s:g}s"
                    ) from exc
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise UpstreamError(
                        f"upstream unreachable after {attempt + 1} attempt(s): {exc!r}"
                    ) from exc
            await asyncio.sleep(self._delay(attempt, resp))
            attempt += 1

    # --- the Backend interface -----------------------------------------------------------
    async def complete(self, req: GenerationRequest, cancel: CancelToken) -> Completion:
        path, body = self._body(req, stream=False)
        resp = await self._send(path, body, stream=False)
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = (
                (choice.get("message") or {}).get("content") or ""
                if req.messages is not None
                else choice.get("text") or ""
            )
            finish = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise UpstreamError(f"upstream sent a malformed completion: {exc!r}") from exc
        if not isinstance(finish, str) or not finish:
            # an answer is complete only when the upstream says why it ended
            raise UpstreamError("upstream sent a completion without a finish_reason")
        return Completion(text, finish, self._usage(data.get("usage"), req, text))

    def _usage(self, usage: Any, req: GenerationRequest, text: str) -> Usage:
        if isinstance(usage, dict):
            try:
                return Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
            except (KeyError, TypeError, ValueError):
                pass
        prompt = req.prompt or " ".join(m.content for m in req.messages or [])
        return Usage(_estimate_tokens(prompt), _estimate_tokens(text))

    async def generate(
        self, req: GenerationRequest, cancel: CancelToken
    ) -> AsyncGenerator[Chunk, None]:
        path, body = self._body(req, stream=True)
        resp = await self._send(path, body, stream=True)
        parts: list[str] = []
        finish: str | None = None
        usage: Any = None
        try:
            async for line in resp.aiter_lines():
                if cancel.cancelled:
                    finish = "cancelled"
                    break
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    event = json.loads(payload)
                except ValueError as exc:
                    raise UpstreamError("upstream sent a malformed stream event") from exc
                if not isinstance(event, dict):
                    raise UpstreamError("upstream sent a malformed stream event")
                if event.get("error"):
                    err = event["error"]
                    detail = err.get("message") if isinstance(err, dict) else str(err)
                    raise UpstreamError(f"upstream stream error: {detail}")
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") if req.messages is not None else choice
                    text = (delta or {}).get("content" if req.messages is not None else "text")
                    if text:
                        parts.append(text)
                        yield Chunk(text=text)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError("upstream stream stalled") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(f"upstream stream broke: {exc!r}") from exc
        finally:
            await resp.aclose()
        if finish is None:
            # the body ended (or said [DONE]) without a finish_reason: an incomplete answer
            raise UpstreamError("upstream stream ended before the answer was finished")
        yield Chunk(finish_reason=finish, usage=self._usage(usage, req, "".join(parts)))
