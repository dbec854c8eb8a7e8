"""The PostgreSQL store's ledger (``LedgerStore``) and energy profiles (``ProfileStore``)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from psycopg.types.json import Jsonb

from ..aggregate import (
    BATCH_ENDED_SQL,
    ERROR_OUTCOMES_SQL,
    REUSED_SQL,
    ledger_filters,
    open_row_from,
    open_row_json,
    period_rows,
    report_row,
)
from ..rows import (
    EnergyProfileRow,
    LedgerQuery,
    LedgerRow,
    PeriodRow,
    Release,
    ReportRow,
    StoredEntry,
)
from .core import (
    PostgresBase,
    _all,
    _cols,
    _Conn,
    _marks,
    _one,
    _q,
    _scalar,
)

_LEDGER_COLUMNS = [f.name for f in fields(LedgerRow)]
_LEDGER_SELECT = f"SELECT {_cols(_LEDGER_COLUMNS)} FROM ledger"
_INSERT_LEDGER = (
    f"INSERT INTO ledger ({_cols(_LEDGER_COLUMNS)}) VALUES ({_marks(_LEDGER_COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in _LEDGER_COLUMNS if c != "id")
    + ", seq = DEFAULT"  # a replaced row counts as inserted now, as SQLite's REPLACE does
)
# the row of a reused answer, written only if the answer is still live, and its holds given
# back (record_hit): one statement; its data-modifying parts run once each, on one snapshot
_RECORD_HIT = (
    "WITH live AS (SELECT 1 FROM reuse_entries WHERE key = %s AND id = %s AND NOT revoked "
    "AND document_id IS NOT DISTINCT FROM %s::text), "
    f"ins AS (INSERT INTO ledger ({_cols(_LEDGER_COLUMNS)}) SELECT {_marks(_LEDGER_COLUMNS)} "
    "FROM live " + _INSERT_LEDGER[_INSERT_LEDGER.index("ON CONFLICT") :] + " RETURNING 1), "
    "h AS (DELETE FROM limit_holds WHERE hold_id = %s AND EXISTS (SELECT 1 FROM ins) "
    "AND (counter, window_start) IN (SELECT * FROM unnest(%s::text[], %s::float8[])) "
    "RETURNING counter, window_start, amount), "
    "u AS (UPDATE limit_counters c SET reserved = c.reserved - h.amount FROM h "
    "WHERE c.counter = h.counter AND c.window_start = h.window_start RETURNING 1) "
    "SELECT COUNT(*) FROM ins"
)
# a recovered note's row: a row recorded under its id meanwhile stays (recover_requests)
_INSERT_LEDGER_NEW = (
    f"INSERT INTO ledger ({_cols(_LEDGER_COLUMNS)}) VALUES ({_marks(_LEDGER_COLUMNS)}) "
    "ON CONFLICT (id) DO NOTHING"
)
_OPEN_REQUEST = (
    "INSERT INTO open_requests (id, owner, lease_until, row) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, "
    "lease_until = EXCLUDED.lease_until, row = EXCLUDED.row"
)
_RENEW_REQUESTS = (
    "UPDATE open_requests o SET lease_until = %s, row = u.row "
    "FROM unnest(%s::text[], %s::text[]) AS u(id, row) WHERE o.id = u.id AND o.owner = %s"
)


_PROFILE_COLUMNS = [f.name for f in fields(EnergyProfileRow)]


def _ledger_values(row: LedgerRow) -> list[Any]:
    values: list[Any] = []
    for col in _LEDGER_COLUMNS:
        v = getattr(row, col)
        if col == "extra":
            v = Jsonb(v) if v else None
        values.append(v)
    return values


def _ledger_from(r: dict[str, Any]) -> LedgerRow:
    data = {c: r[c] for c in _LEDGER_COLUMNS}
    data["extra"] = data["extra"] or {}
    return LedgerRow(**data)


class PostgresLedger(PostgresBase):
    """``LedgerStore`` and ``ProfileStore`` on PostgreSQL."""

    # --- ledger --------------------------------------------------------------------------
    async def record(self, row: LedgerRow) -> None:
        # a row replacing the interrupted row a peer is writing of the same note deadlocks
        # with it (its trigger deletes the note the peer's recovery deletes too; a re-check
        # after an outage)
        values = _ledger_values(row)
        await self._through_deadlocks(lambda: self._execute(_INSERT_LEDGER, values))

    async def record_hit(
        self, row: LedgerRow, entry: StoredEntry, release: Release | None = None
    ) -> bool:
        held = release.counters if release is not None else ()
        params = [
            entry.key,
            entry.id,
            entry.document_id,
            *_ledger_values(row),
            release.hold_id if release is not None else None,
            [c for c, _ in held],
            [w for _, w in held],
        ]
        # the release against a sweep of the same expired hold (see ``reserve``) deadlocks:
        # rolled back whole, the row included, so it can simply run again
        written = await self._through_deadlocks(
            lambda: self._run(lambda conn: _scalar(conn, _RECORD_HIT, params))
        )
        return int(written) == 1

    async def open_request(self, row: LedgerRow, owner: str, lease_until: float) -> None:
        await self._execute(_OPEN_REQUEST, (row.id, owner, lease_until, open_row_json(row)))

    async def renew_requests(self, owner: str, until: float, rows: list[LedgerRow]) -> None:
        params = (until, [r.id for r in rows], [open_row_json(r) for r in rows], owner)
        await self._execute(_RENEW_REQUESTS, params)

    async def recover_requests(self, now: float) -> list[LedgerRow]:
        async def run(conn: _Conn) -> list[LedgerRow]:
            # the notes locked by a concurrent recovery are that one's to write
            notes = await _all(
                conn,
                "SELECT id, row FROM open_requests WHERE lease_until < %s "
                "ORDER BY lease_until FOR UPDATE SKIP LOCKED",
                (now,),
            )
            written = []
            for note in notes:
                row = open_row_from(note["row"])
                async with conn.cursor() as cur:
                    await cur.execute(_INSERT_LEDGER_NEW, _ledger_values(row))
                    if cur.rowcount == 1:
                        written.append(row)
            if notes:
                await conn.execute(
                    "DELETE FROM open_requests WHERE id = ANY(%s)", ([n["id"] for n in notes],)
                )
            return written

        return await self._run(run, tx=True)

    async def ledger(self, since: float | None = None, limit: int | None = None) -> list[LedgerRow]:
        sql = _LEDGER_SELECT + " WHERE ts >= %s ORDER BY ts DESC, seq DESC"
        params: list[Any] = [since if since is not None else float("-inf")]
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        rows = await self._run(lambda conn: _all(conn, sql, params))
        return [_ledger_from(r) for r in rows]

    async def get_row(self, request_id: str) -> LedgerRow | None:
        r = await self._run(
            lambda conn: _one(conn, _LEDGER_SELECT + " WHERE id = %s", (request_id,))
        )
        return _ledger_from(r) if r is not None else None

    async def query_ledger(
        self, q: LedgerQuery, limit: int = 100, offset: int = 0
    ) -> list[LedgerRow]:
        where, params = ledger_filters(q, "%s")
        where = where or ["TRUE"]
        sql = (
            f"{_LEDGER_SELECT} WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC, seq DESC LIMIT %s OFFSET %s"
        )
        rows = await self._run(lambda conn: _all(conn, sql, [*params, limit, offset]))
        return [_ledger_from(r) for r in rows]

    async def ledger_facets(self, since: float | None = None) -> dict[str, list[str]]:
        lo = since if since is not None else float("-inf")

        async def run(conn: _Conn) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for column in ("tenant", "model"):
                rows = await _all(
                    conn,
                    f"SELECT DISTINCT {column} AS v FROM ledger "
                    f"WHERE ts >= %s AND {column} IS NOT NULL ORDER BY {column}",
                    (lo,),
                )
                out[column] = [str(r["v"]) for r in rows]
            return out

        return await self._run(run)

    async def latencies(self, since: float, limit: int = 100_000) -> list[tuple[str, bool, float]]:
        sql = (
            f"SELECT COALESCE(model, '') AS model, {REUSED_SQL} AS reused, latency_ms FROM ledger "
            "WHERE ts >= %s AND status < 400 ORDER BY ts DESC, seq DESC LIMIT %s"
        )
        rows = await self._run(lambda conn: _all(conn, sql, (since, limit)))
        return [(str(r["model"]), bool(r["reused"]), float(r["latency_ms"])) for r in rows]

    async def report(self, since: float | None = None) -> list[ReportRow]:
        sql = f"""
            SELECT tenant, COALESCE(model, '') AS model, COUNT(*) AS requests,
                   SUM((outcome IN {ERROR_OUTCOMES_SQL})::int) AS errors,
                   SUM(prompt_tokens) AS prompt_tokens,
                   SUM(completion_tokens) AS completion_tokens,
                   SUM(wh) AS wh, SUM(wh_low) AS wh_low, SUM(wh_high) AS wh_high,
                   SUM(gco2) AS gco2, AVG(latency_ms) AS avg_latency_ms,
                   SUM(({REUSED_SQL})::int) AS reused,
                   SUM(avoided_wh) AS avoided_wh, SUM(avoided_gco2) AS avoided_gco2,
                   SUM(reasoning_tokens) AS reasoning_tokens,
                   SUM((route IS NOT NULL)::int) AS routed,
                   SUM(rightsizing_avoided_wh) AS rightsizing_avoided_wh,
                   SUM(rightsizing_avoided_gco2) AS rightsizing_avoided_gco2
            FROM ledger WHERE ts >= %s
            GROUP BY 1, 2 ORDER BY 1, 2
        """
        lo = since if since is not None else float("-inf")
        rows = await self._run(lambda conn: _all(conn, sql, (lo,)))
        return [report_row(r) for r in rows]

    async def report_by_period(self, since: float, period_s: int = 86400) -> list[PeriodRow]:
        if period_s <= 0:
            raise ValueError("period_s must be positive")
        ledger_sql = f"""
            SELECT floor(ts / %(p)s) * %(p)s AS start, tenant, COUNT(*) AS requests,
                   SUM((outcome IN {ERROR_OUTCOMES_SQL})::int) AS errors,
                   SUM(({REUSED_SQL})::int) AS reused,
                   SUM(wh) AS wh, SUM(gco2) AS gco2,
                   SUM(avoided_wh) AS avoided_wh, SUM(avoided_gco2) AS avoided_gco2,
                   SUM((route IS NOT NULL)::int) AS routed,
                   SUM(rightsizing_avoided_wh) AS rightsizing_avoided_wh,
                   SUM(rightsizing_avoided_gco2) AS rightsizing_avoided_gco2
            FROM ledger WHERE ts >= %(since)s GROUP BY 1, 2
        """
        # Batches keep their counterfactual (carbon had their lines run at submission) in their
        # JSON object; count the ones that ran, in the period they ended, however they ended
        # (the lines a failed or expired batch answered were shifted too).
        batch_sql = f"""
            SELECT floor(finished / %(p)s) * %(p)s AS start, tenant, COUNT(*) AS batches,
                   SUM(saved) AS saved
            FROM (
                SELECT tenant,
                       COALESCE((b ->> 'completed_at')::float8,
                                (b ->> 'cancelled_at')::float8,
                                (b ->> 'failed_at')::float8,
                                (b ->> 'expired_at')::float8) AS finished,
                       (b -> 'boundgate' ->> 'shifting_saved_g')::float8 AS saved
                FROM (SELECT tenant, body::jsonb AS b FROM batches) AS parsed
                WHERE b -> 'boundgate' ->> 'started_at' IS NOT NULL
                  AND b -> 'boundgate' ->> 'state' IN {BATCH_ENDED_SQL}
            ) AS finished_batches
            WHERE finished >= %(since)s GROUP BY 1, 2
        """
        params = {"p": period_s, "since": since}

        async def run(conn: _Conn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            return await _all(conn, ledger_sql, params), await _all(conn, batch_sql, params)

        ledger_rows, batch_rows = await self._run(run, tx=True)  # one snapshot for both
        return period_rows(ledger_rows, batch_rows)

    async def tokens_used(self, tenant: str, since: float) -> int:
        sql = (
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM ledger "
            "WHERE tenant = %s AND ts >= %s AND COALESCE(reuse, '') NOT LIKE 'hit%%'"
        )
        return int(await self._run(lambda conn: _scalar(conn, sql, (tenant, since))))

    async def reasoning_tokens_used(self, tenant: str, since: float) -> int:
        sql = (
            "SELECT COALESCE(SUM(reasoning_tokens), 0) FROM ledger "
            "WHERE tenant = %s AND ts >= %s AND COALESCE(reuse, '') NOT LIKE 'hit%%'"
        )
        return int(await self._run(lambda conn: _scalar(conn, sql, (tenant, since))))

    async def novel_used(self, tenant: str, since: float) -> int:
        sql = (
            "SELECT COUNT(*) FROM ledger WHERE tenant = %s AND ts >= %s AND outcome = 'ok' "
            "AND extra -> 'novel' IN ('true'::jsonb, '1'::jsonb)"
        )
        return int(await self._run(lambda conn: _scalar(conn, sql, (tenant, since))))

    async def put_profile(self, profile: EnergyProfileRow) -> None:
        await self._execute(
            f"INSERT INTO energy_profiles ({_cols(_PROFILE_COLUMNS)}) "
            f"VALUES ({_marks(_PROFILE_COLUMNS)})",
            [getattr(profile, c) for c in _PROFILE_COLUMNS],
        )

    async def profiles(self, host: str | None = None) -> list[EnergyProfileRow]:
        where, params = ("WHERE host = %s", (host,)) if host is not None else ("", ())
        sql = (
            f"SELECT DISTINCT ON (model) {_cols(_PROFILE_COLUMNS)} FROM energy_profiles "
            f"{where} ORDER BY model, measured_at DESC, id DESC"
        )
        rows = await self._run(lambda conn: _all(conn, sql, params))
        out = [EnergyProfileRow(**{c: r[c] for c in _PROFILE_COLUMNS}) for r in rows]
        return sorted(out, key=lambda p: p.model)  # by code point, as SQLite's store
