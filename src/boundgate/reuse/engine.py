"""The reuse layer the gateway calls: look up before routing, remember after generating.

``lookup`` runs the pipeline of ``docs/reuse.md``: policy → scope key → exact match →
semantic candidates (per-scope ANN) → guards → verifier (``searching.py``, a mixin;
``lookup.py`` holds what a lookup returns). ``remember`` files a fresh answer under its scope
(here, with eviction and the statistics); ``settle`` compares a fresh answer with the
candidate that was not served (below threshold, or sampled for verification) and teaches
the verifier (``labels.py``, a mixin). State lives in the store; the in-memory maps are
rebuilt from it at start-up, and the per-scope indexes are reloaded from their saved files
where those match the store (``loading.py``, a mixin; ``index_files.py``).

Several gateways on one store (worker processes, replicas): ``follow`` (``following.py``, a
mixin) keeps this process's
maps, index and verifier in step with the store's change log (``store.ChangeFeed``), so an
answer stored or a label learnt by one is used by all, and one revoked, superseded or
evicted by one is dropped by all (a hit re-reads its entry from the store anyway, so a
revoked or deleted answer is never served, even before the change arrives).

Entries whose vector another embedder made (``reuse.embedder`` changed, ``docs import`` under
another configuration) are matched exactly at once and re-embedded in the background
(``reembed.py``, a mixin: ``keep_embedded``), then found by meaning too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..backends.base import Completion, GenerationRequest
from ..clock import Clock, SystemClock
from ..scheduler.jobs import JobQueue
from ..settings import ReuseSettings
from ..store import Store, StoredEntry, StoreUnavailableError
from .answer_labels import LabelSource, Setting, measurement, resolve
from .binding import Signer
from .documents import Documents
from .embedder import Embedder, Vectors, vector_bytes
from .exact import ExactMap, slot_of
from .flight import Flights
from .following import Following
from .index import IndexParams, ScopedIndex
from .index_files import IndexFiles, IndexLoad
from .labels import Labelling
from .language import reads_english
from .loading import Loading
from .lookup import EntryMeta, Lookup, sampled_request, unknown_age
from .pair import PairScorer
from .policy import Plan, TimeSensitivity, plan
from .reembed import Reembedding
from .refusals import is_refusal
from .scope import ReuseKey, reuse_key
from .searching import Searching
from .stored import fitting_tokens, request_json
from .verifier import Verifier

log = logging.getLogger("boundgate.reuse")

HIT_FLUSH_S = 1.0  # how often hit counts are written to the store
# what ``stats(tenant)`` leaves out for a non-admin key: counts of every tenant's traffic
TENANT_HIDDEN_STATS = (
    "index_load",
    "tightened_inspection",
    "outcomes",
    "observations",
    "observations_above_threshold",
    "observations_by_source",
    "semantic_lookups",
    "hit_precision",
    "vectors_pending",
)


def filed_tokens(completion: Completion, max_tokens: int) -> int:
    """The completion tokens an answer is filed with: its own count, except that an answer cut
    by the request's limit (``length`` at or past it) is filed at that limit, the one it
    serves (``scope.answer_fits``): llama.cpp may generate a token past the limit to finish a
    character of several tokens ("Give me three emoji", limit 14: 15 tokens), and an answer
    filed at 15 would serve no request. An answer cut short of the limit (``length`` below
    it: the context window ran out) keeps its own count, so it serves only a request whose
    limit would cut it there; filed at the limit it was served as a whole answer, and model
    "auto" no longer saw it cut short (a helper's audit)."""
    if (
        completion.finish_reason == "length"
        and 0 < max_tokens <= completion.usage.completion_tokens
    ):
        return max_tokens
    return completion.usage.completion_tokens


class ReuseEngine(Loading, Searching, Following, Labelling, Reembedding):
    def __init__(
        self,
        *,
        store: Store,
        embedder: Embedder,
        verifier: Verifier,
        settings: ReuseSettings,
        rebind_window_s: float,
        clock: Clock | None = None,
        signer: Signer | None = None,
        jobs: JobQueue | None = None,
        index_dir: Path | None = None,
        pair_scorer: PairScorer | None = None,
        key_dir: Path | None = None,
    ) -> None:
        """``settings``: the ``[reuse]`` section (what is not passed as a part is read from it;
        ``reuse.scorer`` and ``embedder`` are resolved by the caller).
        ``signer``, ``jobs``, ``rebind_window_s``, ``key_dir`` (where ``load`` finds the
        signing key when no ``signer`` is given): for ``documents`` (``documents.py``).
        ``index_dir``: where the ANN indexes are saved between runs (None: not saved).
        ``pair_scorer``: scores the guard survivors when the verifier's scorer uses it."""
        self.store = store
        self.pair_scorer = pair_scorer
        if verifier.scorer.uses_pair and pair_scorer is None:
            raise ValueError("the verifier's scorer needs a pair scorer")
        self.embedder = embedder
        self.verifier = verifier
        self.settings = settings
        self.clock = clock or SystemClock()
        self.time_sensitive = (
            TimeSensitivity(self.settings.time_sensitive_pattern)
            if self.settings.time_sensitive_pattern
            else TimeSensitivity()
        )
        self.index = ScopedIndex(embedder.dim, IndexParams.of(settings))
        self.index_files = (
            IndexFiles(index_dir, embedder=embedder.name, index=self.index)
            if index_dir is not None
            else None
        )
        self.index_load: IndexLoad | None = None  # what start-up did with the saved indexes
        self._meta: dict[int, EntryMeta] = {}
        self._by_id: dict[str, int] = {}
        # exact hash → the entries that may serve it (exact.py); a document's holds its slot
        self._exact = ExactMap(
            pinned=lambda key: (m := self._meta.get(key)) is not None and m.pinned
        )
        self._lock = threading.Lock()
        self._seen = 0  # the last change of the store's log applied here
        self._sync_lock = asyncio.Lock()
        self._own_labels: set[tuple[float, int | None, str, str | None]] = set()
        # ids of the semantic lookups this process counted (or is writing), until the change
        # log echoes them (``following.py``), oldest first
        self._own_lookups: dict[int, None] = {}
        # entries this process is storing (``remember``): it admits them itself once stored,
        # so the change log's echo, which may come first, is not a synced entry
        self._own_entries: set[int] = set()
        self._feedback_seen: set[str] = set()  # requests whose feedback was learned
        self._feedback_noted: set[str] = set()  # ... whose "wrong" was noted (labels.py)
        self._feedback_trusted: set[str] = set()  # ... a non-admin's "right" noted here
        self._counters_pruned_at = -math.inf  # old days' feedback counters (labels.py)
        self._variants: dict[int, set[str]] = {}  # entry → exact hashes of confirmed variants
        # model → (version, whether its answers label observations): label_source
        self.label_sources: dict[str, tuple[str, LabelSource]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._hits: dict[int, tuple[int, float]] = {}  # entry → hits not yet written, last
        self._answers: OrderedDict[int, StoredEntry] = OrderedDict()  # see searching.ANSWERS_KEPT
        self._hit_flush: asyncio.Task[None] | None = None
        # entries waiting for a vector of this embedder → what made theirs (reembed.py)
        self._unembedded: dict[int, str] = {}
        self._embed_wanted: asyncio.Event | None = None  # set by ``keep_embedded`` while it runs
        self.counters: dict[str, int] = {}
        self.flights = Flights()  # identical misses being computed here (flight.py)
        self.documents = Documents(
            self, signer=signer, jobs=jobs, rebind_window_s=rebind_window_s, key_dir=key_dir
        )

    def admit(self, e: StoredEntry, vector: Vectors | None) -> None:
        """Make a newly stored entry servable: exactly, and by meaning if it has a vector
        (``None``: longer than the embedder reads, see ``Embedder.fits``)."""
        self._add_meta(e)
        if vector is not None:
            self.index.add(e.scope, e.key, vector)

    def _add_meta(self, e: StoredEntry) -> EntryMeta:
        meta = EntryMeta(
            key=e.key,
            id=e.id,
            scope=e.scope,
            exact=e.exact,
            query=e.query,
            created=e.created,
            cost_wh=e.cost_wh,
            cost_gco2=e.cost_gco2,
            size=len(e.answer.encode()) + len(e.query.encode()) + len(e.vector) + 256,
            hits=e.hits,
            last_used=e.last_hit or e.created,
            pinned=e.document_id is not None,
            document=e.document_id,
            finish_reason=e.finish_reason,
            completion_tokens=fitting_tokens(e),
            tenant=e.tenant,
            sampled=sampled_request(e.request),
            time_sensitive=self.time_sensitive(e.query),
            age_unknown=unknown_age(e.request),
        )
        with self._lock:
            self._meta[e.key] = meta
            self._by_id[e.id] = e.key
            if e.document_id:
                self._by_id[e.document_id] = e.key
            slot = slot_of(e.finish_reason, e.completion_tokens)
            self._exact.put(e.exact, e.key, slot, e.created, newer=True)
        return meta

    def _file_variant(self, exact: str, key: int) -> None:
        """A confirmed variant: ``exact`` is served entry ``key``, in the entry's slot."""
        meta = self._meta[key]
        with self._lock:
            slot = slot_of(meta.finish_reason, meta.completion_tokens)
            self._exact.put(exact, key, slot, meta.created, newer=False)
            self._variants.setdefault(key, set()).add(exact)

    def __len__(self) -> int:
        return len(self._meta)

    def entry_key(self, public_id: str) -> int | None:
        """The entry behind an answer id (ans_…) or a bound document id (doc_…)."""
        return self._by_id.get(public_id)

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def meta(self, key: int) -> EntryMeta | None:
        return self._meta.get(key)

    def pin(self, key: int, doc_id: str) -> None:
        """The entry is bound to ``doc_id``: found by it, never evicted."""
        meta = self._meta.get(key)
        self._answers.pop(key, None)  # its document_id changed
        if meta is not None:
            meta.document, meta.pinned = doc_id, True
            self._by_id[doc_id] = key

    # --- lookup ---------------------------------------------------------------------------
    def plan_for(
        self,
        req: GenerationRequest,
        *,
        tenant: str,
        model_version: str,
        endpoint: str,
        cache_control: str | None,
        answer_labels: bool = True,
    ) -> tuple[Plan, ReuseKey | None]:
        """The request's reuse plan and key. ``answer_labels``: whether the model's fresh
        answers label the verifier's observations (``answer_labels.resolve``)."""
        key = reuse_key(req, tenant=tenant, model_version=model_version, endpoint=endpoint)
        # null is left out, as for every parameter (a trial: `"tools": null` bypassed reuse)
        has_tools = any(req.passthrough.get(k) is not None for k in ("tools", "functions"))
        p = plan(
            temperature=req.temperature,
            max_temperature=self.settings.max_temperature,
            query=key.query if key is not None else None,
            has_tools=has_tools,
            cache_control=cache_control,
            options=req.options,
            time_sensitive=self.time_sensitive,
            time_sensitive_max_age_s=self.settings.time_sensitive_max_age_s,
            context=[m.content for m in (req.messages or [])[:-1]],
        )
        if not answer_labels:
            p = replace(p, answer_labels=False)
        return p, key

    def label_source(self, model: str, version: str, setting: Setting) -> LabelSource:
        """Whether ``model`` (at ``version``, its ``answer_labels`` ``setting``) labels the
        verifier's observations with its answers (``answer_labels.resolve``), resolved once
        per model version, logged, and listed in ``stats`` (``answer_labels``)."""
        known = self.label_sources.get(model)
        if known is not None and known[0] == version:
            return known[1]
        measured = measurement(version, self.settings.answer_similarity)
        source = resolve(setting, measured, self.settings.confidence)
        self.label_sources[model] = (version, source)
        log.info(
            "model %s: answers %s the verifier's observations (%s)",
            model,
            "label" if source.in_force else "do not label",
            source.reason,
        )
        return source

    def by_meaning(self, query: str, answer: str) -> bool:
        """Whether a stored question may be found by meaning: its embedding covers all of it
        and it is no longer than ``SEMANTIC_MAX_CHARS`` (``embeds_whole``), it is in the
        language the guards and the pair model read (``language.reads_english``), and its
        answer does not decline to answer (``refusals.is_refusal``: a refusal speaks of the
        wording asked, not of its meaning); else it is matched exactly only."""
        return self.embeds_whole(query) and reads_english(query) and not is_refusal(answer)

    async def embed(self, texts: list[str]) -> Vectors:
        return await asyncio.to_thread(self.embedder.embed, texts)

    async def note_hit(self, lookup: Lookup, asker: str | None = None) -> None:
        if lookup.entry is None or lookup.status == "hit-variant":
            return
        now = self.clock.time()
        meta = self._meta.get(lookup.entry.key)
        if meta is not None:
            meta.hits += 1
            meta.last_used = now
        # The hit count is bookkeeping for eviction, not part of the answer: counted here and
        # written every HIT_FLUSH_S, one statement per entry hit meanwhile, so a popular
        # answer's row is not updated (and locked) by every hit of every process.
        n, _ = self._hits.get(lookup.entry.key, (0, now))
        self._hits[lookup.entry.key] = (n + 1, now)
        if self._hit_flush is None:
            self._hit_flush = asyncio.get_running_loop().create_task(self._flush_hits_later())
        bound_already = meta is not None and meta.document is not None
        if (
            asker is not None
            and lookup.key is not None
            and lookup.status != "stale"
            and not bound_already  # a bound answer's asker count is frozen in its document
        ):
            bound = await self.documents.register(lookup.entry.key, asker, lookup.key.query)
            if bound is not None:
                lookup.entry.document_id = bound

    # --- after generation -----------------------------------------------------------------
    async def remember(
        self,
        lookup: Lookup,
        completion: Completion,
        *,
        tenant: str,
        model: str,
        model_version: str,
        cost_wh: float,
        cost_gco2: float,
        cost_method: str = "estimate",
        request: GenerationRequest | None = None,
        asker: str | None = None,
    ) -> str | None:
        """Store a fresh answer (if the plan allows); returns its public id."""
        if lookup.flight is not None:
            lookup.flight.answered = True  # (its waiters do not regroup: ``Flight``)
        key = lookup.key
        if key is None or not lookup.plan.store or not completion.text.strip():
            return None
        if completion.finish_reason not in ("stop", "length") or completion.refusal:
            return None
        vector = lookup.vector
        if key.verbatim or not self.by_meaning(key.query, completion.text):
            vector = None  # matched exactly only (a refusal too, though its question was read)
            if is_refusal(completion.text):
                self.count("refusal_exact_only")
        elif vector is None:
            vector = (await self.embed([key.query]))[0]
        now = self.clock.time()
        entry_key = await self.store.new_entry_key()
        digest = hashlib.sha256(
            f"{key.scope}\n{key.exact}\n{completion.text}\n{now!r}".encode()
        ).hexdigest()
        filed = filed_tokens(completion, key.max_tokens)
        entry = StoredEntry(
            key=entry_key,
            id="ans_" + digest[:24],
            scope=key.scope,
            exact=key.exact,
            query=key.query,
            answer=completion.text,
            finish_reason=completion.finish_reason,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=filed,
            reasoning_tokens=min(completion.usage.reasoning_tokens, filed),
            model=model,
            model_version=model_version,
            tenant=tenant,
            created=now,
            cost_wh=cost_wh,
            cost_gco2=cost_gco2,
            vector=vector_bytes(vector),
            embedder=self.embedder.name,
            scope_doc=json.dumps(key.scope_doc, sort_keys=True, separators=(",", ":")),
            request=request_json(request) if request is not None else None,
            cost_method=cost_method,
        )
        slot = slot_of(entry.finish_reason, entry.completion_tokens)
        displaced = self._exact.holder(key.exact, slot)
        self._own_entries.add(entry_key)
        try:
            await self.store.put_entry(entry)
            self.admit(entry, vector)
        finally:
            self._own_entries.discard(entry_key)
        self.land(lookup)  # identical requests waiting for this answer are served it now
        if displaced is not None and self._exact.holder(key.exact, slot) == entry_key:
            # the answer this one replaced in its slot: no exact lookup reaches it any more
            old = self._meta.get(displaced)
            if (
                old is not None
                and old.exact == key.exact
                and not old.pinned
                and displaced not in self._variants
            ):
                await self.forget([displaced])
                self.count("replaced")
        lookup.stored_id = entry.id
        if asker is not None:
            bound = await self.documents.register(entry_key, asker, key.query)
            if bound is not None:
                lookup.stored_id = bound
        if len(self._meta) > self.settings.max_entries:
            await self.evict()
        return entry.id

    async def _flush_hits_later(self) -> None:
        await asyncio.sleep(HIT_FLUSH_S)
        self._hit_flush = None
        await self.flush_hits()

    async def flush_hits(self) -> None:
        """Write the hits counted since the last flush (at most HIT_FLUSH_S old; a process
        killed loses these counts, which only steer eviction)."""
        pending, self._hits = self._hits, {}
        for key, (n, ts) in pending.items():
            try:
                await self.store.note_hit(key, ts, n)
            except StoreUnavailableError as exc:  # bookkeeping: lost with the outage
                log.warning("reuse: hit counts not written (the store is out of reach): %s", exc)
                return
            except Exception:  # bookkeeping: never worth failing for
                log.exception("reuse: writing hit counts failed")

    async def drain(self) -> None:
        if self._hit_flush is not None:
            self._hit_flush.cancel()
            self._hit_flush = None
        await self.flush_hits()
        await self.settled()

    @property
    def idle(self) -> bool:
        """Nothing started in the background is still running (``settled``)."""
        return not self._background

    async def settled(self) -> None:
        """Wait until the labels started so far are learned: the unserved candidates being
        settled from fresh answers (``settle_soon``), and their variants confirmed."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- eviction -------------------------------------------------------------------------
    def value(self, meta: EntryMeta, now: float) -> float:
        """Energy saved per byte kept: cost × (1 + reuse count) × recency decay / size."""
        half_life = self.settings.recency_half_life_s
        recency = math.exp(-max(0.0, now - meta.last_used) * math.log(2) / half_life)
        return meta.cost_wh * (1 + meta.hits) * recency / max(1, meta.size)

    async def evict(self) -> list[int]:
        now = self.clock.time()
        excess = len(self._meta) - self.settings.max_entries
        if excess <= 0:
            return []
        batch = max(excess, self.settings.max_entries // 100)
        candidates = sorted(
            (m for m in self._meta.values() if not m.pinned), key=lambda m: self.value(m, now)
        )
        victims = [m.key for m in candidates[:batch]]
        await self.forget(victims)
        self._count_n("evicted", len(victims))
        return victims

    def _count_n(self, name: str, n: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    async def forget(self, keys: list[int], delete: bool = True) -> None:
        with self._lock:
            for k in keys:
                meta = self._meta.pop(k, None)
                if meta is None:
                    continue
                self._by_id.pop(meta.id, None)
                if meta.document:
                    self._by_id.pop(meta.document, None)
                self._exact.remove(meta.exact, k)
                for exact in self._variants.pop(k, ()):
                    self._exact.remove(exact, k)
        self.documents.forget(keys)
        for k in keys:
            self._answers.pop(k, None)
            self._unembedded.pop(k, None)
            self.index.remove(k)
            self.verifier.forget_entry(k)
        if delete:
            await self.store.delete_entries(keys)

    # --- reporting ------------------------------------------------------------------------
    def stats(self, tenant: str | None = None) -> dict[str, Any]:
        """Reuse statistics (the body of ``GET /v1/boundgate/stats``'s ``reuse``).

        With ``tenant`` (a non-admin key), counts are that tenant's own (``entries``,
        ``scopes``) and what every request is subject to is the deployment's (``error_bound``,
        ``threshold``, what decided it, the scorer, the live ``error_rate_estimate`` and its
        ``error_rate_ci``); what counts other tenants' traffic (labels by source, semantic
        lookups, observations, hit precision, the prior's live weight, outcome counters,
        index load) is the operator's and left out. Without it: everything."""
        est = self.verifier.estimate()
        if tenant is None:
            entries, scopes = len(self._meta), self.index.scopes()
        else:
            mine = [m for m in list(self._meta.values()) if m.tenant == tenant]
            entries, scopes = len(mine), len({m.scope for m in mine})
        out = {
            "entries": entries,
            "scopes": scopes,
            "index_load": asdict(self.index_load) if self.index_load is not None else None,
            "embedder": self.embedder.name,
            # stored answers matched exactly only until they have this embedder's vector
            "vectors_pending": len(self._unembedded),
            "error_bound": self.verifier.delta,
            "threshold": est.threshold,
            "scorer": self.verifier.scorer.name,
            "scorer_parameters": self.verifier.scorer.describe(),
            # the scorer whose threshold is in force: the scorer's, or the alternative's when
            # the gateway's own labels prove it serves more (reuse.alternative_scorer)
            "threshold_scorer": self.verifier.active_scorer.name,
            "pair_model": self.pair_scorer.name if self.pair_scorer is not None else None,
            "prior": (
                {
                    "source": self.verifier.prior.source,
                    "pairs": self.verifier.prior.pairs,
                    # what the whole prior counts as now, in labelled pairs
                    "effective_pairs": est.prior_weight * self.verifier.prior.pairs,
                    "pairs_above_threshold": est.prior_pairs_above,
                    # the share of recent lookups that repeat a stored question, at least
                    # (the prior's wrong reuses are scaled to it; None: no split)
                    "repeat_share_low": est.repeat_share_low,
                }
                if self.verifier.prior is not None
                else None
            ),
            "threshold_decided_by": est.decided_by,
            "error_rate_estimate": est.error_rate,
            "error_rate_ci": [est.error_low, est.error_high],
            "confidence": self.verifier.confidence,
            "hit_precision": est.hit_precision,
            "observations": est.observations,
            "observations_above_threshold": est.observations_above,
            "min_observations": self.verifier.min_observations,
            "observations_by_source": self.verifier.by_source(),
            # tightened inspection: right labels in a row still needed before sampled
            # verification returns to its rate (0: at its rate)
            "tightened_inspection": self.verifier.tightened_inspection,
            # per model asked so far: whether its answers label observations, and why
            "answer_labels": {
                model: {"in_force": src.in_force, "reason": src.reason}
                for model, (_, src) in sorted(self.label_sources.items())
            },
            "semantic_lookups": est.lookups,
            "outcomes": dict(self.counters),
        }
        if tenant is not None:
            for key in TENANT_HIDDEN_STATS:
                del out[key]
            prior = self.verifier.prior
            if prior is not None:  # its live weight moves with every tenant's labels
                out["prior"] = {"source": prior.source, "pairs": prior.pairs}
        return out
