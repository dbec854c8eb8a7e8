"""Request and response models for ``/v1/embeddings`` (OpenAI's shapes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...jsontext import json_type
from ..chat.protocol import EnergyInfo, ModelName


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    input: str | list[str] | list[int] | list[list[int]]
    model: ModelName = Field(None, description="omit for all-MiniLM-L6-v2")
    # null is "not given" (float), as for every optional field of the chat and completion
    # endpoints (a break-it trial: it alone refused ``"encoding_format": null``)
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    # boundgate extension: embed only the start of an input longer than the model reads
    truncate: bool = False

    @field_validator("input", mode="before")
    @classmethod
    def _input_shape(cls, value: Any) -> Any:
        """A clear word for an input of the wrong shape: the union's own errors named valid
        items as invalid (a trial's ``["ok", 3]`` read "input[1]: … (also invalid:
        input[0])"). Token arrays pass, for the endpoint to refuse by name."""
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            strings = all(isinstance(x, str) for x in value)
            if strings or _tokens(value) or all(_tokens(x) for x in value):
                return value
            # the first item that is no string, in a list that has strings ("ok", 3)
            some = any(isinstance(x, str) for x in value)
            at = next(i for i, x in enumerate(value) if not isinstance(x, str)) if some else 0
            raise ValueError(
                f"must be a string or an array of strings; input[{at}] is {json_type(value[at])}"
            )
        raise ValueError(f"must be a string or an array of strings, not {json_type(value)}")


def _tokens(x: Any) -> bool:
    """Whether ``x`` is a token array (a list of integers)."""
    return isinstance(x, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in x)


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
