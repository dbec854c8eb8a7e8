"""What each dashboard page shows, computed from the gateway and its store.

Pure data (dicts, lists, numbers) for the templates: no HTML here. Every section is optional
and appears only when its data exists (reuse off: no reuse safety; no jobs: no job table).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from ..fmt import plain_decimal, significant
from ..fmt import utc_time as utc
from ..gateway import Gateway
from ..reuse import binding
from ..scheduler.jobs import StartPolicy, requirement_label, run_now
from ..scheduler.policy import CarbonAwareStart, MixedStart
from ..store import ApiKey, DocumentRow, LedgerQuery
from ..store.aggregate import BATCH_ENDED_STATES, REUSED
from ..tenants import Tenant, key_counters, reasoning_counter, rpm_counter, tokens_counter

HOUR = 3600.0
DAY = 86_400.0

# name → (window in seconds, bucket in seconds)
RANGES: dict[str, tuple[float, float]] = {
    "24h": (DAY, HOUR),
    "7d": (7 * DAY, 6 * HOUR),
    "30d": (30 * DAY, DAY),
}
OUTCOMES = ("ok", "error", "cancelled", "interrupted")
REUSE_RESULTS = (*REUSED, "miss", "bypass", "none")
DOC_STATES = ("active", "stale", "superseded", "revoked")


def _policy_name(policy: StartPolicy) -> str:
    """The start policy as ``scheduler.policy`` names it (the grid page said "function" for
    ``now``, a trial)."""
    if policy is run_now:
        return "now (jobs start when submitted)"
    if isinstance(policy, MixedStart):
        return "carbon and price"
    if isinstance(policy, CarbonAwareStart):
        return "carbon (the cleanest forecast hour before each deadline)"
    return type(policy).__name__


def num(x: float | None) -> str:
    """Three significant digits, never scientific notation (Wh per request can be tiny)."""
    if x is None:
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return plain_decimal(float(f"{x:.3g}"))


def pct(x: float | None) -> str:
    if x is None:
        return "–"
    v = 100 * x
    return f"{v:.2f} %" if 0 < abs(v) < 1 else f"{v:.1f} %"


def _bucket_label(start: float, bucket_s: float) -> str:
    return utc(start, "%m-%d" if bucket_s >= DAY else "%m-%d %H:00")


SERIES_FIELDS = (
    "requests", "errors", "reused", "wh", "avoided_wh", "gco2", "avoided_gco2", "batches",
    "shifting_saved_gco2", "routed", "rightsizing_avoided_wh", "rightsizing_avoided_gco2",
)  # fmt: skip
COUNT_FIELDS = ("requests", "errors", "reused", "batches", "routed")


async def _series(gw: Gateway, since: float, now: float, bucket_s: float) -> list[dict[str, float]]:
    """All tenants' totals per bucket from ``since`` to ``now``, zeros where nothing happened."""
    sums: dict[float, dict[str, float]] = {}
    for row in await gw.store.report_by_period(since, int(bucket_s)):
        acc = sums.setdefault(row.start, dict.fromkeys(SERIES_FIELDS, 0.0))
        for name in SERIES_FIELDS:
            acc[name] += getattr(row, name)
    out = []
    t = math.floor(since / bucket_s) * bucket_s
    while t <= now:
        out.append({"start": t, **sums.get(t, dict.fromkeys(SERIES_FIELDS, 0.0))})
        t += bucket_s
    return out


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[int(q) - 1]


async def overview(gw: Gateway, range_name: str) -> dict[str, Any]:
    window, bucket = RANGES[range_name]
    now = gw.clock.time()
    since = now - window
    points = await _series(gw, since, now, bucket)
    totals: dict[str, Any] = {name: sum(p[name] for p in points) for name in SERIES_FIELDS}
    for name in COUNT_FIELDS:
        totals[name] = int(totals[name])
    # as `boundgate report` counts it: reused over answered requests (errors answer nothing)
    answered = totals["requests"] - totals["errors"]
    totals["reuse_rate"] = totals["reused"] / answered if answered > 0 else None
    spent_and_avoided = totals["wh"] + totals["avoided_wh"]
    totals["avoided_share"] = (
        totals["avoided_wh"] / spent_and_avoided if spent_and_avoided else None
    )
    chart: dict[str, list[Any]] = {"labels": [_bucket_label(p["start"], bucket) for p in points]}
    for name in ("requests", "reused", "errors"):
        chart[name] = [int(p[name]) for p in points]
    for name in ("wh", "avoided_wh", "gco2", "avoided_gco2"):
        # significant digits, not decimals: a reused answer's lookup avoids ~1e-7 Wh, which
        # six decimals showed as 0 beside a total that said otherwise (a trial's finding)
        chart[name] = [significant(p[name]) for p in points]
    latency: dict[str, dict[str, list[float]]] = {}
    for model, reused, ms in await gw.store.latencies(since):
        latency.setdefault(model or "(none)", {"generated": [], "reused": []})[
            "reused" if reused else "generated"
        ].append(ms)
    models = []
    for model, parts in sorted(latency.items()):
        row: dict[str, Any] = {"model": model}
        for kind, values in parts.items():
            row[kind] = (
                {
                    "n": len(values),
                    "p50": _percentile(values, 50),
                    "p95": _percentile(values, 95),
                }
                if values
                else None
            )
        models.append(row)
    return {
        "range": range_name,
        "ranges": list(RANGES),
        "bucket": "day" if bucket >= DAY else f"{int(bucket // HOUR)} h",
        "totals": totals,
        "chart": chart,
        "models": models,
        "reuse": await asyncio.to_thread(reuse_safety, gw),
        "grid": await asyncio.to_thread(grid_now, gw),  # a live source may fetch
    }


def reuse_safety(gw: Gateway) -> dict[str, Any] | None:
    if gw.reuse is None:
        return None
    stats = gw.reuse.stats()
    delta = float(stats["error_bound"])
    high = stats["error_rate_ci"][1]
    return {
        **stats,
        "delta": delta,
        # under none_proven the estimate is read where next to nothing is served: not a bound
        # kept (a new user read "within the bound" beside "none proven")
        "within": (high is None or high <= delta)
        and stats["threshold_decided_by"] != "none_proven",
        "unproven": stats["threshold_decided_by"] == "none_proven",
        # below this many labels at the threshold, every would-be semantic hit is verified
        # (recomputed and compared), so none is served on an unproven threshold
        "learning": stats["threshold_decided_by"] == "initial_threshold"
        and stats["observations_above_threshold"] < stats["min_observations"],
        # the <meter> runs from 0 to twice the bound, so the bound sits in the middle
        "meter_max": 2 * delta,
    }


def grid_now(gw: Gateway) -> dict[str, Any] | None:
    try:
        i = gw.carbon.intensity(gw.grid_zone, datetime.fromtimestamp(gw.clock.time(), tz=UTC))
    except (KeyError, ValueError, LookupError):
        return None
    return {
        "zone": i.zone,
        "at": i.at.strftime("%Y-%m-%d %H:00"),
        "gco2_per_kwh": i.gco2_per_kwh,
        "method": i.method,
        "source": i.source,
    }


def _doc_body(row: DocumentRow) -> dict[str, Any]:
    body = json.loads(row.body)
    return body if isinstance(body, dict) else {}


def document_summary(row: DocumentRow) -> dict[str, Any]:
    body = _doc_body(row)
    return {
        "id": row.id,
        "question": body.get("name") or "",
        "state": row.state,
        "model": row.model,
        "model_version": row.model_version,
        "tenant": row.tenant,
        "askers": body.get("bg:askerCount"),
        "created": utc(row.created),
        "supersedes": row.supersedes,
        "superseded_by": row.superseded_by,
    }


def _searchable(row: DocumentRow) -> str:
    return f"{row.id} {row.tenant} {row.model} {row.body}".casefold()


async def documents(gw: Gateway, q: str, state: str | None, limit: int = 200) -> dict[str, Any]:
    rows = await gw.store.documents(state)
    needle = q.strip().casefold()
    if needle:
        rows = [r for r in rows if needle in _searchable(r)]
    return {
        "q": q,
        "state": state or "",
        "states": DOC_STATES,
        "counts": await gw.store.document_counts(),
        "total": len(rows),
        "rows": [document_summary(r) for r in rows[:limit]],
        "limit": limit,
        "reuse_on": gw.reuse is not None,
    }


async def _walk(gw: Gateway, row: DocumentRow, link: str, limit: int = 50) -> list[DocumentRow]:
    """Follow ``supersedes`` (older) or ``superseded_by`` (newer) links from ``row``, nearest
    first; bounded, in case a store was edited by hand into a loop."""
    out: list[DocumentRow] = []
    seen = {row.id}
    cursor = row
    while (next_id := getattr(cursor, link)) and len(out) < limit:
        found = await gw.store.get_document(next_id)
        if found is None or found.id in seen:
            break
        out.append(found)
        seen.add(found.id)
        cursor = found
    return out


def _signature(gw: Gateway, row: DocumentRow, body: dict[str, Any]) -> dict[str, Any]:
    """A document's signature state, checked with the key it verifies with
    (``Documents.key_of``): an imported one's issuer key (kept at import), else this gateway's
    own (the earlier key its proof names, kept after ``docs new-key``). ``ok`` None: no key to
    check it with; ``issuer``: the key is the issuer's, not this gateway's."""
    issuer = row.public_key is not None
    try:
        key = gw.reuse.documents.key_of(row) if gw.reuse is not None else None
    except ValueError as exc:
        return {"ok": False, "reason": f"its stored key: {exc}", "key": None, "issuer": issuer}
    if key is None:
        return {"ok": None, "reason": "no signing key on this gateway", "key": None}
    check = binding.verify(body, key)
    fingerprint = binding.key_fingerprint(key)
    return {"ok": check.ok, "reason": check.reason, "key": fingerprint, "issuer": issuer}


async def document(gw: Gateway, doc_id: str) -> dict[str, Any] | None:
    row = await gw.store.get_document(doc_id)
    if row is None:
        return None
    body = _doc_body(row)
    signature = _signature(gw, row, body)
    older = await _walk(gw, row, "supersedes")
    chain = [*reversed(older), row, *await _walk(gw, row, "superseded_by")]
    return {
        "doc": document_summary(row),
        "variants": body.get("bg:questionVariants") or [],
        "answer": (body.get("acceptedAnswer") or {}).get("text", ""),
        "jsonld": json.dumps(body, indent=2, ensure_ascii=False, sort_keys=True),
        "signature": signature,
        "chain": [document_summary(d) | {"current": d.id == row.id} for d in chain],
    }


def ledger_query(params: dict[str, str]) -> LedgerQuery:
    """Filters from the query string (already validated by the route)."""

    def ts(name: str) -> float | None:
        value = params.get(name)
        if not value:
            return None
        when = datetime.fromisoformat(value)  # a time without an offset is UTC
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()

    return LedgerQuery(
        since=ts("since"),
        until=ts("until"),
        tenant=params.get("tenant") or None,
        model=params.get("model") or None,
        outcome=params.get("outcome") or None,
        reuse=params.get("reuse") or None,
    )


LEDGER_CSV_COLUMNS = (
    "id", "time_utc", "tenant", "endpoint", "model", "outcome", "status", "error_code",
    "reuse", "document_id", "similarity", "prompt_tokens", "completion_tokens", "latency_ms",
    "wh", "wh_low", "wh_high", "method", "gco2", "grid_zone", "gco2_per_kwh", "avoided_wh",
    "avoided_gco2", "task", "route", "counterfactual_wh", "rightsizing_avoided_wh",
    "rightsizing_avoided_gco2",
)  # fmt: skip


def ledger_record(row: Any) -> dict[str, Any]:
    data = asdict(row)
    data["time_utc"] = utc(row.ts, "%Y-%m-%dT%H:%M:%SZ")
    return {c: data.get(c) for c in LEDGER_CSV_COLUMNS}


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (tenant names and ids come from users)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def grid(gw: Gateway, hours: int = 48) -> dict[str, Any]:
    now = gw.clock.time()
    now_h = int(now // HOUR)
    policy = gw.jobs.policy if gw.jobs is not None else None
    if not isinstance(policy, CarbonAwareStart):
        policy = CarbonAwareStart(gw.carbon, gw.grid_zone)
    forecast = [float(v) for v in await asyncio.to_thread(policy.forecast, now, hours)]
    hour_labels = [utc((now_h + k) * HOUR, "%m-%d %H:00") for k in range(hours)]

    def hour_of(ts: float) -> int | None:
        """Index of ``ts``'s hour in the forecast, or None outside it."""
        k = int(ts // HOUR) - now_h
        return k if 0 <= k < hours else None

    def forecast_at(ts: float) -> float | None:
        k = hour_of(ts)
        return None if k is None else forecast[k]

    jobs = await gw.store.jobs()
    placed = []
    for job in jobs:
        k = hour_of(job.not_before)
        if job.state in ("pending", "running") and k is not None:
            placed.append({"x": hour_labels[k], "y": forecast[k], "id": job.id, "kind": job.kind})
    best = min(range(hours), key=forecast.__getitem__) if forecast else None
    job_rows = [
        {
            "id": j.id,
            "kind": j.kind,
            "state": j.state,
            "requires": requirement_label(j.requires),
            "created": utc(j.created),
            "not_before": utc(j.not_before),
            "deadline": utc(j.deadline),
            "attempts": j.attempts,
            "forecast": forecast_at(j.not_before),
        }
        for j in sorted(jobs, key=lambda j: j.created, reverse=True)[:200]
    ]
    batches = await batch_rows(gw)
    return {
        "now": await asyncio.to_thread(grid_now, gw),
        "zone": gw.grid_zone,
        "policy": _policy_name(gw.jobs.policy) if gw.jobs is not None else "none",
        "chart": {"labels": hour_labels, "forecast": forecast, "jobs": placed},
        "cleanest": {"at": hour_labels[best], "gco2_per_kwh": forecast[best]}
        if best is not None
        else None,
        "jobs": job_rows,
        "job_counts": await gw.store.job_counts(),
        "batches": batches,
    }


async def batch_rows(gw: Gateway, limit: int = 100) -> list[dict[str, Any]]:
    """The newest batches with progress and, once run, their carbon and shifting saving."""
    out = []
    for batch_id, tenant, created, body_json in await gw.store.batches(limit):
        body = json.loads(body_json)
        bg = body.get("boundgate") or {}
        # ran and ended, however it ended: its answered lines' figures, as the report counts
        ran = bg.get("started_at") is not None and bg.get("state") in BATCH_ENDED_STATES
        counts = body.get("request_counts") or {}
        completed, failed = int(counts.get("completed") or 0), int(counts.get("failed") or 0)
        if body.get("status") in ("in_progress", "cancelling"):  # counted when it ends
            completed, failed = await gw.store.batch_line_counts(batch_id)
        out.append(
            {
                "id": batch_id,
                "tenant": tenant,
                "created": utc(created),
                "status": body.get("status", ""),
                "total": int(counts.get("total") or 0),
                "completed": completed,
                "failed": failed,
                "done": completed + failed,
                "scheduled_start": bg.get("scheduled_start"),
                # carbon figures exist once the batch has run
                "carbon_g": bg.get("carbon_g") if ran else None,
                "saved_g": bg.get("shifting_saved_g") if ran else None,
            }
        )
    return out


async def tenants(gw: Gateway) -> dict[str, Any]:
    """Per tenant today: its requests, tokens, energy and novelty budget; per active key: its
    own limits and what it used of them today (limits are a key's, counted per key)."""
    now = gw.clock.time()
    day_start = (now // DAY) * DAY
    today = {r["tenant"]: r for r in await _by_tenant(gw, day_start)}
    keys = await gw.store.list_keys()
    names = sorted(set(today) | {k.tenant for k in keys})
    default_daily = gw.limiter.default_daily
    novelty = gw.creativity.limits.novelty_per_day if gw.creativity is not None else 0
    rows = []
    for name in names:
        active = [k for k in keys if k.tenant == name and not k.revoked]
        t = today.get(name)
        used = await gw.store.tokens_used(name, day_start)
        rows.append(
            {
                "tenant": name,
                "keys": len(active),
                "admin": any(k.admin for k in active),
                "requests": t["requests"] if t else 0,
                "reused": t["reused"] if t else 0,
                "tokens": used,
                "novelty_used": await gw.store.novel_used(name, day_start) if novelty else None,
                "novelty_budget": novelty,
                "wh": t["wh"] if t else 0.0,
                "avoided_wh": t["avoided_wh"] if t else 0.0,
                "gco2": t["gco2"] if t else 0.0,
                "avoided_gco2": t["avoided_gco2"] if t else 0.0,
            }
        )
    key_rows = await _key_limits(gw, [k for k in keys if not k.revoked], day_start, now)
    return {
        "rows": rows,
        "keys": key_rows,
        "reasoning": any(k["reasoning_budget"] for k in key_rows),
        "day": utc(day_start, "%Y-%m-%d"),
        "default_daily": default_daily,
        "default_rpm": gw.limiter.default_rpm,
        "novelty": novelty,
    }


async def _key_limits(
    gw: Gateway, keys: list[ApiKey], day_start: float, now: float
) -> list[dict[str, Any]]:
    """Each key's own limits (the settings' default where it sets none; 0: unlimited) and
    what its counters were charged today (settled; a key without a budget is not counted),
    with what is held on them now: ``rpm_used``, the requests of the last minute (counted
    only under a limit), and ``tokens_held``, the tokens reserved by requests still running,
    or by a process that died with them until their lease (``limits.reservation_lease_s``)
    runs out."""
    tokens = await gw.store.counters_used(tokens_counter(key_counters("")), day_start)
    reasoning = await gw.store.counters_used(reasoning_counter(key_counters("")), day_start)
    out = []
    for k in sorted(keys, key=lambda k: (k.tenant, k.created)):
        t = Tenant.of_key(k)
        owner = t.counted_as
        rpm = gw.limiter.rpm(t)  # 0: unlimited
        budget = gw.limiter.budget(t)  # 0: unlimited
        state = gw.store.counter_state
        minute = await state(rpm_counter(owner), 0.0, now) if rpm else None
        day = await state(tokens_counter(owner), day_start, now) if budget else None
        out.append(
            {
                "id": k.id,
                "tenant": k.tenant,
                "admin": k.admin,
                "rpm": rpm,
                "rpm_own": k.rpm is not None,
                "rpm_used": minute.held if minute else 0,
                "tokens": tokens.get(tokens_counter(owner), 0),
                "tokens_held": day.held if day else 0,
                "budget": budget,
                "budget_own": k.daily_tokens is not None,
                "reasoning_tokens": reasoning.get(reasoning_counter(owner), 0),
                "reasoning_budget": gw.limiter.reasoning_budget(t),
                "reasoning_own": k.daily_reasoning_tokens is not None,
            }
        )
    return out


async def _by_tenant(gw: Gateway, since: float) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in await gw.store.report(since):
        t = out.setdefault(
            r.tenant,
            {"tenant": r.tenant, "requests": 0, "reused": 0, "wh": 0.0, "avoided_wh": 0.0,
             "gco2": 0.0, "avoided_gco2": 0.0},
        )  # fmt: skip
        t["requests"] += r.requests
        t["reused"] += r.reused
        t["wh"] += r.wh
        t["avoided_wh"] += r.avoided_wh
        t["gco2"] += r.gco2
        t["avoided_gco2"] += r.avoided_gco2
    return list(out.values())
