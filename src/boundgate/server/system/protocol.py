"""Response models for ``/v1/models`` (OpenAI's Model object, with boundgate's details of each
configured model in the list)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelInfo(BaseModel):
    """What the gateway knows of a configured model (``Backend.describe``)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    backend: str = Field(description="llama_cpp, openai, or fake")
    params_b: float = Field(description="parameters, in billions (energy estimates)")
    context_length: int | None
    version: str = Field(description="file name and hash prefix, or the upstream's model id")
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
