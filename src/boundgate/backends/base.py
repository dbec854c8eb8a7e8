"""The backend seam: one abstract method, :meth:`Backend.generate`, which streams.

Everything else a gateway needs from a backend (collecting a non-streamed answer, counting
usage, cancelling) is machinery here, so a new backend is one method plus its constructor.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "developer"]


@dataclass(frozen=True)
class Message:
    """One chat message. ``name`` is OpenAI's participant name (sent to the model);
    ``calls`` the canonical JSON of an assistant message's ``tool_calls`` / ``function_call``,
    kept for the reuse scope only (tools are not supported, so never sent)."""

    role: Role
    content: str
    name: str | None = None
    calls: str | None = None

    def fields(self) -> list[str]:
        """``[role, content]``, with ``name`` and ``calls`` where set (stored requests and
        the reuse scope; a message without them keeps the two-field form it always had)."""
        out = [self.role, self.content]
        if self.name is not None or self.calls is not None:
            out.append(self.name or "")
        if self.calls is not None:
            out.append(self.calls)
        return out

    def openai(self) -> dict[str, str]:
        """The message as OpenAI's API takes it (``calls`` left out)."""
        out = {"role": self.role, "content": self.content}
        if self.name:
            out["name"] = self.name
        return out


@dataclass
class GenerationRequest:
    """What to generate, independent of the HTTP shape it arrived in.

    Exactly one of ``messages`` (chat) or ``prompt`` (plain completion) is set.
    """

    model: str
    messages: list[Message] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    user: str | None = None
    # The sampling parameters ("temperature", "top_p") the client left out and no gateway
    # setting chose: at OpenAI's default here, and not sent upstream, whose own default
    # applies (OpenAI's reasoning models refuse ``top_p``, and some upstreams refuse
    # ``temperature`` and ``top_p`` together: a request that named neither must not fail on
    # them). Not part of the reuse scope (the values are).
    left_out: frozenset[str] = field(default=frozenset(), compare=False)
    # Other OpenAI parameters passed through unchanged to upstream servers.
    passthrough: dict[str, Any] = field(default_factory=dict)
    # The request's ``boundgate`` field (gateway options such as reuse); never sent upstream.
    options: Any = None
    # Reasoning models only: the most reasoning tokens this request may use (set by the
    # gateway from reasoning_effort; local backends enforce it). None: no cap.
    max_reasoning_tokens: int | None = None
    # The name ``max_tokens`` arrived under (chat's ``max_completion_tokens``), for an error
    # about it. Never sent upstream.
    max_tokens_param: str = field(default="max_tokens", repr=False, compare=False)
    # Set by the router for a rung with a log-probability threshold: report the answer's
    # mean token log-probability (``Completion.mean_token_logprob``). Backends that cannot
    # (upstream servers) ignore it and report None.
    report_logprob: bool = False
    # Set by the router with it: the threshold (nats per token) the answer is checked
    # against. Part of the reuse scope, so the rung reuses only answers a check at that
    # threshold kept, never one stored by a request that named the model directly.
    logprob_threshold: float | None = None
    # Set by the gateway for backends that ``report_start``: called once, on the event loop,
    # when this request's generation really starts (it has the model, after any queue wait),
    # so the energy meter brackets the generation and not the wait. Never sent upstream.
    on_start: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    # Set by the gateway on a non-streamed generation: called on the event loop with the
    # number of text chunks (tokens, for local models) produced so far, so the request's
    # write-ahead note counts them (``Backend.complete``). Never sent upstream.
    on_token: Callable[[int], None] | None = field(default=None, repr=False, compare=False)

    def text_bytes(self) -> int:
        """UTF-8 size of the input: an upper bound on its token count for BPE vocabularies."""
        if self.prompt is not None:
            return len(self.prompt.encode())
        return sum(len(m.content.encode()) + 8 for m in self.messages or [])


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens included, as OpenAI counts them
    reasoning_tokens: int = 0  # OpenAI's completion_tokens_details.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Chunk:
    """A piece of streamed output. The last chunk has ``finish_reason`` and ``usage``, and
    ``mean_token_logprob`` when the request set ``report_logprob`` and the backend can; an
    earlier one may carry the usage known so far (see ``Backend.generate``)."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    mean_token_logprob: float | None = None
    refusal: str = ""  # a piece of an upstream's refusal (OpenAI's ``delta.refusal``)


@dataclass(frozen=True)
class Completion:
    """A whole answer. ``mean_token_logprob``: the mean natural-log probability (nats per
    token, ≤ 0) the model gave the tokens it generated, unscaled by temperature or sampling
    filters; None when not asked for (``report_logprob``), not available (upstream models,
    reused answers) or no token was scored. ``refusal``: an upstream's refusal (OpenAI's
    ``message.refusal``, beside a null ``content``), relayed as it is and never stored."""

    text: str
    finish_reason: str
    usage: Usage
    mean_token_logprob: float | None = None
    refusal: str | None = None


class CancelToken:
    """Set by the gateway when the client goes away; backends stop at the next token."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


# parameters that decide whether a request is reused at all, whatever a model reads of them
_DECIDING = frozenset({"tools", "functions"})


class Backend(ABC):
    """A model server. Subclasses implement :meth:`generate`."""

    kind: str = "abstract"  # a label for the ledger and the energy estimate
    # The model runs elsewhere (an upstream API): its energy is estimated from its tokens,
    # not measured on this machine, and it is listed as owned by the upstream.
    remote: bool = False
    # The gateway checks the prompt against ``context_length`` itself, estimating tokens
    # from bytes (4 a token) before sending, as it has no tokenizer for the model; local
    # backends count the prompt's tokens with their own.
    counts_context_by_bytes: bool = False
    # A reasoning model (``models.<name>.reasoning``): requests get a reasoning-token cap
    # from their reasoning_effort and count against the daily reasoning budget.
    reasoning: bool = False
    # Whether its fresh answers label the verifier's observations (``models.<name>.
    # answer_labels``, resolved by ``reuse.answer_labels.resolve``): "auto", "on" or "off".
    answer_labels: Literal["auto", "on", "off"] = "auto"
    # The backend calls ``req.on_start()`` when the request's generation starts (local
    # backends that run one generation at a time behind a queue): the gateway meters the
    # generation from that call, not from when it asked, so the queue wait, whose energy is
    # another request's, is not billed. False (upstream backends): metered from the call.
    reports_start: bool = False
    # The model's prompt format has no ``developer`` role: such a message is given to it as
    # the ``system`` message it stands for (``LlamaCppBackend.chat_messages``), so the two
    # are one request to it, and one reuse scope (``as_read``).
    developer_as_system: bool = False
    # The model reads OpenAI's other parameters (``GenerationRequest.passthrough``:
    # penalties, logit_bias, response_format, …); False: it ignores them (the local llama.cpp
    # model), so they change nothing it answers, and no reuse scope either (``as_read``).
    reads_passthrough: bool = True
    # the parameters such a model does read among them (the local model: response_format,
    # as a grammar), kept in its reuse scope
    reads_params: frozenset[str] = frozenset()

    def __init__(self, name: str, *, params_b: float, context_length: int | None) -> None:
        self.name = name
        self.params_b = params_b
        self.context_length = context_length
        # Identifies the exact weights/upstream model; reuse scopes answers by it.
        self.version = name
        self.memory_gb = 0.0  # resident weights on this machine (local backends)
        # told of each retry the backend schedules of a call that failed (an upstream's
        # connection error, timeout, 429 or 5xx): the gateway counts those of its remote
        # backends on its /metrics (``Metrics.retry_counter``)
        self.on_retry: Callable[[], None] | None = None

    def as_read(self, req: GenerationRequest) -> GenerationRequest:
        """``req`` as this model reads it, for the reuse scope: with ``developer_as_system``,
        its ``developer`` messages as ``system`` (a trial: the same text under either role
        got the same answer, 65 tokens for 65, and missed the other's stored one); without
        ``reads_passthrough``, without the parameters it ignores (a trial: presence_penalty
        0.5, logit_bias, top_k 40 each recomputed the identical answer), ``tools`` and
        ``functions`` kept (they decide whether reuse applies at all), and a reasoning
        model's ``reasoning_effort``. Else ``req`` itself."""
        reads = _DECIDING | self.reads_params
        if self.reasoning:
            # a reasoning model reads its effort as a cap on its thinking (a break-it trial:
            # an answer thought at effort "none" was served to "high", a cut "low" one to
            # "none")
            reads |= {"reasoning_effort"}
        if not self.reads_passthrough and any(k not in reads for k in req.passthrough):
            kept = {k: v for k, v in req.passthrough.items() if k in reads}
            req = replace(req, passthrough=kept)
        if not self.developer_as_system or req.messages is None:
            return req
        if all(m.role != "developer" for m in req.messages):
            return req
        read = [replace(m, role="system") if m.role == "developer" else m for m in req.messages]
        return replace(req, messages=read)

    async def answer_room(self, req: GenerationRequest) -> int | None:
        """The most tokens ``req``'s answer can have on this model where its context leaves
        fewer than ``req.max_tokens`` (the context minus the prompt's tokens); None where
        the request's own limit is the bound. The limit a stored answer is checked against
        (``scope.answer_fits``): a prompt that leaves room for 17 tokens gets the same
        17-token answer, cut, at ``max_tokens`` 20 as at 17. The default: None (an
        upstream's context is the upstream's; it enforces it)."""
        return None

    def template_tokens(self, req: GenerationRequest) -> int:
        """Tokens the model's prompt format adds to what ``req.text_bytes()`` counts (which
        allows 8 per message): held with it against daily budgets, so an upper bound. The
        default is the 3 tokens OpenAI's chat format adds to prime the reply (OpenAI
        cookbook, "How to count tokens with tiktoken": 3 per message + 3); local backends
        measure their own chat template."""
        return 3 if req.messages is not None else 0

    @abstractmethod
    def generate(self, req: GenerationRequest, cancel: CancelToken) -> AsyncGenerator[Chunk, None]:
        """Stream the answer. The final chunk carries finish_reason and usage; an earlier
        chunk may carry the usage known so far (the prompt's tokens, once the model starts
        on it), so a stream cut short still counts its prompt.

        Raises :class:`boundgate.errors.BoundgateError` subclasses for anything the client
        should see (context too long, upstream failures, overload).
        """

    async def complete(self, req: GenerationRequest, cancel: CancelToken) -> Completion:
        """Collect a whole answer, calling ``req.on_token`` with the text chunks so far.
        Backends with a cheaper non-streamed path override this."""
        parts: list[str] = []
        produced = 0
        finish = "stop"
        usage = Usage(0, 0)
        logprob: float | None = None
        async for chunk in self.generate(req, cancel):
            parts.append(chunk.text)
            if chunk.text and req.on_token is not None:
                produced += 1
                req.on_token(produced)
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.mean_token_logprob is not None:
                logprob = chunk.mean_token_logprob
        return Completion("".join(parts), finish, usage, logprob)

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load weights / open connections. Called once before serving."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    @property
    def ready(self) -> bool:
        return True

    def queue_depth(self) -> int:
        """Requests waiting for this backend (0 for backends without a queue)."""
        return 0

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "backend": self.kind,
            "params_b": self.params_b,
            "context_length": self.context_length,
            "version": self.version,
            "reasoning": self.reasoning,
        }


async def cancel_on_exit(
    it: AsyncIterator[Chunk], cancel: CancelToken
) -> AsyncGenerator[Chunk, None]:
    """Re-yield ``it``; if the consumer stops early (disconnect), signal ``cancel``."""
    finished = False
    try:
        async for chunk in it:
            yield chunk
        finished = True
    finally:
        if not finished:
            cancel.cancel()
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await asyncio.shield(aclose())


def model_versions(backends: Mapping[str, Backend]) -> dict[str, str]:
    """Each configured model's version (known once the backends have started), which stored
    answers and documents are checked against."""
    return {name: b.version for name, b in backends.items()}
