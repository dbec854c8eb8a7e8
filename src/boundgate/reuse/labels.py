"""Labels for the verifier, and answers that teach the cache: the reuse engine compares a
fresh answer with the candidate it did not serve (``settle``: below the threshold, or a
would-be hit sampled for verification) and takes clients' feedback on served answers
(``feedback``); each verdict is an observation for the verifier (``observe``), and a
verified paraphrase whose answer proved equivalent becomes a question variant of the
candidate (``confirm``), so its next arrival is an exact hit. A mixin of ``ReuseEngine``
(``engine.py``), whose state it reads and writes.

Feedback from a non-admin key is trusted only as far as one tenant may move the threshold
every tenant is served under: ``correct: true`` is never learned, and ``correct: false`` up to
``reuse.feedback_labels_per_tenant_per_day`` labels per tenant and UTC day. Beyond that the
label still protects the tenant that sent it (its wrong answer is not served to it again), but
the shared curve does not learn it. The labels of each tenant and day are counted in the
store's limit counters (``feedback:<tenant>:<kind>``, ``LimitStore``), so the quota is one
across processes and survives a restart."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ErrorCode, InvalidRequestError, NotFoundError
from ..store import Claim, LedgerRow, ObservationRow
from ..tenants import PRUNE_EVERY_S, day_window, kept_from
from . import guards
from .lookup import EntryMeta, Lookup
from .refusals import is_refusal
from .scope import canonical_query
from .verifier import ENTRY_ONLY, Observation, Verdict

if TYPE_CHECKING:
    from ..clock import Clock
    from ..settings import ReuseSettings
    from ..store import Store
    from .documents import Documents
    from .embedder import Vectors
    from .verifier import Verifier

log = logging.getLogger("boundgate.reuse")

FEEDBACK_PREFIX = "feedback:"
# what a tenant's feedback counters count, per UTC day: "learned" its non-admin keys'
# labels learned (the quota), "admin" its admin keys' labels learned, "noted" its labels
# accepted and not learned
FEEDBACK_KINDS = ("learned", "admin", "noted")
UNLIMITED = 2**62  # the limit of a counter that only counts
# what makes two close answers contradict each other: a negation more or less, another
# number, date or unit, an opposite (north / south), the same terms in another order. The
# guards' other conflicts (mood, tense, entities, ...) describe questions and would take
# two wordings of one answer apart.
ANSWER_CONFLICTS = frozenset({"negation", "number", "date", "unit", "polarity", "order"})


def feedback_counter(tenant: str, kind: str) -> str:
    """The name of ``tenant``'s counter of ``kind`` (one of ``FEEDBACK_KINDS``)."""
    return f"{FEEDBACK_PREFIX}{tenant}:{kind}"


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
        _feedback_noted: set[str]
        _feedback_trusted: set[str]
        _counters_pruned_at: float

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
        teaches the cache: the question becomes a variant of the candidate (``confirm``).
        Where either answer declines to answer (``refusals.is_refusal``) there is no label
        (counted ``label_skipped_refusal``)."""
        cand, sim = lookup.candidate, lookup.similarity
        if cand is None or sim is None:
            return
        stored = await self.store.get_entry(cand.key)
        if stored is None:
            return
        if is_refusal(fresh_text) or is_refusal(stored.answer):
            # says nothing of the questions: a refusal is alike whatever was asked
            self.count("label_skipped_refusal")
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
        """Whether answers ``a`` and ``b`` say the same: equal after normalisation, or
        answer embeddings at cosine >= ``reuse.answer_similarity`` with no contradiction the
        question guards see between them (``ANSWER_CONFLICTS``). Embeddings alone put "… is
        100 °C" beside "… is 120 °C" (0.92) and "Yes, it is safe …" beside "No, it is not
        safe …" (0.995, all-MiniLM-L6-v2), and an answer taken as the same confirms a
        paraphrase for good (``confirm``)."""
        if canonical_query(a) == canonical_query(b):
            return True
        va, vb = await self.embed([a, b])
        if float(np.dot(va, vb)) < self.settings.answer_similarity:
            return False
        return not ANSWER_CONFLICTS.intersection(guards.compare(a, b).conflicts)

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
        """Label the reused answer of ledger ``row`` right (``correct``) or wrong, for the key
        of ``tenant`` (``admin``: an admin key).

        Returns the label's ``status``:

        - ``"recorded"``: learned by the shared verifier (an admin key's label, or a non-admin
          key's ``correct: false`` within ``reuse.feedback_labels_per_tenant_per_day`` of its
          tenant's today, UTC);
        - ``"noted"``: accepted, not learned by the shared verifier: a non-admin key's
          ``correct: true`` (it would lower the threshold every tenant is served under), or
          its ``correct: false`` beyond the quota, or any label of an exact or coalesced hit
          (``_answer_judged``: it judges the answer, not a match). A noted ``correct: false``
          still stops the answer being served to the tenant for that question: an exact (or
          coalesced) hit's entry is forgotten (a bound one's document revoked instead: the
          document and its entry are kept, marked revoked), a semantic hit's entry gets its
          own floor above the score that failed (both entries are in the tenant's own
          scope);
        - ``"duplicate"``: this request's label was learned before, or (for a non-admin key)
          its ``correct: false`` was noted before (whatever this label says), or the same
          non-admin ``correct: true`` was noted before by this process, or it is an exact
          or coalesced hit labelled before by any key. A noted ``correct: true`` leaves the
          request open to a later ``correct: false`` or an admin's label, and a noted
          ``correct: false`` to an admin's.

        Each label is counted in the store under its tenant and UTC day (``feedback_counts``).
        Raises ``NotFoundError`` for an unknown request or another tenant's (unless
        ``admin``) and ``InvalidRequestError`` (``not_a_reuse``) when its answer was not
        reused; the store's errors propagate."""
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
        if row.reuse in ("hit-exact", "hit-coalesced"):
            # judged as the answer, from any key: before the non-admin "right" below (a
            # trial: a tenant's two "right" labels of an exact hit were both noted, counted)
            return await self._answer_judged(row, correct, tenant)
        if not admin and row.id in self._feedback_noted:
            # its "wrong" was noted: open to an admin's label only (a re-check: a tenant's
            # "right" after it was noted and counted again)
            return "duplicate"
        if correct and not admin:
            # One threshold serves every tenant: a tenant's "right" would lower it for all
            # (and raise the others' wrong-reuse risk), so only an admin's counts. Noted, the
            # request may still be labelled: a later "wrong", or an admin's label, is learned.
            # The same "right" again is a duplicate, not counted (known to this process: a
            # noted "right" is not stored, since it must not close the request to a "wrong").
            if row.id in self._feedback_trusted:
                return "duplicate"
            self._feedback_trusted.add(row.id)
            await self._count_feedback(tenant, "noted")
            return "noted"
        self._feedback_seen.add(row.id)  # before any wait: a concurrent repeat is a duplicate
        # A tenant's "wrong" can only make reuse more careful, but for every tenant: one
        # tenant labelling every hit wrong would switch semantic reuse off for all. So the
        # shared verifier learns a tenant's "wrong" up to its daily quota only.
        try:
            learned = admin or await self._within_quota(tenant)
        except BaseException:
            self._feedback_seen.discard(row.id)  # not labelled: it may be sent again
            raise
        if not learned:
            self._feedback_seen.discard(row.id)
            self._feedback_noted.add(row.id)  # an admin's label may still be learned
        key = self._by_id.get(row.document_id)
        similarity = row.similarity if row.similarity is not None else 1.0
        raw_density = row.extra.get("density", 0.0)
        density = float(raw_density) if isinstance(raw_density, int | float) else 0.0
        raw_pair = row.extra.get("pair_score")
        pair = float(raw_pair) if isinstance(raw_pair, int | float) else None
        # noted: stored all the same (ENTRY_ONLY): the entry's own floor, in every process
        # and after a restart, and the request's mark against a second "wrong"
        source = "feedback" if learned else ENTRY_ONLY
        await self.observe(key, similarity, correct, source, row.id, density, pair)
        if admin:
            await self._count_feedback(tenant, "admin")
        elif not learned:
            await self._count_feedback(tenant, "noted")
        return "recorded" if learned else "noted"

    async def _answer_judged(self, row: LedgerRow, correct: bool, tenant: str) -> str:
        """A label of an exact or coalesced hit: the answer was stored for this very question
        (and the same parameters), so the label judges the answer, the model's work, not a
        match; the shared verifier, which bounds wrong *reuse* (an answer served to another
        question), learns nothing from it, and the tenant's quota is not taken. A trial: two
        ``correct: false`` labels of a 135M model's wrong facts, learned as wrong reuses at
        pair score 1.0, raised the threshold to ``none_proven`` and switched reuse by meaning
        off for every tenant. Stored as an ``ENTRY_ONLY`` observation (the request's mark
        against a second label, in every process and after a restart); a ``correct: false``
        stops the answer being served: its entry forgotten, or a bound one's document revoked
        (it and its entry stay, marked; never deleted from under an export). Returns
        ``"noted"``, or ``"duplicate"`` for a request labelled before (by any key)."""
        if row.id in self._feedback_noted or row.id in self._feedback_seen:
            return "duplicate"
        self._feedback_noted.add(row.id)
        key = self._by_id.get(row.document_id) if row.document_id else None
        similarity = row.similarity if row.similarity is not None else 1.0
        await self.observe(key, similarity, correct, ENTRY_ONLY, row.id, 0.0, 1.0)
        await self._count_feedback(tenant, "noted")
        if not correct and key is not None:
            meta = self._meta.get(key)
            document = meta.document if meta is not None else None
            if document is None or not await self.documents.revoke(document):
                await self.forget([key])
        return "noted"

    def _note_feedback(self, o: ObservationRow) -> None:
        """Mark the request of a stored feedback label (loaded, or another process's) as
        labelled, so a second label of it is a duplicate here too."""
        if o.request_id and o.source == "feedback":
            self._feedback_seen.add(o.request_id)
        elif o.request_id and o.source == ENTRY_ONLY:
            self._feedback_noted.add(o.request_id)

    async def _within_quota(self, tenant: str) -> bool:
        """Take one of ``tenant``'s learned labels of today (UTC) if its quota has one left:
        one atomic claim on its counter in the store, so concurrent labels (in any process)
        never take more than the quota."""
        quota = self.settings.feedback_labels_per_tenant_per_day
        if quota <= 0:
            return False
        now = self.clock.time()
        claim = Claim(feedback_counter(tenant, "learned"), day_window(now), 1, quota)
        taken = await self.store.reserve(uuid.uuid4().hex, [claim], now) is None
        await self._prune_counters(now)
        return taken

    async def _count_feedback(self, tenant: str, kind: str) -> None:
        now = self.clock.time()
        claim = Claim(feedback_counter(tenant, kind), day_window(now), 1, UNLIMITED)
        await self.store.reserve(uuid.uuid4().hex, [claim], now)
        await self._prune_counters(now)

    async def _prune_counters(self, now: float) -> None:
        """At most hourly, delete the daily counters of days before yesterday, as the
        ``Limiter`` does for budgets (it prunes only when some tenant has limits). A failure
        is logged, never the feedback request's error."""
        if now - self._counters_pruned_at < PRUNE_EVERY_S:
            return
        self._counters_pruned_at = now
        try:
            await self.store.prune_counters(kept_from(now))
        except Exception:  # housekeeping: the label is taken; the next hour tries again
            log.exception("feedback: pruning old counters failed")

    async def feedback_counts(self, tenant: str | None = None) -> dict[str, Any]:
        """Today's feedback labels per tenant (the ``feedback_labels`` of
        ``GET /v1/boundgate/stats``): ``{"day": "YYYY-MM-DD" (UTC), "quota_per_tenant":
        reuse.feedback_labels_per_tenant_per_day, "tenants": {name: {"learned": n,
        "admin": n, "noted": n}}}``, counts of labels: ``learned`` from the tenant's
        non-admin keys (what the quota limits), ``admin`` learned from its admin keys,
        ``noted`` accepted and not learned. With ``tenant`` (a non-admin key): that tenant
        only, zeros included; without it: every tenant that labelled today. One read of the
        store (its errors propagate)."""
        now = self.clock.time()
        used = await self.store.counters_used(FEEDBACK_PREFIX, day_window(now))
        tenants: dict[str, dict[str, int]] = {}
        if tenant is not None:
            tenants[tenant] = dict.fromkeys(FEEDBACK_KINDS, 0)
        for counter, n in sorted(used.items()):
            name, _, kind = counter[len(FEEDBACK_PREFIX) :].rpartition(":")
            if kind not in FEEDBACK_KINDS or (tenant is not None and name != tenant):
                continue
            tenants.setdefault(name, dict.fromkeys(FEEDBACK_KINDS, 0))[kind] = n
        return {
            "day": time.strftime("%Y-%m-%d", time.gmtime(now)),
            "quota_per_tenant": self.settings.feedback_labels_per_tenant_per_day,
            "tenants": tenants,
        }
