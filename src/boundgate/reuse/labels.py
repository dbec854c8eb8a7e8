"""Labels for the verifier, and answers that teach the cache: the reuse engine compares a
fresh answer with the candidate it did not serve (``settle``: below the threshold, or a
would-be hit sampled for verification) and takes clients' feedback on served answers
(``feedback``); each verdict is an observation for the verifier (``observe``), and a
verified paraphrase whose answer proved equivalent becomes a question variant of the
candidate (``confirm``), so its next arrival is an exact hit. A mixin of ``ReuseEngine``
(``engine.py``), whose state it reads and writes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ErrorCode, InvalidRequestError, NotFoundError
from ..store import LedgerRow, ObservationRow
from .lookup import EntryMeta, Lookup
from .scope import canonical_query
from .verifier import Observation, Verdict

if TYPE_CHECKING:
    from ..clock import Clock
    from ..settings import ReuseSettings
    from ..store import Store
    from .documents import Documents
    from .embedder import Vectors
    from .verifier import Verifier


class Labelling:
    """``settle``, ``confirm``, ``observe`` and ``feedback`` (mixed into ``ReuseEngine``)."""

    if TYPE_CHECKING:  # what it uses of the engine
        settings: ReuseSettings
        clock: Clock
        store: Store
        verifier: Verifier
        documents: Documents
        _meta: dict[int, EntryMeta]
        _by_id: dict[str, int]
        _background: set[asyncio.Task[None]]
        _own_labels: set[tuple[float, int | None, str, str | None]]
        _feedback_seen: set[str]

        async def embed(self, texts: list[str]) -> Vectors: ...
        def count(self, name: str) -> None: ...
        async def forget(self, keys: list[int], delete: bool = True) -> None: ...
        def _file_variant(self, exact: str, key: int) -> None: ...

    def settle_soon(
        self, lookup: Lookup, fresh_text: str, request_id: str, asker: str | None = None
    ) -> None:
        """Label the unserved candidate from the fresh answer, off the response path."""
        if lookup.candidate is None or lookup.similarity is None:
            return
        task = asyncio.get_running_loop().create_task(
            self.settle(lookup, fresh_text, request_id, asker)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(
        self, lookup: Lookup, fresh_text: str, request_id: str, asker: str | None = None
    ) -> None:
        """Compare the fresh answer with the unserved candidate's: a label for the verifier.
        A would-be hit (sampled for verification) whose fresh answer is equivalent also
        teaches the cache: the question becomes a variant of the candidate (``confirm``)."""
        cand, sim = lookup.candidate, lookup.similarity
        if cand is None or sim is None:
            return
        stored = await self.store.get_entry(cand.key)
        if stored is None:
            return
        correct = await self.same_answer(stored.answer, fresh_text)
        source = "verify" if lookup.verdict is Verdict.VERIFY else "observe"
        await self.observe(cand.key, sim, correct, source, request_id, lookup.density, lookup.pair)
        if correct and lookup.verdict is Verdict.VERIFY:
            await self.confirm(cand, lookup, asker)

    async def confirm(self, cand: EntryMeta, lookup: Lookup, asker: str | None) -> None:
        """Record the asked question as a variant of ``cand``, the entry whose answer proved
        equivalent: its next arrival is an exact hit on ``cand`` (and, once bound, it is
        among the document's ``bg:questionVariants``). The fresh answer stored for the same
        question is dropped as a duplicate of a confirmed meaning."""
        key = lookup.key
        if key is None or cand.key not in self._meta:
            return
        await self.store.add_question_variant(cand.key, key.exact, key.query, self.clock.time())
        fresh = self._by_id.get(lookup.stored_id) if lookup.stored_id else None
        self._file_variant(key.exact, cand.key)
        self.count("variant_confirmed")
        fresh_meta = self._meta.get(fresh) if fresh is not None else None
        if fresh_meta is not None and fresh != cand.key and fresh_meta.document is None:
            await self.forget([fresh_meta.key])
        if asker is not None and cand.document is None:
            await self.documents.register(cand.key, asker, key.query)

    async def same_answer(self, a: str, b: str) -> bool:
        if canonical_query(a) == canonical_query(b):
            return True
        va, vb = await self.embed([a, b])
        return float(np.dot(va, vb)) >= self.settings.answer_similarity

    async def observe(
        self,
        entry: int | None,
        similarity: float,
        correct: bool,
        source: str,
        request_id: str,
        density: float = 0.0,
        pair: float | None = None,
    ) -> None:
        self.verifier.add(Observation(similarity, correct, source, entry, density, pair))
        row = ObservationRow(
            self.clock.time(), entry, similarity, correct, source, request_id, density, pair
        )
        self._own_labels.add((row.ts, row.entry, row.source, row.request_id))  # see _apply
        await self.store.add_observation(row)

    async def feedback(self, row: LedgerRow | None, correct: bool, tenant: str, admin: bool) -> str:
        """Label the reused answer of ledger ``row`` right or wrong for ``tenant``.

        Returns ``"recorded"`` (learned by the shared verifier), ``"noted"`` (a non-admin
        key's ``correct: true``: accepted, not learned, as it would lower the threshold
        every tenant is served under) or ``"duplicate"`` (this request was labelled before).
        Raises ``NotFoundError`` for an unknown request or another tenant's (unless
        ``admin``) and ``InvalidRequestError`` (``not_a_reuse``) when its answer was not
        reused."""
        if row is None or (row.tenant != tenant and not admin):
            # another tenant's request is answered as an unknown one: its existence is theirs
            raise NotFoundError("no request with that id", param="request_id")
        if not (row.reuse or "").startswith("hit") or row.document_id is None:
            raise InvalidRequestError(
                "feedback applies to reused answers; that request was not served from the store",
                param="request_id",
                code=ErrorCode.NOT_A_REUSE,
            )
        if row.id in self._feedback_seen:
            return "duplicate"
        if correct and not admin:
            # One threshold serves every tenant: a tenant's "right" would lower it for all
            # (and raise the others' wrong-reuse risk), so only an admin's counts. A tenant's
            # "wrong" is learned: it can only make reuse more careful. Noted, the request
            # may still be labelled: a later "wrong", or an admin's label, is learned.
            return "noted"
        self._feedback_seen.add(row.id)
        key = self._by_id.get(row.document_id)
        similarity = row.similarity if row.similarity is not None else 1.0
        raw_density = row.extra.get("density", 0.0)
        density = float(raw_density) if isinstance(raw_density, int | float) else 0.0
        raw_pair = row.extra.get("pair_score")
        pair = float(raw_pair) if isinstance(raw_pair, int | float) else None
        same_question = row.reuse in ("hit-exact", "hit-coalesced")
        if pair is None and same_question:
            pair = 1.0  # the same question
        await self.observe(key, similarity, correct, "feedback", row.id, density, pair)
        if not correct and key is not None and same_question:
            # The stored answer itself is wrong for its own question: stop serving it.
            await self.forget([key])
        return "recorded"
