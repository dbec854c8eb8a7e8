"""The reuse layer the gateway calls: look up before routing, remember after generating.

``lookup`` runs the pipeline of ``docs/reuse.md``: policy → scope key → exact match →
semantic candidates (per-scope ANN) → guards → verifier. ``remember`` files a fresh answer
under its scope; ``settle`` compares a fresh answer with the candidate that was not served
(below threshold, or sampled for verification) and teaches the verifier. State lives in the
store; the in-memory maps and indexes are rebuilt from it at start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.base import Completion, GenerationRequest, Usage
from ..clock import Clock, SystemClock
from ..errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from ..fmt import plain_decimal
from ..store import LedgerRow, ObservationRow, Store, StoredEntry
from .embedder import Embedder, Vectors
from .guards import compare
from .index import ScopedIndex
from .policy import Mode, Plan, TimeSensitivity, plan
from .scope import ReuseKey, canonical_query, reuse_key
from .verifier import Observation, Verdict, Verifier

RECENCY_HALF_LIFE_S = 7 * 86400.0


@dataclass
class EntryMeta:
    """What a lookup needs about an entry, kept in memory (answers stay in the store)."""

    key: int
    id: str
    scope: str
    exact: str
    query: str
    created: float
    cost_wh: float
    cost_gco2: float
    size: int
    hits: int = 0
    last_used: float = 0.0
    pinned: bool = False


@dataclass
class Lookup:
    plan: Plan
    key: ReuseKey | None
    status: str  # hit-exact | hit-semantic | miss | bypass
    entry: StoredEntry | None = None  # the entry served, on a hit
    similarity: float | None = None  # best admissible candidate's similarity
    vector: Vectors | None = None
    candidate: EntryMeta | None = None  # to compare the fresh answer with (verify/observe)
    verdict: Verdict | None = None
    semantic: bool = False  # a semantic lookup happened (counts towards h(t))
    stored_id: str | None = None  # set by remember()

    @property
    def hit(self) -> bool:
        return self.entry is not None

    def ledger_fields(self) -> dict[str, Any]:
        doc = self.entry.id if self.entry is not None else self.stored_id
        return {
            "reuse": self.status,
            "document_id": doc,
            "similarity": self.similarity,
            "avoided_wh": self.entry.cost_wh if self.entry is not None else 0.0,
            "avoided_gco2": self.entry.cost_gco2 if self.entry is not None else 0.0,
        }

    def headers(self) -> dict[str, str]:
        h = {"x-boundgate-reuse": self.status}
        doc = self.entry.id if self.entry is not None else self.stored_id
        if doc:
            h["x-boundgate-document"] = doc
        if self.similarity is not None:
            h["x-boundgate-similarity"] = f"{self.similarity:.4f}"
        if self.entry is not None:
            h["x-boundgate-energy-avoided-wh"] = plain_decimal(self.entry.cost_wh)
        return h


@dataclass
class ReuseConfig:
    max_temperature: float = 0.3
    semantic: bool = True
    answer_similarity: float = 0.90
    time_sensitive_max_age: float = 300.0
    time_sensitive_pattern: str | None = None
    max_entries: int = 100_000
    candidates: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


class ReuseEngine:
    def __init__(
        self,
        *,
        store: Store,
        embedder: Embedder,
        verifier: Verifier,
        config: ReuseConfig | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.verifier = verifier
        self.config = config or ReuseConfig()
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.time_sensitive = (
            TimeSensitivity(self.config.time_sensitive_pattern)
            if self.config.time_sensitive_pattern
            else TimeSensitivity()
        )
        self.index = ScopedIndex(embedder.dim)
        self._meta: dict[int, EntryMeta] = {}
        self._by_id: dict[str, int] = {}
        self._exact: dict[str, int] = {}
        self._next_key = 1
        self._lock = threading.Lock()
        self._feedback_seen: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.counters: dict[str, int] = {}

    # --- start-up -------------------------------------------------------------------------
    def load(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Rebuild maps and indexes from the store (entries, observations, lookup history)."""
        entries = self.store.entries(self.embedder.name)
        by_scope: dict[str, tuple[list[int], list[Vectors]]] = {}
        for i, e in enumerate(entries):
            self._add_meta(e)
            keys, vecs = by_scope.setdefault(e.scope, ([], []))
            keys.append(e.key)
            vecs.append(np.frombuffer(e.vector, dtype=np.float32))
            if progress is not None and i % 1000 == 0:
                progress(i, len(entries))
        for scope, (keys, vecs) in by_scope.items():
            self.index.add_many(scope, keys, np.vstack(vecs))
        self._next_key = self.store.max_entry_key() + 1
        for o in self.store.observations():
            self.verifier.add(
                Observation(o.similarity, o.correct, o.source, o.entry), recompute=False
            )
            if o.source == "feedback" and o.request_id:
                self._feedback_seen.add(o.request_id)
        for s in self.store.lookup_similarities():
            self.verifier.note_lookup(s)
        self.verifier.recompute()

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
        )
        with self._lock:
            self._meta[e.key] = meta
            self._by_id[e.id] = e.key
            prev = self._exact.get(e.exact)
            if prev is None or self._meta[prev].created <= e.created:
                self._exact[e.exact] = e.key
        return meta

    def __len__(self) -> int:
        return len(self._meta)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # --- lookup ---------------------------------------------------------------------------
    def plan_for(
        self,
        req: GenerationRequest,
        *,
        tenant: str,
        model_version: str,
        endpoint: str,
        cache_control: str | None,
    ) -> tuple[Plan, ReuseKey | None]:
        key = reuse_key(req, tenant=tenant, model_version=model_version, endpoint=endpoint)
        has_tools = any(k in req.passthrough for k in ("tools", "functions"))
        p = plan(
            temperature=req.temperature,
            max_temperature=self.config.max_temperature,
            query=key.query if key is not None else None,
            has_tools=has_tools,
            cache_control=cache_control,
            options=req.options,
            time_sensitive=self.time_sensitive,
            time_sensitive_max_age=self.config.time_sensitive_max_age,
        )
        return p, key

    def _fresh(self, meta: EntryMeta, p: Plan, now: float) -> bool:
        return p.max_age_s is None or now - meta.created <= p.max_age_s

    async def embed(self, texts: list[str]) -> Vectors:
        return await asyncio.to_thread(self.embedder.embed, texts)

    async def lookup(self, p: Plan, key: ReuseKey | None) -> Lookup:
        if key is None or p.lookup is Mode.OFF:
            self._count("bypass")
            return Lookup(p, key, "bypass")
        now = self.clock.time()
        exact = self._exact.get(key.exact)
        if exact is not None:
            meta = self._meta.get(exact)
            if meta is not None and self._fresh(meta, p, now):
                entry = await asyncio.to_thread(self.store.get_entry, exact)
                if entry is not None:
                    self._count("hit-exact")
                    return Lookup(p, key, "hit-exact", entry=entry, similarity=1.0)
        if p.lookup is not Mode.SEMANTIC or not self.config.semantic:
            self._count("miss")
            return Lookup(p, key, "miss")
        vector = (await self.embed([key.query]))[0]
        out = Lookup(p, key, "miss", vector=vector, semantic=True)
        for n in self.index.search(key.scope, vector, self.config.candidates):
            meta = self._meta.get(n.key)
            if meta is None or not self._fresh(meta, p, now) or meta.exact == key.exact:
                continue
            if n.similarity < self.verifier.floor:
                break
            if not compare(key.query, meta.query).ok:
                continue
            out.similarity = n.similarity
            out.verdict = self.verifier.decide(meta.key, n.similarity)
            if out.verdict is Verdict.SERVE:
                entry = await asyncio.to_thread(self.store.get_entry, meta.key)
                if entry is not None:
                    out.entry, out.status = entry, "hit-semantic"
            elif out.verdict in (Verdict.VERIFY, Verdict.OBSERVE):
                out.candidate = meta
            break
        self.verifier.note_lookup(out.similarity)
        self._count(out.status if out.verdict is not Verdict.VERIFY else "verify")
        return out

    async def note_hit(self, lookup: Lookup) -> None:
        if lookup.entry is None:
            return
        now = self.clock.time()
        meta = self._meta.get(lookup.entry.key)
        if meta is not None:
            meta.hits += 1
            meta.last_used = now
        await self.store.note_hit(lookup.entry.key, now)

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
    ) -> str | None:
        """Store a fresh answer (if the plan allows); returns its public id."""
        key = lookup.key
        if key is None or not lookup.plan.store or not completion.text.strip():
            return None
        if completion.finish_reason not in ("stop", "length"):
            return None
        vector = lookup.vector
        if vector is None:
            vector = (await self.embed([key.query]))[0]
        now = self.clock.time()
        with self._lock:
            entry_key = self._next_key
            self._next_key += 1
        digest = hashlib.sha256(
            f"{key.scope}\n{key.exact}\n{completion.text}\n{now!r}".encode()
        ).hexdigest()
        entry = StoredEntry(
            key=entry_key,
            id="ans_" + digest[:24],
            scope=key.scope,
            exact=key.exact,
            query=key.query,
            answer=completion.text,
            finish_reason=completion.finish_reason,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            model=model,
            model_version=model_version,
            tenant=tenant,
            created=now,
            cost_wh=cost_wh,
            cost_gco2=cost_gco2,
            vector=np.asarray(vector, dtype=np.float32).tobytes(),
            embedder=self.embedder.name,
            scope_doc=json.dumps(key.scope_doc, sort_keys=True, separators=(",", ":")),
        )
        await self.store.put_entry(entry)
        self._add_meta(entry)
        self.index.add(key.scope, entry_key, vector)
        lookup.stored_id = entry.id
        if len(self._meta) > self.config.max_entries:
            await self.evict()
        return entry.id

    def settle_soon(self, lookup: Lookup, fresh_text: str, request_id: str) -> None:
        """Label the unserved candidate from the fresh answer, off the response path."""
        if lookup.candidate is None or lookup.similarity is None:
            return
        task = asyncio.get_running_loop().create_task(self.settle(lookup, fresh_text, request_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self, lookup: Lookup, fresh_text: str, request_id: str) -> None:
        cand, sim = lookup.candidate, lookup.similarity
        if cand is None or sim is None:
            return
        stored = await asyncio.to_thread(self.store.get_entry, cand.key)
        if stored is None:
            return
        correct = await self.same_answer(stored.answer, fresh_text)
        source = "verify" if lookup.verdict is Verdict.VERIFY else "observe"
        await self.observe(cand.key, sim, correct, source, request_id)

    async def same_answer(self, a: str, b: str) -> bool:
        if canonical_query(a) == canonical_query(b):
            return True
        va, vb = await self.embed([a, b])
        return float(np.dot(va, vb)) >= self.config.answer_similarity

    async def observe(
        self, entry: int | None, similarity: float, correct: bool, source: str, request_id: str
    ) -> None:
        self.verifier.add(Observation(similarity, correct, source, entry))
        await self.store.add_observation(
            ObservationRow(self.clock.time(), entry, similarity, correct, source, request_id)
        )

    async def drain(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- feedback -------------------------------------------------------------------------
    async def feedback(self, row: LedgerRow | None, correct: bool, tenant: str, admin: bool) -> str:
        if row is None:
            raise NotFoundError("no request with that id", param="request_id")
        if row.tenant != tenant and not admin:
            raise PermissionDeniedError("that request belongs to another tenant")
        if not (row.reuse or "").startswith("hit") or row.document_id is None:
            raise InvalidRequestError(
                "feedback applies to reused answers; that request was not served from the store",
                param="request_id",
                code="not_a_reuse",
            )
        if row.id in self._feedback_seen:
            return "duplicate"
        self._feedback_seen.add(row.id)
        key = self._by_id.get(row.document_id)
        similarity = row.similarity if row.similarity is not None else 1.0
        await self.observe(key, similarity, correct, "feedback", row.id)
        if not correct and key is not None and row.reuse == "hit-exact":
            # The stored answer itself is wrong for its own question: stop serving it.
            await self.forget([key])
        return "recorded"

    # --- eviction -------------------------------------------------------------------------
    def value(self, meta: EntryMeta, now: float) -> float:
        """Energy saved per byte kept: cost × (1 + reuse count) × recency decay / size."""
        recency = math.exp(-max(0.0, now - meta.last_used) * math.log(2) / RECENCY_HALF_LIFE_S)
        return meta.cost_wh * (1 + meta.hits) * recency / max(1, meta.size)

    async def evict(self) -> list[int]:
        now = self.clock.time()
        excess = len(self._meta) - self.config.max_entries
        if excess <= 0:
            return []
        batch = max(excess, self.config.max_entries // 100)
        candidates = sorted(
            (m for m in self._meta.values() if not m.pinned), key=lambda m: self.value(m, now)
        )
        victims = [m.key for m in candidates[:batch]]
        await self.forget(victims)
        self._count_n("evicted", len(victims))
        return victims

    def _count_n(self, name: str, n: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    async def forget(self, keys: list[int]) -> None:
        with self._lock:
            for k in keys:
                meta = self._meta.pop(k, None)
                if meta is None:
                    continue
                self._by_id.pop(meta.id, None)
                if self._exact.get(meta.exact) == k:
                    del self._exact[meta.exact]
        for k in keys:
            self.index.remove(k)
            self.verifier.forget_entry(k)
        await self.store.delete_entries(keys)

    # --- reporting ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        est = self.verifier.estimate()
        return {
            "entries": len(self._meta),
            "scopes": self.index.scopes(),
            "embedder": self.embedder.name,
            "error_bound": self.verifier.delta,
            "threshold": est.threshold,
            "error_rate_estimate": est.error_rate,
            "error_rate_ci": [est.error_low, est.error_high],
            "confidence": self.verifier_confidence,
            "hit_precision": est.hit_precision,
            "observations": est.observations,
            "observations_above_threshold": est.observations_above,
            "observations_by_source": self.verifier.by_source(),
            "semantic_lookups": est.lookups,
            "outcomes": dict(self.counters),
        }

    verifier_confidence: float = 0.95


def replay_pieces(text: str) -> list[str]:
    """Split a stored answer into token-sized pieces for streaming it back."""
    import re

    pieces = re.findall(r"\s*\S+|\s+$", text)
    return pieces or [text]


def usage_of(entry: StoredEntry) -> Usage:
    return Usage(entry.prompt_tokens, entry.completion_tokens)
