"""The gateway's request-scoped types: a request's context, its result, the last event of a
stream, and the checks every path shares (the context length, a prompt's estimated tokens, a
reused answer's usage)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from ..backends.base import Backend, Completion, GenerationRequest, Usage
from ..energy import EnergyReport
from ..errors import BoundgateError, ContextLengthExceededError
from ..reuse.lookup import Lookup
from ..reuse.stored import asked_as_stored, usage_of
from ..routing.ladder import Route
from ..settings import EMBEDDING_MODEL
from ..store import StoredEntry
from ..tenants import Tenant


def listed_models(
    models: Iterable[str], auto_names: Iterable[str], *, embeddings: bool
) -> list[str]:
    """The model ids ``GET /v1/models`` lists, in its order: the configured ``models``, the
    names that route (``auto_names``: ``Router.model_names``), then ``EMBEDDING_MODEL`` when
    ``embeddings`` (reuse on). The one list: a 404 ``model_not_found`` names these as
    available (``Gateway.model_ids``; the embeddings model apart, as no completion may name
    it), and ``boundgate models`` lists them."""
    return [*models, *auto_names, *([EMBEDDING_MODEL] if embeddings else [])]


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


@dataclass
class RequestContext:
    request_id: str
    tenant: Tenant
    endpoint: str
    started: float  # wall clock, for the ledger
    started_mono: float  # monotonic, for latency
    cache_control: str | None = None  # the request's Cache-Control header (reuse policy)
    reuse: Lookup | None = None  # what the reuse layer decided, once it has
    internal: bool = False  # the gateway's own work (rebind jobs): no asker is counted
    novel: bool = False  # already counted against the novelty budget (variants, an auto rung)
    # an auto request's first rung counted the unit itself: given back if the route fails
    novel_counted: bool = False
    route: Route | None = None  # model: "auto": the rungs tried so far
    # the daily budget's refusal (its 429; a 400 for a request the whole budget can never
    # hold), while the request looks for a stored answer (which uses no tokens) instead:
    # raised if none is served
    budget_refusal: BoundgateError | None = None
    # a batch line: (batch id, the line's custom_id), kept in its ledger row's ``extra``
    batch_line: tuple[str, str] | None = None


@dataclass(frozen=True)
class Result:
    completion: Completion
    model: str
    energy: EnergyReport  # the request's: its lookup and its generation
    reuse: Lookup | None = None
    route: Route | None = None
    # the generation's alone (a named model's fresh answer; None for a reused or routed one):
    # what a copy of the answer served later avoids, as recorded with a stored answer
    generation: EnergyReport | None = None

    def headers(self, now: float | None = None) -> dict[str, str]:
        """The response's headers: energy, reuse (a stored answer's ``Age`` at ``now``, unix
        seconds) and route."""
        h = self.energy.headers()
        if self.reuse is not None:
            h.update(self.reuse.headers(now))
        if self.route is not None:
            h["x-boundgate-route"] = self.route.header()
        return h


def refuse_over_context(backend: Backend, req: GenerationRequest) -> None:
    """For a backend whose context the gateway checks (``counts_context_by_bytes``: no
    tokenizer here), raise ``ContextLengthExceededError`` when the prompt, at 4 bytes a
    token, fills its context."""
    limit = backend.context_length
    if backend.counts_context_by_bytes and limit is not None and req.text_bytes() // 4 >= limit:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {limit} tokens; the prompt is "
            f"about {req.text_bytes() // 4} tokens, which leaves no room for an answer.",
            param="messages" if req.messages is not None else "prompt",
        )


def worst_case_answer_tokens(backend: Backend, req: GenerationRequest) -> int:
    """The most tokens ``req``'s answer may take on ``backend``: ``max_tokens``, on a local
    model at most its context (llama.cpp stops there, whatever the request's limit: a trial's
    ``max_tokens: 2147483647`` was held whole and refused on a budget of 5,000). An
    upstream's limit is the upstream's to enforce, so its requests keep their ``max_tokens``."""
    if not backend.remote and backend.context_length:
        return min(req.max_tokens, backend.context_length)
    return req.max_tokens


def worst_case_tokens(backend: Backend, req: GenerationRequest) -> int:
    """The most tokens ``req`` may use on ``backend``, held on the daily budget before it
    runs: the text's bytes (≥ its tokens), what the prompt format adds, and every token the
    answer may take (``worst_case_answer_tokens``)."""
    return req.text_bytes() + backend.template_tokens(req) + worst_case_answer_tokens(backend, req)


def cut_short_reasoning(backend: Backend, req: GenerationRequest, produced: int) -> int:
    """The reasoning tokens of a generation cut short after ``produced`` tokens, which never
    reported its usage: on a reasoning model all it produced, up to its cap
    (``req.max_reasoning_tokens``, set by ``reasoning_cap``); 0 on any other model."""
    if not backend.reasoning:
        return 0
    cap = req.max_reasoning_tokens if req.max_reasoning_tokens is not None else produced
    return min(produced, cap)


def estimated_prompt_tokens(backend: Backend, req: GenerationRequest) -> int:
    """A prompt's tokens where no backend counted them (a generation cut short before it
    reported usage): 4 bytes a token, the estimate the context check uses, plus what the
    prompt format adds (``Backend.template_tokens``)."""
    return req.text_bytes() // 4 + backend.template_tokens(req)


def cut_short_usage(
    backend: Backend, req: GenerationRequest, produced: int, *, failed: bool
) -> Usage:
    """The usage of a generation the model had started on (its meter's span begun) that ended
    before it reported any, after ``produced`` tokens: its prompt at the estimate
    (``estimated_prompt_tokens``), the tokens produced, as reasoning on a reasoning model
    (``cut_short_reasoning``). A failure (``failed``) before any output from a backend that
    does not report its start (an upstream server: refused, or a 500) counts no prompt: it
    may never have been read. The same for a request and for a rung of ``auto`` (an
    operator's trial saw a failed rung charged 11 prompt tokens where the same upstream's 502
    called directly was charged none)."""
    started = produced > 0 or backend.reports_start or not failed
    prompt = estimated_prompt_tokens(backend, req) if started else 0
    return Usage(prompt, produced, cut_short_reasoning(backend, req, produced))


def hit_usage(backend: Backend, req: GenerationRequest, entry: StoredEntry) -> Usage:
    """The usage a reused answer (``entry``, a hit of any kind) reports to the request ``req``
    it serves on ``backend``, as OpenAI reports usage: ``prompt_tokens`` the prompt this
    request sent, ``completion_tokens`` the answer's and ``reasoning_tokens`` its reasoning
    part (``usage_of``: as generated, or its estimate where never counted).

    The prompt's tokens: the count the backend made when it generated the answer, if ``req``
    sends that very prompt word for word (``asked_as_stored``) at that model version (what a
    fresh answer would report); else the estimate used for any prompt no backend counted
    (``estimated_prompt_tokens``, 4 bytes a token plus the prompt format's): a question served
    by meaning, or another spelling of an exact key, is not the stored question, and an
    imported document's entry has no count (0 was reported). A hit reports no
    ``prompt_tokens_details.cached_tokens``: OpenAI counts there the prompt's prefix a model
    reused while it generated anew; a reused answer ran no model (``x-boundgate-reuse`` says
    it was reused). ``req`` is read as the backend reads it (``Backend.as_read``): a
    developer message served the answer stored for its system message counts as that."""
    req = backend.as_read(req)
    stored = usage_of(entry)
    counted = entry.prompt_tokens > 0 and entry.model_version == backend.version
    if counted and asked_as_stored(entry, req, developer_as_system=backend.developer_as_system):
        return stored
    return dataclasses.replace(stored, prompt_tokens=estimated_prompt_tokens(backend, req))


@dataclass(frozen=True)
class Finished:
    """The last event of a stream: emitted after the ledger row is committed."""

    finish_reason: str
    usage: Usage
    energy: EnergyReport
    reuse: Lookup | None = None
    route: Route | None = None
