"""Request and response models for ``/v1/embeddings`` (OpenAI's shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...jsontext import json_type
from ..chat.protocol import EnergyInfo, ModelName, near_miss


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

    @classmethod
    def misspellings(cls, body: Mapping[Any, Any]) -> list[tuple[str, str]]:
        """The keys of ``body`` that are no parameter of this endpoint but are spelled almost
        like one (``near_miss``; a trial's "inputs" beside "input" was silently ignored), or
        are the first part of one's name alone ("encoding": "base64" was answered floats, a
        trial), each with that name, in the body's order. Not on the generation endpoints,
        whose unknown names go to upstreams ("reasoning" is OpenRouter's, beside
        "reasoning_effort")."""
        out = []
        for name in body:
            if not isinstance(name, str) or name in cls.model_fields:
                continue
            close = near_miss(name, cls.model_fields) or next(
                (f for f in cls.model_fields if f.split("_")[0] == name.lower() != f), None
            )
            if close is not None:
                out.append((name, close))
        return out

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
