"""OpenAI's Batch API: batch objects, created, read, listed, cancelled and ended.

A batch is validated when it is created (every line: JSON, only OpenAI's four keys,
``custom_id`` unique, ``method`` POST, ``url`` the batch's endpoint, ``body`` an object), then
queued as one ``batch`` job whose start the scheduler's policy picks: the forecast-cleanest
hours that still finish before the completion window ends (``running.py`` runs it). The batch
object reports, under ``boundgate``, the scheduled and actual start, the carbon its lines
emitted, and the counterfactual carbon had the same energy been used when the batch was
submitted (``totals.py``). Every change to a stored batch object is a compare-and-set
(``update_batch``), so a cancel beside a run or a replica is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ...errors import (
    BoundgateError,
    ErrorCode,
    InvalidRequestError,
    NotFoundError,
)
from ...gateway import Gateway, RequestContext
from ...scheduler.jobs import new_job_id
from ...settings.sections import LONGEST_WINDOW_S
from ...store import FileRow
from .files import owned_file, page
from .idempotency import BATCHES, Idempotency, fingerprint
from .lines import bad_input, lines_model, parse_lines
from .totals import batch_files, set_files, set_totals

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
_WINDOW = re.compile(r"([1-9][0-9]{0,2})h")  # whole hours, no leading zero (fullmatch)
LONGEST_WINDOW_H = int(LONGEST_WINDOW_S // 3600)  # 168, as OpenAI's Batch API
TERMINAL = ("completed", "failed", "expired", "cancelled")


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
        "usage": None,  # set when the batch ends (set_totals)
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
        set_files(b, files)
        set_totals(b, rows, gw.grid_zone)  # an earlier run's lines (and shifting's saving)
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
