"""What the SQL stores share beyond their dialect: ledger filters and the report rows built
from aggregate query results (``sqlite/`` and ``postgres/`` run their own SQL, with their
own placeholders and JSON functions, and hand the rows here)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any, Protocol

from .rows import ChangeRow, LedgerQuery, LedgerRow, ObservationRow, PeriodRow, ReportRow


class Row(Protocol):
    """A result row read by column name (``sqlite3.Row``, psycopg's ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def ledger_filters(q: LedgerQuery, placeholder: str) -> tuple[list[str], list[Any]]:
    """The WHERE conditions (joined by AND) and their parameters for ``q``, with the store's
    parameter ``placeholder`` (``?`` or ``%s``); ``reuse="none"`` selects rows without a reuse
    outcome."""
    where: list[str] = []
    params: list[Any] = []
    for column, op, value in (
        ("ts", ">=", q.since),
        ("ts", "<", q.until),
        ("tenant", "=", q.tenant),
        ("model", "=", q.model),
        ("outcome", "=", q.outcome),
    ):
        if value is not None:
            where.append(f"{column} {op} {placeholder}")
            params.append(value)
    if q.reuse == "none":
        where.append("reuse IS NULL")
    elif q.reuse is not None:
        where.append(f"reuse = {placeholder}")
        params.append(q.reuse)
    return where, params


def report_row(r: Row) -> ReportRow:
    """A ``ReportRow`` from one row of the per-(tenant, model) aggregate (columns named as the
    row's fields; SUMs over no rows are NULL and read as 0)."""
    return ReportRow(
        tenant=r["tenant"],
        model=r["model"],
        requests=int(r["requests"]),
        errors=int(r["errors"] or 0),
        prompt_tokens=int(r["prompt_tokens"] or 0),
        completion_tokens=int(r["completion_tokens"] or 0),
        wh=float(r["wh"] or 0.0),
        wh_low=float(r["wh_low"] or 0.0),
        wh_high=float(r["wh_high"] or 0.0),
        gco2=float(r["gco2"] or 0.0),
        avg_latency_ms=float(r["avg_latency_ms"] or 0.0),
        reused=int(r["reused"] or 0),
        avoided_wh=float(r["avoided_wh"] or 0.0),
        avoided_gco2=float(r["avoided_gco2"] or 0.0),
        reasoning_tokens=int(r["reasoning_tokens"] or 0),
        routed=int(r["routed"] or 0),
        rightsizing_avoided_wh=float(r["rightsizing_avoided_wh"] or 0.0),
        rightsizing_avoided_gco2=float(r["rightsizing_avoided_gco2"] or 0.0),
    )


def period_rows(ledger_rows: Iterable[Row], batch_rows: Iterable[Row]) -> list[PeriodRow]:
    """``PeriodRow``s from the per-(period start, tenant) ledger aggregate and the batches
    finished per period (columns ``start``, ``tenant``, ``batches``, ``saved``), sorted by
    period then tenant."""
    totals: dict[tuple[float, str], dict[str, Any]] = {}
    for r in ledger_rows:
        totals[(float(r["start"]), r["tenant"])] = {
            "requests": int(r["requests"]),
            "errors": int(r["errors"] or 0),
            "reused": int(r["reused"] or 0),
            "wh": float(r["wh"] or 0.0),
            "gco2": float(r["gco2"] or 0.0),
            "avoided_wh": float(r["avoided_wh"] or 0.0),
            "avoided_gco2": float(r["avoided_gco2"] or 0.0),
            "routed": int(r["routed"] or 0),
            "rightsizing_avoided_wh": float(r["rightsizing_avoided_wh"] or 0.0),
            "rightsizing_avoided_gco2": float(r["rightsizing_avoided_gco2"] or 0.0),
        }
    for r in batch_rows:
        t = totals.setdefault((float(r["start"]), r["tenant"]), {})
        t["batches"] = int(r["batches"])
        t["shifting_saved_gco2"] = float(r["saved"] or 0.0)
    return [PeriodRow(start=k[0], tenant=k[1], **v) for k, v in sorted(totals.items())]


# the change log after a sequence number, each label with its observation; ``{0}`` is the
# store's parameter placeholder
# the outcomes a report counts among errors: failed, and cut off by its process dying
ERROR_OUTCOMES_SQL = "('error', 'interrupted')"
# the ledger's ``reuse`` values of a request answered from stored answers: exact, semantic,
# coalesced and stale hits, and a creative variant made earlier (``hit-variant``)
REUSED = ("hit-exact", "hit-semantic", "hit-coalesced", "hit-variant", "stale")
# a ledger row answered from stored answers, as a boolean expression (SQLite's is an
# integer, PostgreSQL's casts with ``::int`` to sum): a hit whose answer was delivered whole
# (``ok``; a streamed hit whose client left during the replay is ``cancelled``, not reused)
REUSED_SQL = f"(outcome = 'ok' AND COALESCE(reuse, '') IN ({', '.join(repr(r) for r in REUSED)}))"

# the ``boundgate.state`` of a batch that ended, however it ended: one that ran (its
# ``started_at`` set) counts in the report, with what shifting its answered lines saved, in
# the period it ended (``report_by_period``)
BATCH_ENDED_STATES = ("done", "cancelled", "failed", "expired")
BATCH_ENDED_SQL = f"({', '.join(repr(s) for s in BATCH_ENDED_STATES)})"
# a batch whose job no runner will run (``FileStore.stranded_batches``): its object's
# ``status`` not one a batch ends in, and its job (``boundgate.job_id``) missing, or neither
# pending nor running (a running job's lease that expired is taken over by a runner)
BATCH_STATUSES_ENDED_SQL = "('completed', 'failed', 'expired', 'cancelled')"
JOB_OPEN_SQL = "('pending', 'running')"

CHANGES_SQL = (
    "SELECT c.seq, c.kind, c.entry, c.ref, c.label, o.id AS oid, o.ts, o.entry AS oentry, "
    "o.similarity, o.correct, o.source, o.request_id, o.density, o.pair_score "
    "FROM reuse_changes c LEFT JOIN reuse_observations o "
    "ON c.kind = 'label' AND o.id = c.label "
    "WHERE c.seq > {0} ORDER BY c.seq LIMIT {0}"
)


# the log's rows before a time, found from the oldest end (numbers grow with time), so a
# prune reads only what it deletes; ``{0}`` is the store's parameter placeholder
PRUNE_CHANGES_SQL = (
    "DELETE FROM reuse_changes WHERE seq < COALESCE("
    "(SELECT seq FROM reuse_changes WHERE ts >= {0} ORDER BY seq LIMIT 1), "
    "(SELECT MAX(seq) FROM reuse_changes))"
)


def change_from(r: Row) -> ChangeRow:
    """A change-log row joined with its observation (``oid`` and the observation's columns,
    NULL unless it is a label): both stores' ``changes`` read this shape."""
    obs = None
    if r["oid"] is not None:
        obs = ObservationRow(
            float(r["ts"]),
            None if r["oentry"] is None else int(r["oentry"]),
            float(r["similarity"]),
            bool(r["correct"]),
            str(r["source"]),
            r["request_id"],
            float(r["density"]),
            None if r["pair_score"] is None else float(r["pair_score"]),
        )
    entry = None if r["entry"] is None else int(r["entry"])
    lookup = None
    if r["kind"] == "lookup" and r["ref"]:
        s, d, p = json.loads(r["ref"])
        lookup = (None if s is None else float(s), float(d or 0.0), None if p is None else float(p))
        lookup_id = None if r["label"] is None else int(r["label"])
        return ChangeRow(int(r["seq"]), "lookup", lookup=lookup, lookup_id=lookup_id)
    return ChangeRow(int(r["seq"]), str(r["kind"]), entry, r["ref"], obs)


def open_row_json(row: LedgerRow) -> str:
    """The ledger row an open request's note keeps (``open_requests.row``), as JSON."""
    return json.dumps(dataclasses.asdict(row), separators=(",", ":"))


def open_row_from(text: str) -> LedgerRow:
    """The ledger row of an open request's note (``open_row_json``)."""
    return LedgerRow(**json.loads(text))
