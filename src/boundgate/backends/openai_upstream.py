"""Any OpenAI-compatible server as a backend.

Retries are bounded and only where a retry can help: connection failures, 429 and 5xx, with
exponential backoff and jitter (honouring a short ``Retry-After``); ``stamina`` runs them, and
each is counted on the gateway's /metrics (``Backend.on_retry``). A 404 is the gateway's
configuration failing, not the client's request: the client named a model the gateway serves,
and the upstream does not know the model (or the path) it was configured with; it is a 502, as
the upstream's failures are, naming the model, and not retried; so is a 401 or 403 (the
gateway's credentials refused: its words, which may quote part of the key, go to the server
log, not to the client). A 429 still answered once
the retries are spent is a 429 to the client with the upstream's ``Retry-After``. Other 4xx
answers are the client's problem and pass through unchanged. An answer whose text is not text
is a 502; token counts that are not whole numbers from 0 to ``MAX_USAGE_TOKENS`` are replaced
by the estimate (an upstream's negative counts refilled a daily budget, 10**30 stopped the
ledger's write). A stream is retried only before its first byte:
once text has reached the client, a retry would duplicate it. ``httpx-sse`` parses the event
stream.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import httpx
import stamina
from httpx_sse import EventSource, SSEError

from ..errors import (
    BoundgateError,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamTimeoutError,
)
from ..jsontext import json_type, mend, mended
from ..retries import counting
from .base import Backend, CancelToken, Chunk, Completion, GenerationRequest, Usage

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 10.0  # the longest an upstream's Retry-After makes a retry wait
MAX_ASKED_WAIT_S = 86400.0  # the longest Retry-After passed on to a client (a day)
UNKNOWN_WAIT_S = 1.0  # Retry-After of an upstream's 429 that said none (every 429 has one)


class _RetryableAnswer(UpstreamError):
    """A 429 or 5xx (``status``) from the upstream; ``retry_after`` is its ``Retry-After`` in
    seconds, at most ``MAX_RETRY_AFTER_S`` (the wait before a retry), ``asked_s`` as sent."""

    def __init__(
        self, message: str, status: int, retry_after: float | None, asked_s: float | None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.asked_s = asked_s


def _retry_after(resp: httpx.Response) -> float | None:
    """The upstream's ``Retry-After`` in seconds from now, 0 to ``MAX_ASKED_WAIT_S``: delay
    seconds or an HTTP date (RFC 9110 §10.2.3); None when absent or neither."""
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_ASKED_WAIT_S) if math.isfinite(seconds) else None


def _retry_or_wait(exc: BaseException) -> bool | float:
    """stamina's hook: whether to retry ``exc``, or the seconds to wait before retrying."""
    if isinstance(exc, _RetryableAnswer):
        return True if exc.retry_after is None else exc.retry_after
    return isinstance(exc, httpx.TransportError)  # includes timeouts


def _upstream_message(parsed: Any, body: bytes) -> str:
    """The message of an upstream's error body: OpenAI's ``error.message``, or the shapes
    other OpenAI-compatible servers answer in (``{"error": "…"}``: Ollama, TGI;
    ``{"detail": "…"}``: FastAPI's; ``{"message": "…"}``); else the body's first 200
    characters (not bytes: a CJK text was cut inside a character), its white space
    collapsed and what no text of ours may hold mended (a plain-text or HTML 4xx, a proxy's
    413, was passed on as "upstream answered 413" alone: a break-it trial)."""
    if isinstance(parsed, dict):
        err = parsed.get("error")
        for said in (
            err.get("message") if isinstance(err, dict) else err,
            parsed.get("detail"),
            parsed.get("message"),
        ):
            if isinstance(said, str) and said.strip():
                return said
    text = " ".join(mend(body.decode(errors="replace")[:200]).split())
    return text or "(no body)"


MAX_USAGE_TOKENS = 2**31 - 1  # more than any context; the ledger's integers hold it
_COUNTED = ("prompt_tokens", "completion_tokens")


def _token_count(value: Any) -> int | None:
    """``value`` as a token count: a whole number from 0 to ``MAX_USAGE_TOKENS`` (an integer,
    or a float or a numeric string of one), else None."""
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() and 0 <= f <= MAX_USAGE_TOKENS else None


def _text_of(content: Any, what: str, *, nullable: bool = True) -> str:
    """An answer's ``content`` as text: a string, null ("", where ``nullable``: a chat
    message's content is null beside a refusal or tool calls), or a list of content parts
    whose ``text`` parts are joined (as some OpenAI-compatible servers send them); a lone
    surrogate or NUL in it becomes U+FFFD (``jsontext.mend``: no UTF-8 encoder takes the one,
    so the answer's JSON was a 500, and PostgreSQL's text cannot store the other). Raises
    :class:`UpstreamError` for anything else (a number, an object; null where not
    ``nullable``)."""
    text: str | None = None
    if content is None and nullable:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list) and all(isinstance(p, dict) for p in content):
        texts = [p.get("text") for p in content if p.get("type") == "text"]
        if all(isinstance(t, str) for t in texts):
            text = "".join(t for t in texts if isinstance(t, str))
    if text is None:
        raise UpstreamError(f"upstream sent a malformed {what}: its text is {json_type(content)}")
    return mend(text)


def _refusal(message: Any) -> str | None:
    """A chat message's (or a stream delta's) ``refusal``, mended; None where it has none
    (a trial's refusal was served as "")."""
    said = message.get("refusal") if isinstance(message, dict) else None
    return mend(said) if isinstance(said, str) and said else None


# finish_reason as other servers spell OpenAI's values: Anthropic's stop_reason
# (docs.anthropic.com/en/api/messages), Hugging Face TGI's (eos_token, stop_sequence),
# llama.cpp server's stop_type (eos, word, limit), Gemini's and Cohere's upper-case ones.
# An answer is stored only with stop or length (engine.py), so an upstream saying end_turn
# for a complete answer was never reused. Other values are relayed as they are, not stored.
FINISH_REASONS = {
    **{v: v for v in ("stop", "length", "tool_calls", "content_filter", "function_call")},
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "eos_token": "stop",
    "eos": "stop",
    "word": "stop",
    "complete": "stop",
    "max_tokens": "length",
    "limit": "length",
    "tool_use": "tool_calls",
    "safety": "content_filter",
    "refusal": "content_filter",
}


def _finish_reason(value: Any) -> str:
    """An upstream's ``finish_reason`` in OpenAI's words (``FINISH_REASONS``, any case:
    Gemini's "STOP" is "stop"); a value none of them names is kept as it was. Raises
    :class:`UpstreamError` when it is not a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise UpstreamError(f"upstream sent a malformed finish_reason ({json_type(value)})")
    return FINISH_REASONS.get(value.strip().lower(), mend(value))


def _said(exc: Exception) -> str:
    """An HTTP client error in words for a message ("ConnectError: [Errno 111] Connection
    refused"; its class alone where it says nothing), not Python's repr."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _estimate_tokens(text: str) -> int:
    """Fallback when an upstream omits usage: ~4 characters a token (OpenAI's rule of thumb)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _reasoning_tokens(usage: dict[str, Any]) -> int:
    """``usage.completion_tokens_details.reasoning_tokens`` (0 where absent or malformed)."""
    details = usage.get("completion_tokens_details")
    if not isinstance(details, dict):
        return 0
    return _token_count(details.get("reasoning_tokens") or 0) or 0


def _choice_0(choices: list[Any]) -> dict[str, Any] | None:
    """Choice 0 of an answer's (or a stream event's) ``choices``, the one the gateway asks
    for (``n`` is 1): the first whose ``index`` is the integer 0, or absent (servers that do
    not number their one choice); None if there is none. Another choice's deltas were merged
    into choice 0, relayed and stored as one answer (a break-it trial), so were two
    unnumbered choices of one event, and an index ``false`` or ``"0"`` read as 0 (re-checks);
    without choice 0 an answer is malformed, streamed or not."""
    for choice in choices:
        index = choice.get("index", 0) if isinstance(choice, dict) else None
        if type(index) is int and index == 0:
            return choice  # type: ignore[no-any-return]
    return None


class OpenAIBackend(Backend):
    kind = "openai"
    remote = True
    counts_context_by_bytes = True

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
        # the configured name and the upstream's model id; never the base URL, which would leak
        # an internal address into every signed document and export (issue #13)
        self.version = f"{name}#{self.upstream_model}"
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
        body.update(model=self.upstream_model, stream=stream)
        # only what the client sent (or the gateway chose): the upstream's default otherwise
        if "temperature" not in req.left_out:
            body["temperature"] = req.temperature
        if "top_p" not in req.left_out:
            body["top_p"] = req.top_p
        if self.reasoning and req.messages is not None:
            # OpenAI's reasoning models refuse max_tokens ("use max_completion_tokens"), which
            # counts their reasoning tokens too, as ours does
            body["max_completion_tokens"] = req.max_tokens
        else:
            body["max_tokens"] = req.max_tokens
        if req.stop:
            body["stop"] = req.stop
        if req.seed is not None:
            body["seed"] = req.seed
        if req.user is not None:
            body["user"] = req.user
        if stream:
            body["stream_options"] = {"include_usage": True}
        if req.messages is not None:
            body["messages"] = [m.openai() for m in req.messages]
            return "/chat/completions", body
        body["prompt"] = req.prompt or ""
        return "/completions", body

    def _error_for(self, resp: httpx.Response, body: bytes) -> BoundgateError:
        """The error for the upstream's answer ``resp`` (status 400 or more) with ``body``: a
        429 or 5xx to retry (``_RetryableAnswer``; once retries are spent a 502, or for a
        429 an :class:`UpstreamRateLimitError` with its ``Retry-After``); a 404 an
        :class:`UpstreamError` (502) naming this model and its upstream model; another 5xx
        an :class:`UpstreamError` (502, not retried); another 4xx an
        :class:`UpstreamClientError` passing the upstream's status and error through."""
        try:
            # passed on to the client and the ledger (a lone surrogate in its message was a
            # 500; NUL in its code a 500 on PostgreSQL)
            parsed = mended(json.loads(body))
        except (ValueError, RecursionError):
            parsed = None
        if resp.status_code >= 500 or resp.status_code in (401, 403, 429):
            # the upstream's words go to the server log, not to the client: a 5xx body may
            # name its internals (a re-check's 501: a host and a password), OpenAI's 429 the
            # gateway's organisation and limits, a 401/403 part of the key (trials)
            log.warning(
                "model %r: its upstream answered %d: %s",
                self.name,
                resp.status_code,
                _upstream_message(parsed, body),
            )
        if resp.status_code in RETRY_STATUSES:
            asked = _retry_after(resp)
            return _RetryableAnswer(
                f"upstream answered {resp.status_code} (the server log has its words)",
                resp.status_code,
                None if asked is None else min(asked, MAX_RETRY_AFTER_S),
                asked,
            )
        if resp.status_code == 404:
            # the client's model is one the gateway serves: the upstream not knowing the model
            # (or the path) it was configured with is the gateway's failure, not the client's
            # (a 404 passed through read as "model not found" to the client, and a background
            # job took it for a refusal for good)
            return UpstreamError(
                f"model {self.name!r}: its upstream answered 404 for model "
                f"{self.upstream_model!r}, a configuration error of the gateway "
                f"(models.{self.name}.upstream_model, base_url): "
                f"{_upstream_message(parsed, body)}"
            )
        if resp.status_code in (401, 403):
            # the gateway's own credentials, not the client's: passed through, the client read
            # its key refused and a ladder stopped climbing (a trial); said in a 502
            return UpstreamError(
                f"model {self.name!r}: its upstream refused the gateway's credentials "
                f"({resp.status_code}), a configuration error of the gateway "
                f"(models.{self.name}.api_key_env, base_url); the server log has its words"
            )
        if resp.status_code >= 500:
            # a 5xx not worth retrying (501, 505, 507, Cloudflare's 520s, 529): the gateway's
            # failure to answer, said in a 502 like the others
            return UpstreamError(
                f"model {self.name!r}: upstream answered {resp.status_code} (the server log "
                "has its words)"
            )
        return UpstreamClientError(
            resp.status_code,
            parsed,
            f"upstream answered {resp.status_code}: {_upstream_message(parsed, body)}",
        )

    async def _send(self, path: str, body: dict[str, Any], stream: bool) -> httpx.Response:
        """POST with bounded retries; returns an open (possibly streaming) 2xx response.
        Each retry is told to ``on_retry`` (the gateway's ``boundgate_retries_total``)."""
        attempts = 0
        with counting(self.on_retry):
            try:
                async for attempt in stamina.retry_context(
                    on=_retry_or_wait,
                    attempts=self.max_retries + 1,
                    timeout=None,
                    wait_initial=self.backoff_s,
                    wait_jitter=self.backoff_s,
                    wait_max=MAX_RETRY_AFTER_S,
                ):
                    with attempt:
                        attempts = attempt.num
                        request = self._client.build_request("POST", path, json=body)
                        resp = await self._client.send(request, stream=stream)
                        if resp.status_code < 400:
                            return resp
                        content = await resp.aread()
                        await resp.aclose()
                        raise self._error_for(resp, content)
            except _RetryableAnswer as exc:
                if exc.status != 429:
                    # which model failed: on a ladder's last rung the client saw only "upstream
                    # answered 500" (a trial)
                    raise UpstreamError(
                        f"model {self.name!r}: {exc.message} ({attempts} attempt(s))"
                    ) from exc
                # the upstream's rate limit: the client backs off as it says (a 502 lost it)
                raise UpstreamRateLimitError(
                    f"model {self.name!r}: its upstream is rate limiting the gateway "
                    f"({attempts} attempt(s)): {exc.message}",
                    retry_after=UNKNOWN_WAIT_S if exc.asked_s is None else exc.asked_s,
                ) from exc
            except httpx.TimeoutException as exc:
                raise UpstreamTimeoutError(
                    f"model {self.name!r}: upstream timed out after {attempts} attempt(s) of "
                    f"{self.timeout_s:g}s"
                ) from exc
            except httpx.DecodingError as exc:  # a body its Content-Encoding does not decode
                raise UpstreamError(
                    f"model {self.name!r}: upstream sent a body that does not decode: {exc}"
                ) from exc
            except httpx.TransportError as exc:
                raise UpstreamError(
                    f"model {self.name!r}: upstream unreachable after {attempts} attempt(s): "
                    f"{_said(exc)}"
                ) from exc
        raise AssertionError("stamina ended without an answer or an error")  # pragma: no cover

    # --- the Backend interface -----------------------------------------------------------
    async def complete(self, req: GenerationRequest, cancel: CancelToken) -> Completion:
        path, body = self._body(req, stream=False)
        resp = await self._send(path, body, stream=False)
        try:
            data = resp.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise UpstreamError("upstream sent a malformed completion: not JSON") from exc
        choices = data.get("choices") if isinstance(data, dict) else None
        choice = _choice_0(choices if isinstance(choices, list) else [])
        if choice is None:
            raise UpstreamError(
                "upstream sent a malformed completion: its choices hold no choice 0"
            )
        # a chat answer has a message, a text completion its text (a chat-shaped reply to
        # /v1/completions, or a choice without its message, was served as "")
        refusal: str | None = None
        if req.messages is not None:
            message = choice.get("message")
            if not isinstance(message, dict) or "content" not in message:
                raise UpstreamError(
                    "upstream sent a malformed completion: its choice has no message content"
                )
            text = _text_of(message["content"], "completion")
            refusal = _refusal(message)
        elif "text" not in choice:
            raise UpstreamError("upstream sent a malformed completion: its choice has no text")
        else:
            text = _text_of(choice["text"], "completion", nullable=False)
        if choice.get("finish_reason") is None:
            # an answer is complete only when the upstream says why it ended
            raise UpstreamError("upstream sent a completion without a finish_reason")
        finish = _finish_reason(choice["finish_reason"])
        usage = self._usage(data.get("usage"), req, text or refusal or "")
        return Completion(text, finish, usage, refusal=refusal)

    def _usage(self, usage: Any, req: GenerationRequest, text: str) -> Usage:
        """The upstream's ``usage`` where its counts are token counts (``_token_count``),
        else the estimate from the prompt's and the answer's characters."""
        if isinstance(usage, dict):
            asked, answered = (_token_count(usage.get(k)) for k in _COUNTED)
            if asked is not None and answered is not None:
                return Usage(asked, answered, _reasoning_tokens(usage))
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
            async for sse in EventSource(resp).aiter_sse():
                if cancel.cancelled:
                    finish = "cancelled"
                    break
                payload = sse.data.strip()
                if not payload:
                    continue
                if payload == "[DONE]":
                    break
                try:
                    event = json.loads(payload)
                except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                    raise UpstreamError("upstream sent a malformed stream event") from exc
                if not isinstance(event, dict):
                    raise UpstreamError("upstream sent a malformed stream event")
                if event.get("error"):
                    err = event["error"]
                    detail = err.get("message") if isinstance(err, dict) else str(err)
                    log.warning("model %r: its upstream's stream failed: %s", self.name, detail)
                    raise UpstreamError("upstream stream error (the server log has its words)")
                if event.get("usage"):
                    usage = event["usage"]
                choices = event.get("choices") or []
                if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
                    raise UpstreamError("upstream sent a malformed stream event: its choices")
                if (choice := _choice_0(choices)) is not None:  # others: an upstream's slip
                    delta = choice.get("delta") if req.messages is not None else choice
                    if not isinstance(delta, dict | None):
                        raise UpstreamError("upstream sent a malformed stream event: its delta")
                    field = "content" if req.messages is not None else "text"
                    text = _text_of((delta or {}).get(field), "stream event")
                    if text:
                        parts.append(text)
                        yield Chunk(text=text)
                    refusal = _refusal(delta) if req.messages is not None else None
                    if refusal:
                        yield Chunk(refusal=refusal)
                    if reason := choice.get("finish_reason"):  # ("" in a chunk: not yet)
                        finish = _finish_reason(reason)
        except SSEError as exc:
            raise UpstreamError(f"upstream sent no event stream: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError("upstream stream stalled") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise UpstreamError(f"upstream stream broke: {_said(exc)}") from exc
        finally:
            await resp.aclose()
        if finish is None:
            # the body ended (or said [DONE]) without a finish_reason: an incomplete answer
            raise UpstreamError("upstream stream ended before the answer was finished")
        yield Chunk(finish_reason=finish, usage=self._usage(usage, req, "".join(parts)))
