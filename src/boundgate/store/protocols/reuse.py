"""What reuse reads and learns from: stored answers, the change log replicas follow, and
verification labels.

The conventions every method keeps are the package docstring's.
"""

from __future__ import annotations

from typing import Protocol

from ..rows import (
    ChangeRow,
    EntryVector,
    ObservationRow,
    StoredEntry,
)


class AnswerStore(Protocol):
    """Stored answers the reuse layer serves, their question variants and their askers (the
    registry of who asked for an answer, used when binding it into a document)."""

    async def put_entry(self, entry: StoredEntry) -> None:
        """Store an answer; returns once committed. An entry whose ``key`` exists is ignored
        (the first write wins)."""

    async def entries(self) -> list[StoredEntry]:
        """Every stored entry, whatever embedder made its vector, revoked ones included, by
        key (the start-up load: every entry is matched exactly, whatever its vector)."""

    async def get_entry(self, key: int) -> StoredEntry | None:
        """The entry with integer key ``key``; None if there is none."""

    async def get_entries(self, keys: list[int]) -> list[StoredEntry]:
        """The entries with these keys, by key; keys with no entry are skipped."""

    async def set_entry_vectors(self, embedder: str, vectors: list[EntryVector]) -> int:
        """Give each entry of ``vectors`` its new vector, made by ``embedder``, and that
        embedder's name, if the entry is not revoked and its ``embedder`` is still
        ``EntryVector.replaces`` (else it is skipped: revoked, re-embedded by another process
        meanwhile, or deleted). Returns how many were written. Atomic per entry, so processes
        doing it at once are harmless: the first to write an entry wins and the others skip
        it. Nothing else of the entry changes (hits, document, key) and nothing is logged in
        the change log: the answer served is the same, and each process keeps its own
        index."""

    async def get_entry_by_id(self, public_id: str) -> StoredEntry | None:
        """The entry with public id ``public_id``; None if there is none."""

    async def get_entry_by_exact(self, exact: str) -> StoredEntry | None:
        """The newest entry stored under exact hash ``exact`` that is not revoked; None if
        there is none (one indexed read: a process asks it before a miss runs the model, so
        an answer another process stored is served before the change log brings it)."""

    async def max_entry_key(self) -> int:
        """The largest entry key ever stored and still present; 0 with no entries."""

    async def note_hit(self, key: int, ts: float, n: int = 1) -> None:
        """Count ``n`` more hits on entry ``key`` and set its ``last_hit`` to ``ts`` (atomic
        increment: concurrent hits all count). No entry: nothing happens."""

    async def delete_entries(self, keys: list[int]) -> None:
        """Delete the entries ``keys`` and their question variants; unknown keys are
        skipped, and so are entries bound to a document (a process that has not yet seen
        another's binding may ask: a bound answer's document is revoked, never left with
        nothing serving it)."""

    async def set_entry_document(
        self, entry: int, doc_id: str | None, revoked: bool = False
    ) -> None:
        """Point entry ``entry`` at its bound document (None: unbound) and set its revoked
        flag. No entry: nothing happens."""

    async def add_question_variant(self, entry: int, exact: str, query: str, ts: float) -> None:
        """Record that the question with exact hash ``exact`` is answered by ``entry``
        (replaces an earlier variant of the same hash)."""

    async def question_variants(self) -> list[tuple[str, int]]:
        """``(exact hash, entry key)`` of every recorded question variant, oldest first."""

    async def add_asker(self, entry: int, asker: str, query: str, ts: float) -> int:
        """Record that ``asker`` asked for ``entry`` with the words ``query``; returns the
        number of distinct askers of ``entry`` so far, this one included (atomic: two askers
        recorded at once see 1 and 2, never 1 and 1). The same asker again counts once."""

    async def asker_count(self, entry: int) -> int:
        """Distinct askers of ``entry`` (0 if none)."""

    async def variants(self, entry: int) -> list[str]:
        """The distinct question texts the askers of ``entry`` used, sorted."""


class ChangeFeed(Protocol):
    """What several gateway processes sharing one store need to serve as one: entry keys
    unique across them, and the log of changes to what the reuse layer serves (answers
    stored, revoked, re-pointed or deleted; question variants; verifier labels; document
    states), which each process follows to keep its in-memory maps and index in step.

    The log is written by the store in the same transaction as the change (whoever made it:
    this process, another replica, the CLI), so no change is ever missing from it, and
    sequence numbers are visible in commit order: a reader that has applied every change up
    to ``seq`` and then asks for ``changes(seq)`` misses nothing."""

    #: True when ``wait_for_changes`` returns as soon as a change commits (PostgreSQL
    #: ``NOTIFY``: followers are milliseconds behind); False when followers poll (SQLite),
    #: so a process reads an exact key from the store before a miss runs the model.
    announces_changes: bool

    async def new_entry_key(self) -> int:
        """A fresh entry key, never handed out before by any process on this store, above
        every key stored (atomic)."""

    async def change_head(self) -> int:
        """The sequence number of the newest change (0 with none): read it before loading
        the state, then follow ``changes`` from it."""

    async def changes(self, after: int, limit: int = 1000) -> list[ChangeRow]:
        """Changes with ``seq > after``, oldest first, at most ``limit``; a ``label`` change
        carries its observation, a ``lookup`` change its best candidate and its id. A ledger
        row with ``extra["semantic_lookup"]`` logs one ``lookup`` change when it is first
        written; a row that replaces it under the same id and ``extra["lookup_id"]`` logs
        none."""

    async def wait_for_changes(self, after: int, timeout_s: float) -> None:
        """Return once there may be changes after ``after``, or after ``timeout_s`` seconds
        at most. A store that can be told (PostgreSQL ``LISTEN``) returns as soon as one
        commits; one that cannot (SQLite) simply waits ``timeout_s``: the caller polls."""

    async def prune_changes(self, before: float) -> int:
        """Delete the changes logged before unix time ``before`` (the log's head is never
        numbered lower afterwards); returns how many were deleted."""


class LabelStore(Protocol):
    """The verifier's labels: observed (similarity, correct) pairs and the history of
    semantic lookups, which the δ-bounded threshold is computed from."""

    async def add_observation(self, obs: ObservationRow) -> None:
        """Append one label; returns once committed."""

    async def observations(self) -> list[ObservationRow]:
        """Every label, in the order they were added."""

    async def lookup_similarities(self) -> list[tuple[float | None, float, float | None]]:
        """Best-candidate ``(similarity, density, pair score)`` of every semantic lookup in the
        ledger (ledger rows with ``extra["semantic_lookup"]`` true): similarity None where
        there was no candidate; density 0 and pair score None where not recorded."""
