"""The storage seam. SQLite (``sqlite.py``) is the only store today; a shared PostgreSQL
store would implement the same interface.

Durability contract: :meth:`Store.record` returns only after the row is committed, so a
response is never sent for a request whose ledger row could still be lost to a crash
(``kill -9``). Writes go through one writer; reads may run concurrently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass
class LedgerRow:
    """One request, whatever happened to it (errors and cancellations included)."""

    id: str  # request id, also sent as x-request-id
    ts: float  # unix seconds when the request arrived
    tenant: str
    endpoint: str  # "/v1/chat/completions", "/v1/completions", ...
    model: str | None = None
    backend: str | None = None  # "llama_cpp" | "openai" | "fake"
    key_id: str | None = None
    user: str | None = None  # the request's `user` field
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    outcome: str = "ok"  # ok | error | cancelled (reuse adds hit/miss/bypass later)
    status: int = 200
    error_code: str | None = None
    latency_ms: float = 0.0
    wh: float = 0.0
    wh_low: float = 0.0
    wh_high: float = 0.0
    method: str = "estimate"
    gco2: float = 0.0
    grid_zone: str | None = None
    gco2_per_kwh: float | None = None
    reuse: str | None = None  # hit-exact | hit-semantic | miss | bypass | stale (None: n/a)
    document_id: str | None = None  # entry/document served, or stored on a miss
    similarity: float | None = None  # best candidate's cosine similarity, when there was one
    avoided_wh: float = 0.0  # measured cost of the original computation, on hits
    avoided_gco2: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)  # JSON column for later fields


@dataclass
class StoredEntry:
    """A stored answer the reuse layer may serve (see ``reuse/``)."""

    key: int  # integer id (ANN label)
    id: str  # public id, sent as x-boundgate-document
    scope: str
    exact: str
    query: str
    answer: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    model_version: str
    tenant: str
    created: float
    cost_wh: float
    cost_gco2: float
    vector: bytes
    embedder: str
    scope_doc: str  # canonical JSON of the scope (minus tenant)
    hits: int = 0
    last_hit: float | None = None
    request: str | None = None  # the generation request as JSON (to recompute on rebind)
    document_id: str | None = None  # the bound document, once bound
    revoked: bool = False
    cost_method: str = "estimate"  # how cost_wh was measured (rapl, nvml or estimate)


@dataclass(frozen=True)
class DocumentRow:
    id: str  # short id, doc_…
    entry: int | None
    tenant: str
    model: str
    model_version: str
    state: str  # active | stale | superseded | revoked
    supersedes: str | None
    superseded_by: str | None
    created: float
    body: str  # the signed JSON-LD document, canonical JSON


@dataclass(frozen=True)
class VariantRow:
    id: int
    exact: str  # the creative prompt's exact key
    answer: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cost_wh: float
    cost_gco2: float
    created: float


@dataclass(frozen=True)
class FileRow:
    id: str
    tenant: str
    purpose: str
    filename: str
    size: int  # bytes
    created: float
    content: bytes


@dataclass(frozen=True)
class JobRow:
    id: str
    kind: str
    payload: str  # JSON
    state: str  # pending | running | done | failed | cancelled
    created: float
    not_before: float
    deadline: float
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires: float | None = None
    result: str | None = None
    dedupe: str | None = None  # at most one job per dedupe key


@dataclass(frozen=True)
class ObservationRow:
    ts: float
    entry: int | None
    similarity: float
    correct: bool
    source: str
    request_id: str | None = None
    density: float = 0.0  # the pair's local density, for scorers that use it
    pair_score: float | None = None  # the pair model's score (None: not scored)


@dataclass(frozen=True)
class ApiKey:
    id: str  # public id, part of the key string
    tenant: str
    admin: bool
    created: float
    revoked: bool
    rpm: int | None = None  # per-tenant overrides; None = settings default
    daily_tokens: int | None = None


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # the full key string, shown once, never stored


@dataclass(frozen=True)
class ReportRow:
    tenant: str
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    wh: float
    wh_low: float
    wh_high: float
    gco2: float
    avg_latency_ms: float
    reused: int = 0  # requests answered from stored answers
    avoided_wh: float = 0.0  # generation energy those reuses did not spend
    avoided_gco2: float = 0.0


@dataclass(frozen=True)
class LedgerQuery:
    """Filters for browsing the ledger; None means any."""

    since: float | None = None
    until: float | None = None  # exclusive
    tenant: str | None = None
    model: str | None = None
    outcome: str | None = None  # ok | error | cancelled
    reuse: str | None = None  # hit-exact | hit-semantic | stale | miss | bypass | none


@dataclass(frozen=True)
class PeriodRow:
    """One tenant's totals over one period (an hour or a UTC day) of the ledger and batches."""

    start: float  # unix seconds where the period begins (a multiple of its length)
    tenant: str
    requests: int = 0
    errors: int = 0
    reused: int = 0  # requests answered from stored answers
    wh: float = 0.0  # energy spent (central estimate)
    gco2: float = 0.0
    avoided_wh: float = 0.0  # generation energy the reuses did not spend
    avoided_gco2: float = 0.0
    batches: int = 0  # batches that finished (or were cancelled mid-run) in the period
    shifting_saved_gco2: float = 0.0  # those batches' run-at-submission carbon minus actual


class Store(ABC):
    # --- lifecycle -------------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Create/migrate the schema and start the writer."""

    @abstractmethod
    def close(self) -> None:
        """Flush pending writes and stop the writer."""

    # --- ledger ----------------------------------------------------------------
    @abstractmethod
    async def record(self, row: LedgerRow) -> None:
        """Append a ledger row; returns once it is committed."""

    @abstractmethod
    def record_sync(self, row: LedgerRow) -> None:
        """Blocking variant for threads and the CLI."""

    @abstractmethod
    def ledger(self, since: float | None = None, limit: int | None = None) -> list[LedgerRow]:
        """Rows newest first."""

    @abstractmethod
    def get_row(self, request_id: str) -> LedgerRow | None: ...

    @abstractmethod
    def query_ledger(self, q: LedgerQuery, limit: int = 100, offset: int = 0) -> list[LedgerRow]:
        """Rows matching ``q``, newest first."""

    @abstractmethod
    def ledger_facets(self, since: float | None = None) -> dict[str, list[str]]:
        """Distinct tenants and models seen since ``since`` (for filter menus)."""

    @abstractmethod
    def latencies(self, since: float, limit: int = 100_000) -> list[tuple[str, bool, float]]:
        """(model, reused, latency_ms) of successful requests since ``since``, newest first."""

    @abstractmethod
    def report(self, since: float | None = None) -> list[ReportRow]:
        """Totals per tenant and model."""

    @abstractmethod
    def report_by_period(self, since: float, period_s: int = 86400) -> list[PeriodRow]:
        """Totals per period of ``period_s`` seconds (aligned to the epoch, so UTC hours or
        days) and tenant, oldest first. A batch's shifting saving counts in the period it
        finished in; its lines' own energy and carbon count when they ran."""

    @abstractmethod
    def tokens_used(self, tenant: str, since: float) -> int:
        """prompt+completion tokens a tenant used since ``since`` (for daily budgets)."""

    # --- reuse -----------------------------------------------------------------
    @abstractmethod
    async def put_entry(self, entry: StoredEntry) -> None:
        """Store an answer for reuse; returns once committed."""

    @abstractmethod
    def entries(self, embedder: str) -> list[StoredEntry]:
        """Every stored entry embedded by ``embedder`` (start-up index rebuild)."""

    @abstractmethod
    def get_entry(self, key: int) -> StoredEntry | None: ...

    @abstractmethod
    def get_entry_by_id(self, public_id: str) -> StoredEntry | None: ...

    @abstractmethod
    def max_entry_key(self) -> int: ...

    @abstractmethod
    async def note_hit(self, key: int, ts: float) -> None: ...

    @abstractmethod
    async def delete_entries(self, keys: list[int]) -> None: ...

    @abstractmethod
    async def add_observation(self, obs: ObservationRow) -> None: ...

    @abstractmethod
    def observations(self) -> list[ObservationRow]: ...

    @abstractmethod
    def lookup_similarities(self) -> list[tuple[float | None, float, float | None]]:
        """Best-candidate (similarity, density, pair score) of every semantic lookup in the
        ledger (similarity None: no candidate; density 0 and pair score None where not
        recorded)."""

    @abstractmethod
    async def add_question_variant(self, entry: int, exact: str, query: str, ts: float) -> None:
        """Record that the question with exact hash ``exact`` is answered by ``entry``
        (replaces an earlier variant of the same hash)."""

    @abstractmethod
    def question_variants(self) -> list[tuple[str, int]]:
        """(exact hash, entry key) of every recorded question variant, oldest first."""

    # --- registry and documents -------------------------------------------------
    @abstractmethod
    def add_asker(self, entry: int, asker: str, query: str, ts: float) -> int:
        """Record that ``asker`` asked for ``entry``; returns the distinct askers so far."""

    @abstractmethod
    def asker_count(self, entry: int) -> int: ...

    @abstractmethod
    def variants(self, entry: int) -> list[str]:
        """The question texts the askers of ``entry`` used."""

    @abstractmethod
    def put_document(self, doc: DocumentRow) -> None:
        """Insert a document. A new version marks the one it supersedes as superseded in
        the same transaction: no reader ever sees the new version and an old one that is
        still current."""

    @abstractmethod
    def get_document(self, doc_id: str) -> DocumentRow | None: ...

    @abstractmethod
    def documents(self, state: str | None = None, limit: int | None = None) -> list[DocumentRow]:
        """Newest first."""

    @abstractmethod
    def set_document_state(
        self, doc_id: str, state: str, superseded_by: str | None = None
    ) -> None: ...

    @abstractmethod
    def set_entry_document(self, entry: int, doc_id: str | None, revoked: bool = False) -> None: ...

    # --- jobs --------------------------------------------------------------------
    @abstractmethod
    def put_job(self, job: JobRow) -> bool:
        """Queue a job; False if one with the same dedupe key exists already."""

    @abstractmethod
    def claim_job(self, owner: str, now: float, lease_s: float) -> JobRow | None:
        """Lease the next due job (pending, or running with an expired lease)."""

    @abstractmethod
    def finish_job(self, job_id: str, owner: str, state: str, result: str | None) -> bool:
        """Complete a leased job (idempotent: only the lease holder's first call counts)."""

    @abstractmethod
    def jobs(self, state: str | None = None) -> list[JobRow]: ...

    @abstractmethod
    def counts(self, table: str) -> dict[str, int]:
        """Rows per state of ``documents`` or ``jobs`` (for metrics)."""

    @abstractmethod
    def reschedule_job(self, job_id: str, not_before: float) -> bool:
        """Move a pending job's earliest start (re-planning); False if it is not pending."""

    # --- files and batches ------------------------------------------------------
    @abstractmethod
    def put_file(self, f: FileRow) -> None: ...

    @abstractmethod
    def get_file(self, file_id: str) -> FileRow | None: ...

    @abstractmethod
    def put_batch(self, batch_id: str, tenant: str, created: float, body: str) -> None:
        """Insert or replace a batch's JSON object."""

    @abstractmethod
    def get_batch(self, batch_id: str) -> tuple[str, str] | None:
        """(tenant, JSON body) of a batch."""

    @abstractmethod
    def batches(self, limit: int = 100) -> list[tuple[str, str, float, str]]:
        """(id, tenant, created, JSON body) of the newest batches."""

    @abstractmethod
    def cancel_job(self, job_id: str) -> bool:
        """Cancel a job that has not started; False if it is running or finished."""

    # --- creativity buffer ------------------------------------------------------
    @abstractmethod
    def note_novel_ask(self, exact: str, asker: str, request: str, ts: float) -> int:
        """Record a creative (above-dial) ask; returns the distinct askers of that prompt."""

    @abstractmethod
    def novel_request(self, exact: str) -> str | None:
        """The latest recorded request (JSON) for a creative prompt."""

    @abstractmethod
    def add_variants(self, variants: list[VariantRow]) -> None: ...

    @abstractmethod
    def take_variant(self, exact: str, asker: str, ts: float) -> VariantRow | None:
        """An unused variant for this asker, marked as served to them (atomically)."""

    @abstractmethod
    def variant_count(self, exact: str) -> int: ...

    @abstractmethod
    def unused_variants(self, exact: str) -> int:
        """Variants nobody has been served yet."""

    @abstractmethod
    def novel_used(self, tenant: str, since: float) -> int:
        """Fresh above-dial generations a tenant had since ``since`` (novelty budget)."""

    # --- keys ------------------------------------------------------------------
    @abstractmethod
    def create_key(
        self,
        tenant: str,
        admin: bool = False,
        rpm: int | None = None,
        daily_tokens: int | None = None,
    ) -> NewKey: ...

    @abstractmethod
    def verify_key(self, secret: str) -> ApiKey | None:
        """The key for ``secret`` if valid and not revoked (constant-time compare)."""

    @abstractmethod
    def list_keys(self) -> list[ApiKey]: ...

    @abstractmethod
    def revoke_key(self, key_id: str) -> bool: ...

    @abstractmethod
    def has_keys(self) -> bool:
        """True once any key was created, revoked ones included (else: open local mode).

        Revoking the last key must not silently reopen the gateway to everyone.
        """
