"""Request and response models for ``/v1/chat/completions`` (OpenAI's shapes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...settings import ReasoningEffort

# Parameters the gateway does not implement yet: rejected clearly instead of ignored.
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "logprobs", "audio")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class SamplingParams(BaseModel):
    """Parameters shared by chat and plain completions."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # OpenAI's values; caps reasoning on models with reasoning = true, ignored by others
    reasoning_effort: ReasoningEffort | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return v

    @field_validator("n")
    @classmethod
    def _n(cls, v: int | None) -> int | None:
        if v is not None and v != 1:
            raise ValueError("only n=1 is supported")
        return v

    def unsupported(self) -> str | None:
        """The first parameter given that the gateway does not implement, if any."""
        for name in UNSUPPORTED:
            if (self.model_extra or {}).get(name) not in (None, False):
                return name
        return None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def passthrough(self) -> dict[str, Any]:
        """Parameters sent on to an upstream unchanged (reasoning_effort too: the gateway
        drops it for models that are not reasoning models)."""
        out = {k: v for k, v in (self.model_extra or {}).items() if k != "boundgate"}
        if self.reasoning_effort is not None:
            out["reasoning_effort"] = self.reasoning_effort
        return out


class ChatCompletionRequest(SamplingParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
