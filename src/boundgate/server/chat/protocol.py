"""Request and response models for ``/v1/chat/completions`` (OpenAI's shapes)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ...errors import ErrorCode
from ...jsontext import json_type
from ...settings import ReasoningEffort

# Parameters the gateway does not implement yet: rejected clearly instead of ignored.
UNSUPPORTED = (
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "logprobs",
    "top_logprobs",
    "audio",
)

# Parameters of OpenAI's chat completion API that are not fields of the models below, with the
# JSON type of their values: forwarded to upstreams unchanged once their type is checked (a
# trial's "parallel_tool_calls": "yes" and "prediction": "x" were sent on, and made reuse
# scopes of their own), or refused (``UNSUPPORTED``). With the fields, the names a misspelled
# chat parameter is compared with (``ChatCompletionRequest.OTHER_NAMES``); none of them is a
# text completion parameter.
PASSTHROUGH_TYPES: dict[str, type] = {
    "parallel_tool_calls": bool,
    "prediction": dict,
    "web_search_options": dict,
    "verbosity": str,
    "prompt_cache_key": str,
    "prompt_cache_retention": str,
    "safety_identifier": str,
}
OPENAI_PASSTHROUGH = tuple(PASSTHROUGH_TYPES)
_JSON_TYPE = {bool: "a boolean", dict: "an object", str: "a string"}

# Sampling parameters of common OpenAI-compatible servers (vLLM, llama.cpp's server, Ollama's
# OpenAI API, SGLang, TGI): forwarded unchanged and never taken for a misspelling of an
# OpenAI name ("top_k" is one letter from "top_p").
VENDOR_PARAMETERS = frozenset(
    {
        "top_k",
        "min_p",
        "typical_p",
        "repetition_penalty",
        "repeat_penalty",
        "repeat_last_n",
        "min_tokens",
        "ignore_eos",
        "use_beam_search",
        "length_penalty",
        "stop_token_ids",
        "include_stop_str_in_output",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "bad_words",
        "allowed_token_ids",
        "truncate_prompt_tokens",
        "guided_json",
        "guided_regex",
        "guided_choice",
        "guided_grammar",
        "chat_template",
        "chat_template_kwargs",
        "add_generation_prompt",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "tfs_z",
        "grammar",
        "json_schema",
        "n_probs",
        "n_predict",
        "cache_prompt",
        "dynatemp_range",
        "dynatemp_exponent",
        "dry_multiplier",
        "dry_base",
        "xtc_probability",
        "xtc_threshold",
        "keep_alive",
        "num_ctx",
        "priority",
        "return_tokens_as_token_ids",
        "enable_thinking",
        "thinking",
        "separate_reasoning",
        "top_a",
    }
)
# how alike a name must be to a known one to be called its misspelling (difflib's ratio):
# "max_token", "temprature", "stops" and "seeds" are; "foo" and "my_tag" are not
MISSPELLING_CUTOFF = 0.85


UNKNOWN_PARAMETER = "Unknown parameter: '{name}'. Did you mean '{known}'?"
"""The message of a misspelled key's 400 ``unknown_parameter`` (``near_miss``), for the
request models' validators and ``server.common.unknown_parameter`` alike."""


def near_miss(name: str, known: Iterable[str]) -> str | None:
    """The name of ``known`` that ``name`` is almost spelled as (difflib ratio ≥
    ``MISSPELLING_CUTOFF``, or two neighbouring letters swapped; case aside: "Max_Tokens" is
    as wrong as "max_token"), or None (also when ``name`` is one of them). The swap is its
    own rule because the ratio punishes it in a short name: "nmae" is 0.75 from "name"."""
    names = list(known)
    if name in names:
        return None
    lowered = name.lower()
    for known_name in names:
        if _swapped_neighbours(lowered, known_name):
            return known_name
    close = difflib.get_close_matches(lowered, names, n=1, cutoff=MISSPELLING_CUTOFF)
    return close[0] if close else None


def _swapped_neighbours(a: str, b: str) -> bool:
    """Whether ``a`` is ``b`` with two neighbouring (different) characters swapped."""
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return (
        len(diff) == 2
        and diff[1] == diff[0] + 1
        and a[diff[0]] == b[diff[1]]
        and a[diff[1]] == b[diff[0]]
    )


def _model_not_null(value: object) -> object:
    """``"model": null`` refused as a model that is not a string is (400 ``invalid_value``,
    ``param: model``): OpenAI's ``model`` is a required string, and a client sending null
    meant some model, not whichever is the default (it was served the default's answer).
    Only a ``model`` left out is the default model."""
    if value is None:
        raise PydanticCustomError(
            "string_type",
            "Input should be a valid string, not null (omit it for the default model)",
        )
    return value


ModelName = Annotated[
    str | None, BeforeValidator(_model_not_null), WithJsonSchema({"type": "string"})
]
"""A request's ``model``: a string, or left out (None: the endpoint's default model), never
null (``_model_not_null``); the schema declares a string."""


# The widest integers OpenAI's API takes: ``seed`` is a signed 64-bit integer; a token limit
# beyond a signed 32-bit one is no limit any model has (and no value an upstream takes).
INT64 = (-(2**63), 2**63 - 1)
MAX_TOKENS_LIMIT = 2**31 - 1
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


# OpenAI's ``metadata`` (chat completions, batches): at most 16 pairs, keys of at most 64
# characters, string values of at most 512
METADATA_PAIRS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(max_length=METADATA_KEY_CHARS)],
        Annotated[str, StringConstraints(max_length=METADATA_VALUE_CHARS)],
    ],
    Field(max_length=METADATA_PAIRS),
]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any) -> Any:
        """Name what is unsupported: an image or audio part got "Input should be 'text'"."""
        if isinstance(data, dict) and isinstance(data.get("type"), str) and data["type"] != "text":
            raise ValueError(
                f"content parts of type '{data['type']}' are not supported: the models behind "
                "this gateway read text only (parts of type 'text', and in an assistant "
                "message 'refusal')"
            )
        return data


class ChatMessage(BaseModel):
    """One message. Keys it has no field for are ignored (OpenAI's ``refusal``, ``audio``,
    …), but not one spelled almost like a field (``misspelled_keys``)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    # OpenAI's message keys the gateway ignores: with the fields, what a key is compared with
    OTHER_NAMES: ClassVar[tuple[str, ...]] = ("refusal", "audio", "tool_call_id")

    role: Literal["system", "developer", "user", "assistant"]
    # read only to decide whether an assistant message may go without content (OpenAI's rule)
    tool_calls: Any = None
    function_call: Any = None
    content: str | list[TextPart] | None = Field(None, validate_default=True)
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _misspelled_keys(cls, data: Any) -> Any:
        """A key spelled almost like a field (``near_miss``) is refused as
        ``unknown_parameter`` (the error's type; ``request_error`` names the key): a trial's
        ``"nmae": "bob"`` was dropped, the name reaching neither the model nor the reuse
        scope."""
        if isinstance(data, dict):
            known = [*cls.model_fields, *cls.OTHER_NAMES]
            for key in data:
                close = near_miss(key, known) if isinstance(key, str) else None
                if close is not None:
                    raise PydanticCustomError(
                        ErrorCode.UNKNOWN_PARAMETER.value,
                        UNKNOWN_PARAMETER,
                        {"name": key, "known": close},
                    )
        return data

    @field_validator("tool_calls")
    @classmethod
    def _tool_calls_shape(cls, v: Any) -> Any:
        """OpenAI's shape, checked though the calls are only read for the scope: an array of
        ``{"id", "type": "function", "function": {"name", "arguments"}}`` (or a ``"custom"``
        call's ``{"name", "input"}``), strings all. A trial's ``"x"``, ``[{}]`` and arguments
        as an object were taken (OpenAI answers 400). An empty array is still taken, as no
        calls (clients send it on every assistant turn; OpenAI refuses it)."""
        if v is None:
            return v
        if not isinstance(v, list):
            raise ValueError(f"tool_calls must be an array of tool calls, not {json_type(v)}")
        for i, call in enumerate(v):
            where = f"tool_calls[{i}]"
            if not isinstance(call, dict):
                raise ValueError(f"{where} must be an object, not {json_type(call)}")
            kind = call.get("type")
            if kind not in _CALL_FIELDS:
                raise ValueError(f"{where}.type must be 'function' or 'custom'")
            _strings(call, ("id",), where)
            body = call.get(kind)
            if not isinstance(body, dict):
                raise ValueError(f"{where}.{kind} must be an object")
            _strings(body, _CALL_FIELDS[kind], f"{where}.{kind}")
        return v

    @field_validator("function_call")
    @classmethod
    def _function_call_shape(cls, v: Any) -> Any:
        """The deprecated ``function_call``: ``{"name", "arguments"}``, strings (arguments
        may be left out, as before)."""
        if v is None:
            return v
        if not isinstance(v, dict):
            raise ValueError(f"function_call must be an object, not {json_type(v)}")
        _strings(v, ("name", "arguments") if "arguments" in v else ("name",), "function_call")
        return v

    @field_validator("content", mode="before")
    @classmethod
    def _content_shape(cls, v: Any, info: ValidationInfo) -> Any:
        """One message instead of one per member of the union ("Input should be a valid
        string (and 1 more)" for a number). An assistant message's ``refusal`` part (OpenAI
        takes one in an assistant message's content, as the model's refusal it sends
        back) is read as the text it holds; a break-it trial's was refused with a 400."""
        if v is not None and not isinstance(v, str | list):
            raise ValueError(
                f"content must be a string or an array of content parts, not {json_type(v)}"
            )
        if isinstance(v, list) and any(_is_refusal(p) for p in v):
            if info.data.get("role") != "assistant":
                raise ValueError("content parts of type 'refusal' are for assistant messages")
            for i, part in enumerate(v):
                if _is_refusal(part) and not isinstance(part.get("refusal"), str):
                    raise ValueError(f"content[{i}].refusal must be a string")
            v = [{"type": "text", "text": p["refusal"]} if _is_refusal(p) else p for p in v]
        return v

    @field_validator("content")
    @classmethod
    def _content(
        cls, v: str | list[TextPart] | None, info: ValidationInfo
    ) -> str | list[TextPart] | None:
        """Content may be missing or null only on an assistant message with ``tool_calls``
        or ``function_call``, as in OpenAI's API. A ``tool_calls`` / ``function_call`` that
        failed its own check (absent from ``info.data``) is that one problem, not a second
        one here (a trial's error ended "(also invalid: messages[0].content)")."""
        if v is None:
            if info.data.get("role") != "assistant":
                raise ValueError("content is required for this role (null is not allowed)")
            if not {"tool_calls", "function_call"} <= info.data.keys():
                return v  # a call of the wrong shape: refused under its own name
            if info.data.get("tool_calls") is None and info.data.get("function_call") is None:
                raise ValueError(
                    "content is required on an assistant message without tool_calls or "
                    "function_call"
                )
        if isinstance(v, list) and not v:
            raise ValueError("content must not be an empty array (give at least one part)")
        return v

    def calls(self) -> str | None:
        """The assistant's ``tool_calls`` / ``function_call`` as canonical JSON, where given
        and not empty (part of the reuse scope: histories with other calls are other
        contexts), else None."""
        given = {k: v for k, v in (("tool_calls", self.tool_calls), ("function_call",
                 self.function_call)) if v}  # fmt: skip
        return json.dumps(given, sort_keys=True, separators=(",", ":")) if given else None

    def text(self) -> str:
        """The message's text: its string, or its text parts one per line (as vLLM's
        OpenAI server joins them, ``"\\n".join``). Joined without a separator (a trial's
        finding), parts "What is the capital of" and "France?" reached the model as
        "…ofFrance?"."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content)


def _is_refusal(part: Any) -> bool:
    """Whether a content part is a ``refusal`` part (``{"type": "refusal", "refusal"}``)."""
    return isinstance(part, dict) and part.get("type") == "refusal"


# an assistant's tool call by its type: the fields of its body, each a string
_CALL_FIELDS = {"function": ("name", "arguments"), "custom": ("name", "input")}


def _strings(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Raise ``ValueError`` unless each of ``keys`` is a string in ``obj``."""
    for key in keys:
        if not isinstance(obj.get(key), str):
            got = "missing" if key not in obj else json_type(obj[key])
            raise ValueError(f"{where}.{key} must be a string ({got})")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: bool = False


class SamplingParams(BaseModel):
    """Parameters shared by chat and plain completions. Strict, as OpenAI's API is: a string
    where a number or boolean belongs (``"stream": "yes"``, ``"temperature": "0.2"``,
    ``"max_tokens": true``) is a 400 naming the parameter, not a guess (an integer is still a
    number)."""

    model_config = ConfigDict(extra="allow", strict=True)
    # the endpoint's OpenAI parameters that are not fields: with the fields, the names a
    # misspelling is compared with (``misspelled``), so each endpoint suggests only its own
    OTHER_NAMES: ClassVar[tuple[str, ...]] = ()

    model: ModelName = Field(
        None,
        min_length=1,
        description="omit for the default model",
        json_schema_extra={"minLength": 1},
    )
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=INT64[0], le=INT64[1])
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # OpenAI's values; caps reasoning on models with reasoning = true, ignored by others
    reasoning_effort: ReasoningEffort | None = None
    # checked here, then forwarded unchanged (``passthrough``)
    response_format: dict[str, Any] | None = None
    logit_bias: dict[str, Any] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)

    @field_validator("response_format")
    @classmethod
    def _response_format(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        kind = v.get("type")
        if kind not in RESPONSE_FORMATS:
            raise ValueError(
                f"type must be one of {', '.join(RESPONSE_FORMATS)} (got {json.dumps(kind)})"
            )
        if kind == "json_schema" and not isinstance(v.get("json_schema"), dict):
            raise ValueError("type json_schema requires a json_schema object")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, bias in (v or {}).items():
            if not (key.isascii() and key.isdigit()):
                raise ValueError(f"keys must be token ids (integers as strings), not {key!r}")
            if isinstance(bias, bool) or not isinstance(bias, int | float):
                raise ValueError(f"the bias of token {key} must be a number")
            if not -100 <= bias <= 100:
                raise ValueError(f"the bias of token {key} must be between -100 and 100")
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        if v == "" or (isinstance(v, list) and "" in v):
            raise ValueError("a stop sequence must not be empty")
        return v

    @field_validator("stream", mode="before")
    @classmethod
    def _stream(cls, v: object) -> object:
        return False if v is None else v  # null is "not given", as for every optional field

    @field_validator("stream_options")
    @classmethod
    def _stream_options(cls, v: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if v is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed when stream is true")
        return v

    @field_validator("n")
    @classmethod
    def _n(cls, v: int | None) -> int | None:
        if v is not None and v != 1:
            raise ValueError("only n=1 is supported")
        return v

    def unsupported(self) -> str | None:
        """The first parameter given that the gateway does not implement, if any: any value
        but null (``"tools": 0`` and ``"logprobs": 0`` were taken for absent), except
        ``"logprobs": false``, which asks for nothing."""
        extra = self.model_extra or {}
        for name in UNSUPPORTED:
            value = extra.get(name)
            if value is not None and not (name == "logprobs" and value is False):
                return name
        return None

    def misspelled(self) -> list[tuple[str, str]]:
        """The parameters given that are not this endpoint's (the gateway's or OpenAI's) but
        are spelled almost like one (``near_miss``), each with that name, in the body's order:
        ``[("max_token", "max_tokens")]``. Other unknown names are forwarded to upstreams
        (OpenAI-compatible servers take their own), but a typo would silently fall back to a
        default (a length limit, a temperature) and split the reuse scope."""
        return type(self).misspellings(self.model_extra or {})

    @classmethod
    def misspellings(cls, body: Mapping[Any, Any]) -> list[tuple[str, str]]:
        """``misspelled`` for the keys of a request ``body`` (one that failed validation
        too, whose other problems are named after them). Only the endpoint's own names are
        suggested: "tool" on text completions is no misspelling of chat's "tools"."""
        known = [*cls.model_fields, *cls.OTHER_NAMES, "boundgate"]
        out = []
        for name in body:
            if not isinstance(name, str) or name in known or name.lower() in VENDOR_PARAMETERS:
                continue
            close = near_miss(name, known)
            if close is not None:
                out.append((name, close))
        return out

    def wrongly_typed(self) -> tuple[str, str] | None:
        """The first OpenAI parameter forwarded unchanged (``PASSTHROUGH_TYPES``) whose value
        is not of the type OpenAI's API takes, with what it should be; null is "not given"."""
        extra = self.model_extra or {}
        for name, kind in PASSTHROUGH_TYPES.items():
            value = extra.get(name)
            if value is not None and not isinstance(value, kind):
                return name, f"{name} must be {_JSON_TYPE[kind]}"
        return None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def passthrough(self) -> dict[str, Any]:
        """Parameters sent on to an upstream unchanged (reasoning_effort too: the gateway
        drops it for models that are not reasoning models)."""
        out = {k: v for k, v in (self.model_extra or {}).items() if k != "boundgate"}
        if self.response_format is not None:
            out["response_format"] = self.response_format
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias
        for name in ("presence_penalty", "frequency_penalty"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        if self.reasoning_effort is not None:
            out["reasoning_effort"] = self.reasoning_effort
        return out


class ChatCompletionRequest(SamplingParams):
    OTHER_NAMES = (*UNSUPPORTED, *OPENAI_PASSTHROUGH)

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    # checked here, then forwarded unchanged: OpenAI's shapes (``Metadata``), and text, the
    # one output modality the models behind the gateway have
    metadata: Metadata | None = None
    modalities: list[Literal["text"]] | None = None
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None

    @field_validator("max_completion_tokens")
    @classmethod
    def _one_limit(cls, v: int | None, info: ValidationInfo) -> int | None:
        """Both limits at once: OpenAI refuses it (a trial's max_tokens 3 was silently
        overruled by max_completion_tokens 30)."""
        if v is not None and info.data.get("max_tokens") is not None:
            raise ValueError(
                "setting max_tokens and max_completion_tokens at the same time is not "
                "supported (max_tokens is the older name of max_completion_tokens)"
            )
        return v

    def passthrough(self) -> dict[str, Any]:
        out = super().passthrough()
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.modalities is not None:
            out["modalities"] = self.modalities
        for name in ("store", "service_tier"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        return out


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
    energy_method: str = Field(description="rapl, nvml or estimate")
    carbon_g: float = Field(description="gCO2e: energy × grid intensity")
    carbon_range_g: list[float] = Field(min_length=2, max_length=2)
    grid_zone: str
    grid_gco2_per_kwh: float
    grid_source: str = Field(
        description="where the intensity came from: the bundled data with its attribution "
        "(bundled:Electricity Maps (ODbL 1.0) 2023) or the live provider"
    )
    # set on generations that went through the reuse layer
    reuse: str | None = Field(None, description="hit-exact, hit-semantic, miss, bypass, …")
    document_id: str | None = None
    similarity: float | None = None
    pair_score: float | None = Field(
        None, description="the pair model's score of that candidate, when scored"
    )
    guard_veto: str | None = Field(
        None,
        description="where nothing was reused: the guards' conflicts (e.g. number,unit) with "
        "the nearest stored question they vetoed",
    )
    guard_veto_document: str | None = Field(
        None,
        description="with guard_veto: the vetoed stored question's document (doc_…) or "
        "answer (ans_…), which may be another than the one similarity and pair_score speak of",
    )
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
    content: str | None = Field(description="the answer; null beside an upstream's refusal")
    refusal: str | None = Field(
        None, description="an upstream model's refusal (OpenAI's), relayed and never stored"
    )


class ChatChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str = Field(
        description="stop or length; an upstream's content_filter or tool_calls as it said"
    )


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
