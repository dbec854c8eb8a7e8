"""The one declaration of every setting.

Sources, highest priority first: command-line flags (``serve --host/--port/--data-dir``),
``BOUNDGATE_*`` environment variables (nested keys joined with ``__``, e.g.
``BOUNDGATE_SERVER__PORT=9000`` or ``BOUNDGATE_MODELS__MY_UPSTREAM__BASE_URL=...``), the TOML
file named by ``--config`` or ``BOUNDGATE_CONFIG``, then the defaults below. Unknown keys are
errors, so a typo in a config file fails at start instead of being silently ignored.

``docs/configuration.md`` documents these fields; ``boundgate settings`` prints every one with
its value and where that value came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "BOUNDGATE_"
DEFAULT_MODEL_NAME = "smollm2-135m"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # renamed settings: old name → new name. Old names stay accepted (files and env); when
    # both are given the new name wins.
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _accept_old_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(old in data for old in cls.renamed):
            data = dict(data)
            for old, new in cls.renamed.items():
                if old in data:
                    data.setdefault(new, data.pop(old))
        return data


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8080, ge=0, le=65535, description="Port to bind (0 = any free port).")
    data_dir: Path = Field(Path(".boundgate"), description="Where the SQLite store and keys live.")
    grid_zone: str = Field(
        "DE-LU", description="Grid zone for carbon figures; any zone with bundled data."
    )
    allow_open_remote: bool = Field(
        False,
        description="Allow binding a non-loopback host while no API keys exist (open mode).",
    )
    max_body_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Largest accepted request body, file uploads aside; larger gets 413.",
    )
    max_file_bytes: int = Field(
        200 << 20,
        ge=1024,
        description="Largest accepted file upload (`POST /v1/files`, a batch's input; "
        "OpenAI's limit for batch files is 200 MB); larger gets 413.",
    )
    log_level: str = Field("info", description="uvicorn log level.")
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes serving one port over the shared store (`serve "
        "--workers`); each loads its own local model (memory × workers) and follows the "
        "others' stored answers through the store's change log.",
    )
    metrics_tenant_label: bool = Field(
        False, description="Label request metrics by tenant (one series per tenant)."
    )
    metrics_token_env: str | None = Field(
        None,
        description="Environment variable holding a bearer token that /metrics then requires "
        "(Prometheus: `authorization: {credentials_file: ...}`); unset = /metrics is open, as "
        "Prometheus expects by default.",
    )


class LimitsSettings(_Section):
    queue_size: int = Field(
        16,
        ge=0,
        description="Requests that may wait for a busy local model; more get 503.",
    )
    rpm: int = Field(0, ge=0, description="Default requests per minute per tenant (0 = unlimited).")
    daily_tokens: int = Field(
        0, ge=0, description="Default prompt+completion tokens per tenant per UTC day (0 = off)."
    )
    daily_reasoning_tokens: int = Field(
        0,
        ge=0,
        description="Default reasoning tokens per tenant per UTC day on reasoning models "
        "(0 = off); reserved before each call at its worst case, settled after.",
    )
    default_max_tokens: int = Field(
        1024, ge=1, description="max_tokens applied when a request gives none."
    )
    reservation_lease_s: float = Field(
        900.0,
        gt=0,
        description="How long a request's budget reservation holds if its gateway process "
        "dies before settling it; then the reserved tokens are free again.",
    )
    novelty_per_day: int = Field(
        0,
        ge=0,
        description="Fresh above-dial (creative) generations per tenant per UTC day (0 = off).",
    )
    novelty_exhausted: Literal["variants", "reject"] = Field(
        "variants",
        description="When the novelty budget is spent: serve pre-generated variants (429 if "
        "none is left) or always answer 429.",
    )


class StoreSettings(_Section):
    url: str | None = Field(
        None,
        description="PostgreSQL database the gateway keeps all its state in "
        "(`postgresql://user@host:5432/db`; libpq's `PGPASSWORD`/`PGPASSFILE` keep the password "
        "out of the URL), so several replicas serve as one (needs the `postgres` extra). "
        "Unset = SQLite in `server.data_dir`.",
    )
    pool_size: int = Field(
        10, ge=1, description="Most PostgreSQL connections one gateway process opens."
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, description="How long start-up waits for PostgreSQL before failing."
    )
    key_cache_s: float = Field(
        0.0,
        ge=0,
        le=5,
        description="PostgreSQL: how long a replica trusts a key check (and 'no keys yet') "
        "without reading the key table. 0 = every request reads its key, so a key revoked "
        "through any replica is refused by every replica on its next request. Above 0 saves "
        "a round trip per request; a change is then announced to every replica (NOTIFY, "
        "milliseconds) and trusted at most this long should the announcement be lost.",
    )

    @model_validator(mode="after")
    def _check_url(self) -> StoreSettings:
        if self.url is not None and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("store.url must be a postgresql:// URL (unset: SQLite)")
        return self


class EnergySettings(_Section):
    cpu_watts_per_core: float = Field(
        4.0, gt=0, description="Central estimate of power per busy vCPU (W)."
    )
    cpu_watts_per_core_low: float = Field(
        2.0, gt=0, description="Low end of the per-vCPU power range (W)."
    )
    cpu_watts_per_core_high: float = Field(
        8.0, gt=0, description="High end of the per-vCPU power range (W)."
    )
    memory_watts_per_gb: float = Field(
        0.392, ge=0, description="Power per GB of resident model memory (W/GB)."
    )
    pue: float = Field(1.0, ge=1.0, description="Power usage effectiveness of this machine.")
    upstream_pue: float = Field(
        1.2, ge=1.0, description="PUE assumed for upstream (remote) data centres."
    )
    rapl_root: Path = Field(
        Path("/sys/class/powercap"), description="Where RAPL powercap counters are read."
    )
    method: Literal["auto", "rapl", "nvml", "estimate"] = Field(
        "auto", description="Force a meter for local models; auto = RAPL, NVML, estimate."
    )


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
        0.05, ge=0, le=1, description="Share of would-be semantic hits recomputed to verify."
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
    scorer: Literal["pair", "density", "cosine"] = Field(
        "pair",
        description="What the verifier thresholds: pair = the shipped pair model's probability "
        "that the asked and the stored question mean the same (a cross-encoder reading both; "
        "only candidates above similarity_floor that pass the guards are scored); density = "
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
        description="With scorer = pair: how many guard survivors (best cosine first) the pair "
        "model scores per lookup; the best-scored one is the candidate.",
    )
    lookup_windows: list[int] = Field(
        [100, 250, 1000, 5000],
        min_length=1,
        description="h(t), the share of semantic lookups whose candidate scores at or above a "
        "threshold, is the highest share over the last this many lookups (each window): small "
        "windows make the bound tighten quickly when traffic turns to near-repeats.",
    )
    prior: bool = Field(
        True,
        description="With scorer = pair: start from the pair model's offline calibration (its "
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
        "minilm", description="minilm (all-MiniLM-L6-v2 int8 ONNX) or hash (tests only)."
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
        "again; if the wait runs out or the other fails it runs on its own. On a local model "
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


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh")


def _default_effort_tokens() -> dict[ReasoningEffort, int]:
    # low/medium/high: the thinking budgets Google maps OpenAI's reasoning_effort to in the
    # Gemini API's OpenAI compatibility (ai.google.dev/gemini-api/docs/openai); none: no
    # thinking; minimal and xhigh: CLIProxyAPI's presets (help.router-for.me/configuration/
    # thinking), as OpenAI publishes no token figure for any effort.
    return {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}


class ReasoningSettings(_Section):
    effort_tokens: dict[ReasoningEffort, int] = Field(
        default_factory=_default_effort_tokens,
        description="Cap on reasoning tokens per request for each reasoning_effort, on models "
        "with reasoning = true (enforced on local models, sent upstream as reasoning_effort). "
        "Defaults: Gemini's OpenAI-compatible mapping for low/medium/high, 0 for none, "
        "CLIProxyAPI's presets for minimal/xhigh (docs/api.md).",
    )
    default_effort: ReasoningEffort = Field(
        "medium",
        description="The effort assumed when a request to a reasoning model gives none "
        "(OpenAI's default for its reasoning models before gpt-5.1).",
    )

    @field_validator("effort_tokens", mode="before")
    @classmethod
    def _merge_defaults(cls, v: Any) -> Any:
        # a file or env var may set some efforts; the others keep their defaults
        return {**_default_effort_tokens(), **v} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _check_efforts(self) -> ReasoningSettings:
        if any(v < 0 for v in self.effort_tokens.values()):
            raise ValueError("effort_tokens: caps must be >= 0")
        return self

    def cap(self, effort: str | None) -> int:
        """The reasoning-token cap of ``effort`` (None: ``default_effort``)."""
        key = effort or self.default_effort
        if key not in self.effort_tokens:
            raise ValueError(f"unknown reasoning_effort {key!r}")
        return self.effort_tokens[key]


class CreativitySettings(_Section):
    enabled: bool = Field(True, description="Pre-generate variants of popular creative prompts.")
    min_askers: int = Field(
        3, ge=1, description="Distinct askers of a creative prompt before variants are made."
    )
    variants: int = Field(5, ge=1, le=100, description="Variants generated per round.")
    window_s: float = Field(
        12 * 3600.0, gt=0, description="Deadline for generating a round of variants (s)."
    )


class GridSettings(_Section):
    source: Literal["bundled", "electricitymaps", "watttime", "ukci", "carbon-aware-sdk"] = Field(
        "bundled",
        description="Where carbon intensity comes from; live sources fall back to the "
        "bundled history, labelled, whenever they fail.",
    )
    base_url: str | None = Field(
        None, description="The live API's base URL (default: the provider's public one)."
    )
    region: str | None = Field(
        None,
        description="The provider's name for the zone (Electricity Maps zone, WattTime region, "
        "UK region id or 'national', Carbon Aware SDK location); default: server.grid_zone.",
    )
    token_env: str = Field(
        "ELECTRICITYMAPS_API_KEY", description="Env var with the Electricity Maps token."
    )
    username_env: str = Field("WATTTIME_USERNAME", description="Env var: WattTime user.")
    password_env: str = Field("WATTTIME_PASSWORD", description="Env var: WattTime password.")
    refresh_s: float = Field(300.0, gt=0, description="How often the live source is polled.")
    timeout_s: float = Field(5.0, gt=0, description="Per-request timeout for the live source.")


class SchedulerSettings(_Section):
    policy: Literal["carbon", "now"] = Field(
        "carbon",
        description="When deferrable jobs start: the forecast-cleanest hours before their "
        "deadline (carbon) or at once (now).",
    )
    rebind_window_s: float = Field(
        6 * 3600.0, gt=0, description="Deadline for rebinding a stale document (s)."
    )
    poll_s: float = Field(1.0, gt=0, description="How often the job runner looks for due jobs.")
    job_lease_s: float = Field(
        300.0,
        ge=1,
        description="A running job's lease, renewed every third of it while it runs; a "
        "process killed mid-job leaves its job to another runner this long after.",
    )
    price_csv: Path | None = Field(
        None,
        description="Hourly price CSV (datetime_utc + price_column) to optimise price too.",
    )
    price_column: str = Field("usd_per_mwh", description="The price CSV's value column.")
    price_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="0 = carbon only, 1 = price only, between: a weighted mix (needs price_csv).",
    )
    replan_s: float = Field(
        3600.0, gt=0, description="How often queued jobs are re-planned on a fresh forecast."
    )
    batch_request_s: float = Field(
        2.0, gt=0, description="Estimated run time per batch line (s), to size its window."
    )


class ModelSettings(_Section):
    backend: Literal["llama_cpp", "openai", "fake"] = Field(
        description="llama_cpp (local gguf), openai (any OpenAI-compatible server), fake (tests)."
    )
    default: bool = Field(False, description="Serve this model when a request names none.")
    path: Path | None = Field(
        None, description="llama_cpp: gguf file; defaults to the packaged SmolLM2 model."
    )
    n_ctx: int = Field(2048, ge=64, description="llama_cpp: context window in tokens.")
    n_threads: int | None = Field(
        None,
        ge=1,
        description="llama_cpp: threads (default: half the cores, at least 1, as "
        "llama-cpp-python's own default; all cores is faster on an idle host and several "
        "times slower beside any other work: bench/llama_threads.py).",
    )
    base_url: str | None = Field(None, description="openai: base URL ending in /v1.")
    api_key_env: str | None = Field(
        None, description="openai: environment variable holding the upstream API key."
    )
    upstream_model: str | None = Field(
        None, description="openai: model name sent upstream (default: this entry's name)."
    )
    params_b: float | None = Field(
        None, gt=0, description="Model size in billions of parameters (energy estimates)."
    )
    context_length: int | None = Field(
        None, ge=1, description="openai: context window, if known (checked before sending)."
    )
    timeout_s: float = Field(60.0, gt=0, description="openai: per-attempt timeout (s).")
    max_retries: int = Field(
        2, ge=0, le=10, description="openai: retries on 429/5xx/connection errors."
    )
    backoff_s: float = Field(
        0.2,
        ge=0,
        description="openai: wait before the first retry (s), doubled for each further retry "
        "and jittered (×0.5–1.5); an upstream Retry-After header (up to 10 s) overrides it.",
    )
    aliases: list[str] = Field(default_factory=list, description="Other names for this model.")
    reasoning: bool = Field(
        False,
        description="A reasoning model: requests' reasoning_effort caps its reasoning tokens "
        "(local: thinking between `<think>` and `</think>` is counted and cut at the cap) and "
        "counts against limits.daily_reasoning_tokens; other models ignore reasoning_effort.",
    )

    @model_validator(mode="after")
    def _check_backend_fields(self) -> ModelSettings:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("base_url is required when backend = 'openai'")
        return self


def _default_models() -> dict[str, ModelSettings]:
    return {DEFAULT_MODEL_NAME: ModelSettings(backend="llama_cpp", default=True)}


# The six task kinds of ``routing/tasks.py`` (``Task``), spelled here so settings import nothing.
TASK_NAMES = ("math", "code", "lookup", "rewrite", "creative", "conversation")
Trigger = Literal["empty", "length", "refusal", "error", "logprob"]
ESCALATION_TRIGGERS: tuple[Trigger, ...] = ("empty", "length", "refusal", "error", "logprob")


class TaskPolicy(_Section):
    ladder: str = Field("default", description="The ladder (a key of routing.ladders) to use.")
    first_rung: int = Field(
        0,
        ge=0,
        description="Index of the first rung to try (0 = the ladder's smallest model). A "
        "configured value must be a rung of the ladder; the built-in default policy's rung 1 "
        "means the top rung on a one-rung ladder.",
    )
    reasoning: bool = Field(
        False,
        description="Whether reasoning (reasoning_effort above none) is allowed for the task; "
        "kept in the route plan for the reasoning budget, routing itself does not use it.",
    )
    logprob: bool = Field(
        False,
        description="Whether the log-probability check (`logprob` in routing.escalate_on) "
        "applies to the task's answers. Its thresholds were calibrated on questions with one "
        "right answer (arithmetic, conversions, facts), where a low log-probability means a "
        "likely wrong answer; for writing, rewriting or conversation it only means a less "
        "predictable text.",
    )


def _default_policy() -> dict[str, TaskPolicy]:
    # bench/routing.py (bench/RESULTS.md, "Routing"): SmolLM2-135M keeps too many wrong
    # answers to arithmetic, conversions and facts (67.5 % accuracy with every task on it,
    # 88.8 % with the log-probability check), so mathematics and lookups start one rung up
    # (100 % at 28 % of always-top-rung energy). Reasoning helps mostly with mathematics and
    # code (issue #15).
    policy = {
        t: TaskPolicy(
            first_rung=1 if t in ("math", "lookup") else 0,
            reasoning=t in ("math", "code"),
            logprob=t in ("math", "lookup"),
        )
        for t in TASK_NAMES
    }
    return policy


class RoutingSettings(_Section):
    auto_model: str = Field(
        "auto",
        description='The model name that asks the gateway to choose (`model: "auto"`); '
        "`<auto_model>:<ladder>` names a ladder directly.",
    )
    ladders: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Ladder name → configured model names, smallest first. Without a "
        "`default` ladder, the default ladder is the default model alone.",
    )
    policy: dict[str, TaskPolicy] = Field(
        default_factory=_default_policy,
        description="Task (math, code, lookup, rewrite, creative, conversation) → ladder, "
        "first rung, whether reasoning is allowed and whether the log-probability check "
        "applies. A task not configured keeps the built-in policy: mathematics and lookups "
        "from rung 1 (the top rung on a one-rung ladder) with the log-probability check, the "
        "rest from rung 0; reasoning for mathematics and code.",
    )
    unclassified: TaskPolicy = Field(
        default_factory=TaskPolicy,
        description="The policy when no task classifier is configured (the task is unknown).",
    )

    @field_validator("policy", mode="after")
    @classmethod
    def _keep_default_policy(cls, policy: dict[str, TaskPolicy]) -> dict[str, TaskPolicy]:
        # configuring one task's policy leaves the others' built-in policies in place
        return {**_default_policy(), **policy}

    escalate_on: list[Trigger] = Field(
        list(ESCALATION_TRIGGERS),
        description="What sends a request to the next rung: an empty answer; a `length` "
        "finish the client's own max_tokens did not cause; a refusal (package data "
        "`routing/data/refusals.txt`); a 5xx-class error of the rung; (local models) a mean "
        "token log-probability below the rung's threshold (`logprob_thresholds`).",
    )
    logprob_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Model name → mean token log-probability (nats per token, ≤ 0) below "
        "which that rung's answer escalates as `logprob`; 0 turns the check off for the "
        "model. A model not listed uses the threshold calibrated for its weights (package "
        "data `routing/data/logprob_thresholds.json`, by model version: SmolLM2-135M's), "
        "else none. Only local models report log-probabilities.",
    )
    refusal_patterns: Path | None = Field(
        None,
        description="A file of refusal regexes (one a line, `#` comments) instead of the "
        "bundled list.",
    )


class DashboardSettings(_Section):
    enabled: bool = Field(True, description="Serve the operator dashboard at /dashboard.")
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="How long a dashboard login lasts."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    energy: EnergySettings = Field(default_factory=EnergySettings)
    reuse: ReuseSettings = Field(default_factory=ReuseSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    grid: GridSettings = Field(default_factory=GridSettings)
    creativity: CreativitySettings = Field(default_factory=CreativitySettings)
    reasoning: ReasoningSettings = Field(default_factory=ReasoningSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    models: dict[str, ModelSettings] = Field(default_factory=_default_models)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (passed in as init kwargs); CLI flags are applied after.
        return (env_settings, init_settings)

    @field_validator("models", mode="before")
    @classmethod
    def _env_model_names(cls, value: Any) -> Any:
        """Environment variable names cannot hold ``-``: ``BOUNDGATE_MODELS__SMOLLM2_135M__…``
        arrives as model ``smollm2_135m``. Such a name is the model it names with ``-``
        (merged into that model's settings from the file); the packaged default model
        keeps its backend and default flag when only some of its fields are set."""
        if not isinstance(value, dict):
            return value

        def same(a: str, b: str) -> bool:
            return a.replace("_", "-").lower() == b.replace("_", "-").lower()

        out: dict[str, Any] = {}
        for name, spec in value.items():
            target = next((n for n in out if n != name and same(n, name)), None)
            if target is None and same(name, DEFAULT_MODEL_NAME):
                target = DEFAULT_MODEL_NAME
            if target is None:
                target = name
            if isinstance(spec, dict) and isinstance(out.get(target), dict):
                out[target] = {**out[target], **spec}
            else:
                out[target] = spec
        default = out.get(DEFAULT_MODEL_NAME)
        if isinstance(default, dict) and "backend" not in default:
            others_default = any(
                isinstance(s, dict) and s.get("default") for n, s in out.items()
                if n != DEFAULT_MODEL_NAME
            )  # fmt: skip
            out[DEFAULT_MODEL_NAME] = {
                "backend": "llama_cpp", **({} if others_default else {"default": True}), **default
            }  # fmt: skip
        return out

    @model_validator(mode="after")
    def _check_price(self) -> Settings:
        if self.scheduler.price_weight > 0 and self.scheduler.price_csv is None:
            raise ValueError("scheduler.price_weight > 0 needs scheduler.price_csv")
        return self

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        if not self.models:
            raise ValueError("models: at least one model must be configured")
        defaults = [name for name, m in self.models.items() if m.default]
        if len(defaults) > 1:
            raise ValueError(f"models: only one model may set default = true, got {defaults}")
        return self

    @model_validator(mode="after")
    def _check_routing(self) -> Settings:
        r = self.routing
        names = set(self.models) | {a for m in self.models.values() for a in m.aliases}
        if r.auto_model in names:
            raise ValueError(
                f"routing.auto_model: {r.auto_model!r} is also a configured model name or alias"
            )
        for ladder, rungs in r.ladders.items():
            if not rungs:
                raise ValueError(f"routing.ladders.{ladder}: a ladder needs at least one rung")
            for i, rung in enumerate(rungs):
                if rung not in names:
                    raise ValueError(
                        f"routing.ladders.{ladder}[{i}]: {rung!r} is not a configured model "
                        f"(models: {', '.join(sorted(self.models))})"
                    )
        for model, threshold in r.logprob_thresholds.items():
            if model not in names:
                raise ValueError(
                    f"routing.logprob_thresholds.{model}: not a configured model "
                    f"(models: {', '.join(sorted(self.models))})"
                )
            if not threshold <= 0:
                raise ValueError(
                    f"routing.logprob_thresholds.{model}: {threshold} is not a log-probability "
                    "(nats per token, ≤ 0; 0 turns the check off)"
                )
        ladders = {"default": [self.default_model], **r.ladders}
        builtin_policy = {t: p.model_dump() for t, p in _default_policy().items()}
        for task, p in [*r.policy.items(), ("unclassified", r.unclassified)]:
            where = f"routing.policy.{task}" if task != "unclassified" else "routing.unclassified"
            if task not in (*TASK_NAMES, "unclassified"):
                raise ValueError(f"{where}: unknown task (tasks: {', '.join(TASK_NAMES)})")
            if p.ladder not in ladders:
                raise ValueError(
                    f"{where}.ladder: no ladder {p.ladder!r} (ladders: {', '.join(ladders)})"
                )
            # the built-in policy's rung is clamped to the ladder (Router.plan); it is told
            # by its values, which survive the settings' JSON round trip to workers
            builtin = task in builtin_policy and p.model_dump() == builtin_policy[task]
            if not builtin and p.first_rung >= len(ladders[p.ladder]):
                raise ValueError(
                    f"{where}.first_rung: {p.first_rung} is past the last rung of ladder "
                    f"{p.ladder!r} ({len(ladders[p.ladder])} rungs)"
                )
        return self

    @property
    def default_model(self) -> str:
        for name, m in self.models.items():
            if m.default:
                return name
        return next(iter(self.models))

    @property
    def db_path(self) -> Path:
        return self.server.data_dir / "boundgate.db"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and listings)."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


class ConfigError(Exception):
    """A configuration problem, with the offending key named in the message."""


def _format_validation_error(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def load_settings(
    config: Path | str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Build settings from file + env + overrides; raise ConfigError naming the bad key."""
    path_s = config if config is not None else os.environ.get(f"{ENV_PREFIX}CONFIG")
    path = Path(path_s) if path_s else None
    data: dict[str, Any] = _read_toml(path) if path else {}
    origin = str(path) if path else "environment/defaults"
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from exc
    for section, values in (overrides or {}).items():  # command-line flags
        sect = getattr(settings, section)
        for key, value in values.items():
            if value is None:
                continue
            try:
                setattr(sect, key, value)
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"]
                flag = "--" + key.replace("_", "-")
                raise ConfigError(
                    f"invalid command-line flag {flag} ({section}.{key}): {msg}"
                ) from exc
    return settings


@dataclass(frozen=True)
class SettingValue:
    key: str  # dotted, e.g. "server.port"
    value: Any
    source: str  # "default" | "env:NAME" | "file:PATH" | "cli"
    description: str


def _env_name(parts: list[str]) -> str:
    return ENV_PREFIX + "__".join(p.upper().replace("-", "_") for p in parts)


def describe(
    settings: Settings,
    config: Path | str | None = None,
    cli_keys: set[str] | None = None,
) -> Iterator[SettingValue]:
    """Every leaf setting with its value and the source it came from."""
    path_s = config if config is not None else os.environ.get(f"{ENV_PREFIX}CONFIG")
    file_data = _read_toml(Path(path_s)) if path_s else {}
    env_lower = {k.lower() for k in os.environ}

    def source(parts: list[str], old_names: list[str]) -> str:
        dotted = ".".join(parts)
        if cli_keys and dotted in cli_keys:
            return "cli"
        spellings = [parts, *([*parts[:-1], old] for old in old_names)]
        for spelling in spellings:
            env = _env_name(spelling)
            if env.lower() in env_lower:
                return f"env:{env}"
        for spelling in spellings:
            node: Any = file_data
            for p in spelling:
                if not isinstance(node, dict) or p not in node:
                    break
                node = node[p]
            else:
                return f"file:{path_s}"
        return "default"

    def walk(model: BaseModel, prefix: list[str]) -> Iterator[SettingValue]:
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            parts = [*prefix, name]
            if isinstance(value, BaseModel):
                yield from walk(value, parts)
            elif (
                isinstance(value, dict)
                and value
                and all(isinstance(v, BaseModel) for v in value.values())
            ):  # models.<name>, routing.policy.<task>
                for mname, m in value.items():
                    yield from walk(m, [*parts, mname])
            else:
                old_names = [o for o, n in getattr(type(model), "renamed", {}).items() if n == name]
                src = source(parts, old_names)
                if isinstance(value, str) and parts == ["store", "url"]:
                    value = redact_url(value)
                yield SettingValue(".".join(parts), value, src, field.description or "")

    yield from walk(settings, [])


def reference_markdown() -> str:
    """The settings reference table for docs/configuration.md, generated from the fields."""
    sections: list[tuple[str, type[BaseModel]]] = [
        ("server", ServerSettings),
        ("limits", LimitsSettings),
        ("store", StoreSettings),
        ("energy", EnergySettings),
        ("reuse", ReuseSettings),
        ("scheduler", SchedulerSettings),
        ("grid", GridSettings),
        ("creativity", CreativitySettings),
        ("reasoning", ReasoningSettings),
        ("dashboard", DashboardSettings),
        ("routing", RoutingSettings),
        ("routing.policy.<task>", TaskPolicy),
        ("models.<name>", ModelSettings),
    ]
    lines = []
    for section, cls in sections:
        lines += [
            f"### `[{section}]`",
            "",
            "| key | type | default | env | meaning |",
            "|---|---|---|---|---|",
        ]
        for name, field in cls.model_fields.items():
            if field.is_required():
                default = "required"
            elif field.default_factory is not None:
                value = field.default_factory()  # type: ignore[call-arg]
                if isinstance(value, BaseModel):
                    value = value.model_dump(mode="json")
                elif isinstance(value, dict) and all(
                    isinstance(v, BaseModel) for v in value.values()
                ):
                    value = {k: v.model_dump(mode="json") for k, v in value.items()}
                default = f"`{value!r}`"
            else:
                default = f"`{field.default!s}`" if field.default is not None else "unset"
            ann = str(field.annotation).replace("typing.", "").replace("pathlib.", "")
            ann = ann.replace("<class '", "").replace("'>", "").replace("|", "\\|")
            env = _env_name([*section.replace("<name>", "NAME").split("."), name])
            lines.append(f"| `{name}` | {ann} | {default} | `{env}` | {field.description} |")
        lines.append("")
    return "\n".join(lines)
