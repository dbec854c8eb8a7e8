"""The storage seam: one small async protocol per aggregate, and :class:`Store`, their union.

SQLite (``sqlite/``, the default) and PostgreSQL (``postgres/``, ``store.url``, shared by
replicas) implement them; ``tests/test_store_contract.py`` is the suite every implementation
must pass.
Callers only ``await``: a store that blocks (SQLite) does its own thread hop, so no caller
wraps a store call in ``asyncio.to_thread``.

Conventions for every method: times are unix seconds (float), energy Wh, carbon gCO2e,
latencies milliseconds. "Newest first" orders by the row's time, then by insertion for ties.
Every write raises ``RuntimeError`` when called before :meth:`Store.open` or after
:meth:`Store.close` (reads need an opened store too; what they do otherwise is not part of
the contract); a write the database rejects (a duplicate id, a value it cannot encode)
raises the implementation's own error (``sqlite3.Error``, ``UnicodeEncodeError``,
``OverflowError`` for SQLite) and changes nothing. Not found is ``None`` or ``False``, never an
exception.

Durability contract: a write returns only after it is committed, so a response is never sent
for a request whose ledger row (:meth:`LedgerStore.record`) could still be lost to a process
crash (``kill -9``), and a generation is noted (:meth:`LedgerStore.open_request`) before it
starts, so a request whose process dies mid-answer still gets its row (``interrupted``) from
whichever process recovers its note. Writes may be funnelled through one writer; reads may
run concurrently. The methods documented as atomic must stay correct with several gateway
processes sharing one database (row locks or one write transaction, never read-then-write from
the caller).

Reachability: a store whose database cannot be reached (PostgreSQL stopped, the network cut)
raises :class:`StoreUnavailableError` from any call, within a bound the store keeps
(PostgreSQL: ``store.connect_timeout_s``), never after an open-ended wait; once the database is
back, the next calls succeed (connections it broke are replaced, not handed out). Callers
answer it as "try again later" (the server: 503 ``store_unavailable`` with ``Retry-After``);
:meth:`Store.ping` asks for it alone (``/readyz``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from .rows import (
    ApiKey,
    BatchLineRow,
    ChangeRow,
    Claim,
    CounterState,
    DocumentProblem,
    DocumentRow,
    EnergyProfileRow,
    EntryVector,
    FileRow,
    Hold,
    IdempotencyKey,
    JobRow,
    LedgerQuery,
    LedgerRow,
    NewKey,
    ObservationRow,
    PeriodRow,
    Release,
    ReportRow,
    StoredEntry,
    VariantRow,
)


class StoreUnavailableError(Exception):
    """The store's database cannot be reached now (see the module docstring): the call did
    nothing that can be relied on, and the same call may succeed later. Not an error of the
    request, so not one of ``errors.py``'s: the server turns it into 503 ``store_unavailable``
    without trying to ledger it (the ledger is what cannot be reached)."""


class SchemaTooNewError(Exception):
    """The database holds migrations this version of boundgate does not know: a newer
    version migrated it, and this one would write rows its tables no longer take (a trial
    saw 500s and streams cut without an error). Raised by ``open``; nothing was changed."""


def check_schema_known(applied: set[int], known: list[tuple[int, str, str]]) -> None:
    """Raise :class:`SchemaTooNewError` when ``applied`` (the database's migration versions)
    holds one above the highest of ``known`` (this version's ``(version, name, sql)``)."""
    newest = max((v for v, _, _ in known), default=0)
    ahead = sorted(v for v in applied if v > newest)
    if ahead:
        raise SchemaTooNewError(
            f"its schema is at migration {ahead[-1]}, newer than this version of boundgate "
            f"knows ({newest}): a newer boundgate migrated it; run that version (or a newer "
            "one) against it"
        )


class LedgerStore(Protocol):
    """The ledger: one row per request, append-only (a row written again under the same id
    replaces it)."""

    async def record(self, row: LedgerRow) -> None:
        """Append ``row`` (or replace the row with its id); returns once it is committed."""

    async def record_hit(
        self, row: LedgerRow, entry: StoredEntry, release: Release | None = None
    ) -> bool:
        """Record ``row``, the row of a request answered with the stored ``entry``, only if
        that entry is still stored as it was read (same key and public id, not revoked, bound
        to ``entry.document_id``), and then give back the holds of ``release`` (as
        ``LimitStore.settle`` with 0 used would); check, write and release are one atomic
        statement (one round trip on a server). True once the row is committed; False:
        nothing was written or released, and the answer must not be served."""

    async def open_request(self, row: LedgerRow, owner: str, lease_until: float) -> None:
        """Note that request ``row.id`` was accepted and is in progress (a write-ahead record),
        with ``row`` the ledger row to write should its process die before recording the
        request's own row; the note is ``owner``'s until ``lease_until``. Returns once it is
        committed; a note with that id is replaced. Recording a row with that id (``record``,
        ``record_hit``) removes the note in the same transaction."""

    async def renew_requests(self, owner: str, until: float, rows: list[LedgerRow]) -> None:
        """Extend the lease of ``owner``'s notes of ``rows`` to ``until`` and keep ``rows`` as
        their rows (what the requests used so far). A row whose note is gone (its own row was
        recorded meanwhile) or is not ``owner``'s is skipped: no note is made again."""

    async def recover_requests(self, now: float) -> list[LedgerRow]:
        """Turn every note whose lease ran out before ``now`` into its ledger row, unless a
        row with its id is there already (that one stays), and remove the notes; returns the
        rows written. Atomic: of concurrent calls (any process) each row is written once."""

    async def ledger(self, since: float | None = None, limit: int | None = None) -> list[LedgerRow]:
        """Rows with ``ts >= since`` (None: all), newest first, at most ``limit`` (None: all)."""

    async def get_row(self, request_id: str) -> LedgerRow | None:
        """The row of request ``request_id``; None if there is none."""

    async def query_ledger(
        self, q: LedgerQuery, limit: int = 100, offset: int = 0
    ) -> list[LedgerRow]:
        """Rows matching every filter of ``q`` (``reuse="none"``: rows without a reuse
        outcome), newest first; ``offset`` rows skipped, at most ``limit`` returned."""

    async def ledger_facets(self, since: float | None = None) -> dict[str, list[str]]:
        """``{"tenant": [...], "model": [...]}``: the distinct non-null values seen since
        ``since`` (None: ever), each list sorted (for filter menus)."""

    async def latencies(self, since: float, limit: int = 100_000) -> list[tuple[str, bool, float]]:
        """``(model, reused, latency_ms)`` of requests since ``since`` with a status below 400,
        newest first, at most ``limit``. ``model`` is "" where unknown; ``reused`` is True for
        answers served from stored answers (hit-exact, hit-semantic, hit-coalesced, stale)."""

    async def report(self, since: float | None = None) -> list[ReportRow]:
        """Totals per (tenant, model) since ``since`` (None: ever), sorted by tenant then
        model; ``model`` is "" where unknown, ``avg_latency_ms`` in milliseconds."""

    async def report_by_period(self, since: float, period_s: int = 86400) -> list[PeriodRow]:
        """Totals per period of ``period_s`` seconds (aligned to the epoch, so UTC hours or
        days) and tenant, oldest first, then by tenant. A batch's shifting saving counts in the
        period it finished in; its lines' own energy and carbon count when they ran. Raises
        ``ValueError`` if ``period_s`` is not positive."""


class KeyStore(Protocol):
    """API keys and the per-tenant budgets they carry (daily tokens, daily fresh creative
    generations), which are read from the ledger."""

    async def create_key(
        self,
        tenant: str,
        admin: bool = False,
        rpm: int | None = None,
        daily_tokens: int | None = None,
        daily_reasoning_tokens: int | None = None,
    ) -> NewKey:
        """A new key for ``tenant``; the secret is returned once and only its salted hash is
        stored. ``rpm``, ``daily_tokens`` and ``daily_reasoning_tokens``: per-key limits (None:
        the settings' default)."""

    async def verify_key(self, secret: str) -> ApiKey | None:
        """The key whose secret is ``secret``; None if the string is malformed, unknown or
        revoked. Compares in constant time; sees keys created or revoked by other processes.
        This is on every request's path: implementations keep it cheap (a cache validated by
        a tiny query)."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with id ``key_id``, revoked ones included; None if there is none. Sees
        keys revoked by other processes, and is as cheap as :meth:`verify_key` (a batch
        checks its key before every line)."""

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke key ``key_id`` (for good); False if there is no such key."""

    async def has_keys(self) -> bool:
        """True once any key was created, revoked ones included (else: open local mode).

        Revoking the last key must not silently reopen the gateway to everyone.
        """

    async def end_session(self, session_id: str, until: float, now: float) -> None:
        """Record that dashboard session ``session_id`` was signed out: :meth:`session_ended`
        is True for it in every process sharing the store until ``until`` (epoch s; at least
        the session cookie's own expiry). Drops the records whose ``until`` is before
        ``now`` (epoch s)."""

    async def session_ended(self, session_id: str) -> bool:
        """True if dashboard session ``session_id`` was signed out (:meth:`end_session`) and
        its record is kept. One indexed read; on every dashboard page's path."""

    async def tokens_used(self, tenant: str, since: float) -> int:
        """Prompt plus completion tokens ``tenant`` spent since ``since`` (daily budgets);
        requests answered from stored answers (reuse ``hit-*``) count 0. Reads committed
        ledger rows, so a row returned by :meth:`LedgerStore.record` counts at once."""

    async def reasoning_tokens_used(self, tenant: str, since: float) -> int:
        """Reasoning tokens ``tenant`` spent since ``since`` (the daily reasoning budget): the
        ledger's ``reasoning_tokens``, hits counting 0, committed rows at once, as
        :meth:`tokens_used`."""

    async def novel_used(self, tenant: str, since: float) -> int:
        """Fresh above-dial (creative) generations ``tenant`` had since ``since``: ledger rows
        with outcome ok and ``extra["novel"]`` true (the novelty budget)."""


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


class DocumentStore(Protocol):
    """Bound JSON-LD documents and their lifecycle (active, stale, superseded, revoked)."""

    async def put_document(self, doc: DocumentRow) -> bool:
        """Insert a document, with the key it verifies with (``public_key``: an imported
        document's issuer key; None: this gateway's own), and bind it, all in one
        transaction: its entry (``doc.entry``) is pointed at it, and a new version marks
        the one it supersedes (``doc.supersedes``) superseded, so no reader ever sees the
        new version and an old one that is still current, or a document whose entry does
        not name it. Both are conditional: the entry must be stored, not revoked and bound
        to no other document (two binds of one entry at once: one wins); the superseded
        document must still be current, ``active`` or ``stale`` (one revoked or superseded
        meanwhile stays so). If either is not so, nothing is written and it returns False;
        else True. A document without an entry (``entry`` None) is only inserted. Raises
        the implementation's integrity error if the id exists."""

    async def import_document(self, entry: StoredEntry, doc: DocumentRow) -> StoredEntry | None:
        """Store an imported document and the entry that serves its answer, in one
        transaction, the entry pointed at the document and the document at the entry. An
        entry stored under ``entry.id`` already (by an import that stopped between its two
        writes, before they were one) is used instead of ``entry``, whatever its key: the
        document is bound to it (and stored ``revoked`` if that entry is). Returns the entry
        the document is bound to, as stored; None, writing nothing, if a document with
        ``doc.id`` exists already (atomic: of concurrent imports of one document one
        writes)."""

    async def get_document(self, doc_id: str) -> DocumentRow | None:
        """The document ``doc_id`` (rows written before keys were kept: ``public_key``
        None); None if there is none."""

    async def documents(
        self, state: str | None = None, limit: int | None = None
    ) -> list[DocumentRow]:
        """Documents in ``state`` (None: any), newest ``created`` first, at most ``limit``."""

    async def set_document_state(
        self,
        doc_id: str,
        state: str,
        superseded_by: str | None = None,
        *,
        expected: str | None = None,
    ) -> bool:
        """Set a document's state (and ``superseded_by``, when given), if it is in state
        ``expected`` (None: any; one conditional update, so a state another process set
        meanwhile, a revocation, is never overwritten). False if there is no such document
        or it is not in ``expected``."""

    async def revoke_document(self, doc_id: str) -> list[int] | None:
        """Revoke a document and, in the same transaction, every entry that serves it: each
        entry pointed at it (``document_id``), and its own entry (``doc.entry``) if that is
        pointed at no document (a bind that stopped between its writes, before they were
        one). Entries are kept, revoked. Returns the keys of those entries (revoked now or
        before), or None if there is no such document."""

    async def has_own_documents(self) -> bool:
        """Whether any document verifies with the gateway's own key (``public_key`` None:
        bound here, or stored before imported documents kept their keys)."""

    async def document_counts(self) -> dict[str, int]:
        """Documents per state (states with none are absent), for metrics."""

    async def document_problems(self) -> list[DocumentProblem]:
        """Where documents and the entries serving them disagree, as a gateway from before
        their writes were single transactions could leave them (``consistency.CHECKS``: a
        revoked document an entry still serves, a current one no entry serves or whose
        entry does not name it, an entry naming a document that is not stored, a revocation
        a rebind undid); in the checks' order, sorted within each. Reads only."""

    async def repair_documents(self, everything: bool = False) -> list[DocumentProblem]:
        """Repair what ``document_problems`` finds, in the safe direction, all in one
        transaction (on PostgreSQL one repair at a time across replicas), and return what
        was repaired; writes nothing when nothing is found. Always (every start): never
        serve what was revoked, revoke a superseded document whose revocation a rebind
        undid, complete a bind that stopped halfway. With ``everything`` (an operator's
        ``docs check --repair``) also: revoke a current document nothing serves, delete an
        entry naming a document never stored (``consistency.Check.automatic``)."""


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


class JobStore(Protocol):
    """The persistent job queue: deferrable work with a start window, leased to runners."""

    async def put_job(self, job: JobRow) -> bool:
        """Queue ``job``; False (and nothing written) if a job with its id exists already, or
        a pending or running one with its dedupe key (atomic: of concurrent puts with one
        dedupe key exactly one wins). The key of a job that is done, failed or cancelled can
        be used again."""

    async def claim_job(
        self, owner: str, now: float, lease_s: float, accepts: Collection[str] = ()
    ) -> JobRow | None:
        """Lease the due job with the earliest ``deadline`` (then ``not_before``; due:
        pending with ``not_before <= now``, or running with a lease that expired before
        ``now``) to ``owner`` until ``now + lease_s``: it becomes running, its attempts grow
        by one, and the returned row shows that. None if no job is due. Atomic: concurrent
        claims never get the same job. Earliest deadline first: two batches planned for one
        clean hour ran in the order they were planned, and a 2-line batch with a 1 h window
        expired unrun behind a 2,000-line one with 24 h (an auditor's trial).

        ``accepts``: the requirements the claiming process meets (``JobRow.requires``). A job
        that requires something else is passed over, never written, until its ``deadline``
        has passed and no live runner meets its requirement (:meth:`note_runner`); then any
        process may claim it, to finish it as skipped. Past its deadline a job is still only
        for a process that can run it while one is alive: that one runs it late."""

    async def note_runner(
        self, owner: str, accepts: Collection[str], now: float, until: float
    ) -> None:
        """Record that job runner ``owner`` is alive until ``until`` (s, the clock of
        ``claim_job``'s ``now``) and meets the requirements ``accepts`` (replacing what it
        recorded before; none: it is not waited for). Records whose time ran out by ``now``
        are dropped. One write; a runner renews it well before ``until``."""

    async def forget_runner(self, owner: str) -> None:
        """Drop what :meth:`note_runner` recorded for ``owner`` (its runner stopped): jobs
        only it could run are no longer waited for past their deadline."""

    async def live_requirements(self, now: float, besides: str | None = None) -> frozenset[str]:
        """The requirements (``JobRow.requires`` values) met by the job runners alive at
        ``now`` (what :meth:`note_runner` recorded, until after ``now``), leaving out what
        runner ``besides`` recorded (a runner asking about the others). One read: a runner
        deciding whether a late job without a requirement, which it cannot run, is another
        live runner's to run (``jobs.JobRunner``)."""

    async def finish_job(
        self,
        job_id: str,
        owner: str,
        state: str,
        result: str | None,
        *,
        retry_at: float | None = None,
        handed_back: bool = False,
    ) -> bool:
        """Set a running job leased to ``owner`` to ``state`` (done, failed, or pending to
        retry) with ``result`` (JSON) and drop the lease; False if the job is not running or
        the lease is someone else's (so only the lease holder's first call counts).
        ``retry_at`` (pending only): the job is held back until then, in the same write: its
        ``not_before`` and ``hold_until`` move there (a Retry-After, a retry's backoff).
        ``handed_back`` (pending only): the runner did not try the job but gave it back for
        another (``jobs.HandBack``): the claim's attempt is taken back (``attempts`` one
        lower), so it never counts towards failing the job."""

    async def renew_job(self, job_id: str, owner: str, until: float) -> bool:
        """Extend the lease of running job ``job_id`` to ``until`` if ``owner`` still holds it
        (a long job's heartbeat); False if the job is not running or leased to someone else
        (the lease expired and another runner claimed it)."""

    async def reschedule_job(self, job_id: str, not_before: float) -> bool:
        """Move a pending job's earliest start (re-planning); False if it is not pending or
        ``not_before`` is before its ``hold_until`` (a hold is never planned away)."""

    async def cancel_job(self, job_id: str) -> bool:
        """Cancel a job that has not started; False if it is running, finished or unknown."""

    async def jobs(self, state: str | None = None) -> list[JobRow]:
        """Jobs in ``state`` (None: any), oldest ``created`` first."""

    async def job_counts(self) -> dict[str, int]:
        """Jobs per state (states with none are absent), for metrics."""


class FileStore(Protocol):
    """Uploaded files and batches (the OpenAI files and batches APIs)."""

    async def put_file(
        self, f: FileRow, idempotency: IdempotencyKey | None = None
    ) -> IdempotencyKey | None:
        """Store an uploaded file. Raises the implementation's integrity error if the id
        exists. With ``idempotency`` (its ``object_id`` is ``f.id``), the key is kept with
        the file in the same transaction; if a key of the same (tenant, key_id, route, key)
        is kept that has not expired at ``idempotency.created``, nothing is written and that
        key is returned (atomic: of requests under one key, any number of processes, one
        writes). None once written."""

    async def delete_file(self, file_id: str, now: float) -> bool:
        """Delete file ``file_id`` and the idempotency keys naming it (a request under such
        a key uploads again); False if there is none (or it is deleted already). A file an
        unfinished batch reads as its input (its object's ``input_file_id``, its ``status``
        none a batch ends in) is hidden instead, deleted at ``now`` (epoch s): ``get_file``
        and ``files`` no longer show it, ``get_file(file_id, deleted=True)`` still reads it
        for that batch, and ``purge_deleted_files`` drops it once no unfinished batch names
        it. Atomic with respect to the batch's own writes."""

    async def get_file(
        self, file_id: str, deleted: bool = False, content: bool = True
    ) -> FileRow | None:
        """The file ``file_id``, its content included unless not ``content`` (then
        ``b""``); None if there is none, or if it is deleted and kept only for a batch
        (``delete_file``) unless ``deleted``."""

    async def purge_deleted_files(self) -> int:
        """Drop the deleted files no unfinished batch reads any more (``delete_file``);
        returns how many."""

    async def idempotency_key(
        self, tenant: str, key_id: str, route: str, key: str, now: float
    ) -> IdempotencyKey | None:
        """The idempotency key kept for (``tenant``, ``key_id``, ``route``, ``key``), if it
        has not expired at ``now``; None otherwise."""

    async def put_batch(
        self,
        batch_id: str,
        tenant: str,
        created: float,
        body: str,
        idempotency: IdempotencyKey | None = None,
        input_file_id: str | None = None,
    ) -> IdempotencyKey | None:
        """Insert or replace a batch's JSON object ``body``. With ``idempotency`` (its
        ``object_id`` is ``batch_id``), as :meth:`put_file`: kept with the batch in the same
        transaction, or, under a key kept already and not expired, nothing written and that
        key returned. None once written. With ``input_file_id`` (a batch being made from
        that file), unless a kept key is returned, nothing is written and LookupError
        raised unless the file exists, not deleted: atomic with :meth:`delete_file`, so a
        file deleted while its batch is made is either kept for the batch or the batch is
        refused (a re-check's batch was accepted after its input was deleted in between,
        and none of its lines ran)."""

    async def get_batch(self, batch_id: str) -> tuple[str, str] | None:
        """``(tenant, JSON body)`` of batch ``batch_id``; None if there is none."""

    async def replace_batch(
        self, batch_id: str, old_body: str, body: str, files: Sequence[FileRow] = ()
    ) -> bool:
        """Replace batch ``batch_id``'s JSON object with ``body`` if it is still ``old_body``
        (compare-and-set: a writer that read the object earlier never overwrites a change
        made since, such as a cancel beside the run); False if it changed or is gone.
        ``files`` (the output and error files of a batch that ends) are stored in the same
        transaction, only if the object is replaced: of writers ending one batch at once (its
        run, a cancel, its job's failure hook, a recovery), one writes files."""

    async def files(
        self,
        tenant: str | None = None,
        purpose: str | None = None,
        limit: int = 100,
        after: str | None = None,
        ascending: bool = False,
    ) -> list[FileRow]:
        """Files (of ``tenant`` and ``purpose`` where given), newest first (``ascending``:
        oldest first), at most ``limit``, those after file ``after`` in that order (a
        cursor; an id unknown, or not ``tenant``'s, gives none); their ``content`` is not
        read (``b""``)."""

    async def batches(
        self, limit: int = 100, tenant: str | None = None, after: str | None = None
    ) -> list[tuple[str, str, float, str]]:
        """``(id, tenant, created, JSON body)`` of the newest ``limit`` batches (of
        ``tenant`` where given), newest first; with ``after``, those after that batch in this
        order (a cursor; an id unknown, or not ``tenant``'s, gives none)."""

    async def put_batch_line(self, row: BatchLineRow) -> None:
        """Keep a finished line of a running batch (its checkpoint). A line kept already is
        kept as it was (the first write wins)."""

    async def batch_lines(self, batch_id: str) -> list[BatchLineRow]:
        """The lines kept for batch ``batch_id``, in input order."""

    async def batch_line_counts(self, batch_id: str) -> tuple[int, int]:
        """``(output lines, error lines)`` kept for batch ``batch_id`` (its progress)."""

    async def drop_batch_lines(self, batch_id: str) -> None:
        """Forget the lines kept for ``batch_id`` (its files hold them now)."""

    async def stranded_batches(self) -> list[tuple[str, str | None]]:
        """``(JSON body, its job's state)`` of every batch not ended (its ``status`` neither
        completed, failed, expired nor cancelled) whose job (its ``boundgate.job_id``) is
        not pending or running: done, failed or cancelled, or None where there is no such
        job (its process died before queuing it). Oldest first; read in one snapshot,
        through an index of the batches not ended (never a scan of every batch)."""


class CreativityStore(Protocol):
    """The creativity buffer: creative (above-dial) asks and pre-generated variants of them,
    each served at most once to any one asker."""

    async def note_novel_ask(self, exact: str, asker: str, request: str, ts: float) -> int:
        """Record a creative ask of prompt ``exact`` by ``asker`` with its request JSON;
        returns the distinct askers of that prompt so far, this one included (atomic)."""

    async def novel_request(self, exact: str) -> str | None:
        """The latest recorded request (JSON) for prompt ``exact``; None if never asked."""

    async def add_variants(self, variants: list[VariantRow]) -> None:
        """Store pre-generated variants (their ``id`` is ignored: the store assigns one)."""

    async def take_variant(self, exact: str, asker: str, ts: float) -> VariantRow | None:
        """A variant of ``exact`` not yet served to ``asker``, the least served one first,
        marked as served to them at ``ts``; None if there is none left. Atomic: concurrent
        takes by one asker never get the same variant twice, and a variant never served is
        never handed to two askers while another unserved one is left."""

    async def variant_count(self, exact: str) -> int:
        """Variants stored for ``exact``."""

    async def unused_variants(self, exact: str) -> int:
        """Variants of ``exact`` nobody has been served yet."""


class ProfileStore(Protocol):
    """Measured energy profiles of local models (``boundgate models profile``)."""

    async def put_profile(self, profile: EnergyProfileRow) -> None:
        """Append a profile; returns once committed. Older profiles are kept (history)."""

    async def profiles(self, host: str | None = None) -> list[EnergyProfileRow]:
        """The newest profile of each model (measured on ``host``, when given; newest by
        ``measured_at``, then by insertion), sorted by model."""


class LimitStore(Protocol):
    """Budgets and rate limits as shared counters: per (counter, window) a settled ``used``
    and the holds of requests in flight, so every gateway process sharing the database
    enforces one limit (issue #14).

    Reserving never reads and then writes from the caller: each claim is one conditional
    update in the database (``used + held + amount <= limit``), all claims of one reservation
    in one transaction. A hold lives until it is settled or its lease (``Claim.hold_s``)
    runs out; expired holds stop counting (a gateway killed mid-request frees its holds when
    their lease ends), which also makes a counter of holds alone (``hold_s = 60``, never
    settled) a sliding window of requests. A request that runs longer than the lease has its
    holds renewed (:meth:`renew_holds`) by its process, so only a dead process's lapse."""

    async def reserve(self, hold_id: str, claims: list[Claim], now: float) -> int | None:
        """Take every claim or none (atomic): None when all fit, else the index of the
        first claim that did not (and nothing changed). Held claims are recorded under
        ``hold_id`` (unique per reservation) expiring at ``now + hold_s``; holds that expired
        before ``now`` do not count. Claims are taken in counter order, so concurrent
        reservations over the same counters cannot deadlock."""

    async def settle(self, hold_id: str, counter: str, window: float, used: int) -> None:
        """Replace hold ``hold_id`` on ``counter``'s ``window`` by ``used`` (atomic). If the
        hold expired meanwhile, ``used`` is still added. Call once per hold: every call adds
        ``used``. A negative ``used`` with a fresh ``hold_id`` gives back units a claim
        without a hold (``hold_s`` None) counted as used at once."""

    async def renew_holds(self, holds: list[Hold], until: float) -> None:
        """Extend the lease of each of ``holds`` (requests still running) to ``until``, never
        shortening one. A hold settled or freed meanwhile stays gone; one whose lease ran out
        but that no claim has freed yet counts again (nothing took its room)."""

    async def counter_state(self, counter: str, window: float, now: float) -> CounterState:
        """``counter`` in ``window`` at ``now`` (zeros for a counter never claimed)."""

    async def prune_counters(self, before: float) -> None:
        """Delete the counters of windows that started before ``before`` (and are not 0),
        with their holds: old days' budgets."""

    async def counters_used(self, prefix: str, window: float) -> dict[str, int]:
        """The settled ``used`` of every counter whose name starts with ``prefix`` (taken
        literally: ``%`` and ``_`` are not wildcards) in ``window``, by counter name; holds
        are not included. Counters never claimed in that window are absent."""


class Store(
    LedgerStore,
    KeyStore,
    LimitStore,
    AnswerStore,
    ChangeFeed,
    DocumentStore,
    LabelStore,
    JobStore,
    FileStore,
    CreativityStore,
    ProfileStore,
    Protocol,
):
    """Every aggregate in one store, with a lifecycle. ``open`` and ``close`` are blocking:
    they run once at start-up and shutdown (and in the CLI), outside any request."""

    def open(self) -> None:
        """Create or migrate the schema and start whatever the store needs (connections, a
        writer); idempotent."""

    def close(self) -> None:
        """Flush pending writes and release connections; the store may be opened again."""

    async def ping(self) -> None:
        """Return once the database answered a trivial statement; raise
        :class:`StoreUnavailableError` when it cannot be reached within the store's bound, or
        the store is not open (readiness checks, ``/readyz``)."""

    def out_of_reach(self) -> bool:
        """Whether the last call found no connection to the database and none has answered
        since (a background task's or a request's): a caller that can do without the store
        skips it then rather than wait its bound (``/metrics``' gauges; open local mode's
        check, on its last answer). False for a store always at hand (SQLite)."""
        return False
