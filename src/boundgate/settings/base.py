"""What every section model shares: unknown keys are errors, values are of their setting's
type (strict), renamed keys stay accepted; list settings read from one string
(``ListSetting``); the environment prefix, the packaged default model's name and the
embeddings model's id."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    model_validator,
)
from pydantic_settings import NoDecode

ENV_PREFIX = "BOUNDGATE_"
DEFAULT_MODEL_NAME = "smollm2-135m"
# the id of the model /v1/embeddings serves with reuse on, listed by GET /v1/models beside the
# configured models (so no model may be named so: ``Settings._check_reserved_names``)
EMBEDDING_MODEL = "all-MiniLM-L6-v2"

T = TypeVar("T")


def list_from_text(value: Any) -> Any:
    """A list given as one string, as an environment variable gives it: a JSON array
    (``["vm", "gw.lan"]``) or comma-separated items (``vm,gw.lan``; empty: no item). Any
    other value is left to the list's own validation."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'{text!r} is not a JSON list ({exc.msg}); give JSON, e.g. \'["a", "b"]\', '
                "or comma-separated items, e.g. 'a,b'"
            ) from None
    return [item.strip() for item in text.split(",") if item.strip()]


# A list setting. pydantic-settings would decode its environment variable as JSON and stop
# with a traceback on anything else (``BOUNDGATE_SERVER__ALLOWED_HOSTS=vm``); NoDecode hands
# the string to ``list_from_text`` instead (pydantic-settings' documented way to parse a
# list from another format), which takes JSON or comma-separated items.
ListSetting = Annotated[list[T], NoDecode, BeforeValidator(list_from_text)]


class _Section(BaseModel):
    # Strict: TOML has integers, floats and booleans of its own, so a boolean or a quoted
    # number where a number is expected (``port = true``, ``rpm = "60"``) is a mistake, which
    # lax mode would read (``true`` as port 1). An integer is still a float setting's value;
    # a path is text (its fields say ``strict=False``). Environment variables are text: the
    # environment source reads them into their setting's type first (``loading._EnvSource``).
    # inf and nan are no setting's value (``pue = inf`` put "Infinity" in every response)
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )

    # renamed settings: old name → new name. Old names stay accepted (files and env); when
    # both are given the new name wins.
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _accept_old_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(old in data for old in cls.renamed):
            data = dict(data)
            for old, new in cls.renamed.items():
                if old in data:
                    data.setdefault(new, data.pop(old))
        return data
