"""Response models for ``/v1/files`` and ``/v1/batches`` (OpenAI's File and Batch objects with
boundgate's ``boundgate`` object on a batch). They declare what ``objects.py`` and
``files.py`` build; the OpenAPI tests check the server keeps to them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FileObject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["batch", "batch_output"]
    status: Literal["processed"]
    status_details: str | None = None


class RequestCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total: int
    completed: int
    failed: int


class InputTokensDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cached_tokens: int


class OutputTokensDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reasoning_tokens: int


class BatchUsage(BaseModel):
    """The tokens of a batch's answered lines, summed from each answer's ``usage`` (OpenAI's
    ``BatchUsage``: ``prompt_tokens`` are input, ``completion_tokens`` output). Set when the
    batch ends; a failed line counts nothing."""

    model_config = ConfigDict(extra="forbid")
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class BatchInfo(BaseModel):
    """A batch's scheduling and what it cost (see docs/api.md, Batches in clean hours)."""

    model_config = ConfigDict(extra="forbid")
    job_id: str
    key_id: str | None = Field(description="the key whose limits the lines run under")
    state: Literal["scheduled", "running", "done", "cancelled", "expired", "failed"]
    scheduled_start: str = Field(description="the forecast-cleanest start, ISO 8601 UTC")
    started_at: str | None
    grid_zone: str
    submitted_gco2_per_kwh: float
    energy_wh: float
    carbon_g: float
    run_now_carbon_g: float = Field(description="the same energy at the submission hour")
    shifting_saved_g: float
    reuse_avoided_wh: float


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["batch"]
    endpoint: str
    errors: dict[str, Any] | None
    input_file_id: str
    completion_window: str
    status: Literal[
        "validating",
        "failed",
        "in_progress",
        "finalizing",
        "completed",
        "expired",
        "cancelling",
        "cancelled",
    ]
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    metadata: dict[str, str] | None
    model: str | None = Field(
        default=None, description="the model every line names; null when lines name different ones"
    )
    usage: BatchUsage | None = Field(default=None, description="null until the batch ends")
    boundgate: BatchInfo


class FileList(BaseModel):
    """``GET /v1/files``: a page of files, OpenAI's list object."""

    model_config = ConfigDict(extra="forbid")
    object: Literal["list"]
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class BatchList(BaseModel):
    """``GET /v1/batches``: a page of batches, newest first, OpenAI's list object."""

    model_config = ConfigDict(extra="forbid")
    object: Literal["list"]
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    """``DELETE /v1/files/{file_id}``: OpenAI's deletion status."""

    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["file"]
    deleted: bool
