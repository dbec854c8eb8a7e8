"""What a batch's finished lines add up to: its output and error files, its ``usage``, and
under ``boundgate`` the energy, carbon and avoided energy of its lines, with the carbon the
same energy would have emitted when the batch was submitted and what shifting saved.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ...gateway import Gateway
from ...scheduler.policy import HOUR
from ...store import BatchLineRow, FileRow
from .files import file_row


def batch_files(
    gw: Gateway, tenant: str, batch_id: str, rows: list[BatchLineRow]
) -> tuple[list[FileRow], dict[str, Any]]:
    """A batch's finished lines ``rows`` (input order) as its output and error files, not
    stored yet (they go with the compare-and-set that ends the batch, ``update_batch``), and
    what the batch object gets (``set_files``): the files' ids and the counts."""
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


def set_files(batch: dict[str, Any], files: dict[str, Any]) -> None:
    for k, v in files.items():
        if k == "request_counts":
            batch["request_counts"].update(v)
        else:
            batch[k] = v


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


def set_totals(batch: dict[str, Any], rows: list[BatchLineRow], zone: str) -> None:
    """Total the energy, carbon and avoided energy of a batch's finished lines ``rows`` in its
    ``boundgate`` object, with the carbon the same energy would have emitted at submission
    and what shifting saved, and their tokens in its ``usage`` (``batch_usage``): whatever the
    batch ends as (a line answered before it failed, expired or was cancelled was shifted all
    the same, and the report counts it). A batch the scheduler did not shift
    (``shifted``; ``zone``: the grid zone its lines ran in) saved nothing: its run-now
    carbon is what it emitted."""
    batch["usage"] = batch_usage(rows)
    bg = batch["boundgate"]
    energy = sum(r.energy_wh for r in rows)
    carbon = sum(r.carbon_g for r in rows)
    if shifted(batch, zone):
        run_now = energy / 1000.0 * float(bg["submitted_gco2_per_kwh"])
    else:
        run_now = carbon
    bg.update(
        energy_wh=energy,
        carbon_g=carbon,
        run_now_carbon_g=run_now,
        shifting_saved_g=saved_g(run_now, carbon),
        reuse_avoided_wh=sum(r.avoided_wh for r in rows),
    )


def shifted(batch: dict[str, Any], zone: str) -> bool:
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


def saved_g(run_now_g: float, carbon_g: float) -> float:
    """What shifting saved: run-now carbon minus what was emitted; a difference within
    floating-point rounding of the two (the same hour's intensity) is 0, not -2.8e-17."""
    saved = run_now_g - carbon_g
    return 0.0 if abs(saved) <= 1e-9 * max(abs(run_now_g), abs(carbon_g)) else saved
