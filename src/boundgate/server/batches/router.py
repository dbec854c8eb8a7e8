"""Routes for ``/v1/files`` and ``/v1/batches`` (OpenAI's formats)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ...errors import ErrorCode, InvalidRequestError, PayloadTooLargeError
from ...gateway import RequestContext
from ..chat.protocol import Metadata
from ..common import (
    StrictJSONRoute,
    context,
    gateway_of,
    refuse_unknown_query,
    unsupported_parameter,
)
from ..openapi import errors, ok
from . import files, objects
from .idempotency import HEADER, MAX_KEY_CHARS, checked_key
from .protocol import Batch, BatchList, FileDeleted, FileList, FileObject

router = APIRouter(route_class=StrictJSONRoute)
PURPOSES = ("batch",)


# the Idempotency-Key request header (server/batches/idempotency.py)
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description=f"1 to {MAX_KEY_CHARS} printable ASCII characters: a retry under the same "
        "key (per tenant and API key, for 24 h) gets the object the first request made, "
        "instead of making a second one; the key with other parameters is 409",
    ),
]


_UPLOAD_NOTES = {
    400: f"an empty file (`param: file`); a malformed `{HEADER}` (`param`); a form field other "
    "than one `file` and one `purpose` (`expires_after`: `unsupported_parameter`)"
}
UPLOAD_FIELDS = ("file", "purpose")


async def _checked_form(request: Request) -> None:
    """Refuse an upload's form fields other than one ``file`` and one ``purpose``: OpenAI's
    ``expires_after`` (the SDK sends ``expires_after[anchor]``, ``expires_after[seconds]``)
    as unsupported, anything else as unknown, and a second ``file`` or ``purpose`` part (a
    trial's upload with ``expires_after`` got a file that never expires, its other fields
    and second file part dropped without a word)."""
    form = await request.form()  # (parsed already for the route's parameters: cached)
    for name in dict.fromkeys(form.keys()):
        if name.split("[", 1)[0] == "expires_after":
            raise unsupported_parameter("expires_after", "(uploaded files are kept until deleted)")
        if name not in UPLOAD_FIELDS:
            raise InvalidRequestError(
                f"unknown form field {name!r}: POST /v1/files takes the fields file and purpose",
                param=name,
                code=ErrorCode.UNKNOWN_PARAMETER,
            )
        if len(form.getlist(name)) > 1:
            raise InvalidRequestError(
                f"the upload has {len(form.getlist(name))} {name} fields; it takes one",
                param=name,
            )


@router.post(
    "/v1/files",
    tags=["batches"],
    response_model=None,
    responses={
        **ok(FileObject),
        **errors(400, 401, 409, 413, notes=_UPLOAD_NOTES),
    },
)
async def upload_file(
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
    file: Annotated[UploadFile, File(description="JSONL, one request per line")],
    purpose: Annotated[str, Form()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """Upload a batch input file (purpose ``batch``). 400 ``invalid_value`` for another
    purpose, a file name with control characters (or cut short by one, as a line break
    ends the part's header and leaves an unterminated quote), a file without a request
    (empty, or blank lines only: ``param: file``, nothing stored), or a malformed
    ``Idempotency-Key``, and form fields other than one ``file`` and one ``purpose``
    (``_checked_form``); 409 ``idempotency_key_reused`` for a key an upload of another
    purpose, name or content used; 413 over ``server.max_file_bytes``."""
    await _checked_form(request)
    key = checked_key(request.headers.getlist(HEADER))
    if purpose not in PURPOSES:
        raise InvalidRequestError("purpose must be 'batch'", param="purpose")
    filename = _checked_filename(file.filename)
    encoding = (file.headers.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        # stored as sent, its lines would not be JSON: refused as the request's own
        # Content-Encoding is (a trial: a gzip part was accepted)
        raise InvalidRequestError(
            f"the file part's Content-Encoding {encoding!r} is not supported: upload the file "
            "as it is (identity)",
            param="file",
        )
    content = await file.read()
    limit = int(request.app.state.max_file_bytes)
    if len(content) > limit:  # (the form around it may have fitted: server.max_file_bytes)
        raise PayloadTooLargeError(f"the file is {len(content)} bytes; the limit is {limit}")
    gw = gateway_of(request)
    f = await files.upload_file(gw, ctx, purpose, filename, content, key)
    return files.file_object(f)


# Unicode's line and paragraph separators, and the bidirectional controls that make a name
# read otherwise than it is ("a\u202egnp.exe" shows as "aexe.png"; Unicode TR #36, 2.2)
_HIDDEN = frozenset("\u2028\u2029\u061c\u200e\u200f") | frozenset(
    chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def _checked_filename(name: str | None) -> str:
    """The uploaded file's name as stored (``upload.jsonl`` when none is given). Raises
    ``InvalidRequestError`` (``param: file``) for a control character (C0, DEL, C1), a line
    or paragraph separator or a bidirectional control (``_HIDDEN``) in it, a name of white
    space only, or a name starting with a quote, what a quoted ``filename`` cut by a line
    break leaves."""
    if not name:
        return "upload.jsonl"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in _HIDDEN for c in name):
        raise InvalidRequestError(
            "the file name must not contain control characters (line breaks, tabs, "
            "bidirectional controls such as U+202E, ...)",
            param="file",
        )
    if not name.strip():
        raise InvalidRequestError("the file name is blank", param="file")
    if name.startswith('"'):
        raise InvalidRequestError(
            "the file name is malformed: its quoted value is not closed (a line break in it?)",
            param="file",
        )
    return name


@router.get(
    "/v1/files",
    tags=["batches"],
    response_model=None,
    responses={
        **ok(FileList),
        **errors(400, 401, 404, notes={404: "`after` names no file of yours (`param: after`)"}),
    },
)
async def list_files(
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
    purpose: Annotated[str | None, Query(pattern="^(batch|batch_output)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    after: Annotated[str | None, Query(description="a file id: the page after it")] = None,
) -> dict[str, Any]:
    """Your files (every tenant's for an admin), by ``created_at`` (``order``)."""
    refuse_unknown_query(request, ("purpose", "limit", "order", "after"))
    return await files.list_files(
        gateway_of(request), ctx, purpose=purpose, limit=limit, after=after or None,
        ascending=order == "asc",
    )  # fmt: skip


@router.get(
    "/v1/files/{file_id}",
    tags=["batches"],
    response_model=None,
    responses={**ok(FileObject), **errors(401, 404)},
)
async def get_file(
    file_id: str, request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> dict[str, Any]:
    f = await files.owned_file(gateway_of(request), ctx, file_id)
    return files.file_object(f)


@router.get(
    "/v1/files/{file_id}/content",
    tags=["batches"],
    response_class=Response,
    responses={
        200: {
            "description": "The file's bytes (JSON Lines)",
            "content": {"application/jsonl": {"schema": {"type": "string"}}},
        },
        **errors(401, 404),
    },
)
async def file_content(
    file_id: str, request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> Response:
    f = await files.owned_file(gateway_of(request), ctx, file_id)
    return Response(f.content, media_type="application/jsonl")


@router.delete(
    "/v1/files/{file_id}",
    tags=["batches"],
    response_model=None,
    responses={**ok(FileDeleted), **errors(401, 404)},
)
async def delete_file(
    file_id: str, request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> dict[str, Any]:
    """Delete a file (yours; any for an admin). The input of a batch that has not ended is
    gone from the API at once and kept for that batch until it ends (``delete_file``):
    its accepted lines all run."""
    gw = gateway_of(request)
    await files.owned_file(gw, ctx, file_id)  # 404 for another tenant's, as for reads
    deleted = await gw.store.delete_file(file_id, gw.clock.time())
    return {"id": file_id, "object": "file", "deleted": deleted}


_CREATE_BATCH_NOTES = {
    400: f"a malformed `{HEADER}` (`param`)",
    404: "no such input file (`param: input_file_id`)",
}


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_file_id: str = Field(min_length=1)
    endpoint: str
    completion_window: str = "24h"
    metadata: Metadata | None = None  # as chat completions': 16 pairs, keys 64, values 512
    # OpenAI's, not implemented: refused by name (400 unsupported_parameter), not as a typo
    output_expires_after: Any = None


@router.post(
    "/v1/batches",
    tags=["batches"],
    response_model=None,
    responses={
        **ok(Batch),
        **errors(400, 401, 404, 409, 413, notes=_CREATE_BATCH_NOTES),
    },
)
async def create_batch(
    body: BatchRequest,
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """Queue a batch; it runs in the forecast-cleanest hours of its completion window. With
    an ``Idempotency-Key``, a retry gets the batch the first request made (409
    ``idempotency_key_reused`` if it had other parameters)."""
    if body.output_expires_after is not None:
        raise unsupported_parameter("output_expires_after", "(output files are kept until deleted)")
    key = checked_key(request.headers.getlist(HEADER))
    gw = gateway_of(request)
    batch = await objects.create_batch(
        gw,
        ctx,
        input_file_id=body.input_file_id,
        endpoint=body.endpoint,
        completion_window=body.completion_window,
        metadata=body.metadata,
        request_s=request.app.state.batch_request_s,
        idempotency_key=key,
        max_body_bytes=request.app.state.max_body_bytes,
    )
    runner = getattr(request.app.state, "runner", None)
    if runner is not None:
        runner.wake()
    return batch


@router.get(
    "/v1/batches",
    tags=["batches"],
    response_model=None,
    responses={
        **ok(BatchList),
        **errors(400, 401, 404, notes={404: "`after` names no batch of yours (`param: after`)"}),
    },
)
async def list_batches(
    request: Request,
    ctx: Annotated[RequestContext, Depends(context)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(description="a batch id: the page after it")] = None,
) -> dict[str, Any]:
    """Your batches (every tenant's for an admin), newest first. A query parameter it
    does not take is a 400 (a trial's ``?order=asc`` was ignored, the list newest first)."""
    refuse_unknown_query(request, ("limit", "after"))
    return await objects.list_batches(gateway_of(request), ctx, limit=limit, after=after or None)


@router.get(
    "/v1/batches/{batch_id}",
    tags=["batches"],
    response_model=None,
    responses={**ok(Batch), **errors(401, 404)},
)
async def get_batch(
    batch_id: str, request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> dict[str, Any]:
    gw = gateway_of(request)
    _, batch = await objects.get_batch(gw, ctx, batch_id)
    return await objects.with_progress(gw, batch)


@router.post(
    "/v1/batches/{batch_id}/cancel",
    tags=["batches"],
    response_model=None,
    responses={
        **ok(Batch),
        **errors(400, 401, 404, 413, notes={400: "the batch has already ended"}),
    },
)
async def cancel_batch(
    batch_id: str, request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> dict[str, Any]:
    gw = gateway_of(request)
    return await objects.with_progress(gw, await objects.cancel_batch(gw, ctx, batch_id))
