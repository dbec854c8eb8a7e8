"""Creativity buffer and novelty budget: reuse for requests meant to be *different*.

Requests above the temperature dial want a fresh answer, so they are never served a stored
one. But when many askers send the same creative prompt ("write a haiku about autumn"), the
answers are interchangeable draws. The buffer:

- counts distinct askers per creative prompt (same exact key as reuse: tenant, model and
  version, context, parameters, canonical prompt; and the temperature, ``variants_key``);
- once ``creativity.min_askers`` have asked, queues a ``variants`` job that pre-generates
  ``creativity.variants`` answers at the prompt's temperature, in the clean hours before
  ``creativity.window_s`` (the scheduler's start policy), on a process that serves the model
  at that version (the job requires it: ``scheduler/jobs.py``);
- serves an unused variant at request time (``x-boundgate-reuse: hit-variant``), never the same
  one twice to one asker while others remain, and queues more when all have been served.

The **novelty budget** (``limits.novelty_per_day``, per tenant, 0 = unlimited) counts fresh
above-dial generations per UTC day, as a counter in the store (``novel:<tenant>``, one atomic
claim per generation; see ``tenants.py``), so replicas sharing a database share the budget.
When it is spent, the request gets a variant if one is left for that asker
(``limits.novelty_exhausted = "variants"``), else 429; with ``"reject"`` it is always 429. A
unit is taken before the generation runs (so concurrent requests cannot jointly overrun the
budget) and given back if the generation then does not happen (:meth:`CreativityBuffer.novel`
for variants; the gateway's error path for requests), e.g. when the tenant's
requests-per-minute or daily token budget refuses it or the backend fails: the budget counts
fresh generations made.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Literal

from ..clock import Clock
from ..errors import ErrorCode, RateLimitError
from ..scheduler.jobs import JobQueue
from ..settings import CreativitySettings, LimitsSettings
from ..store import Claim, Store, StoredEntry, VariantRow

DAY_S = 86400


def variants_key(exact: str, temperature: float) -> str:
    """The buffer's key of a creative prompt: its exact reuse key (``ReuseKey.exact``) and its
    temperature, hex. Variants are draws at one temperature: a draw at 0.5 is not one a request
    at 1.5 could have received (a trial was served one), so each temperature has its own."""
    return hashlib.sha256(f"{exact}\ntemperature={temperature!r}".encode()).hexdigest()


def variant_entry(v: VariantRow) -> StoredEntry:
    """A variant in the shape the gateway replays (a stored answer)."""
    return StoredEntry(
        key=-v.id,
        id=f"var_{v.id}",
        scope="",
        exact=v.exact,
        query="",
        answer=v.answer,
        finish_reason=v.finish_reason,
        prompt_tokens=v.prompt_tokens,
        completion_tokens=v.completion_tokens,
        reasoning_tokens=v.reasoning_tokens,
        model="",
        model_version="",
        tenant="",
        created=v.created,
        cost_wh=v.cost_wh,
        cost_gco2=v.cost_gco2,
        cost_method=v.cost_method,
        vector=b"",
        embedder="",
        scope_doc="{}",
    )


class CreativityBuffer:
    def __init__(
        self,
        store: Store,
        jobs: JobQueue | None,
        clock: Clock,
        settings: CreativitySettings,
        limits: LimitsSettings,
    ) -> None:
        """``settings``: the ``[creativity]`` section; ``limits``: the ``[limits]`` section
        (``novelty_per_day``, ``novelty_exhausted``)."""
        self.store = store
        self.jobs = jobs
        self.clock = clock
        self.settings = settings
        self.limits = limits

    @staticmethod
    def _asker(asker: str) -> str:
        return hashlib.sha256(asker.encode()).hexdigest()[:32]

    async def take(
        self,
        exact: str,
        asker: str,
        request_json: str,
        key_id: str | None = None,
        tenant: str | None = None,
        requires: str | None = None,
    ) -> VariantRow | None:
        """Record the ask, queue pre-generation when earned, and take a variant if any.
        ``key_id``: the asker's key; a round it queues runs under that key's limits.
        ``tenant``: the asker's tenant; no round is queued while its novelty budget is spent
        (the round could make none; an ask on a day with budget queues it). ``requires``:
        what a process must run to make the round (``jobs.model_requirement`` of the model
        at the version the prompt was asked of, whose draws its key names), so that among
        replicas serving different models only one serving it takes the job."""
        now = self.clock.time()
        who = self._asker(asker)
        askers = await self.store.note_novel_ask(exact, who, request_json, now)
        variant = await self.store.take_variant(exact, who, now)
        if askers >= self.settings.min_askers and self.jobs is not None:
            unused = await self.store.unused_variants(exact)
            if unused == 0 and (tenant is None or await self.budget_left(tenant)):
                # one job per round of variants: the dedupe key moves on as rounds are used up,
                # and holds only while its round is pending or running, so a round that made
                # none (the novelty budget spent) does not stop the next one
                made = await self.store.variant_count(exact)
                await self.jobs.submit(
                    "variants",
                    {"exact": exact, "n": self.settings.variants, "key_id": key_id},
                    deadline_s=self.settings.window_s,
                    duration_s=60.0 * self.settings.variants,
                    dedupe=f"variants:{exact}:{made}",
                    requires=requires,
                )
        return variant

    @staticmethod
    def _counter(tenant: str) -> str:
        return f"novel:{tenant}"

    async def admit_novel(
        self,
        tenant: str,
        temperature: float | None = None,
        *,
        variant: Literal["none_left", "not_taken", "none"] = "none_left",
    ) -> None:
        """Count one fresh above-dial generation, or raise 429 if the budget is spent.
        ``temperature``: the request's, named in the 429's message (a trial's client that
        left it out, OpenAI's default 1, did not know why it was counted). ``variant``: why
        no pre-generated variant was served, as the message says it: ``none_left`` (none is
        left), ``not_taken`` (the request takes no stored answer: Cache-Control no-cache or
        no-store), ``none`` (not a request: a round of variants itself; a trial's round said
        "no pre-generated variant is left for this prompt")."""
        budget = self.limits.novelty_per_day
        if not budget:
            return
        now = self.clock.time()
        day = int(now // DAY_S)
        claim = Claim(self._counter(tenant), float(day * DAY_S), 1, budget)
        if await self.store.reserve(uuid.uuid4().hex, [claim], now) is not None:
            why = (
                ""
                if temperature is None
                else f", as this request's temperature {temperature:g} is (one that gives none "
                "is at OpenAI's default, 1, unless reuse.default_temperature says otherwise)"
            )
            # with "reject" no variant is ever served: a trial read "no variant is left" as one
            # that might be
            left = ""
            if self.limits.novelty_exhausted == "variants" and variant == "none_left":
                left = " and no pre-generated variant is left for this prompt"
            elif self.limits.novelty_exhausted == "variants" and variant == "not_taken":
                left = (
                    " (this request takes no stored answer: Cache-Control no-cache or "
                    "no-store, or boundgate.reuse off; so no pre-generated variant was served)"
                )
            raise RateLimitError(
                f"tenant {tenant!r} has used its {budget} fresh creative generations for "
                f"today{left}: answers generated above the temperature dial "
                f"(reuse.max_temperature){why}",
                code=ErrorCode.NOVELTY_BUDGET_EXHAUSTED,
                retry_after=(day + 1) * DAY_S - now,
            )

    async def refund_novel(self, tenant: str) -> None:
        """Give back one unit :meth:`admit_novel` counted today for a generation that did not
        happen (a unit of an earlier UTC day is gone with that day): one atomic decrement of
        the day's counter in the store (a claim without a hold counts as used at once, and
        settling ``-1`` takes it back)."""
        if not self.limits.novelty_per_day:
            return
        now = self.clock.time()
        window = float(int(now // DAY_S) * DAY_S)
        await self.store.settle(uuid.uuid4().hex, self._counter(tenant), window, -1)

    @contextlib.asynccontextmanager
    async def novel(self, tenant: str) -> AsyncIterator[None]:
        """One fresh generation under the novelty budget: a unit is admitted on entry (429
        when the budget is spent) and refunded when the body raises (the generation failed,
        e.g. 429 from the tenant's other limits, or was cancelled)."""
        await self.admit_novel(tenant, variant="none")
        try:
            yield
        except BaseException:
            await asyncio.shield(self.refund_novel(tenant))
            raise

    async def budget_left(self, tenant: str) -> bool:
        budget = self.limits.novelty_per_day
        if not budget:
            return True
        now = self.clock.time()
        window = float(int(now // DAY_S) * DAY_S)
        return (await self.store.counter_state(self._counter(tenant), window, now)).used < budget
