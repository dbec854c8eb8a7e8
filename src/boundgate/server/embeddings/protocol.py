"""Request and response models for ``/v1/embeddings`` (OpenAI's shapes)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..chat.protocol import EnergyInfo, ModelName


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    input: str | list[str] | list[int] | list[list[int]]
    model: ModelName = Field(None, description="omit for all-MiniLM-L6-v2")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    # boundgate extension: embed only the start of an input longer than the model reads
    truncate: bool = False


class Embedding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(
        description="the vector, or with `encoding_format: base64` its little-endian float32 "
        "bytes in base64"
    )


class EmbeddingsUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage
    boundgate: EnergyInfo
