"""Response models for ``/v1/models`` (OpenAI's Model object, with boundgate's details of each
configured model in the list)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EnergyProfile(BaseModel):
    """A model's energy per 1000 tokens: measured on this host (``source: "profile"``,
    ``boundgate models profile``) or the per-token estimate (``source: "ecologits"``)."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["profile", "ecologits"]
    method: str = Field(description="the meter: rapl, nvml or estimate")
    prompt_wh_per_1k_tokens: float
    prompt_wh_per_1k_tokens_range: list[float] = Field(min_length=2, max_length=2)
    output_wh_per_1k_tokens: float
    output_wh_per_1k_tokens_range: list[float] = Field(min_length=2, max_length=2)
    prompt_tokens_per_s: float | None = None
    output_tokens_per_s: float | None = None
    measured_at: float | None = Field(None, description="unix seconds")
    host: str | None = None
    cpu: str | None = None
    model_version: str | None = None
    runs: int | None = None


class ModelInfo(BaseModel):
    """What the gateway knows of a configured model (``Backend.describe``), of an auto
    model name (``backend: "router"``, with its ladders), or of the embeddings model
    (``backend: "onnx"``, with its ``dimensions``)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    backend: str = Field(
        description="llama_cpp, openai, fake, router (model auto), or onnx (embeddings)"
    )
    params_b: float | None = Field(None, description="parameters, in billions (estimates)")
    context_length: int | None = None
    version: str | None = Field(
        None, description="file name and hash prefix, or the upstream's model id"
    )
    reasoning: bool | None = Field(None, description="a reasoning model (reasoning_effort)")
    energy_profile: EnergyProfile | None = None
    ladders: dict[str, list[str]] | None = Field(
        None, description="model auto: the ladders it routes over, smallest rung first"
    )
    dimensions: int | None = Field(
        None, description="the embeddings model: the length of its vectors"
    )
    default: bool


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["model"]
    created: int
    owned_by: Literal["boundgate", "upstream"]
    boundgate: ModelInfo | None = Field(None, description="in the list only")


class ModelList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: Literal["list"]
    data: list[Model]
