"""The rows the store protocols (``protocols/``) take and return: plain dataclasses, the
same for every store implementation. Times are unix seconds, energy Wh, carbon gCO2e."""

from __future__ import annotations

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
    outcome: str = "ok"  # ok | error | cancelled | interrupted (its process died first)
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
    reuse: str | None = None  # hit-exact | hit-semantic | hit-coalesced | miss | … (None: n/a)
    document_id: str | None = None  # entry/document served, or stored on a miss
    similarity: float | None = None  # best candidate's cosine similarity, when there was one
    avoided_wh: float = 0.0  # measured cost of the original computation, on hits
    avoided_gco2: float = 0.0
    # model: "auto" (issue #15); None / 0 for requests that named a model
    task: str | None = None  # the routed task (math, code, …, unclassified)
    route: str | None = None  # the rungs tried, as in the x-boundgate-route header
    counterfactual_wh: float | None = None  # the ladder's top rung's estimate for the answer
    rightsizing_avoided_wh: float = 0.0  # counterfactual − spent, ≥ 0, ≤ counterfactual
    rightsizing_avoided_gco2: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)  # JSON column for later fields
    reasoning_tokens: int = 0  # of completion_tokens, the reasoning ones (reasoning models)


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
    # of completion_tokens, the reasoning ones (a reasoning model's; 0 for answers stored
    # before migration 0027 and imported documents): what a hit reports
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class EntryVector:
    """A stored entry's vector made anew by the current embedder
    (``AnswerStore.set_entry_vectors``): the entry ``key`` gets ``vector`` if its vector is
    still the one ``replaces`` made (the embedder name it was read with)."""

    key: int
    vector: bytes  # float32, as ``StoredEntry.vector``
    replaces: str  # the entry's ``embedder`` when it was read


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
    # the Ed25519 public key (PEM) an imported document was verified with at import, its
    # issuer's; None: signed by this gateway's own key (every document bound here)
    public_key: str | None = None


@dataclass(frozen=True)
class DocumentProblem:
    """A document and an entry that disagree (``DocumentStore.document_problems``): ``kind``
    is one of ``consistency.CHECKS``' kinds, which say what is wrong and how it is repaired."""

    kind: str
    document: str  # its id (doc_…); for ``missing_document`` the id the entry names
    entry: int | None  # the entry concerned (its key); None: the document names none


@dataclass(frozen=True)
class VariantRow:
    id: int
    exact: str  # the creative prompt's exact key
    answer: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cost_wh: float  # its generation's energy (its job's lookup not included)
    cost_gco2: float
    created: float
    cost_method: str = "estimate"  # how cost_wh was measured (rapl, nvml or estimate)
    reasoning_tokens: int = 0  # of completion_tokens, the reasoning ones (migration 0027)


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
class IdempotencyKey:
    """A request's ``Idempotency-Key`` header as kept with the object the request made
    (``POST /v1/batches``: a batch; ``POST /v1/files``: a file), per tenant and API key: a
    retry under the same key gets that object back until ``expires``; a request with other
    parameters (``fingerprint``) under it is refused (409)."""

    tenant: str
    key_id: str  # the API key that sent it; "" for a request without one (open mode)
    route: str  # "POST /v1/batches" | "POST /v1/files"
    key: str  # the header's value
    fingerprint: str  # SHA-256 (hex) of the request's parameters
    object_id: str  # the batch or file the request made
    created: float  # unix seconds
    expires: float  # unix seconds: from then on the key is free again


@dataclass(frozen=True)
class BatchLineRow:
    """One finished line of a running batch, kept until the batch's files are written, so a
    runner taking over the batch (its process died) goes on from there instead of serving
    the line again."""

    batch_id: str
    line: int  # 0-based position in the input file
    kind: str  # "output" or "error": which of the batch's files the record goes to
    record: str  # the output/error file's JSON line
    energy_wh: float
    carbon_g: float
    avoided_wh: float


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
    dedupe: str | None = None  # at most one pending or running job per dedupe key
    # a job held back (a Retry-After, a retry's backoff) starts no earlier, re-planned or not
    hold_until: float = 0.0
    # what a process must run to claim it before its deadline (``jobs.model_requirement``: a
    # rebind's model at its target version); None: any process
    requires: str | None = None


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
class ChangeRow:
    """One change to what the reuse layer serves, in the store's change log: how replicas
    and worker processes sharing one store keep their in-memory maps and indexes in step.
    Written by the store itself (database triggers) in the transaction that made the change,
    numbered in commit order."""

    seq: int  # position in the log, increasing in commit order
    kind: str  # entry | entry-update | delete | variant | label | document | lookup
    entry: int | None = None  # the entry key (entry, entry-update, delete, variant, document)
    ref: str | None = None  # variant: its exact hash; document: its id
    observation: ObservationRow | None = None  # label: the label added
    # lookup: a semantic lookup's best candidate (similarity or None, density, pair score
    # or None), as ``LabelStore.lookup_similarities`` gives them
    lookup: tuple[float | None, float, float | None] | None = None
    # lookup: the lookup's id (the ledger row's ``extra["lookup_id"]``), by which the process
    # that made it knows it as its own; None for a row written without one (an older gateway)
    lookup_id: int | None = None


@dataclass(frozen=True)
class ApiKey:
    id: str  # public id, part of the key string
    tenant: str
    admin: bool
    created: float
    revoked: bool
    rpm: int | None = None  # per-tenant overrides; None = settings default
    daily_tokens: int | None = None
    daily_reasoning_tokens: int | None = None


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
    reasoning_tokens: int = 0  # of completion_tokens, the reasoning ones
    routed: int = 0  # requests routed by model: "auto"
    rightsizing_avoided_wh: float = 0.0  # energy right-sizing avoided (estimate)
    rightsizing_avoided_gco2: float = 0.0


@dataclass(frozen=True)
class LedgerQuery:
    """Filters for browsing the ledger; None means any."""

    since: float | None = None
    until: float | None = None  # exclusive
    tenant: str | None = None
    model: str | None = None
    outcome: str | None = None  # ok | error | cancelled | interrupted
    reuse: str | None = None  # hit-exact | hit-coalesced | … | miss | bypass | none


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
    batches: int = 0  # batches that ran and ended in the period, however they ended
    shifting_saved_gco2: float = 0.0  # their lines' run-at-submission carbon minus actual
    routed: int = 0  # requests routed by model: "auto"
    rightsizing_avoided_wh: float = 0.0  # energy right-sizing avoided (estimate)
    rightsizing_avoided_gco2: float = 0.0


@dataclass(frozen=True)
class EnergyProfileRow:
    """One measured energy profile of a local model on one host (``boundgate models
    profile``): energy per 1000 prompt tokens (prefill) and per 1000 output tokens (decode),
    with the meter's range, and the throughput of each."""

    model: str
    model_version: str  # the weights measured (``Backend.version``)
    measured_at: float  # unix seconds
    host: str  # hostname
    cpu: str  # CPU model name
    method: str  # the meter: rapl | nvml | estimate
    prompt_wh_per_1k_tokens: float
    prompt_wh_per_1k_tokens_low: float
    prompt_wh_per_1k_tokens_high: float
    output_wh_per_1k_tokens: float
    output_wh_per_1k_tokens_low: float
    output_wh_per_1k_tokens_high: float
    prompt_tokens_per_s: float
    output_tokens_per_s: float
    runs: int  # metered runs of each kind
    prompt_tokens: int  # prompt tokens of one prefill run
    output_tokens: int  # output tokens of one decode run


@dataclass(frozen=True)
class Claim:
    """One counter a reservation draws on (:meth:`LimitStore.reserve`).

    ``counter`` names what is counted and for whom (``"tokens:key:1a2b3c4d"``, ``"rpm:acme"``);
    ``window`` is the start of the counting window in unix seconds (a UTC day's midnight for
    daily budgets; one fixed value, e.g. 0, for a counter whose holds are its only content);
    ``amount`` is taken when ``used + held + amount <= limit``. ``hold_s``: the amount is *held*
    until :meth:`LimitStore.settle` replaces it by real usage, or for at most ``hold_s``
    seconds (the lease: a holder that died frees it then); None: it counts as used at once.
    """

    counter: str
    window: float
    amount: int
    limit: int
    hold_s: float | None = None


@dataclass(frozen=True)
class Release:
    """Holds a request no longer needs, given back in the statement that records its ledger
    row (:meth:`LedgerStore.record_hit`): hold ``hold_id`` on each ``(counter, window)`` of
    ``counters``, settled as ``LimitStore.settle(hold_id, counter, window, 0)`` would (a
    reused answer uses no tokens)."""

    hold_id: str
    counters: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Hold:
    """One hold of a reservation: hold ``hold_id`` on ``counter``'s ``window`` (what
    :meth:`LimitStore.renew_holds` extends while its request runs)."""

    hold_id: str
    counter: str
    window: float


@dataclass(frozen=True)
class CounterState:
    """A counter in one window at one moment: settled ``used``, the sum of live (unexpired)
    holds ``held``, and when the earliest live hold expires (None: no live hold)."""

    used: int
    held: int
    next_expiry: float | None
