"""What every section model shares: unknown keys are errors, renamed keys stay accepted;
the environment prefix and the packaged default model's name."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    model_validator,
)

ENV_PREFIX = "BOUNDGATE_"
DEFAULT_MODEL_NAME = "smollm2-135m"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

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
