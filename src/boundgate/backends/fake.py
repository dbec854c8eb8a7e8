"""Test doubles that ship with the package, behind the same interfaces as the real things.

- :class:`FakeBackend`: an in-process backend with deterministic answers and optional delay.
- :func:`create_fake_upstream_app` / :class:`FakeUpstreamServer`: a zero-latency
  OpenAI-compatible HTTP server (used by tests and by ``bench/overhead.py``), with scripted
  faults (status codes, delays) for retry and timeout tests, and the models it serves (any,
  unless told: another is answered 404 ``model_not_found``, as OpenAI answers it).
  ``python -m boundgate.backends.fake --port 9000`` serves it standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..clock import FakeClock
from ..errors import ServiceUnavailableError
from ..testing import ThreadedServer
from .base import Backend, CancelToken, Chunk, GenerationRequest, Usage
from .reasoning import CLOSE, CLOSE_THINKING, OPEN, ThinkBudget

_VOCABULARY = (
    "river mountain engine garden violin harbour pepper orbit castle winter copper lantern  "
    "meadow signal theatre glacier compass ledger falcon prism velvet canyon marble tunnel  "
    "orchard beacon cipher quarry saddle thunder anchor basket cotton desert ember fabric  "
    "granite hollow island jungle kettle lemon magnet needle oyster pillow quartz ribbon  "
    "silver timber umbrella valley walnut yellow zephyr bakery candle dolphin feather harvest  "
    "ivory jacket kitchen ladder mirror nectar olive parrot rocket spiral tractor"
).split()


def fake_answer(question: str) -> str:
    """A deterministic answer per question whose *content* differs per question.

    Distinct meanings get distinct answers in words, not just in an id, so that comparing
    answers by embedding (the verifier's answer check) can tell them apart, as it must with a
    real model's answers.
    """
    digest = hashlib.sha256(question.encode()).digest()
    words = [_VOCABULARY[b % len(_VOCABULARY)] for b in digest[:10]]
    return f"Answer {digest.hex()[:8]}: " + " ".join(words) + "."


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


class FakeBackend(Backend):
    """Deterministic in-process backend; ``token_delay_s`` simulates generation time.

    ``answers`` scripts what it says: question → answer text (split into one token a word and
    cut at ``max_tokens`` with ``finish_reason: "length"``), e.g. a small rung that is right
    on arithmetic and refuses lookups (tests, ``bench/routing.py``). Without it the answer is
    :func:`fake_answer` of the question's meaning. ``logprobs`` scripts its confidence:
    question → the answer's mean token log-probability (nats per token), reported on the last
    chunk when the request sets ``report_logprob``, as ``LlamaCppBackend`` does; without it
    the fake reports none, like an upstream model. ``failures`` scripts faults: each
    generation takes the next number n, if any, and fails with a 503 after n tokens (a model
    that goes away mid-answer). ``serialize`` makes it run one generation at a time, the
    others waiting their turn, as ``LlamaCppBackend`` does; either way it calls the request's
    ``on_start`` when its generation starts (after any wait); with ``queue_size`` too, a
    generation that finds one running and ``queue_size`` waiting is refused with a 503 before
    it starts, as ``LlamaCppBackend``'s full queue refuses it. With ``clock``, each token
    advances that fake clock by ``token_delay_s`` instead of sleeping."""

    kind = "fake"
    reports_start = True

    def __init__(
        self,
        name: str = "fake",
        *,
        params_b: float = 0.135,
        context_length: int | None = 2048,
        token_delay_s: float = 0.0,
        version: str | None = None,
        reasoning: bool = False,
        thinking_tokens: int = 0,
        answers: Callable[[str], str] | None = None,
        logprobs: Callable[[str], float] | None = None,
        serialize: bool = False,
        queue_size: int | None = None,
        clock: FakeClock | None = None,
        developer_role: bool = True,
        reads_passthrough: bool = True,
    ) -> None:
        super().__init__(name, params_b=params_b, context_length=context_length)
        # False: a prompt format without a "developer" role, as SmolLM2's (``as_read``)
        self.developer_as_system = not developer_role
        # False: OpenAI's other parameters are ignored, as the local model ignores them
        self.reads_passthrough = reads_passthrough
        self.answers = answers
        self.logprobs = logprobs
        if version is not None:
            self.version = version
        # a simulated reasoning model: ``thinking_tokens`` tokens between <think> and
        # </think> before the answer, cut at the request's max_reasoning_tokens
        self.reasoning = reasoning
        self.thinking_tokens = thinking_tokens
        self.token_delay_s = token_delay_s
        self.clock = clock
        self._lock = asyncio.Lock() if serialize else None
        self.queue_size = queue_size
        self._waiting = 0
        self.calls = 0
        self.meanings: dict[str, str] = {}  # question → meaning: same meaning, same answer
        self.simulated_queue = 0  # requests to pretend are waiting (tests of yielding)
        self.failures: deque[int] = deque()  # the next generations fail after n tokens

    def queue_depth(self) -> int:
        return self.simulated_queue + self._waiting

    async def _delay(self) -> None:
        if not self.token_delay_s:
            return
        if self.clock is not None:
            self.clock.advance(self.token_delay_s)
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(self.token_delay_s)

    async def generate(
        self, req: GenerationRequest, cancel: CancelToken
    ) -> AsyncGenerator[Chunk, None]:
        self.calls += 1
        if self._lock is None:
            if req.on_start is not None:
                req.on_start()
            async for chunk in self._generate(req, cancel):
                yield chunk
            return
        full = self.queue_size is not None and self._waiting >= self.queue_size
        if full and self._lock.locked():
            raise ServiceUnavailableError(
                "the fake model is busy and its queue is full; retry later", retry_after=1
            )
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            if req.on_start is not None:
                req.on_start()  # it has the model now: the wait is not its generation
            async for chunk in self._generate(req, cancel):
                yield chunk
        finally:
            self._lock.release()

    async def _generate(
        self, req: GenerationRequest, cancel: CancelToken
    ) -> AsyncGenerator[Chunk, None]:
        question = req.prompt if req.prompt is not None else (req.messages or [])[-1].content
        question = question or ""
        if self.reasoning:
            async for chunk in self._reason(req, cancel, question):
                yield chunk
            return
        if self.answers is not None:
            text = self.answers(question)
        else:
            text = fake_answer(self.meanings.get(question, question))
        words = (_words(text) if text else [])[: req.max_tokens]
        fail_at = self.failures.popleft() if self.failures else None
        for i, w in enumerate(words):
            if cancel.cancelled:
                break
            if i == fail_at:
                raise ServiceUnavailableError("The fake model failed (a scripted failure).")
            await self._delay()
            yield Chunk(text=w)
        finish = "length" if len(words) == req.max_tokens else "stop"
        scored = req.report_logprob and self.logprobs is not None and bool(words)
        yield Chunk(
            finish_reason="cancelled" if cancel.cancelled else finish,
            usage=Usage(max(1, req.text_bytes() // 4), len(words)),
            mean_token_logprob=self.logprobs(question) if scored and self.logprobs else None,
        )

    async def _reason(
        self, req: GenerationRequest, cancel: CancelToken, question: str
    ) -> AsyncGenerator[Chunk, None]:
        thinking = [OPEN, *(f" step{i}" for i in range(self.thinking_tokens)), CLOSE, "\n\n"]
        pieces = thinking + _words(fake_answer(self.meanings.get(question, question)))
        budget = ThinkBudget(req.max_reasoning_tokens)
        produced, i, finish = 0, 0, "stop"
        while i < len(pieces) and not cancel.cancelled:
            if produced >= req.max_tokens:
                finish = "length"
                break
            await self._delay()
            piece = pieces[i]
            i += 1
            produced += 1
            yield Chunk(text=piece)
            if budget.feed(piece):
                budget.cut()
                yield Chunk(text=CLOSE_THINKING)
                i = pieces.index(CLOSE) + 2  # skip the rest of the thinking
        yield Chunk(
            finish_reason="cancelled" if cancel.cancelled else finish,
            usage=Usage(max(1, req.text_bytes() // 4), produced, budget.reasoning_tokens),
        )


# --- the fake upstream HTTP server ---------------------------------------------------------


@dataclass
class Fault:
    status: int = 200  # non-200: answer with this status and an OpenAI error body
    delay_s: float = 0.0  # sleep before answering (for timeout tests)
    retry_after: float | None = None
    # a broken 200 answer: a stream that ends after this many content chunks with no
    # finish_reason, usage or [DONE] (non-stream: a completion without a finish_reason)
    truncate_after: int | None = None
    # a stream that sends this many content chunks, then an OpenAI error event
    error_after: int | None = None
    # a malformed or odd 200 answer: the usage reported instead of the true one, and the
    # answer's content (``message.content`` / ``text``; in a stream each chunk's) replaced by
    # this JSON value, or left out where it is ``ABSENT``
    usage: dict[str, Any] | None = None
    content: Any = None
    replace_content: bool = False
    # an answer (with ``status``) of these bytes and headers as they are (a body no JSON reader
    # or decoder takes: nested too deep, or not the Content-Encoding it says)
    raw: bytes | None = None
    raw_headers: dict[str, str] | None = None
    # the finish_reason the answer ends with, as another server spells it ("end_turn"), in
    # place of OpenAI's stop / length
    finish_reason: str | None = None


ABSENT = object()  # Fault.content: the answer has no content field at all


class FakeUpstreamControl:
    """Scripted behaviour for the fake upstream: queue faults, count requests, say which
    models it serves (``models``)."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.requests = 0
        self.last_body: dict[str, Any] | None = None
        # question → meaning id: questions with the same meaning get the same answer (the
        # reuse benchmarks' ground truth). Unlisted questions are their own meaning.
        self.meanings: dict[str, str] = {}
        # hidden reasoning tokens per answer, as an upstream reasoning model reports them in
        # usage.completion_tokens_details.reasoning_tokens (and within completion_tokens)
        self.reasoning_tokens = 0
        # the model ids it serves (listed by /v1/models); a request for another is answered
        # 404 ``model_not_found`` in OpenAI's shape. None: any model (``fake`` listed)
        self.models: set[str] | None = None

    def answer(self, question: str) -> str:
        return fake_answer(self.meanings.get(question, question))

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def next(self) -> Fault | None:
        with self._lock:
            self.requests += 1
            return self._faults.popleft() if self._faults else None


def create_fake_upstream_app(control: FakeUpstreamControl | None = None) -> Starlette:
    ctl = control or FakeUpstreamControl()

    async def _fault(fault: Fault | None) -> Response | None:
        if fault is None:
            return None
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.raw is not None:
            return Response(fault.raw, status_code=fault.status, headers=fault.raw_headers)
        if fault.status == 200:
            return None
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
        return JSONResponse(
            {
                "error": {
                    "message": f"injected fault {fault.status}",
                    "type": "fake_error",
                    "param": None,
                    "code": f"fake_{fault.status}",
                }
            },
            status_code=fault.status,
            headers=headers,
        )

    async def completions(request: Request) -> Response:
        fault = ctl.next()
        faulted = await _fault(fault)
        if faulted is not None:
            return faulted
        body = json.loads(await request.body())
        ctl.last_body = body
        model = body.get("model", "fake")
        if ctl.models is not None and model not in ctl.models:
            return JSONResponse(
                {
                    "error": {
                        "message": f"The model `{model}` does not exist or you do not have "
                        "access to it.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "model_not_found",
                    }
                },
                status_code=404,
            )
        chat = request.url.path.endswith("/chat/completions")
        if chat:
            messages = body.get("messages") or [{"content": ""}]
            question = str(messages[-1].get("content", ""))
        else:
            prompt = body.get("prompt", "")
            question = prompt[0] if isinstance(prompt, list) else str(prompt)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        words = _words(ctl.answer(question))[:max_tokens]
        # cut by the limit, as a real upstream says (a trial saw a cut answer called "stop"
        # and reused for larger limits); at exactly the limit the model stops there too
        ended = "length" if len(words) == max_tokens else "stop"
        if fault is not None and fault.finish_reason is not None:
            ended = fault.finish_reason
        text = "".join(words)
        # "none" asks for no reasoning, and OpenAI's models that take it reason for none
        reasoned = 0 if body.get("reasoning_effort") == "none" else ctl.reasoning_tokens
        completion_tokens = len(words) + reasoned
        usage: dict[str, Any] = {
            "prompt_tokens": max(1, len(question) // 4),
            "completion_tokens": completion_tokens,
            "total_tokens": max(1, len(question) // 4) + completion_tokens,
        }
        if reasoned:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoned}
        if fault is not None and fault.usage is not None:
            usage = fault.usage

        def content(value: str) -> dict[str, Any]:
            """The answer's field (``content`` / ``text``) holding ``value``, or the fault's."""
            key = "content" if chat else "text"
            if fault is None or not fault.replace_content:
                return {key: value}
            return {} if fault.content is ABSENT else {key: fault.content}

        created = int(time.time())
        cid = "fake-" + hashlib.sha256(question.encode()).hexdigest()[:8]
        obj = "chat.completion" if chat else "text_completion"
        if not body.get("stream"):
            finish = None if fault is not None and fault.truncate_after is not None else ended
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", **content(text)}
            else:
                choice.update(content(text))
            return JSONResponse(
                {
                    "id": cid,
                    "object": obj,
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            for i, w in enumerate(words):
                if fault is not None and fault.truncate_after == i:
                    return  # the body ends: no finish_reason, no usage, no [DONE]
                if fault is not None and fault.error_after == i:
                    error = {"message": "injected stream error", "type": "server_error"}
                    yield f"data: {json.dumps({'error': error})}\n\n".encode()
                    return
                part: dict[str, Any] = {"index": 0, "finish_reason": None}
                if chat:
                    part["delta"] = content(w)
                else:
                    part.update(content(w))
                event = {"id": cid, "object": obj + ".chunk", "created": created, "model": model}
                event["choices"] = [part]
                yield f"data: {json.dumps(event)}\n\n".encode()
            last: dict[str, Any] = {"index": 0, "finish_reason": ended}
            last["delta" if chat else "text"] = {} if chat else ""
            event = {"id": cid, "object": obj + ".chunk", "created": created, "model": model}
            event["choices"] = [last]
            yield f"data: {json.dumps(event)}\n\n".encode()
            event = {"id": cid, "object": obj + ".chunk", "created": created, "model": model}
            event["choices"] = []
            event["usage"] = usage
            yield f"data: {json.dumps(event)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        ids = sorted(ctl.models) if ctl.models is not None else ["fake"]
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": i, "object": "model", "owned_by": "fake"} for i in ids],
            }
        )

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    app.state.control = ctl
    return app


class FakeUpstreamServer(ThreadedServer):
    """The fake upstream on a real port in a background thread; ``control`` scripts faults."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.control = FakeUpstreamControl()
        super().__init__(create_fake_upstream_app(self.control), host, port, lifespan="off")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the fake OpenAI-compatible upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(create_fake_upstream_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
