"""The ``[reasoning]``, ``[routing]`` and ``models.<name>`` sections: which model serves a
request, how far a task climbs a ladder, and reasoning-token caps (docs/routing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from .base import DEFAULT_MODEL_NAME, ListSetting, _Section, list_from_text

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


class ModelSettings(_Section):
    backend: Literal["llama_cpp", "openai", "fake"] = Field(
        description="llama_cpp (local gguf), openai (any OpenAI-compatible server), fake (tests)."
    )
    default: bool = Field(False, description="Serve this model when a request names none.")
    path: Path | None = Field(
        None,
        strict=False,
        description="llama_cpp: gguf file; defaults to the packaged SmolLM2 model.",
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
    aliases: ListSetting[str] = Field(
        default_factory=list, description="Other names for this model."
    )
    answer_labels: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Whether this model's fresh answers label the verifier's observations "
        "(a would-be semantic hit sampled for verification, a miss beside its nearest stored "
        "question; docs/reuse.md, Labels from answers). off: its would-be hits are served "
        "unverified and its misses not labelled, so the threshold rests on the pair model's "
        "shipped calibration (reuse.prior) and feedback. auto: off for a model whose answers "
        "were measured to label paraphrases the same no more often than look-alikes (package "
        "data `reuse/data/answer_labels.json`, by model version: SmolLM2-135M's), else on.",
    )
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
        if self.base_url is not None:
            # httpx refuses anything else only at request time (502 after the retries, while
            # /readyz said ready): a trial's "not a url"
            url = urlsplit(self.base_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(
                    f"base_url {self.base_url!r} is not an http:// or https:// URL with a host "
                    "(e.g. https://api.openai.com/v1)"
                )
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

    @field_validator("ladders", mode="before")
    @classmethod
    def _ladders_from_text(cls, ladders: Any) -> Any:
        # BOUNDGATE_ROUTING__LADDERS__SMALL=a,b: each ladder a list setting (ListSetting)
        if isinstance(ladders, dict):
            return {name: list_from_text(rungs) for name, rungs in ladders.items()}
        return ladders

    @field_validator("policy", mode="after")
    @classmethod
    def _keep_default_policy(cls, policy: dict[str, TaskPolicy]) -> dict[str, TaskPolicy]:
        # configuring one task's policy leaves the others' built-in policies in place
        return {**_default_policy(), **policy}

    escalate_on: ListSetting[Trigger] = Field(
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
        strict=False,
        description="A file of refusal regexes (one a line, `#` comments) instead of the "
        "bundled list.",
    )
