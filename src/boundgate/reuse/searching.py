"""The lookup path of the reuse engine: its ``Searching`` mixin (``engine.py``).

``lookup`` runs the pipeline of ``docs/reuse.md`` for one request: exact match in the
request's scope (``exact.py``), then semantic candidates from the scope's ANN index, the
guards' veto (``guards/``), the pair model on the survivors (``pair.py``) and the verifier's
decision (``verifier.py``); then bound documents of earlier versions of the model. A hit's
answer is re-read from the store (or, when the caller writes the ledger row with a live
check, taken from the few kept in memory), so a revoked answer is never served. Identical
misses in flight are coalesced (``flight.py``): one computes, the others wait for its
answer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from .guards import compare
from .language import reads_english
from .lookup import EntryMeta, Lookup
from .policy import Mode, Plan
from .scope import ReuseKey, answer_fits, canonical_query
from .scoring import Evidence
from .verifier import Verdict

if TYPE_CHECKING:
    from ..clock import Clock
    from ..settings import ReuseSettings
    from ..store import Store, StoredEntry
    from .documents import Documents
    from .embedder import Embedder, Vectors
    from .exact import ExactMap
    from .flight import Flight, Flights
    from .index import Neighbour, ScopedIndex
    from .pair import PairScorer
    from .verifier import Verifier

# stored answers kept in memory for lookups that leave the live check to the ledger row
# (``lookup(..., check_live=False)``); beyond this many, the least recently served goes
ANSWERS_KEPT = 1024
# the longest question matched by meaning, whatever the embedder: the guards read each pair in
# time that grows with the square of its length (a 6,700-character question held the event
# loop about 4 s under the test-only hash embedder, which embeds any length); MiniLM's
# 128-token window ends far below it (a WordPiece token is at most 18 characters)
SEMANTIC_MAX_CHARS = 2048


def _same_form(stored: EntryMeta | StoredEntry, key: ReuseKey) -> bool:
    """Whether an answer filed under ``key``'s exact key has the asked question's exact
    form (``key.form``) by today's rules: one filed by an older gateway, whose rules forgave
    what they no longer do (the capital of "Bill" / "bill", a line's trailing spaces), is not
    an exact hit for the question they now tell apart. A question variant filed under the key (a
    confirmed paraphrase: ``labels.confirm``) has its own text, not the entry's: it stands."""
    if stored.exact != key.exact:
        return True
    return canonical_query(stored.query, verbatim=key.verbatim) == key.form


class Searching:
    """``lookup`` and the coalescing of identical misses (mixed into ``ReuseEngine``)."""

    if TYPE_CHECKING:  # what it uses of the engine
        settings: ReuseSettings
        clock: Clock
        store: Store
        embedder: Embedder
        verifier: Verifier
        index: ScopedIndex
        documents: Documents
        pair_scorer: PairScorer | None
        flights: Flights
        _meta: dict[int, EntryMeta]
        _exact: ExactMap
        _answers: OrderedDict[int, StoredEntry]

        def count(self, name: str) -> None: ...
        async def embed(self, texts: list[str]) -> Vectors: ...
        async def forget(self, keys: list[int], delete: bool = True) -> None: ...
        def admit_stored(self, e: StoredEntry) -> None: ...

    def embeds_whole(self, query: str) -> bool:
        """Whether ``query`` may be matched by meaning as far as its length goes: no longer
        than ``SEMANTIC_MAX_CHARS`` and its embedding covering all of it (``Embedder.fits``)."""
        return len(query) <= SEMANTIC_MAX_CHARS and self.embedder.fits(query)

    def _fresh(self, meta: EntryMeta, p: Plan, now: float) -> bool:
        """Whether ``meta``'s answer is young enough for plan ``p``: within its max-age, and
        within ``reuse.time_sensitive_max_age_s`` (less the request's ``min-fresh``) when the
        stored question is time-sensitive (the plan's limit covers the asked one only: a
        helper's audit found "What is the current price of bitcoin?" answering "How much is a
        bitcoin worth?" days later). An
        answer of unknown age (``EntryMeta.age_unknown``) is young enough for neither, and
        nor is one created after ``now``: an imported document dated ahead (a clock that runs
        fast) has no age to judge (RFC 9111 §4.2.3 never lets one go below 0; a trial's
        document dated 23 h ahead met ``max-age=0`` and the 300 s time-sensitive limit)."""
        ahead = meta.created > now
        if (meta.age_unknown or ahead) and (p.max_age_s is not None or meta.time_sensitive):
            return False
        age = now - meta.created
        if p.max_age_s is not None and age > p.max_age_s:
            return False
        # Cache-Control min-fresh: fresh for that much longer still (RFC 9111 §5.2.1.3)
        limit = self.settings.time_sensitive_max_age_s - p.min_fresh_s
        return age <= limit or not meta.time_sensitive

    async def lookup(
        self,
        p: Plan,
        key: ReuseKey | None,
        stale_keys: tuple[ReuseKey, ...] = (),
        *,
        check_live: bool = True,
    ) -> Lookup:
        """Exact, then semantic, in the request's scope; then bound documents of earlier
        versions of the model (served marked ``stale`` while they are rebound).

        ``check_live``: a hit's entry is read from the store, so an answer revoked by any
        process is never returned. False: an answer served before may come from memory
        unchecked (``Lookup.unchecked``); the caller then writes the request's ledger row with
        ``LedgerStore.record_hit``, which writes it only if the entry is still live and
        unchanged, in the same statement, and must not serve the answer otherwise (one round
        trip less per hit on the response path).

        A semantic lookup (``Lookup.semantic``) is not counted in the verifier's h(t) here:
        it counts once its request's ledger row is written carrying it (``lookup_written``),
        and a request that gets no answer writes none."""
        if key is None or p.lookup is Mode.OFF:
            self.count("bypass")
            return Lookup(p, key, "bypass")
        now = self.clock.time()
        out = await self._search_scopes(p, key, now, check_live=check_live)
        if not out.hit and stale_keys and self.settings.stale_policy == "stale-while-rebind":
            for sk in stale_keys:
                alt = await self._search_scopes(
                    p, sk, now, stale=True, vector=out.vector, check_live=check_live
                )
                if alt.entry is not None:
                    out.entry, out.status, out.similarity = alt.entry, "stale", alt.similarity
                    out.unchecked = alt.unchecked
                    out.density, out.pair = alt.density, alt.pair
                    out.candidate, out.verdict = None, None
                    break
        self.count(out.status if out.verdict is not Verdict.VERIFY else "verify")
        return out

    async def _entry_if_live(
        self, meta: EntryMeta, check_live: bool = True
    ) -> tuple[StoredEntry | None, bool]:
        """The stored entry, unless it was revoked (possibly by another process), and
        whether it came from memory unchecked (only when not ``check_live``)."""
        if not check_live:
            kept = self._answers.get(meta.key)
            if kept is not None:
                self._answers.move_to_end(meta.key)
                return replace(kept), True
        entry = await self.store.get_entry(meta.key)
        if entry is None or entry.revoked:
            await self.forget([meta.key], delete=False)
            return None, False
        if entry.document_id and not meta.document:
            meta.document, meta.pinned = entry.document_id, True
        self._answers[meta.key] = replace(entry)
        self._answers.move_to_end(meta.key)
        while len(self._answers) > ANSWERS_KEPT:
            self._answers.popitem(last=False)
        return entry, False

    def drop_answer(self, key: int) -> None:
        """Forget the copy of entry ``key`` kept in memory (``record_hit`` found it revoked
        or changed): the next lookup reads the store. Counted as ``dropped_answer``."""
        self._answers.pop(key, None)
        self.count("dropped_answer")

    async def _search_scopes(
        self,
        p: Plan,
        key: ReuseKey,
        now: float,
        *,
        stale: bool = False,
        vector: Vectors | None = None,
        check_live: bool = True,
    ) -> Lookup:
        """``_search`` in the key's scope, then, short of a hit, in the scope of its
        ``max_tokens`` class (``ReuseKey.legacy``: answers stored and documents bound before
        the limit left the scope). The lookup keeps ``key``, so what its request generates is
        stored in the scope without the class; a candidate to verify is taken from the older
        scope only when the newer has none."""
        out = await self._search(p, key, now, stale=stale, vector=vector, check_live=check_live)
        old = key.legacy
        if out.hit or old is None:
            return out
        alt = await self._search(
            p,
            old,
            now,
            stale=stale,
            vector=out.vector if out.vector is not None else vector,
            check_live=check_live,
            exact_only=not self.index.holds(old.scope),
        )
        if alt.hit or (out.candidate is None and alt.candidate is not None):
            out.entry, out.status, out.unchecked = alt.entry, alt.status, alt.unchecked
            out.similarity, out.density, out.pair = alt.similarity, alt.density, alt.pair
            out.candidate, out.verdict = alt.candidate, alt.verdict
        if out.veto is None:
            out.veto, out.veto_document = alt.veto, alt.veto_document
        return out

    async def _search(
        self,
        p: Plan,
        key: ReuseKey,
        now: float,
        *,
        stale: bool = False,
        vector: Vectors | None = None,
        check_live: bool = True,
        exact_only: bool = False,
    ) -> Lookup:
        admissible = self._admissible(p, key, now, stale=stale)
        hit = await self._exact_hit(p, key, admissible, stale=stale, check_live=check_live)
        if hit is not None:
            return hit
        if exact_only:
            return Lookup(p, key, "miss")
        if p.lookup is not Mode.SEMANTIC or not self.settings.semantic or key.verbatim:
            # a text completion's prompt is reused exactly only: its continuation depends on
            # every character ("The capital of France is" / "… is "), which no meaning shows
            return Lookup(p, key, "miss")
        if not self.embeds_whole(key.query):
            # the embedding would cover only the start of the question: two questions that
            # differ further on would look identical, so only an exact match may serve
            self.count("too_long_for_semantic")
            return Lookup(p, key, "miss")
        if not reads_english(key.query):
            # the guards' word lists and the pair model read English: another language is
            # reused on an exact repeat only (language.reads_english)
            self.count("not_english_for_semantic")
            return Lookup(p, key, "miss")
        if vector is None:
            vector = (await self.embed([key.query]))[0]
        out = Lookup(p, key, "miss", vector=vector, semantic=not stale)
        near = self.index.search(key.scope, vector, self.settings.candidates)
        survivors = self._survivors(key, near, admissible, out)
        batch = self.settings.pair_candidates if self.verifier.scorer.uses_pair else 1
        while ranked := await self._rank(list(itertools.islice(survivors, batch)), key):
            for meta, similarity, pair in ranked:
                out.similarity, out.pair = similarity, pair
                if self.verifier.scorer.uses_density:
                    out.density = self._density(key.scope, near, meta.key)
                out.verdict = self.verifier.decide(
                    meta.key, similarity, out.density, out.pair, labels=p.answer_labels
                )
                if out.verdict is Verdict.SERVE:
                    entry, out.unchecked = await self._entry_if_live(meta, check_live)
                    if entry is None:
                        # revoked or deleted by another process since the change log was
                        # read: the next survivor may still serve
                        self.count("dropped_candidate")
                        continue
                    out.entry, out.status = entry, "hit-semantic"
                elif out.verdict in (Verdict.VERIFY, Verdict.OBSERVE) and not stale:
                    out.candidate = meta
                return out
        return out

    def _admissible(
        self, p: Plan, key: ReuseKey, now: float, *, stale: bool = False
    ) -> Callable[[EntryMeta | None], bool]:
        """Whether an entry may serve ``key`` under plan ``p`` at ``now``: fresh enough, one
        the request could have received (``answer_fits``; a request at temperature 0 is not
        served a sampled answer), and (``stale``) a document of an
        older model version being rebound."""

        def admissible(meta: EntryMeta | None) -> bool:
            if meta is None or not self._fresh(meta, p, now):
                return False
            if not answer_fits(meta.finish_reason, meta.completion_tokens, key.max_tokens):
                return False  # longer than this request allows, or cut shorter than it allows
            if key.greedy and meta.sampled:
                return False  # a sampled answer; greedy decoding would not give it
            return not stale or self.documents.is_stale(meta.document)

        return admissible

    # --- coalescing (flight.py) -----------------------------------------------------------
    def join_flight(self, lookup: Lookup) -> Flight | None:
        """The flight to wait for when an identical request is computing this miss's answer.
        Else None, and a miss whose answer will be stored leads a flight of its own
        (``lookup.flight``), landed by ``remember`` once stored or by ``land``."""
        key = lookup.key
        if (
            key is None
            or lookup.entry is not None
            or lookup.status != "miss"
            or self.settings.coalesce_wait_s <= 0
        ):
            return None
        wait, lookup.flight = self.flights.join((key.exact, key.max_tokens), lead=lookup.plan.store)
        return wait

    def land(self, lookup: Lookup | None) -> None:
        """End the flight ``lookup`` leads, if any: its waiters look up again (idempotent)."""
        if lookup is not None and lookup.flight is not None:
            self.flights.land(lookup.flight)
            lookup.flight = None

    async def after_flight(self, lookup: Lookup) -> Lookup | None:
        """Once the flight ``lookup`` waited for has landed: the answer filed under its exact
        key that fits it, as a ``hit-coalesced`` lookup; None if there is none (the leader
        failed, left or stored nothing that fits: the waiter runs on its own)."""
        hit = await self._coalesced(lookup)
        if hit is None:
            self.count("coalesced-alone")
        return hit

    async def stored_meanwhile(self, lookup: Lookup) -> Lookup | None:
        """For a miss that has just become a flight's leader (``join_flight``): the answer an
        identical request stored while this one was looked up, as a ``hit-coalesced``
        lookup, its own flight landed (its waiters, if any joined, are served it too); None
        if there is none (it leads). Its lookup read the exact map before that answer was
        filed, and that request's flight had landed by the time this one joined: a trial's
        10 identical requests at once to a fast upstream ran it 2-5 times."""
        if lookup.flight is None:
            return None
        hit = await self._coalesced(lookup)
        if hit is not None:
            self.land(lookup)
        return hit

    async def _coalesced(self, lookup: Lookup) -> Lookup | None:
        """The answer filed under ``lookup``'s exact key that fits it, as a
        ``hit-coalesced`` lookup (counted); None if there is none."""
        key = lookup.key
        assert key is not None
        p = lookup.plan
        hit = await self._exact_hit(p, key, self._admissible(p, key, self.clock.time()))
        if hit is None:
            return None
        hit.status = "hit-coalesced"
        self.count("hit-coalesced")
        return hit

    async def _exact_hit(
        self,
        p: Plan,
        key: ReuseKey,
        admissible: Callable[[EntryMeta | None], bool],
        *,
        stale: bool = False,
        check_live: bool = True,
    ) -> Lookup | None:
        """An answer filed under the request's exact key that fits it (``exact.py``): from
        memory, else, on a store whose followers poll, the newest one another process stored
        since the change log was last read. ``check_live``: see ``lookup``."""
        for k in list(self._exact.candidates(key.exact, key.max_tokens)):
            meta = self._meta.get(k)
            if meta is not None and admissible(meta) and _same_form(meta, key):
                entry, unchecked = await self._entry_if_live(meta, check_live)
                if entry is not None:
                    hit = Lookup(p, key, "hit-exact", entry=entry, similarity=1.0)
                    hit.unchecked = unchecked
                    return hit
        if not stale and not self.store.announces_changes:
            entry = await self._exact_from_store(key.exact)
            if (
                entry is not None
                and admissible(self._meta.get(entry.key))
                and _same_form(entry, key)
            ):
                return Lookup(p, key, "hit-exact", entry=entry, similarity=1.0)
        return None

    def _survivors(
        self,
        key: ReuseKey,
        near: list[Neighbour],
        admissible: Callable[[EntryMeta | None], bool],
        out: Lookup,
    ) -> Iterator[tuple[EntryMeta, float]]:
        """The neighbours that may answer ``key``, nearest first: admissible, above the
        verifier's floor, bound if only bound answers serve, and past the guards (run only
        as far as the caller reads). The first one the guards veto leaves its conflicts in
        ``out.veto``."""
        for n in near:
            meta = self._meta.get(n.key)
            if not admissible(meta) or meta is None or meta.exact == key.exact:
                continue
            if n.similarity < self.verifier.floor:
                return
            if self.settings.require_bound and meta.document is None:
                continue
            verdict = compare(key.query, meta.query)
            if not verdict.ok:
                if out.veto is None:
                    out.veto = ",".join(verdict.conflicts)
                    out.veto_document = meta.document or meta.id
                continue
            yield meta, n.similarity

    async def _rank(
        self, survivors: list[tuple[EntryMeta, float]], key: ReuseKey
    ) -> list[tuple[EntryMeta, float, float | None]]:
        """Survivors with their pair-model scores, best first by the verifier's scorer (the
        pair score, or the blend of it with the cosine). The cross-encoder reads (asked,
        stored) for each; only would-be hits (above the floor, past the guards) pay for it.
        Without a pair scorer: in the index's order, unscored."""
        if not survivors or self.pair_scorer is None or not self.verifier.scorer.uses_pair:
            return [(m, s, None) for m, s in survivors]
        scores = await asyncio.to_thread(
            self.pair_scorer.score_pairs, [(key.query, m.query) for m, _ in survivors]
        )
        rank = self.verifier.scorer.score
        order = sorted(
            range(len(survivors)),
            key=lambda i: -rank(Evidence(survivors[i][1], 0.0, float(scores[i]))),
        )
        return [(survivors[i][0], survivors[i][1], float(scores[i])) for i in order]

    async def _exact_from_store(self, exact: str) -> StoredEntry | None:
        """The newest live entry stored under ``exact`` by another process since this one
        last read the change log, on a store whose followers poll it (SQLite, every
        ``sync_interval_s``): one indexed read before a miss runs the model, so worker
        processes share exact answers at once. (Where changes are announced, PostgreSQL,
        followers are milliseconds behind and a semantic lookup is spared the round trip.)
        The entry is admitted here as the change log would admit it."""
        e = await self.store.get_entry_by_exact(exact)
        if e is None or e.revoked:
            return None
        if e.key not in self._meta:
            self.admit_stored(e)  # whatever embedder made its vector (reembed.py)
            self.count("read_exact")
        return e

    def _density(self, scope: str, near: list[Neighbour], candidate: int) -> float:
        """Mean cosine of the asked question to its nearest stored questions and of the
        candidate to its own (itself excluded), averaged: the crowding that the density
        scorer discounts. One extra index search, for the chosen candidate only."""
        k = self.settings.candidates
        r_asked = sum(n.similarity for n in near[:k]) / max(1, len(near[:k]))
        vec = self.index.vector(candidate)
        if vec is None:
            return r_asked
        around = [n for n in self.index.search(scope, vec, k + 1) if n.key != candidate][:k]
        r_cand = sum(n.similarity for n in around) / len(around) if around else r_asked
        return (r_asked + r_cand) / 2
