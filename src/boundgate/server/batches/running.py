"""The ``batch`` job's handler: every line of a batch through the gateway pipeline.

A batch runs as one deferrable job (``objects.create_batch`` queues it for the hours the
scheduler's policy picks). Each line is served as its owner's key is now (its limits; 401 once
revoked), through the same pipeline as a live request (reuse, metering, ledger), and kept in
the store as it finishes, so a run that takes over after its process died goes on from the
lines left; at the end the lines are written as the output and error files (``totals``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from ...errors import (
    AuthenticationError,
    BoundgateError,
    ErrorCode,
    NotFoundError,
)
from ...gateway import Gateway, RequestContext
from ...scheduler.jobs import HandBack
from ...store import BatchLineRow, StoreUnavailableError
from ...tenants import Tenant
from .. import generation
from ..chat.protocol import ChatCompletionRequest
from ..embeddings.protocol import EmbeddingRequest
from .lines import check_body, parse_lines
from .objects import TERMINAL, fail_batch, get_batch, iso_utc, note_line_s, update_batch
from .totals import batch_files, set_files, set_totals

log = logging.getLogger("boundgate.batches")


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
        set_files(batch, files)
        set_totals(batch, rows, gw.grid_zone)
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
