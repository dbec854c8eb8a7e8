"""Request model for ``/v1/completions`` (OpenAI's legacy text completions)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..chat.protocol import SamplingParams


class CompletionRequest(SamplingParams):
    prompt: str | list[str] = Field(description="One prompt (a list of exactly one is accepted).")
    echo: bool = False
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return v

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]
