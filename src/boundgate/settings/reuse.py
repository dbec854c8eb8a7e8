"""The ``[reuse]`` section: exact and semantic reuse, the verifier's error bound, the pair
model, the index and eviction (docs/reuse.md)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import (
    Field,
)

from .base import ListSetting, _Section


class ReuseSettings(_Section):
    renamed: ClassVar[dict[str, str]] = {"time_sensitive_max_age": "time_sensitive_max_age_s"}

    enabled: bool = Field(True, description="Answer repeated questions from stored answers.")
    semantic: bool = Field(
        True, description="Match by meaning (embeddings); off = exact matches only."
    )
    max_temperature: float = Field(
        0.3,
        ge=0,
        le=2,
        description="The temperature dial: requests above it are novel (never reused or stored).",
    )
    default_temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        description="The temperature a request that gives none is generated at. Unset: "
        "OpenAI's default, 1, which is above the dial, so such a request is novel (never "
        "reused or stored) and counts against limits.novelty_per_day; upstreams are then "
        "sent no temperature and apply their own default. At or below "
        "max_temperature (0: greedy) requests that leave temperature out are reused like "
        "those that give it; a request that gives it is generated as it says. Every model "
        "gets it, upstreams too: OpenAI's o-series reasoning models refuse any temperature "
        "but 1, so leave it unset where requests without one reach them.",
    )
    error_bound: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="δ: at most this share of semantic lookups may get a wrong reused answer.",
    )
    confidence: float = Field(
        0.95, ge=0.5, lt=1, description="One-sided confidence for the error-bound test."
    )
    initial_threshold: float = Field(
        0.95, gt=0, le=1.01, description="Similarity threshold used until data proves another."
    )
    similarity_floor: float = Field(
        0.70, ge=0, lt=1, description="Candidates below this are not considered (nor labelled)."
    )
    min_observations: int = Field(
        30, ge=1, description="Labelled observations needed above a threshold to trust it."
    )
    verify_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of would-be semantic hits recomputed to verify (for models whose "
        "answers label: models.<name>.answer_labels).",
    )
    prior_verify_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="With prior: the share of would-be semantic hits recomputed to verify while "
        "the prior alone vouches for the threshold in force (fewer than min_observations of "
        "this gateway's own labels at or above it), so traffic unlike the calibration data is "
        "caught after a few dozen would-be hits; the larger of this and verify_rate applies.",
    )
    tightened_rights: int = Field(
        5,
        ge=0,
        description="Tightened inspection: after a wrong label of a would-be or served hit "
        "(sampled verification or feedback), every would-be semantic hit is verified until "
        "this many of them in a row are labelled right; then sampling returns to its rate. "
        "0 = off (sampling at the rate throughout).",
    )
    scorer: Literal["pair", "blend", "density", "cosine"] = Field(
        "pair",
        description="What the verifier thresholds: pair = the shipped pair model's probability "
        "that the asked and the stored question mean the same (a cross-encoder reading both; "
        "only candidates above similarity_floor that pass the guards are scored); blend = the "
        "higher of the pair score and the cosine mapped to the pair score of equal precision "
        "on Quora's validation pairs (pair_model/blend.json), with its own prior; density = "
        "cosine minus a learned weight times the local density of the two questions; cosine = "
        "the plain cosine similarity.",
    )
    alternative_scorer: Literal["cosine", "none"] = Field(
        "cosine",
        description="A second scorer whose threshold the verifier learns from this gateway's "
        "own labels alone (no prior), proven at half the miss probability; whichever of the "
        "two proves the larger share of lookups within the error bound is thresholded. It "
        "keeps a deployment whose traffic is unlike the pair model's training data (another "
        "domain, long statements) from being held to the weaker signal. none = the scorer "
        "alone.",
    )
    candidates: int = Field(
        8,
        ge=1,
        le=64,
        description="Nearest stored questions the ANN index returns per semantic lookup (and "
        "per density estimate); the guards and the scorer choose among them.",
    )
    pair_candidates: int = Field(
        4,
        ge=1,
        le=16,
        description="With scorer = pair or blend: how many guard survivors (best cosine first) "
        "the pair model scores per lookup; the best-scored one (by the scorer) is the candidate.",
    )
    lookup_windows: ListSetting[int] = Field(
        [100, 250, 1000, 5000],
        min_length=1,
        description="h(t), the share of semantic lookups whose candidate scores at or above a "
        "threshold, is the highest share over the last this many lookups (each window): small "
        "windows make the bound tighten quickly when traffic turns to near-repeats.",
    )
    prior: bool = Field(
        True,
        description="With scorer = pair or blend: start from its offline calibration (its "
        "best scores on labelled validation questions replayed through the lookup, and their "
        "share of lookups above each threshold as a floor for h(t)) so a fresh gateway reuses "
        "from its first requests; off = earn every threshold from this gateway's own labels.",
    )
    prior_weight: float = Field(
        3000.0,
        gt=0,
        description="With prior: the prior counts as at most W calibration observations in all, "
        "and that weight is multiplied by W / (W + labels seen), so after W labels of its own "
        "the gateway weighs the prior at half.",
    )
    feedback_labels_per_tenant_per_day: int = Field(
        10,
        ge=0,
        description="How many correct: false feedback labels from one tenant's non-admin keys "
        "the verifier every tenant shares learns per UTC day (counted in the store: one quota "
        "across processes and restarts); beyond it a label is answered noted and only stops "
        "the answer it judged wrong being served to that tenant again. 0: non-admin feedback "
        "is never learned, only noted. Admin keys' labels are not limited (docs/reuse.md, "
        "Feedback quota).",
    )
    answer_similarity: float = Field(
        0.90,
        gt=0,
        le=1,
        description="Answer-embedding similarity at which a fresh answer matches a stored one.",
    )
    time_sensitive_max_age_s: float = Field(
        300.0,
        ge=0,
        description="Max age (s) of answers reused for time-sensitive questions (formerly "
        "time_sensitive_max_age, still accepted).",
    )
    time_sensitive_pattern: str | None = Field(
        None, description="Regex for time-sensitive questions (default: built-in English list)."
    )
    max_entries: int = Field(
        100_000, ge=1, description="Stored answers kept; beyond it the least valuable go."
    )
    recency_half_life_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="Eviction: an entry's value halves for every this many seconds since it "
        "was last used (s).",
    )
    bind_after: int = Field(
        3, ge=1, description="Distinct askers after which an answer is bound (signed document)."
    )
    require_bound: bool = Field(
        False, description="Serve semantic matches only from bound documents (strict)."
    )
    stale_policy: Literal["stale-while-rebind", "recompute"] = Field(
        "stale-while-rebind",
        description="When a model's version changes: serve its documents marked stale while a "
        "rebind job recomputes them, or recompute without serving them.",
    )
    embedder: Literal["minilm", "hash"] = Field(
        "minilm",
        description="minilm (all-MiniLM-L6-v2 int8 ONNX) or hash (tests only). Changing it "
        "keeps the stored answers: exact hits at once, by meaning once re-embedded in the "
        "background.",
    )
    embed_threads: int = Field(
        0, ge=0, description="onnxruntime threads for the embedder (0 = cores, at most 4)."
    )
    index_dtype: Literal["f32", "f16", "i8"] = Field(
        "i8",
        description="How the ANN index holds vectors: f32, or f16/i8 (smaller, faster to "
        "search; the best candidates are rescored with exact float32 similarities).",
    )
    index_connectivity: int = Field(
        32, ge=4, le=128, description="HNSW links per node (M); changing it rebuilds the index."
    )
    index_expansion_add: int = Field(
        128, ge=8, description="HNSW search width when adding entries (efConstruction)."
    )
    index_expansion_search: int = Field(
        256, ge=8, description="HNSW search width per lookup (ef): recall against latency."
    )
    persist_index: bool = Field(
        True,
        description="Save the ANN indexes in data_dir/index at shutdown and reload them at "
        "start-up (only entries added since are indexed again); off = rebuild at each start.",
    )
    index_save_interval_s: float = Field(
        600.0,
        ge=0,
        description="With persist_index, also save changed indexes this often while serving, "
        "so a crash costs the replay of at most this much new traffic (0: at shutdown only). "
        "Adds wait while a changed index is written (about 50 ms per 100k entries).",
    )
    coalesce_wait_s: float = Field(
        60.0,
        ge=0,
        description="Request coalescing: how long (s) a request may wait for an identical one "
        "in flight in this process (same tenant scope, question and max_tokens, reusable) to "
        "store its answer, served to it as a hit (hit-coalesced), instead of running the model "
        "again; if the wait runs out it runs on its own, and if the other fails or leaves the "
        "waiters regroup behind one of them. On a local model "
        "(one generation at a time) a waiter waits until the other lands instead, since "
        "running on its own would queue behind it. 0: no coalescing.",
    )
    sync_interval_s: float = Field(
        0.25,
        gt=0,
        le=1.0,
        description="How often a gateway reads the store's change log for answers, labels and "
        "revocations written by other workers or replicas when the store cannot notify it "
        "(SQLite); on PostgreSQL changes arrive by NOTIFY within milliseconds and this is "
        "the fallback poll. At most 1 s: a revoked answer is never served longer elsewhere.",
    )
    sync_retention_s: float = Field(
        7 * 86400.0,
        gt=3600,
        description="How long the store's change log keeps a change (pruned hourly). A "
        "gateway cut off from the store for longer must be restarted to reload its state.",
    )
