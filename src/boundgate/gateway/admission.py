"""Admission: a request's backend, its defaults and its context check (``_prepare``), then its
claim on the tenant's limits (``_admit``): counted per minute, its worst case held on the daily
token budget and, on a reasoning model, on the reasoning-token budget (``reasoning_effort``
sets the cap, ``reasoning_cap``). A request the whole daily budget can never hold is a 400
(``_beyond_budget``); one the budget refuses today may still be served a stored answer, which
uses no tokens (``admit_or_count``, ``_refuse_if_spent``, ``_refused``). The gateway's own
background work lets interactive requests go first (``yield_to_interactive``). A mixin of
``Gateway`` (``pipeline.py``)."""

from __future__ import annotations

import asyncio

from ..backends.base import Backend, GenerationRequest
from ..errors import (
    BoundgateError,
    ErrorCode,
    InvalidRequestError,
    NotStoredError,
    RateLimitError,
)
from ..reuse.lookup import Lookup
from ..reuse.policy import only_if_cached
from ..tenants import Reservation
from .context import (
    RequestContext,
    refuse_over_context,
    worst_case_answer_tokens,
    worst_case_tokens,
)
from .state import GatewayState

# refusals for tokens a fresh answer would use: a stored answer, which uses none, is served
BUDGET_CODES = frozenset(
    {ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED, ErrorCode.DAILY_REASONING_BUDGET_EXCEEDED}
)


class Admission(GatewayState):
    """``_prepare``, ``_admit`` and the daily budget's refusals (mixed into ``Gateway``)."""

    def _prepare(self, req: GenerationRequest) -> tuple[Backend, int]:
        """The request's backend, its defaults applied and its context checked; and the most
        reasoning tokens it may use."""
        backend = self.resolve(req.model)
        req.model = backend.name
        if req.max_tokens <= 0:
            req.max_tokens = self.default_max_tokens
        refuse_over_context(backend, req)
        return backend, self.reasoning_cap(backend, req)

    async def _admit(
        self, ctx: RequestContext, req: GenerationRequest, backend: Backend, reasoning: int
    ) -> Reservation:
        refusal = self._beyond_budget(ctx, req, backend, reasoning)
        tokens = worst_case_tokens(backend, req)
        return await self.admit_or_count(ctx, tokens, reasoning, refusal=refusal)

    async def admit_or_count(
        self,
        ctx: RequestContext,
        tokens: int,
        reasoning: int,
        *,
        refusal: BoundgateError | None = None,
    ) -> Reservation:
        """Admit ``tokens`` (and ``reasoning`` tokens) against the tenant's limits. When only
        the daily budget refuses (or ``refusal`` says it never can: ``_beyond_budget``) and
        reuse is on, a stored answer may still be served (it uses no tokens; docs/api.md):
        the request is counted per minute only and the refusal kept in
        ``ctx.budget_refusal``, raised by ``_refuse_if_spent`` when no stored answer is found
        (and then the per-minute slot given back: ``_refused``). Raises ``RateLimitError``
        otherwise."""
        if refusal is None:
            try:
                return await self.limiter.admit(ctx.tenant, tokens, reasoning)
            except RateLimitError as err:
                if err.code not in BUDGET_CODES:
                    raise
                refusal = err
        if self.reuse is None:
            raise refusal
        ctx.budget_refusal = refusal
        return await self.limiter.admit(ctx.tenant, 0, budgets=False)

    def _beyond_budget(
        self, ctx: RequestContext, req: GenerationRequest, backend: Backend, reasoning: int
    ) -> InvalidRequestError | None:
        """The 400 (``invalid_value``) for a request whose worst case is more than the whole
        daily budget of its key: no wait makes room for it, so a 429 with a Retry-After
        would only have it sent again tomorrow. Its ``param`` is ``max_tokens`` (as it was
        sent: chat's ``max_completion_tokens``), or the prompt when the prompt alone may
        fill the budget; for the reasoning budget, whatever sets its worst case
        (``reasoning_effort`` on a local reasoning model). None: it may fit."""
        tenant = ctx.tenant
        whose = tenant.describe()
        budget = self.limiter.budget(tenant)
        prompt = req.text_bytes() + backend.template_tokens(req)
        answer = worst_case_answer_tokens(backend, req)
        name = req.max_tokens_param
        if budget and prompt + answer > budget:
            if prompt >= budget:
                return InvalidRequestError(
                    f"the prompt may take up to {prompt} tokens (its bytes and the model's "
                    f"prompt format), as many as the whole daily token budget of {budget} of "
                    f"{whose} or more: this request can never be admitted; shorten it",
                    param="messages" if req.messages is not None else "prompt",
                )
            return InvalidRequestError(
                f"{name} is {req.max_tokens}: with its prompt (up to {prompt} tokens) this "
                f"request may need {prompt + answer} tokens, more than the whole daily "
                f"token budget of {budget} of {whose}, so it can never be admitted; set "
                f"{name} to at most {budget - prompt}",
                param=name,
            )
        reasoning_budget = self.limiter.reasoning_budget(tenant)
        if reasoning and reasoning_budget and reasoning > reasoning_budget:
            param = name if reasoning >= req.max_tokens else "reasoning_effort"
            return InvalidRequestError(
                f"this request may reason for up to {reasoning} tokens, more than the whole "
                f"daily reasoning-token budget of {reasoning_budget} of {whose}, so it can "
                f"never be admitted; lower {param}",
                param=param,
            )
        return None

    def reasoning_cap(self, backend: Backend, req: GenerationRequest) -> int:
        """Apply ``reasoning_effort`` to ``req`` for ``backend``; return the most reasoning
        tokens the request may use (its reservation against the daily reasoning budget).

        Not a reasoning model: the parameter is dropped (never sent upstream, not part of the
        reuse scope) and 0 returned. A local reasoning model gets the effort's cap from
        ``[reasoning].effort_tokens`` as ``max_reasoning_tokens``, which it enforces; an
        upstream one gets the effort as ``reasoning_effort``, a hint it may exceed, so its
        worst case is ``max_tokens``, except ``"none"``: no reasoning (OpenAI's models that
        take it do not reason; those that do not refuse it), so nothing is reserved, and
        what such an upstream reports all the same is charged as it is read. Reserving
        ``max_tokens`` for it refused a key's non-reasoning traffic (``auto``'s lookups)
        once its reasoning budget was nearly spent (an operator's trial).
        """
        effort = req.passthrough.pop("reasoning_effort", None)
        if not backend.reasoning:
            req.max_reasoning_tokens = None
            return 0
        effort = effort or self.reasoning.default_effort
        req.passthrough["reasoning_effort"] = effort
        if backend.remote:
            return 0 if effort == "none" else req.max_tokens
        req.max_reasoning_tokens = self.reasoning.cap(effort)
        return min(req.max_reasoning_tokens, req.max_tokens)

    @staticmethod
    def _refuse_if_spent(ctx: RequestContext, lookup: Lookup | None) -> None:
        """Raise the daily budget's 429 (``ctx.budget_refusal``) unless ``lookup`` serves a
        stored answer; and :class:`NotStoredError` (504) for a request that asked for a
        stored answer or none (``Cache-Control: only-if-cached``) that ``lookup`` does not
        serve: the model is not run."""
        if lookup is not None and lookup.entry is not None:
            return
        if ctx.budget_refusal is not None:
            raise ctx.budget_refusal
        if only_if_cached(ctx.cache_control):
            # why nothing could be looked up: a temperature above the dial, no-store…
            reason = lookup.plan.reason if lookup is not None else ""
            why = f" (reuse bypassed: {reason})" if reason else ""
            raise NotStoredError(
                "no stored answer fits this request, and Cache-Control: only-if-cached says "
                f"not to generate one{why}",
                param="Cache-Control",
                reuse=lookup.headers() if lookup is not None else None,
            )

    async def _refused(
        self, ctx: RequestContext, err: BoundgateError, counted: Reservation
    ) -> None:
        """The request ends with ``err``: if that is its daily budget's refusal (no stored
        answer served it), it does not count against its rate either, so the per-minute
        slot ``counted`` took while it looked for one is given back."""
        if err is ctx.budget_refusal:
            await self.limiter.uncount(counted)

    def interactive_waiting(self) -> bool:
        """Requests are queued for a local model: background work should wait."""
        return any(b.queue_depth() > 0 for b in self.backends.values())

    async def yield_to_interactive(self, poll_s: float = 0.05, max_s: float = 300.0) -> None:
        """Background work calls this before each generation: interactive requests first."""
        waited = 0.0
        while self.interactive_waiting() and waited < max_s:
            await asyncio.sleep(poll_s)
            waited += poll_s
