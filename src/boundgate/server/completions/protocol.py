"""Request and response models for ``/v1/completions`` (OpenAI's legacy text completions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..chat.protocol import EnergyInfo, SamplingParams, Usage


class CompletionRequest(SamplingParams):
    # OpenAI's text completion parameters beyond the fields: ``logprobs`` (refused,
    # ``unsupported``); chat's names (``tools``, ``metadata``, …) are not among them
    OTHER_NAMES = ("logprobs",)

    prompt: str | list[str] = Field(description="One prompt (a list of exactly one is accepted).")
    echo: bool | None = None  # null as left out (OpenAI's ``Optional[bool]``): no echo
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, v: int | None) -> int | None:
        if v is not None and v != 1:
            raise ValueError("only best_of=1 is supported")
        return v

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return v

    @classmethod
    def misspellings(cls, body: Mapping[Any, Any]) -> list[tuple[str, str]]:
        """As ``SamplingParams.misspellings``, and chat's ``max_completion_tokens``, which
        text completions do not take (a trial's was forwarded beside the gateway's own
        max_tokens, so the limit the answer was stored under was not the one the upstream
        kept): its name here is ``max_tokens``."""
        chat_only = [("max_completion_tokens", "max_tokens")]
        if "max_completion_tokens" not in body:
            chat_only = []
        rest = [m for m in super().misspellings(body) if m[0] != "max_completion_tokens"]
        return chat_only + rest

    def unsupported(self) -> str | None:
        """As ``SamplingParams.unsupported``, and ``suffix`` (insertion) when given."""
        return "suffix" if self.suffix else super().unsupported()

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class TextChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int
    text: str
    logprobs: None = None
    finish_reason: str = Field(description="stop or length")


class TextCompletion(BaseModel):
    """A text completion (``stream: false``)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[TextChoice]
    usage: Usage
    boundgate: EnergyInfo
