"""OpenAI's Files API as batches use it: upload (with an idempotency key), list, read.

A file is stored whole with its tenant (``FileStore``); a batch's input file must hold at least
one request when it is uploaded, and its output and error files are written when the batch ends
(``totals.batch_files``). Another tenant's file is a 404, as one that does not exist.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from ...errors import (
    ErrorCode,
    InvalidRequestError,
    NotFoundError,
)
from ...gateway import Gateway, RequestContext
from ...store import FileRow
from .idempotency import FILES, Idempotency, fingerprint
from .lines import has_requests


def file_object(f: FileRow) -> dict[str, Any]:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.size,
        "created_at": int(f.created),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": None,
    }


def file_row(gw: Gateway, tenant: str, purpose: str, filename: str, content: bytes) -> FileRow:
    """A new file (a fresh id, created now), not stored yet."""
    return FileRow(
        id="file-" + uuid.uuid4().hex[:24],
        tenant=tenant,
        purpose=purpose,
        filename=filename,
        size=len(content),
        created=gw.clock.time(),
        content=content,
    )


async def new_file(
    gw: Gateway, tenant: str, purpose: str, filename: str, content: bytes
) -> FileRow:
    """Store a new file (:func:`file_row`) and return it."""
    f = file_row(gw, tenant, purpose, filename, content)
    await gw.store.put_file(f)
    return f


async def upload_file(
    gw: Gateway,
    ctx: RequestContext,
    purpose: str,
    filename: str,
    content: bytes,
    idempotency_key: str | None = None,
) -> FileRow:
    """Store an uploaded file as the tenant's (``POST /v1/files``). With an
    ``idempotency_key`` (``idempotency.py``): the file an earlier upload under it made, if it
    is still there, else a new one kept with the key; 409 ``idempotency_key_reused`` if that
    upload had another purpose, name or content. Raises ``InvalidRequestError`` (400
    ``invalid_value``, ``param: file``) for a file without a request (:func:`has_requests`),
    before anything is stored."""
    if not has_requests(content):  # (a batch would refuse it only when created)
        what = "is empty" if not content else "has only blank lines"
        raise InvalidRequestError(
            f"the file {what}; a batch input file needs at least one request (JSON Lines: "
            "one request a line)",
            param="file",
            code=ErrorCode.INVALID_VALUE,
        )
    if idempotency_key is None:
        return await new_file(gw, ctx.tenant.name, purpose, filename, content)
    params = {"purpose": purpose, "filename": filename}
    digest = await asyncio.to_thread(fingerprint, params, content)  # (up to 200 MiB)
    idem = Idempotency(FILES, idempotency_key, digest)
    now = gw.clock.time()
    made = await idem.made_before(gw.store, ctx, now)
    if made is not None:
        return await owned_file(gw, ctx, made)
    f = file_row(gw, ctx.tenant.name, purpose, filename, content)
    kept = await gw.store.put_file(f, idem.kept(ctx, f.id, now))
    if kept is None:
        return f
    return await owned_file(gw, ctx, idem.same_request(kept))  # made meanwhile, under the key


def page(data: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """OpenAI's list object of the first ``limit`` of ``data`` (fetched with one more, which
    tells ``has_more``)."""
    shown = data[:limit]
    return {
        "object": "list",
        "data": shown,
        "first_id": shown[0]["id"] if shown else None,
        "last_id": shown[-1]["id"] if shown else None,
        "has_more": len(data) > limit,
    }


async def list_files(
    gw: Gateway,
    ctx: RequestContext,
    *,
    purpose: str | None,
    limit: int,
    after: str | None,
    ascending: bool,
) -> dict[str, Any]:
    """The tenant's files (every tenant's for an admin), OpenAI's list object. An ``after``
    naming no file the tenant has (or had, while a batch still reads it) is 404 naming
    ``after``: an empty last page said "no more" where 48 files were left (a break-it trial's
    cursor, deleted by another client between two pages)."""
    tenant = None if ctx.tenant.admin else ctx.tenant.name
    rows = await gw.store.files(tenant, purpose, limit + 1, after, ascending)
    if not rows and after is not None:
        f = await gw.store.get_file(after, deleted=True, content=False)
        if f is None or (tenant is not None and f.tenant != tenant):
            raise NotFoundError(f"No such File object to list after: {after}", param="after")
    return page([file_object(f) for f in rows], limit)


async def owned_file(
    gw: Gateway, ctx: RequestContext, file_id: str, param: str = "file_id"
) -> FileRow:
    """The file, if it is the tenant's (any for an admin); else 404 naming ``param``, the
    request's name for it (``input_file_id`` when a batch is created)."""
    f = await gw.store.get_file(file_id)
    if f is None or (f.tenant != ctx.tenant.name and not ctx.tenant.admin):
        raise NotFoundError(f"No such File object: {file_id}", param=param)
    return f
