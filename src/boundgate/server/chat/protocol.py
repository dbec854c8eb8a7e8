"""Request and response models for ``/v1/chat/completions`` (OpenAI's shapes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...settings import ReasoningEffort

# Parameters the gateway does not implement yet: rejected clearly instead of ignored.
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "logprobs", "audio")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
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
    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: bool = False


class SamplingParams(BaseModel):
    """Parameters shared by chat and plain completions. Strict, as OpenAI's API is: a string
    where a number or boolean belongs (``"stream": "yes"``, ``"temperature": "0.2"``,
    ``"max_tokens": true``) is a 400 naming the parameter, not a guess (an integer is still a
    number)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = Field(None, min_length=1, description="omit for the default model")
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
        if v == "" or (isinstance(v, list) and "" in v):
            raise ValueError("a stop sequence must not be empty")
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


# --- responses (what the server sends; declared in the OpenAPI schema, not used to build the
# answer, so the hot path pays nothing for them) ---------------------------------------------


class CompletionTokensDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reasoning_tokens: int = Field(description="of completion_tokens, the reasoning ones")


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails | None = None


class EnergyInfo(BaseModel):
    """The ``boundgate`` object of an answer: what it cost, and how reuse decided."""

    model_config = ConfigDict(extra="forbid")
    request_id: str
    energy_wh: float = Field(description="energy spent on this request (Wh)")
    energy_range_wh: list[float] = Field(min_length=2, max_length=2, description="[low, high]")
    energy_method: str = Field(description="rapl, nvml, estimate, or upstream-estimate")
    carbon_g: float = Field(description="gCO2e: energy × grid intensity")
    carbon_range_g: list[float] = Field(min_length=2, max_length=2)
    grid_zone: str
    grid_gco2_per_kwh: float
    # set on generations that went through the reuse layer
    reuse: str | None = Field(None, description="hit-exact, hit-semantic, miss, bypass, …")
    document_id: str | None = None
    similarity: float | None = None
    avoided_wh: float | None = Field(None, description="energy a reused answer avoided (Wh)")
    avoided_method: str | None = None
    avoided_gco2: float | None = None
    # set on model "auto" answers (docs/routing.md)
    task: str | None = Field(None, description="the classified task, or unclassified")
    route: str | None = Field(None, description="the rungs tried (x-boundgate-route)")
    counterfactual_wh: float | None = Field(
        None, description="the ladder's top rung's estimated energy for this answer (Wh)"
    )
    rightsizing_avoided_wh: float | None = Field(
        None, description="energy right-sizing avoided (Wh, estimate)"
    )
    rightsizing_avoided_gco2: float | None = None


class AssistantMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["assistant"]
    content: str
    refusal: None = None


class ChatChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str = Field(description="stop or length")


class ChatCompletion(BaseModel):
    """A chat completion (``stream: false``)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChoice]
    usage: Usage
    boundgate: EnergyInfo
