"""Job handlers: the gateway's deferrable work, run by the :class:`JobRunner` (``jobs.py``).

``rebind`` recomputes a stale document's answer with the current model version and binds it
as a new document that supersedes the old one; ``variants`` pre-generates answers for a
creative prompt (the creativity buffer). Both run through the gateway's pipeline
(``Gateway.complete``) as its own work (:func:`internal_context`), under the limits of
:func:`background_tenant`; a ``RateLimitError`` from the pipeline reaches the runner, which
reschedules the job after its Retry-After (``variants`` keeps what it made and stops). A
refusal no retry changes (``BoundgateError.permanent``: a 400 for a request whose worst case
is more than the tenant's whole daily budget) ends the job: ``variants`` keeps what it made
and records the refusal in its result; a ``rebind`` reaches the runner, which fails it at
once with the refusal as its result. Each job requires its model at a version
(``JobRow.requires``: the version a rebind binds at, the one a variants round's prompt was
asked of), so only a process running it claims the job (``model_requirements``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import BoundgateError, ModelNotFoundError, RateLimitError
from ..reuse.lookup import is_recorded_request
from ..reuse.stored import request_from_json
from ..store import KeyStore, VariantRow
from ..tenants import Limiter, Tenant
from .jobs import HandBack, JobHandler, model_requirement

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..gateway import Gateway, RequestContext

# how long a job handed back (a rebind: this process's model is not at the version it is for;
# variants: the model is not served here) waits before any process may take it again: the
# other replicas take it meanwhile
HAND_BACK_S = 60.0


def job_handlers(gateway: Gateway) -> dict[str, JobHandler]:
    """The handlers of the work ``gateway`` has parts for (``batch`` is the server's)."""
    handlers: dict[str, JobHandler] = {}
    if gateway.reuse is not None:

        async def rebind_job(payload: dict[str, Any]) -> dict[str, Any]:
            return await rebind(gateway, payload)

        handlers["rebind"] = rebind_job
    if gateway.creativity is not None:

        async def variants_job(payload: dict[str, Any]) -> dict[str, Any]:
            return await make_variants(gateway, payload)

        handlers["variants"] = variants_job
    return handlers


def model_requirements(gateway: Gateway) -> Callable[[], frozenset[str]]:
    """What ``gateway``'s process runs, for ``JobRunner(accepts=...)``: each configured
    model at its version (``jobs.model_requirement``), read at every claim (a version is
    known once its model has started). A rebind job requires its model at the version it is
    for, a round of variants its prompt's model at the version it was asked of, so a replica
    on another version, or without that model, passes it over without claiming it."""

    def accepts() -> frozenset[str]:
        return frozenset(
            model_requirement(name, backend.version) for name, backend in gateway.backends.items()
        )

    return accepts


def internal_context(
    gateway: Gateway, tenant: Tenant, endpoint: str, cache_control: str
) -> RequestContext:
    """A context for the gateway's own background work (rebinding, variants) on behalf of
    ``tenant``: not counted as interactive, with the given reuse directive. It is admitted
    like a request: the tenant's rpm and daily token budget apply."""
    ctx = gateway.context(tenant, endpoint)
    ctx.internal = True
    ctx.cache_control = cache_control
    return ctx


async def background_tenant(
    store: KeyStore, limiter: Limiter, tenant: str, key_id: str | None = None
) -> Tenant:
    """The limits that background work on behalf of ``tenant`` runs under: those of the
    key that caused it (``key_id``, e.g. the asker whose ask queued a round of variants)
    while that key is active; else the strictest of the tenant's active keys (a rebind is
    the tenant's, not one key's), each limit on its own: requests per minute, daily tokens
    and daily reasoning tokens, a key's as ``limiter`` applies it (the settings' default
    where the key sets none; 0, unlimited, the loosest); else the settings' defaults. Under a
    key's limits it is counted on that key's counters, as the key's requests are; else on the
    tenant's own (limits are a key's: ``tenants.py``)."""
    keys = [k for k in await store.list_keys() if k.tenant == tenant and not k.revoked]
    for k in keys:
        if k.id == key_id:
            return Tenant.of_key(k)
    if not keys:
        return Tenant(name=tenant, key_id=key_id)
    own = [Tenant.of_key(k) for k in keys]

    def strictest(values: list[int]) -> int:
        limited = [v for v in values if v > 0]  # 0 = unlimited
        return min(limited) if limited else 0

    return Tenant(
        name=tenant,
        rpm=strictest([limiter.rpm(t) for t in own]),
        daily_tokens=strictest([limiter.budget(t) for t in own]),
        daily_reasoning_tokens=strictest([limiter.reasoning_budget(t) for t in own]),
        key_id=key_id,
    )


def _served_here(
    gateway: Gateway, model: str, job: str, taken_by: Callable[[str, str], bool]
) -> Backend:
    """``model``'s backend in this process. Raises :class:`HandBack` when this process does
    not serve it (not a refusal: another process does, and ``job`` is for that one), with
    ``taken_by``: (model, version) → whether a process running that model at that version
    can run the job."""
    try:
        return gateway.resolve(model)
    except ModelNotFoundError:
        raise HandBack(
            f"model {model} is not served here; {job} is for a process that serves it",
            HAND_BACK_S,
            taken_by,
        ) from None


async def make_variants(gateway: Gateway, payload: dict[str, Any]) -> dict[str, Any]:
    """Job handler: pre-generate answers for a creative prompt (creativity buffer).

    Returns ``{"variants": n, "exact": key}`` (``n`` made and stored), with ``"stopped"``
    (the message of a 429: the tenant's limits allow no more for now; the next round asks
    again) or ``"refused"`` (``{"message", "code", "param"}`` of a request refused for
    good, :attr:`BoundgateError.permanent`: a 400 ``invalid_value`` when the prompt's worst
    case is more than the whole daily budget it runs under) when the round ended early.
    Either way the job is done: a round refused for good is not retried. Other errors
    reach the runner (tried again).

    The job requires the prompt's model at its version (``JobRow.requires``), so a process
    without that model does not claim it. One that gets it all the same (a round queued
    before rounds had requirements) hands it back (:class:`HandBack`) for one that serves
    the model: its own pipeline would refuse every draw as a 404 ``model_not_found``, and the
    round used to end refused for good. Past the round's deadline too, while a live runner
    serves the model (``HandBack.taken_by``). An upstream's 404 for the model is no refusal
    but an upstream failure (a 502): it reaches the runner, which tries the job again."""
    assert gateway.creativity is not None
    store = gateway.store
    exact = str(payload["exact"])
    text = await store.novel_request(exact)
    if text is None:
        return {"skipped": "prompt unknown"}
    body = json.loads(text)
    model = str(body["model"])
    # (a round queued without a requirement: for its model at whichever version)
    _served_here(gateway, model, "a round of its variants", lambda m, _v: m == model)
    key_id = payload.get("key_id")
    tenant = await background_tenant(
        store, gateway.limiter, str(body["tenant"]), key_id and str(key_id)
    )
    made: list[VariantRow] = []
    stopped: str | None = None
    refused: dict[str, Any] | None = None
    for _ in range(int(payload.get("n", 1))):
        req = request_from_json(text)
        ctx = internal_context(gateway, tenant, str(body["endpoint"]), "no-store")
        try:
            # each variant is a fresh creative generation: the novelty budget, the rpm
            # and the daily token budget of the tenant (its key) apply, as to a request;
            # a variant the other limits refuse gives its novelty unit back
            async with gateway.creativity.novel(tenant.name):
                ctx.novel = True
                result = await gateway.complete(ctx, req)
        except RateLimitError as exc:
            stopped = exc.message  # keep what was made; the next round asks again
            break
        except BoundgateError as exc:
            if not exc.permanent:
                raise  # the runner tries the job again (an upstream failure, say)
            # refused for good (a 400: the prompt's worst case is more than the whole daily
            # budget it runs under): no other draw would be admitted either, and no retry
            # changes that, so the round ends here, keeping what was made, saying why
            refused = {"message": exc.message, "code": exc.code, "param": exc.param}
            break
        c = result.completion
        # what serving it avoids: its generation's cost, not its lookup (as a stored answer's)
        cost = result.generation or result.energy
        made.append(
            VariantRow(
                0, exact, c.text, c.finish_reason, c.usage.prompt_tokens,
                c.usage.completion_tokens, cost.wh, cost.gco2, gateway.clock.time(),
                cost.method, min(c.usage.reasoning_tokens, c.usage.completion_tokens),
            )
        )  # fmt: skip
    await store.add_variants(made)
    out: dict[str, Any] = {"variants": len(made), "exact": exact}
    if stopped is not None:
        out["stopped"] = stopped
    if refused is not None:
        out["refused"] = refused
    return out


async def rebind(gateway: Gateway, payload: dict[str, Any]) -> dict[str, Any]:
    """Job handler: recompute a stale document's answer with the current model version and
    bind it as a new document that supersedes the old one (with a diff). Idempotent.

    ``payload["version"]`` is the version to bind at, the one the process that found the
    document stale runs (jobs queued before it was given: any but the document's own). The
    job requires the model at that version (``JobRow.requires``), so a process whose model is
    not at it (a replica not yet upgraded, in a rolling upgrade) does not claim it; one that
    gets it all the same (a job queued before jobs had requirements, a runner told nothing
    it accepts) hands it back (:class:`HandBack`) for one that is, and so does one without
    the model (its 404 ``model_not_found`` failed the job for good); past the job's deadline
    too, while a live runner runs the model at a version that rebinds it
    (``HandBack.taken_by``). A document revoked (or superseded) while the new answer was
    generated stays so: nothing is bound."""
    reuse, store = gateway.reuse, gateway.store
    assert reuse is not None
    doc = await store.get_document(str(payload["document"]))
    if doc is None or doc.state != "stale" or doc.entry is None:
        return {"skipped": "not stale" if doc else "unknown document"}
    entry = await store.get_entry(doc.entry)
    if entry is None or entry.request is None or not is_recorded_request(entry.request):
        # nothing to recompute it from (an imported document records no request): it was
        # served marked stale for good, and every start queued this job again. It is no
        # longer stale, a document of its own model version (documents.mark_stale), unless
        # it was revoked meanwhile
        out: dict[str, Any] = {"skipped": "original request not recorded"}
        if await reuse.documents.unstale(doc.id):
            out["state"] = "active"
        return out
    req = request_from_json(entry.request)
    target = payload.get("version")
    model, bound_at = req.model, doc.model_version

    def rebinds(running: str, version: str) -> bool:
        """Whether a process running model ``running`` at ``version`` rebinds the document:
        its model at the version the job is for (queued without one: any but its own)."""
        if running != model or version == bound_at:
            return False
        return target is None or version == target

    version = _served_here(gateway, req.model, f"the rebind of {doc.id}", rebinds).version
    if not rebinds(req.model, version):
        raise HandBack(
            f"model {req.model} is at version {version} here; the rebind of {doc.id} "
            f"(bound at {doc.model_version}) is for {target or 'another version'}",
            HAND_BACK_S,
            rebinds,
        )
    endpoint = str(json.loads(entry.scope_doc).get("endpoint") or "/v1/chat/completions")
    # compute afresh, store the new answer
    # under the tenant's limits: a 429 here reschedules the job (scheduler/jobs.py)
    tenant = await background_tenant(store, gateway.limiter, doc.tenant)
    ctx = internal_context(gateway, tenant, endpoint, "no-cache")
    result = await gateway.complete(ctx, req)
    stored = result.reuse.stored_id if result.reuse else None
    key = reuse.entry_key(stored) if stored else None
    if key is None:
        return {"skipped": "new answer was not stored", "request_id": ctx.request_id}
    # the generation took a while: a document revoked meanwhile is not rebound (and the
    # store supersedes only a document still current, should it happen from here on)
    now = await store.get_document(doc.id)
    new = None
    if now is not None and now.state == "stale":
        old = json.loads(doc.body)
        new = await reuse.documents.bind(
            key,
            supersedes=doc,
            previous_answer=entry.answer,
            variants=list(old.get("bg:questionVariants") or []),
            askers=int(old.get("bg:askerCount") or 1),
        )
        if new is None:  # why: revoked or superseded since the read just now
            now = await store.get_document(doc.id)
    if new is None:
        state = now.state if now is not None else "gone"
        return {
            "skipped": f"document {state} while its new answer was generated",
            "request_id": ctx.request_id,
        }
    return {
        "document": new.id,
        "supersedes": doc.id,
        "answer_changed": result.completion.text != entry.answer,
        "request_id": ctx.request_id,
    }
