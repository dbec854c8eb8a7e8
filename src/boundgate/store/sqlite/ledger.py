"""The SQLite store's ledger (``LedgerStore``) and energy profiles (``ProfileStore``)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from typing import Any

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
from .core import SQLiteBase
from .limits import _settle

_LEDGER_COLUMNS = [f.name for f in fields(LedgerRow)]
_INSERT_LEDGER = (
    f"INSERT OR REPLACE INTO ledger ({', '.join(_LEDGER_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _LEDGER_COLUMNS)})"
)
# the row of a reused answer, written only if the answer is still live (record_hit)
_INSERT_LEDGER_IF_LIVE = (
    f"INSERT OR REPLACE INTO ledger ({', '.join(_LEDGER_COLUMNS)}) "
    f"SELECT {', '.join('?' for _ in _LEDGER_COLUMNS)} "
    "WHERE EXISTS (SELECT 1 FROM reuse_entries WHERE key = ? AND id = ? AND NOT revoked "
    "AND document_id IS ?)"
)
# a recovered note's row: a row recorded under its id meanwhile stays (recover_requests)
_INSERT_LEDGER_NEW = _INSERT_LEDGER.replace("INSERT OR REPLACE", "INSERT OR IGNORE", 1)


_PROFILE_COLUMNS = [f.name for f in fields(EnergyProfileRow)]


def _row_values(row: LedgerRow) -> tuple[Any, ...]:
    values = []
    for col in _LEDGER_COLUMNS:
        v = getattr(row, col)
        if col == "extra":
            v = json.dumps(v, separators=(",", ":")) if v else None
        elif col == "stream":
            v = int(v)
        values.append(v)
    return tuple(values)


def _row_from(r: sqlite3.Row) -> LedgerRow:
    data = {col: r[col] for col in _LEDGER_COLUMNS}
    data["stream"] = bool(data["stream"])
    data["extra"] = json.loads(data["extra"]) if data["extra"] else {}
    return LedgerRow(**data)


class SQLiteLedger(SQLiteBase):
    """``LedgerStore`` and ``ProfileStore`` on SQLite."""

    # --- ledger --------------------------------------------------------------------------
    async def record(self, row: LedgerRow) -> None:
        await self._execute(_INSERT_LEDGER, _row_values(row))

    async def record_hit(
        self, row: LedgerRow, entry: StoredEntry, release: Release | None = None
    ) -> bool:
        params = [*_row_values(row), entry.key, entry.id, entry.document_id]

        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute(_INSERT_LEDGER_IF_LIVE, params).rowcount != 1:
                return False
            if release is not None:
                for counter, window in release.counters:
                    _settle(conn, release.hold_id, counter, window, 0)
            return True

        return await self._call(write)

    async def open_request(self, row: LedgerRow, owner: str, lease_until: float) -> None:
        await self._execute(
            "INSERT OR REPLACE INTO open_requests (id, owner, lease_until, row) "
            "VALUES (?, ?, ?, ?)",
            (row.id, owner, lease_until, open_row_json(row)),
        )

    async def renew_requests(self, owner: str, until: float, rows: list[LedgerRow]) -> None:
        params = [(until, open_row_json(r), r.id, owner) for r in rows]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE open_requests SET lease_until = ?, row = ? WHERE id = ? AND owner = ?",
                params,
            )

        await self._call(write)

    async def recover_requests(self, now: float) -> list[LedgerRow]:
        def due(conn: sqlite3.Connection) -> bool:
            sql = "SELECT 1 FROM open_requests WHERE lease_until < ? LIMIT 1"
            return conn.execute(sql, (now,)).fetchone() is not None

        if not await self._read(due):  # the common case: a read, no trip through the writer
            return []

        def write(conn: sqlite3.Connection) -> list[LedgerRow]:
            notes = conn.execute(
                "SELECT id, row FROM open_requests WHERE lease_until < ? ORDER BY lease_until",
                (now,),
            ).fetchall()
            written = []
            for note in notes:
                row = open_row_from(note["row"])
                if conn.execute(_INSERT_LEDGER_NEW, _row_values(row)).rowcount == 1:
                    written.append(row)
                conn.execute("DELETE FROM open_requests WHERE id = ?", (note["id"],))
            return written

        return await self._call(write)

    async def ledger(self, since: float | None = None, limit: int | None = None) -> list[LedgerRow]:
        def run(conn: sqlite3.Connection) -> list[LedgerRow]:
            sql = "SELECT * FROM ledger WHERE ts >= ? ORDER BY ts DESC, rowid DESC"
            params: list[Any] = [since if since is not None else float("-inf")]
            if limit is not None:
                sql += " LIMIT ?"
                params.append(limit)
            return [_row_from(r) for r in conn.execute(sql, params)]

        return await self._read(run)

    async def get_row(self, request_id: str) -> LedgerRow | None:
        def run(conn: sqlite3.Connection) -> LedgerRow | None:
            r = conn.execute("SELECT * FROM ledger WHERE id = ?", (request_id,)).fetchone()
            return _row_from(r) if r is not None else None

        return await self._read(run)

    async def query_ledger(
        self, q: LedgerQuery, limit: int = 100, offset: int = 0
    ) -> list[LedgerRow]:
        def run(conn: sqlite3.Connection) -> list[LedgerRow]:
            where, params = ledger_filters(q, "?")
            where = where or ["1"]
            sql = (
                f"SELECT * FROM ledger WHERE {' AND '.join(where)} "
                "ORDER BY ts DESC, rowid DESC LIMIT ? OFFSET ?"
            )
            rows = conn.execute(sql, [*params, limit, offset])
            return [_row_from(r) for r in rows]

        return await self._read(run)

    async def ledger_facets(self, since: float | None = None) -> dict[str, list[str]]:
        def run(conn: sqlite3.Connection) -> dict[str, list[str]]:
            lo = since if since is not None else float("-inf")
            out: dict[str, list[str]] = {}
            for column in ("tenant", "model"):
                rows = conn.execute(
                    f"SELECT DISTINCT {column} FROM ledger WHERE ts >= ? AND {column} IS NOT NULL "
                    f"ORDER BY {column}",
                    (lo,),
                )
                out[column] = [str(r[0]) for r in rows]
            return out

        return await self._read(run)

    async def latencies(self, since: float, limit: int = 100_000) -> list[tuple[str, bool, float]]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, bool, float]]:
            rows = conn.execute(
                f"""
                SELECT COALESCE(model, '') AS model,
                       {REUSED_SQL} AS reused,
                       latency_ms
                FROM ledger WHERE ts >= ? AND status < 400 ORDER BY ts DESC LIMIT ?
                """,
                (since, limit),
            )
            return [(str(r[0]), bool(r[1]), float(r[2])) for r in rows]

        return await self._read(run)

    async def report(self, since: float | None = None) -> list[ReportRow]:
        def run(conn: sqlite3.Connection) -> list[ReportRow]:
            rows = conn.execute(
                f"""
                SELECT tenant, COALESCE(model, '') AS model, COUNT(*) AS requests,
                       SUM(outcome IN {ERROR_OUTCOMES_SQL}) AS errors,
                       SUM(prompt_tokens) AS prompt_tokens,
                       SUM(completion_tokens) AS completion_tokens,
                       SUM(wh) AS wh, SUM(wh_low) AS wh_low, SUM(wh_high) AS wh_high,
                       SUM(gco2) AS gco2, AVG(latency_ms) AS avg_latency_ms,
                       SUM({REUSED_SQL}) AS reused,
                       SUM(avoided_wh) AS avoided_wh, SUM(avoided_gco2) AS avoided_gco2,
                       SUM(reasoning_tokens) AS reasoning_tokens,
                       SUM(route IS NOT NULL) AS routed,
                       SUM(rightsizing_avoided_wh) AS rightsizing_avoided_wh,
                       SUM(rightsizing_avoided_gco2) AS rightsizing_avoided_gco2
                FROM ledger WHERE ts >= ?
                GROUP BY tenant, model ORDER BY tenant, model
                """,
                (since if since is not None else float("-inf"),),
            )
            return [report_row(r) for r in rows]

        return await self._read(run)

    async def report_by_period(self, since: float, period_s: int = 86400) -> list[PeriodRow]:
        def run(conn: sqlite3.Connection) -> list[PeriodRow]:
            if period_s <= 0:
                raise ValueError("period_s must be positive")
            params = {"p": period_s, "since": since}
            ledger_rows = conn.execute(
                f"""
                SELECT CAST(ts / :p AS INTEGER) * :p AS start, tenant, COUNT(*) AS requests,
                       SUM(outcome IN {ERROR_OUTCOMES_SQL}) AS errors,
                       SUM({REUSED_SQL}) AS reused,
                       SUM(wh) AS wh, SUM(gco2) AS gco2,
                       SUM(avoided_wh) AS avoided_wh, SUM(avoided_gco2) AS avoided_gco2,
                       SUM(route IS NOT NULL) AS routed,
                       SUM(rightsizing_avoided_wh) AS rightsizing_avoided_wh,
                       SUM(rightsizing_avoided_gco2) AS rightsizing_avoided_gco2
                FROM ledger WHERE ts >= :since GROUP BY start, tenant
                """,
                params,
            ).fetchall()
            # Batches keep their counterfactual (carbon had their lines run at submission) in
            # their JSON object; count the ones that ran, in the period they ended, however they
            # ended (the lines a failed or expired batch answered were shifted too).
            batch_rows = conn.execute(
                f"""
                SELECT CAST(finished / :p AS INTEGER) * :p AS start, tenant, COUNT(*) AS batches,
                       SUM(saved) AS saved
                FROM (
                    SELECT tenant,
                           COALESCE(json_extract(body, '$.completed_at'),
                                    json_extract(body, '$.cancelled_at'),
                                    json_extract(body, '$.failed_at'),
                                    json_extract(body, '$.expired_at')) AS finished,
                           json_extract(body, '$.boundgate.shifting_saved_g') AS saved
                    FROM batches
                    WHERE json_extract(body, '$.boundgate.started_at') IS NOT NULL
                      AND json_extract(body, '$.boundgate.state') IN {BATCH_ENDED_SQL}
                )
                WHERE finished >= :since GROUP BY start, tenant
                """,
                params,
            ).fetchall()
            return period_rows(ledger_rows, batch_rows)

        return await self._read(run)

    # --- energy profiles -------------------------------------------------------------------
    async def put_profile(self, profile: EnergyProfileRow) -> None:
        await self._execute(
            f"INSERT INTO energy_profiles ({', '.join(_PROFILE_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _PROFILE_COLUMNS)})",
            tuple(getattr(profile, c) for c in _PROFILE_COLUMNS),
        )

    async def profiles(self, host: str | None = None) -> list[EnergyProfileRow]:
        def run(conn: sqlite3.Connection) -> list[EnergyProfileRow]:
            where, params = ("WHERE host = ?", (host,)) if host is not None else ("", ())
            rows = conn.execute(
                f"SELECT * FROM energy_profiles {where} ORDER BY model, measured_at, id", params
            )
            newest = {r["model"]: r for r in rows}
            return [
                EnergyProfileRow(**{c: newest[m][c] for c in _PROFILE_COLUMNS})
                for m in sorted(newest)
            ]

        return await self._read(run)
