"""OpenAI's Files and Batch APIs: batches run as deferrable jobs in clean hours.

A batch is validated when it is created (every line: JSON, only OpenAI's four keys,
``custom_id`` unique, ``method`` POST, ``url`` the batch's endpoint, ``body`` an object), then
queued as one ``batch`` job whose start the scheduler's policy picks: the forecast-cleanest
hours that still finish before the completion window ends. When it runs, every line goes
through the same gateway pipeline as a live request (reuse, metering, ledger). The batch object
reports, under ``boundgate``, the scheduled and actual start, the carbon its lines emitted, and
the counterfactual carbon had the same energy been used when the batch was submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ...errors import (
    AuthenticationError,
    BoundgateError,
    ErrorCode,
    InvalidRequestError,
    NotFoundError,
)
from ...gateway import Gateway, RequestContext
from ...scheduler.jobs import HandBack, new_job_id
from ...scheduler.policy import HOUR
from ...settings.sections import LONGEST_WINDOW_S
from ...store import BatchLineRow, FileRow, StoreUnavailableError
from ...tenants import Tenant
from .. import generation
from ..chat.protocol import ChatCompletionRequest
from ..embeddings.protocol import EmbeddingRequest
from .idempotency import BATCHES, FILES, Idempotency, fingerprint
from .lines import bad_input, check_body, has_requests, lines_model, parse_lines

log = logging.getLogger("boundgate.batches")

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
_WINDOW = re.compile(r"([1-9][0-9]{0,2})h")  # whole hours, no leading zero (fullmatch)
LONGEST_WINDOW_H = int(LONGEST_WINDOW_S // 3600)  # 168, as OpenAI's Batch API
TERMINAL = ("completed", "failed", "expired", "cancelled")


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


async def list_batches(
    gw: Gateway, ctx: RequestContext, *, limit: int, after: str | None
) -> dict[str, Any]:
    """The tenant's batches (every tenant's for an admin), newest first, OpenAI's list
    object; a running batch's ``request_counts`` from its kept lines. An ``after`` naming no
    batch of the tenant's is 404 naming ``after`` (not an empty last page)."""
    tenant = None if ctx.tenant.admin else ctx.tenant.name
    rows = await gw.store.batches(limit + 1, tenant, after)
    if not rows and after is not None:  # a cursor naming no batch of the tenant's: 404
        row = await gw.store.get_batch(after)
        if row is None or (tenant is not None and row[0] != tenant):
            raise NotFoundError(f"No such Batch object to list after: {after}", param="after")
    data = [await with_progress(gw, json.loads(body)) for *_, body in rows]
    return page(data, limit)


async def owned_file(
    gw: Gateway, ctx: RequestContext, file_id: str, param: str = "file_id"
) -> FileRow:
    """The file, if it is the tenant's (any for an admin); else 404 naming ``param``, the
    request's name for it (``input_file_id`` when a batch is created)."""
    f = await gw.store.get_file(file_id)
    if f is None or (f.tenant != ctx.tenant.name and not ctx.tenant.admin):
        raise NotFoundError(f"No such File object: {file_id}", param=param)
    return f


def iso_utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# the weight of the newest line in the measured mean run time of a batch line
LINE_S_WEIGHT = 0.2


def note_line_s(gw: Gateway, seconds: float) -> None:
    """Count a batch line's measured run time into ``gw.batch_line_s`` (an exponentially
    weighted mean, weight ``LINE_S_WEIGHT``)."""
    prev = gw.batch_line_s
    gw.batch_line_s = seconds if prev is None else prev + LINE_S_WEIGHT * (seconds - prev)


def line_estimate_s(gw: Gateway, configured_s: float) -> float:
    """The run time a batch is planned with per line: ``scheduler.batch_request_s``, or the
    mean this process measured if that is longer. A trial's lines (400 tokens each on the
    local model) took about 6 s against the 2 s configured: a batch planned for the cleanest
    hour started 8 minutes before its deadline and expired with 81 of 150 lines unrun."""
    measured = gw.batch_line_s
    return configured_s if measured is None else max(configured_s, measured)


def run_estimate_s(lines: int, window_s: float, request_s: float) -> float:
    """How long a batch of ``lines`` is expected to run (``request_s`` a line, a minute at
    least), never more than what is left of its window, ``window_s``: its job's duration,
    which its start is planned for."""
    return min(window_s, max(60.0, lines * request_s))


async def create_batch(
    gw: Gateway,
    ctx: RequestContext,
    *,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str] | None,
    request_s: float,
    idempotency_key: str | None = None,
    max_body_bytes: int | None = None,
) -> dict[str, Any]:
    """Check and store a batch, then queue its job (``POST /v1/batches``); the batch object.
    ``max_body_bytes``: the largest line body accepted (``parse_lines``).
    With an ``idempotency_key`` (``idempotency.py``): the batch an earlier request under it
    made, as it is now, and nothing made again; 409 ``idempotency_key_reused`` if that request
    had other parameters. Raises ``InvalidRequestError`` (400) for a bad endpoint, window or
    input file, ``NotFoundError`` (404) for an input file not the tenant's."""
    idem = None
    if idempotency_key is not None:
        params = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
            # an empty object sets nothing, as an absent one (a trial's retry with
            # "metadata": {} was a 409)
            "metadata": metadata or None,
        }
        idem = Idempotency(BATCHES, idempotency_key, fingerprint(params))
        made = await idem.made_before(gw.store, ctx, gw.clock.time())
        if made is not None:  # (its input file may be gone since: it is not read again)
            return await with_progress(gw, (await get_batch(gw, ctx, made))[1])
    if endpoint not in ENDPOINTS:
        raise InvalidRequestError(
            f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint"
        )
    if endpoint == "/v1/embeddings" and gw.reuse is None:  # its every line would be a 404
        raise InvalidRequestError(
            "this gateway serves no embeddings: they need the reuse layer, which is disabled",
            param="endpoint",
        )
    m = _WINDOW.fullmatch(completion_window)
    if m is None or not 1 <= int(m.group(1)) <= LONGEST_WINDOW_H:
        raise InvalidRequestError(
            f"completion_window must be whole hours between 1h and {LONGEST_WINDOW_H}h, written "
            "without a leading zero, e.g. '24h'",
            param="completion_window",
        )
    f = await owned_file(gw, ctx, input_file_id, "input_file_id")
    if f.purpose != "batch":
        raise bad_input("the input file's purpose must be 'batch'")
    lines = await asyncio.to_thread(  # up to 200 MiB
        partial(parse_lines, max_body_bytes=max_body_bytes), f.content, endpoint
    )
    now = gw.clock.time()
    window_s = int(m.group(1)) * 3600.0
    duration_s = run_estimate_s(len(lines), window_s, line_estimate_s(gw, request_s))
    batch_id = "batch_" + uuid.uuid4().hex[:24]
    if gw.jobs is None:  # pragma: no cover - assembly always builds a queue
        raise BoundgateError("batches need a job queue")
    planned = await asyncio.to_thread(gw.jobs.plan, "batch", window_s, duration_s)
    job_id = new_job_id()
    intensity = await asyncio.to_thread(
        gw.carbon.intensity, gw.grid_zone, datetime.fromtimestamp(now, tz=UTC)
    )
    batch: dict[str, Any] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "errors": None,
        "input_file_id": input_file_id,
        "completion_window": completion_window,
        "status": "in_progress",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": int(now),
        "in_progress_at": int(now),
        "expires_at": int(now + window_s),
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        "metadata": metadata,
        "model": lines_model(lines),
        "usage": None,  # set when the batch ends (_set_totals)
        "boundgate": {
            "job_id": job_id,
            "key_id": ctx.tenant.key_id,  # lines run under this key's limits
            "state": "scheduled",
            "scheduled_start": iso_utc(planned[0]),
            "started_at": None,
            "grid_zone": gw.grid_zone,
            "submitted_gco2_per_kwh": intensity.gco2_per_kwh,
            "energy_wh": 0.0,
            "carbon_g": 0.0,
            "run_now_carbon_g": 0.0,
            "shifting_saved_g": 0.0,
            "reuse_avoided_wh": 0.0,
        },
    }
    key = idem.kept(ctx, batch_id, now) if idem is not None else None
    try:
        kept = await gw.store.put_batch(
            batch_id, ctx.tenant.name, now, json.dumps(batch), key, input_file_id=input_file_id
        )
    except LookupError:  # deleted while it was read and checked: no batch is made
        raise NotFoundError(
            f"No such File object: {input_file_id} (deleted while the batch was made)",
            param="input_file_id",
        ) from None
    if kept is not None and idem is not None:  # a request under the key made it meanwhile
        return await with_progress(gw, (await get_batch(gw, ctx, idem.same_request(kept)))[1])
    # queued only once the batch it runs exists
    await gw.jobs.submit(
        "batch",
        {"batch": batch_id},
        deadline_s=window_s,
        duration_s=duration_s,  # a replan keeps the run inside its window
        job_id=job_id,
        planned=planned,
    )
    return batch


async def get_batch(
    gw: Gateway, ctx: RequestContext | None, batch_id: str
) -> tuple[str, dict[str, Any]]:
    row = await gw.store.get_batch(batch_id)
    if row is None or (ctx is not None and row[0] != ctx.tenant.name and not ctx.tenant.admin):
        raise NotFoundError(f"No such Batch object: {batch_id}", param="batch_id")
    return row[0], json.loads(row[1])


async def update_batch(
    gw: Gateway,
    batch_id: str,
    change: Callable[[dict[str, Any]], bool | None],
    files: Sequence[FileRow] = (),
) -> tuple[str, dict[str, Any]] | None:
    """Apply ``change`` to batch ``batch_id``'s object as it is in the store and save it;
    when another writer changed it in between (a cancel beside the run, a replica), again
    on the object as it is now (compare-and-set, ``FileStore.replace_batch``). ``change``
    returns False to leave the object as it is, or raises. ``files``: stored with the object
    when it is saved, never when ``change`` leaves it (the batch's output and error files: of
    writers ending it at once, only the one that ends it writes them). Returns ``(tenant,
    object)`` as saved or left; None if there is no such batch. (Saving a copy read earlier
    lost a cancel that came while the run parsed its input, and a cancel answered as the run
    completed left the batch ``cancelling`` for good: an audit's findings.)"""
    for _ in range(100):
        row = await gw.store.get_batch(batch_id)
        if row is None:
            return None
        tenant, raw = row
        batch = json.loads(raw)
        if change(batch) is False:
            return tenant, batch
        if await gw.store.replace_batch(batch_id, raw, json.dumps(batch), files):
            return tenant, batch
    raise BoundgateError(f"batch {batch_id} kept changing while it was being saved")


def _cancellable(batch: dict[str, Any]) -> None:
    """Raises ``InvalidRequestError`` (400) for a batch that ended otherwise than cancelled
    (completed, failed, expired); a cancelled one is answered as it is."""
    if batch["status"] in TERMINAL and batch["status"] != "cancelled":
        raise InvalidRequestError(
            f"batch {batch['id']} is {batch['status']}; it cannot be cancelled",
            param="batch_id",
        )


async def cancel_batch(gw: Gateway, ctx: RequestContext, batch_id: str) -> dict[str, Any]:
    """Cancel a batch: at once if its job has not started (the lines a run before it kept,
    if any, written as its files), else ``cancelling`` until the run stops before its next
    line. A second cancel keeps the first ``cancelling_at``; a cancel of a batch already
    cancelled answers it as it is (a client retrying a cancel whose answer it lost got a 400
    that said the batch "cannot be cancelled"); one of a batch that ended otherwise is 400."""
    _, batch = await get_batch(gw, ctx, batch_id)  # (its owner's, or 404)
    _cancellable(batch)
    if batch["status"] == "cancelled":
        return batch
    now = int(gw.clock.time())
    job_id = batch["boundgate"]["job_id"]
    if await gw.store.cancel_job(job_id):  # not started (or waiting to retry): ends now
        return await end_without_a_run(gw, batch_id, now, cancelled=True)

    def ask(b: dict[str, Any]) -> bool | None:
        _cancellable(b)  # (it ended meanwhile)
        if b["status"] in ("cancelling", "cancelled"):
            return False  # asked before
        b.update(status="cancelling", cancelling_at=now)
        return None

    done = await update_batch(gw, batch_id, ask)
    assert done is not None
    if any(j.id == job_id for j in await gw.store.jobs("running")):
        return done[1]  # the run stops before its next line and ends it
    # no job will run it any more (it failed or ended without ending the batch)
    return await end_without_a_run(gw, batch_id, now, cancelled=True)


async def end_without_a_run(
    gw: Gateway, batch_id: str, now: int, *, cancelled: bool, reason: str = ""
) -> dict[str, Any]:
    """End a batch no run will end: ``cancelled``, or ``failed`` with ``reason``, with the
    lines an earlier run kept written as its output and error files and totalled in its
    ``boundgate`` object. A batch that ended meanwhile is left as it is. Returns the
    object."""
    row = await gw.store.get_batch(batch_id)
    if row is None:
        raise NotFoundError(f"No such Batch object: {batch_id}", param="batch_id")
    current: dict[str, Any] = json.loads(row[1])
    if current["status"] in TERMINAL:
        return current  # (its run ended it: no second set of files)
    rows = await gw.store.batch_lines(batch_id)
    written, files = batch_files(gw, row[0], batch_id, rows)

    def end(b: dict[str, Any]) -> bool | None:
        if b["status"] in TERMINAL:
            return False
        _set_files(b, files)
        _set_totals(b, rows, gw.grid_zone)  # an earlier run's lines (and shifting's saving)
        if cancelled or b["status"] == "cancelling":  # what its owner asked for
            b.update(status="cancelled", cancelled_at=now)
            b["cancelling_at"] = b["cancelling_at"] or now
            b["boundgate"]["state"] = "cancelled"
            return None
        b.update(status="failed", failed_at=now)
        b["errors"] = {
            "object": "list",
            "data": [{"code": ErrorCode.INTERNAL_ERROR.value, "message": reason, "param": None,
                      "line": None}],
        }  # fmt: skip
        b["boundgate"]["state"] = "failed"
        return None

    ended = await update_batch(gw, batch_id, end, written)
    await gw.store.drop_batch_lines(batch_id)
    await gw.store.purge_deleted_files()  # its input, if deleted before the cancel
    assert ended is not None
    return ended[1]


async def fail_batch(gw: Gateway, batch_id: str, reason: str) -> None:
    """End a batch that cannot go on (its job failed for good, or its input can no longer be
    read): ``failed`` with ``reason`` (shown to the client), or ``cancelled`` if that was
    asked, the lines kept so far written either way; a batch is never left ``in_progress``
    or ``cancelling`` without a job."""
    with contextlib.suppress(NotFoundError):  # (no such batch: nothing to end)
        await end_without_a_run(gw, batch_id, int(gw.clock.time()), cancelled=False, reason=reason)


def batch_files(
    gw: Gateway, tenant: str, batch_id: str, rows: list[BatchLineRow]
) -> tuple[list[FileRow], dict[str, Any]]:
    """A batch's finished lines ``rows`` (input order) as its output and error files, not
    stored yet (they go with the compare-and-set that ends the batch, ``update_batch``), and
    what the batch object gets (``_set_files``): the files' ids and the counts."""
    written: list[FileRow] = []
    files: dict[str, Any] = {}
    for kind in ("output", "error"):
        records = [r.record for r in rows if r.kind == kind]
        if records:
            f = file_row(
                gw, tenant, "batch_output", f"{batch_id}_{kind}.jsonl",
                ("\n".join(records) + "\n").encode(),
            )  # fmt: skip
            written.append(f)
            files[f"{kind}_file_id"] = f.id
    done = sum(r.kind == "output" for r in rows)
    files["request_counts"] = {"completed": done, "failed": len(rows) - done}
    return written, files


def _set_files(batch: dict[str, Any], files: dict[str, Any]) -> None:
    for k, v in files.items():
        if k == "request_counts":
            batch["request_counts"].update(v)
        else:
            batch[k] = v


async def with_progress(gw: Gateway, batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` with ``request_counts`` of a running batch read from its kept lines (the
    stored object counts them only when it ends); a batch stored before ``model`` and
    ``usage`` were kept shows them null."""
    batch.setdefault("model", None)
    batch.setdefault("usage", None)
    if batch["status"] not in TERMINAL:
        completed, failed = await gw.store.batch_line_counts(batch["id"])
        batch["request_counts"].update(completed=completed, failed=failed)
    return batch


async def batch_owner(gw: Gateway, tenant: str, key_id: str | None) -> Tenant | None:
    """The tenant a batch's lines run as: the key that created it, with that key's current
    limits (requests per minute, daily tokens); None when that key has been revoked. A batch
    created without a key (open mode) runs as its tenant with the default limits. Asked
    before every line (``KeyStore.get_key`` is as cheap as a request's key check), so a key
    revoked by any process stops its batch at the next line."""
    if key_id is None:
        return Tenant(name=tenant)
    key = await gw.store.get_key(key_id)
    return None if key is None or key.revoked else Tenant.of_key(key)


MAX_LINE_WAIT_S = 120.0  # the longest a line waits for its key's requests-per-minute window
HAND_BACK_MARGIN_S = 5.0  # a batch hands its job back only when it may run again this long
# before it expires (the job's deadline is the batch's expiry, give or take the moments
# between the two stamps, and a job handed back past its deadline is skipped)
REVOKED = "the API key that created this batch was revoked"


async def _serve_paced(
    gw: Gateway,
    ctx: RequestContext,
    endpoint: str,
    body: dict[str, Any],
    key_id: str | None,
    expires_at: float,
) -> dict[str, Any]:
    """Serve one line under the owner's limits. Over the requests-per-minute limit the batch
    hands its job back (``HandBack``: pending again once the window frees up, the lines
    answered kept) so that the process's batch slot runs other work meanwhile; a wait that
    would end past the batch's expiry (``expires_at``, epoch s) is waited out in place (at
    most ``MAX_LINE_WAIT_S`` at a time), then the line fails with 401 if the key
    (``key_id``) was revoked meanwhile. Over the daily token budget it fails with the 429
    error, as an interactive request would."""
    wait = await gw.limiter.rpm_wait_s(ctx.tenant)
    if wait > 0 and gw.clock.time() + wait + HAND_BACK_MARGIN_S < expires_at:
        # a trial: one tenant's batch waiting in place for its key's window held the single
        # batch slot, and every other tenant's batch waited behind it (168 s)
        raise HandBack(
            f"the key's requests-per-minute limit: the next line may run in {wait:.0f} s",
            retry_after_s=wait,
        )
    waited = False
    for _ in range(100):
        if wait <= 0:
            break
        await asyncio.sleep(min(wait, MAX_LINE_WAIT_S))
        waited = True
        wait = await gw.limiter.rpm_wait_s(ctx.tenant)
    if waited and await batch_owner(gw, ctx.tenant.name, key_id) is None:
        raise AuthenticationError(REVOKED)
    out, _ = await _serve(gw, ctx, endpoint, body)
    return out


async def run_batch(
    gw: Gateway, payload: dict[str, Any], stopping: Callable[[], bool] = lambda: False
) -> dict[str, Any]:
    """Job handler: run every line through the gateway; write output and error files.
    ``stopping``: asked before each line; True (the process is shutting down,
    ``JobRunner.stop``) hands the job back (HandBack) with the lines answered kept.

    Each finished line is kept in the store (``FileStore.put_batch_line``) until the files
    are written, so a run that takes over the job after its process died (a lease that
    expired) goes on from the lines left: only a line in flight when the process died is
    served twice. A store outage (StoreUnavailableError) is raised for the job runner to hand
    the job back, not made a failed line or batch; the line it cut short runs again. So is
    the key's requests-per-minute limit (HandBack, ``_serve_paced``), before the line runs."""
    batch_id = str(payload["batch"])
    tenant, batch = await get_batch(gw, None, batch_id)
    if batch["status"] in TERMINAL:
        await gw.store.drop_batch_lines(batch_id)  # a run that died after saving it
        return {"skipped": batch["status"]}
    # lines finished by an earlier run of this job (its process died): not served again
    kept = {r.line: r for r in await gw.store.batch_lines(batch_id)}
    # deleted while the batch ran, the file is kept for it (``FileStore.delete_file``)
    infile = await gw.store.get_file(batch["input_file_id"], deleted=True)
    if infile is None:  # gone before the batch was stored: keep what was answered
        total = batch["request_counts"]["total"]
        answered = (
            f"{len(kept)} of {total} lines were answered before and are in the output and "
            "error files"
            if kept
            else f"none of its {total} lines had been answered (no output or error file)"
        )
        missing = f"the input file {batch['input_file_id']} is gone; {answered}"
        batch = await _close(
            gw, tenant, batch_id, kept, fault=("missing_file", missing), fault_line=False
        )
        return {"failed": "input file missing", "kept": len(kept)}
    endpoint = batch["endpoint"]
    try:
        # (up to 200 MiB: off the event loop, as at creation)
        lines = await asyncio.to_thread(parse_lines, infile.content, endpoint, check=False)
    except BoundgateError as err:  # checked at creation: only a changed file gets here
        await fail_batch(gw, batch_id, err.message)
        return {"failed": err.message}
    now = gw.clock.time()
    started = iso_utc(now)
    expires_at = float(batch["expires_at"])

    def start(b: dict[str, Any]) -> bool | None:
        if b["status"] in TERMINAL:
            return False
        b["boundgate"]["state"] = "running"
        # a run taking over after its process died keeps the batch's first start; one that
        # finds the window over runs no line and is no start (a trial's batch, its gateway
        # down past the window, read as started after it expired and was counted in reports)
        if now <= expires_at:
            b["boundgate"]["started_at"] = b["boundgate"].get("started_at") or started
        return None

    await update_batch(gw, batch_id, start)
    cancelled = expired = False
    key_id = batch["boundgate"].get("key_id")
    fault: str | None = None
    try:
        for line, item in enumerate(lines):
            if line in kept:
                continue
            _, current = await get_batch(gw, None, batch_id)
            if current["status"] in ("cancelling", "cancelled"):
                cancelled = True
                break
            if gw.clock.time() > expires_at:  # the completion window is over
                expired = True
                break
            if stopping():  # shutting down: the line in flight was finished and kept
                raise HandBack("its process is shutting down", retry_after_s=0.0)
            await gw.yield_to_interactive()  # interactive requests first
            began = time.monotonic()
            row = await _run_line(gw, key_id, tenant, endpoint, batch_id, line, item, expires_at)
            note_line_s(gw, time.monotonic() - began)
            await gw.store.put_batch_line(row)
            kept[line] = row
    except (StoreUnavailableError, HandBack):
        # an outage, or the key's requests-per-minute limit: no fault of the batch's; its
        # job is handed back (JobRunner), and the run that takes it goes on from the lines
        # kept
        raise
    except Exception:  # not one line's fault: keep what was answered
        log.exception("batch %s failed after %d lines", batch_id, len(kept))
        fault = "the batch stopped on an internal error; the server log has the details"
    if expired and fault is None:
        for line, item in enumerate(lines):
            if line not in kept:
                kept[line] = _expired_line(batch_id, line, item)
    batch = await _close(
        gw,
        tenant,
        batch_id,
        kept,
        cancelled=cancelled,
        expired=expired,
        fault=None if fault is None else (ErrorCode.INTERNAL_ERROR.value, fault),
    )
    counts = batch["request_counts"]
    return {
        "completed": counts["completed"],
        "failed": counts["failed"],
        "status": batch["status"],
    }


def _expired_line(batch_id: str, line: int, item: dict[str, Any]) -> BatchLineRow:
    """The error record of a line the completion window ended before it ran, as OpenAI
    writes it (``batch_expired``)."""
    record = {
        "id": "batch_req_" + uuid.uuid4().hex[:24],
        "custom_id": item["custom_id"],
        "response": None,
        "error": {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        },
    }
    return BatchLineRow(batch_id, line, "error", json.dumps(record), 0.0, 0.0, 0.0)


async def _close(
    gw: Gateway,
    tenant: str,
    batch_id: str,
    kept: dict[int, BatchLineRow],
    *,
    cancelled: bool = False,
    expired: bool = False,
    fault: tuple[str, str] | None = None,
    fault_line: bool = True,
) -> dict[str, Any]:
    """End a run: write the finished lines ``kept`` (by line number) as the output and error
    files, total their energy, carbon and avoided energy, set the status (``failed`` with
    ``fault`` = (code, message), its ``line`` the first not answered, or null without
    ``fault_line``: no line was at fault, as when the input file is gone; else ``cancelled``
    if asked (by the run, or a cancel that came after its last check), ``expired`` when the
    completion window ended first, else ``completed``), save the batch as it is now
    (``update_batch``) and drop its kept lines. Returns the object."""
    now = int(gw.clock.time())
    rows = [kept[k] for k in sorted(kept)]
    written, files = batch_files(gw, tenant, batch_id, rows)

    def end(batch: dict[str, Any]) -> bool | None:
        if batch["status"] in TERMINAL:
            return False
        _set_files(batch, files)
        _set_totals(batch, rows, gw.grid_zone)
        bg = batch["boundgate"]
        if fault is not None:
            bg["state"] = "failed"
            batch.update(status="failed", failed_at=now)
            code, message = fault
            batch["errors"] = {
                "object": "list",
                "data": [{"code": code, "message": message, "param": None,
                          "line": len(rows) + 1 if fault_line else None}],
            }  # fmt: skip
        elif cancelled or batch["status"] == "cancelling":
            bg["state"] = "cancelled"
            batch.update(status="cancelled", cancelled_at=now)
            batch["cancelling_at"] = batch["cancelling_at"] or now
        elif expired:
            bg["state"] = "expired"
            batch.update(status="expired", expired_at=now)
        else:
            bg["state"] = "done"
            batch.update(status="completed", finalizing_at=now, completed_at=now)
        return None

    ended = await update_batch(gw, batch_id, end, written)
    await gw.store.drop_batch_lines(batch_id)
    await gw.store.purge_deleted_files()  # its input, if deleted while it ran
    if ended is None:
        raise NotFoundError(f"No such Batch object: {batch_id}", param="batch_id")
    return ended[1]


def batch_usage(rows: list[BatchLineRow]) -> dict[str, Any]:
    """OpenAI's ``BatchUsage`` of a batch's finished lines ``rows``: each answered line's
    ``usage`` summed (``prompt_tokens`` as ``input_tokens``, ``completion_tokens`` as
    ``output_tokens``, their ``cached_tokens`` and ``reasoning_tokens`` details); a line in the
    error file counts nothing."""
    got = {"input": 0, "cached": 0, "output": 0, "reasoning": 0}
    for row in rows:
        if row.kind != "output":
            continue
        response = json.loads(row.record).get("response") or {}
        usage = (response.get("body") or {}).get("usage") or {}
        got["input"] += int(usage.get("prompt_tokens") or 0)
        got["output"] += int(usage.get("completion_tokens") or 0)
        got["cached"] += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        details = usage.get("completion_tokens_details") or {}
        got["reasoning"] += int(details.get("reasoning_tokens") or 0)
    return {
        "input_tokens": got["input"],
        "input_tokens_details": {"cached_tokens": got["cached"]},
        "output_tokens": got["output"],
        "output_tokens_details": {"reasoning_tokens": got["reasoning"]},
        "total_tokens": got["input"] + got["output"],
    }


def _set_totals(batch: dict[str, Any], rows: list[BatchLineRow], zone: str) -> None:
    """Total the energy, carbon and avoided energy of a batch's finished lines ``rows`` in its
    ``boundgate`` object, with the carbon the same energy would have emitted at submission
    and what shifting saved, and their tokens in its ``usage`` (``batch_usage``): whatever the
    batch ends as (a line answered before it failed, expired or was cancelled was shifted all
    the same, and the report counts it). A batch the scheduler did not shift
    (``_shifted``; ``zone``: the grid zone its lines ran in) saved nothing: its run-now
    carbon is what it emitted."""
    batch["usage"] = batch_usage(rows)
    bg = batch["boundgate"]
    energy = sum(r.energy_wh for r in rows)
    carbon = sum(r.carbon_g for r in rows)
    if _shifted(batch, zone):
        run_now = energy / 1000.0 * float(bg["submitted_gco2_per_kwh"])
    else:
        run_now = carbon
    bg.update(
        energy_wh=energy,
        carbon_g=carbon,
        run_now_carbon_g=run_now,
        shifting_saved_g=_saving(run_now, carbon),
        reuse_avoided_wh=sum(r.avoided_wh for r in rows),
    )


def _shifted(batch: dict[str, Any], zone: str) -> bool:
    """Whether the scheduler moved the batch: planned (``boundgate.scheduled_start``) for an
    hour after the one it was submitted in (``created_at``), and run in the grid zone it was
    submitted in (``boundgate.grid_zone``). A batch run at once ran through the hours that
    running at once runs through, whatever their intensity, and one whose gateway moved to
    another zone has no like-for-like counterfactual: neither saved anything by shifting (a
    trial: a ``now`` batch of three hours reported 5 % saved, one taken at 19:00:10 after its
    18:59 submission a saving too, one run in another zone 91 %)."""
    bg = batch["boundgate"]
    planned = bg.get("scheduled_start")
    if bg.get("grid_zone") != zone or not planned:
        return False
    # the grid's carbon intensity is hourly: a batch planned in a later hour was shifted
    start = datetime.fromisoformat(str(planned)).timestamp()
    return int(start // HOUR) > int(float(batch["created_at"]) // HOUR)


def _saving(run_now_g: float, carbon_g: float) -> float:
    """What shifting saved: run-now carbon minus what was emitted; a difference within
    floating-point rounding of the two (the same hour's intensity) is 0, not -2.8e-17."""
    saved = run_now_g - carbon_g
    return 0.0 if abs(saved) <= 1e-9 * max(abs(run_now_g), abs(carbon_g)) else saved


async def _run_line(
    gw: Gateway,
    key_id: str | None,
    tenant: str,
    endpoint: str,
    batch_id: str,
    line: int,
    item: dict[str, Any],
    expires_at: float,
) -> BatchLineRow:
    """Serve input line ``line`` of a batch as its owner, the key ``key_id`` as it is now
    (``batch_owner``; 401 once revoked): the line's output record, or its error record (one
    line's fault is that line's error, never the batch's). Raises StoreUnavailableError in a
    store outage, HandBack at the key's requests-per-minute limit (``_serve_paced``): the line
    is run again when the job is."""
    line_id = "batch_req_" + uuid.uuid4().hex[:24]
    owner = await batch_owner(gw, tenant, key_id)
    ctx = gw.context(owner or Tenant(name=tenant), endpoint)
    ctx.batch_line = (batch_id, item["custom_id"])
    try:
        if owner is None:
            raise AuthenticationError(REVOKED)
        body = await _serve_paced(gw, ctx, endpoint, item["body"], key_id, expires_at)
    except (StoreUnavailableError, HandBack):
        raise  # no fault of the line's: the batch's job is handed back (run_batch)
    except Exception as exc:
        if isinstance(exc, BoundgateError):
            line_err: BoundgateError = exc
        else:
            log.exception("batch %s: line %r failed", batch_id, item["custom_id"])
            line_err = BoundgateError(
                "internal error; the server log has the details",
                code=ErrorCode.INTERNAL_ERROR,
            )
        await gw.record_error(ctx, line_err)
        response = {
            "status_code": line_err.status_code,
            "request_id": ctx.request_id,
            "body": line_err.to_dict(),
        }
        record = {"id": line_id, "custom_id": item["custom_id"], "response": response}
        # what the line spent before it failed (a generation cut by a fault, a route's rungs,
        # its lookup): metered in its ledger row, which the pipeline committed before raising
        spent = await gw.store.get_row(ctx.request_id)
        return BatchLineRow(
            batch_id, line, "error", json.dumps({**record, "error": None}),
            spent.wh if spent is not None else 0.0,
            spent.gco2 if spent is not None else 0.0,
            0.0,  # a failed request claims no avoided energy (ledger.claims_nothing)
        )  # fmt: skip
    info = body.get("boundgate", {})
    response = {"status_code": 200, "request_id": ctx.request_id, "body": body}
    record = {"id": line_id, "custom_id": item["custom_id"], "response": response}
    return BatchLineRow(
        batch_id,
        line,
        "output",
        json.dumps({**record, "error": None}),
        float(info.get("energy_wh", 0.0)),
        float(info.get("carbon_g", 0.0)),
        float(info.get("avoided_wh", 0.0)),
    )


async def _serve(
    gw: Gateway, ctx: RequestContext, endpoint: str, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    req = check_body(endpoint, body)
    if isinstance(req, EmbeddingRequest):
        from ..embeddings.serving import serve as embed

        return await embed(gw, ctx, req)
    if isinstance(req, ChatCompletionRequest):
        from ..chat.serving import to_generation_request

        return await generation.complete(gw, ctx, to_generation_request(req, gw), generation.CHAT)
    from ..completions.serving import serve

    result, headers = await serve(gw, ctx, req)
    assert isinstance(result, dict)
    return result, headers
