"""PostgreSQL store: the protocols of ``protocols.py`` over one database that several gateway
processes share (issue #14).

Connections: a ``psycopg_pool.AsyncConnectionPool`` of autocommit connections. An asyncio pool
belongs to the event loop it was opened in, while callers come from any loop (the server's,
and each ``asyncio.run`` of the CLI and the tests), so the store runs its own event loop on a
private thread: :meth:`open` starts it, opens the pool and migrates there (blocking, as the
protocol wants), and every data method hands its coroutine to that loop and awaits the result
from the caller's loop (one thread hop, as SQLite's store does).

Migrations: ``migrations_postgres/NNNN_name.sql``, applied at :meth:`open` in one transaction
that holds ``pg_advisory_xact_lock``, so replicas starting together migrate once. The schema
follows SQLite's (``migrations/``) with PostgreSQL's types.

Atomicity is the database's, never read-then-write from Python: ``ON CONFLICT`` for first-write
-wins and dedupe, ``UPDATE … RETURNING`` with ``FOR UPDATE SKIP LOCKED`` for job claims,
``hits = hits + 1`` for hits, and a transaction-scoped advisory lock per entry or prompt where
a write and the count it returns must be one step (askers, creative asks, variant takes).
Budgets and rate limits: a reservation is one call of the ``boundgate_reserve`` function
(migration 0004), each claim in it a conditional upsert of its counter row, all undone if one
does not fit; a settle is one statement that deletes the hold and updates the counter.

Keys: with ``store.key_cache_s`` = 0 (the default) every key check reads the key's row, so a
key revoked by any replica is refused by every replica at its next request. Above 0, a key
check (``verify_key``, and ``has_keys`` while there is no key) is kept for at most that long and
dropped the moment the change-log listener hears, on the keys'
channel (a trigger, migration 0007), that any replica or the CLI created, revoked or changed
a key; it is used only while that listener is connected. So a revoke holds on every replica
within milliseconds, and within ``key_cache_s`` even if the announcement were lost, and a
request's path does not read the key table every time. ``has_keys`` keeps True for good
(keys are never deleted).

Vectors are ``bytea`` as in SQLite; each replica builds its own index from :meth:`entries`
and follows the change log (``ChangeFeed``, migration 0005): triggers number every change
under a per-schema advisory lock and ``NOTIFY`` it at commit, and :meth:`wait_for_changes`
holds one ``LISTEN`` connection that wakes the followers (``bench/replicas.py`` measured this
against a shared pgvector index; docs/reuse.md says why the local index won).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import fields
from importlib import resources
from typing import Any, TypeVar

from psycopg import AsyncConnection, sql
from psycopg.errors import DeadlockDetected
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from .aggregate import (
    CHANGES_SQL,
    PRUNE_CHANGES_SQL,
    change_from,
    ledger_filters,
    period_rows,
    report_row,
)
from .keys import key_id_of, mint_key, secret_matches
from .protocols import Store
from .rows import (
    ApiKey,
    BatchLineRow,
    ChangeRow,
    Claim,
    CounterState,
    DocumentRow,
    EnergyProfileRow,
    FileRow,
    JobRow,
    LedgerQuery,
    LedgerRow,
    NewKey,
    ObservationRow,
    PeriodRow,
    Release,
    ReportRow,
    StoredEntry,
    VariantRow,
)

log = logging.getLogger("boundgate.store")

_T = TypeVar("_T")
_Conn = AsyncConnection[Any]

# one bigint key for the migration lock; the per-row locks use the two-int4 key space, which
# PostgreSQL keeps apart from the bigint one
_MIGRATION_LOCK = 0x626F756E64676174  # "boundgat"
_LOCK_ASKERS, _LOCK_NOVEL, _LOCK_VARIANTS = 1, 2, 3

_REUSED = "COALESCE(reuse, '') IN ('hit-exact', 'hit-semantic', 'hit-coalesced', 'stale')"


def _q(column: str) -> str:
    return f'"{column}"'


def _cols(columns: list[str]) -> str:
    return ", ".join(_q(c) for c in columns)


def _marks(columns: list[str]) -> str:
    return ", ".join("%s" for _ in columns)


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
_ENTRY_COLUMNS = [f.name for f in fields(StoredEntry)]
_ENTRY_SELECT = f"SELECT {_cols(_ENTRY_COLUMNS)} FROM reuse_entries"
_INSERT_ENTRY = (
    f"INSERT INTO reuse_entries ({_cols(_ENTRY_COLUMNS)}) VALUES ({_marks(_ENTRY_COLUMNS)}) "
    "ON CONFLICT DO NOTHING"
)
_DOC_COLUMNS = [f.name for f in fields(DocumentRow)]
_DOC_SELECT = f"SELECT {_cols(_DOC_COLUMNS)} FROM documents"
_JOB_COLUMNS = [f.name for f in fields(JobRow)]
_PROFILE_COLUMNS = [f.name for f in fields(EnergyProfileRow)]
_JOB_SELECT = f"SELECT {_cols(_JOB_COLUMNS)} FROM jobs"
_VARIANT_COLUMNS = [f.name for f in fields(VariantRow)]
_KEY_COLUMNS = [
    "id",
    "tenant",
    "admin",
    "created",
    "revoked",
    "rpm",
    "daily_tokens",
    "daily_reasoning_tokens",
]


_SETTLE = """
WITH h AS (
    DELETE FROM limit_holds
    WHERE hold_id = %(hold_id)s AND counter = %(counter)s AND window_start = %(window)s
    RETURNING amount
)
UPDATE limit_counters
SET used = used + %(used)s, reserved = reserved - COALESCE((SELECT SUM(amount) FROM h), 0)
WHERE counter = %(counter)s AND window_start = %(window)s
"""


def load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every ``migrations_postgres/NNNN_name.sql`` file, in order."""
    out = []
    for entry in resources.files("boundgate.store.migrations_postgres").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text()))
    return sorted(out)


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


def _entry_from(r: dict[str, Any]) -> StoredEntry:
    data = {c: r[c] for c in _ENTRY_COLUMNS}
    data["vector"] = bytes(data["vector"])
    return StoredEntry(**data)


def _job_from(r: dict[str, Any]) -> JobRow:
    return JobRow(**{c: r[c] for c in _JOB_COLUMNS})


def _doc_from(r: dict[str, Any]) -> DocumentRow:
    return DocumentRow(**{c: r[c] for c in _DOC_COLUMNS})


async def _all(conn: _Conn, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def _one(conn: _Conn, sql: str, params: Any = ()) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()


async def _scalar(conn: _Conn, sql: str, params: Any = ()) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql, params)
        r = await cur.fetchone()
        return None if r is None else r[0]


async def _rowcount(conn: _Conn, sql: str, params: Any = ()) -> int:
    async with conn.cursor() as cur:
        await cur.execute(sql, params)
        return cur.rowcount


class PostgresStore(Store):
    """The store on the PostgreSQL database at ``url`` (a libpq connection string or URI;
    ``options=-csearch_path=…`` picks a schema). ``min_size``/``max_size``: the pool's
    connections."""

    announces_changes = True  # LISTEN/NOTIFY

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout_s: float = 30.0,
        key_cache_s: float = 0.0,
    ) -> None:
        """``key_cache_s``: how long a key check may be trusted (``store.key_cache_s``; 0:
        every check reads the key table)."""
        self.url = url
        self.key_cache_s = key_cache_s
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: AsyncConnectionPool[_Conn] | None = None
        self._has_keys = False
        # key checks (see the module docstring): read at (monotonic) → row, and when the key
        # table was last seen empty; dropped (and the generation bumped) when a key changes
        self._keys_lock = threading.Lock()
        self._key_rows: dict[str, tuple[float, dict[str, Any]]] = {}
        self._no_keys_at: float | None = None
        self._key_generation = 0
        self._listening = False  # the listener holds its LISTENs: announcements arrive
        # the change-log listener, on the store's loop (started by the first wait or key check)
        self._listener: asyncio.Task[None] | None = None
        self._notified = 0  # highest change number announced by NOTIFY
        self._changed = asyncio.Event()  # set (and replaced) at each announcement

    # --- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        if self._pool is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="boundgate-store-postgres", daemon=True
        )
        thread.start()
        try:
            pool = asyncio.run_coroutine_threadsafe(self._start(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        self._loop, self._thread, self._pool = loop, thread, pool

    async def _start(self) -> AsyncConnectionPool[_Conn]:
        # one direct connection first: a bad URL or a server that is down fails here, fast and
        # with libpq's own message (a pool would only time out)
        probe = await AsyncConnection.connect(
            self.url, connect_timeout=max(1, round(self._connect_timeout_s))
        )
        await probe.close()
        pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs={"autocommit": True},
            open=False,
            name="boundgate-store",
        )
        await pool.open(wait=True, timeout=self._connect_timeout_s)
        try:
            async with pool.connection() as conn:
                await self._migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return pool

    async def _migrate(self, conn: _Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
            )
            done = {r["version"] for r in await _all(conn, "SELECT version FROM schema_migrations")}
            for version, name, sql in load_migrations():
                if version in done:
                    continue
                await conn.execute(sql.encode())  # several statements: no parameters
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (version, name, time.time()),
                )

    def close(self) -> None:
        loop, thread, pool = self._loop, self._thread, self._pool
        self._loop = self._thread = self._pool = None
        if loop is None or pool is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop_listening(), loop).result()
            asyncio.run_coroutine_threadsafe(pool.close(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join()
            loop.close()

    # --- running on the store's loop ------------------------------------------------------
    async def _run(self, fn: Callable[[_Conn], Awaitable[_T]], tx: bool = False) -> _T:
        """Run ``fn`` with a pooled connection on the store's loop (in one transaction when
        ``tx``); return its result to the caller's loop."""
        loop, pool = self._loop, self._pool
        if loop is None or pool is None:
            raise RuntimeError("store is not open")

        async def go() -> _T:
            async with pool.connection() as conn:
                if not tx:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)

        return await self._hop(go(), loop)

    @staticmethod
    async def _hop(coro: Coroutine[Any, Any, _T], loop: asyncio.AbstractEventLoop) -> _T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def _execute(self, sql: str, params: Any = ()) -> int:
        """One statement in its own (autocommit) transaction; the rows it changed."""
        return await self._run(lambda conn: _rowcount(conn, sql, params))

    # --- ledger --------------------------------------------------------------------------
    async def record(self, row: LedgerRow) -> None:
        await self._execute(_INSERT_LEDGER, _ledger_values(row))

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
        for attempt in range(5):
            try:
                return int(await self._run(lambda conn: _scalar(conn, _RECORD_HIT, params))) == 1
            except DeadlockDetected:
                # the release against a sweep of the same expired hold (see ``reserve``):
                # rolled back whole, the row included, so it can simply run again
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

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
            f"SELECT COALESCE(model, '') AS model, {_REUSED} AS reused, latency_ms FROM ledger "
            "WHERE ts >= %s AND status < 400 ORDER BY ts DESC, seq DESC LIMIT %s"
        )
        rows = await self._run(lambda conn: _all(conn, sql, (since, limit)))
        return [(str(r["model"]), bool(r["reused"]), float(r["latency_ms"])) for r in rows]

    async def report(self, since: float | None = None) -> list[ReportRow]:
        sql = f"""
            SELECT tenant, COALESCE(model, '') AS model, COUNT(*) AS requests,
                   SUM((outcome = 'error')::int) AS errors,
                   SUM(prompt_tokens) AS prompt_tokens,
                   SUM(completion_tokens) AS completion_tokens,
                   SUM(wh) AS wh, SUM(wh_low) AS wh_low, SUM(wh_high) AS wh_high,
                   SUM(gco2) AS gco2, AVG(latency_ms) AS avg_latency_ms,
                   SUM(({_REUSED})::int) AS reused,
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
                   SUM((outcome = 'error')::int) AS errors,
                   SUM(({_REUSED})::int) AS reused,
                   SUM(wh) AS wh, SUM(gco2) AS gco2,
                   SUM(avoided_wh) AS avoided_wh, SUM(avoided_gco2) AS avoided_gco2,
                   SUM((route IS NOT NULL)::int) AS routed,
                   SUM(rightsizing_avoided_wh) AS rightsizing_avoided_wh,
                   SUM(rightsizing_avoided_gco2) AS rightsizing_avoided_gco2
            FROM ledger WHERE ts >= %(since)s GROUP BY 1, 2
        """
        # Batches keep their counterfactual (carbon had they run at submission) in their JSON
        # object; count the ones that ran, in the period they finished.
        batch_sql = """
            SELECT floor(finished / %(p)s) * %(p)s AS start, tenant, COUNT(*) AS batches,
                   SUM(saved) AS saved
            FROM (
                SELECT tenant,
                       COALESCE((b ->> 'completed_at')::float8,
                                (b ->> 'cancelled_at')::float8) AS finished,
                       (b -> 'boundgate' ->> 'shifting_saved_g')::float8 AS saved
                FROM (SELECT tenant, body::jsonb AS b FROM batches) AS parsed
                WHERE b -> 'boundgate' ->> 'started_at' IS NOT NULL
                  AND b -> 'boundgate' ->> 'state' IN ('done', 'cancelled')
            ) AS finished_batches
            WHERE finished >= %(since)s GROUP BY 1, 2
        """
        params = {"p": period_s, "since": since}

        async def run(conn: _Conn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            return await _all(conn, ledger_sql, params), await _all(conn, batch_sql, params)

        ledger_rows, batch_rows = await self._run(run, tx=True)  # one snapshot for both
        return period_rows(ledger_rows, batch_rows)

    # --- keys and budgets ----------------------------------------------------------------
    async def create_key(
        self,
        tenant: str,
        admin: bool = False,
        rpm: int | None = None,
        daily_tokens: int | None = None,
        daily_reasoning_tokens: int | None = None,
    ) -> NewKey:
        m = mint_key()
        await self._execute(
            "INSERT INTO api_keys (id, tenant, admin, created, revoked, rpm, daily_tokens, "
            "daily_reasoning_tokens, salt, hash) "
            "VALUES (%s, %s, %s, %s, FALSE, %s, %s, %s, %s, %s)",
            (
                m.id,
                tenant,
                admin,
                m.created,
                rpm,
                daily_tokens,
                daily_reasoning_tokens,
                m.salt,
                m.digest,
            ),
        )
        self._has_keys = True
        self._keys_changed()
        key = ApiKey(
            m.id, tenant, admin, m.created, False, rpm, daily_tokens, daily_reasoning_tokens
        )
        return NewKey(key=key, secret=m.secret)

    async def verify_key(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        now = time.monotonic()
        cached = self._key_rows.get(key_id) if self._listening else None
        if cached is not None and now - cached[0] < self.key_cache_s:
            r: dict[str, Any] | None = cached[1]
        else:
            self._ensure_listener()
            generation = self._key_generation
            sql = f"SELECT {_cols(_KEY_COLUMNS)}, salt, hash FROM api_keys WHERE id = %s"
            r = await self._run(lambda conn: _one(conn, sql, (key_id,)))
            if r is not None:
                with self._keys_lock:  # unless a key changed while it was being read
                    if generation == self._key_generation:
                        self._key_rows[key_id] = (now, r)
        if r is None:
            return None
        if not secret_matches(secret, bytes(r["salt"]), bytes(r["hash"])) or r["revoked"]:
            return None
        return ApiKey(**{c: r[c] for c in _KEY_COLUMNS})

    def _keys_changed(self) -> None:
        """A key was created, revoked or changed (here, or announced): forget key checks."""
        with self._keys_lock:
            self._key_generation += 1
            self._key_rows.clear()
            self._no_keys_at = None

    async def list_keys(self) -> list[ApiKey]:
        sql = f"SELECT {_cols(_KEY_COLUMNS)} FROM api_keys ORDER BY created, seq"
        rows = await self._run(lambda conn: _all(conn, sql))
        return [ApiKey(**{c: r[c] for c in _KEY_COLUMNS}) for r in rows]

    async def revoke_key(self, key_id: str) -> bool:
        sql = "UPDATE api_keys SET revoked = TRUE WHERE id = %s"
        revoked = await self._execute(sql, (key_id,)) == 1
        self._keys_changed()
        return revoked

    async def has_keys(self) -> bool:
        if self._has_keys:  # keys are never deleted: once True, always True
            return True
        now = time.monotonic()
        seen = self._no_keys_at
        if self._listening and seen is not None and now - seen < self.key_cache_s:
            return False
        self._ensure_listener()
        generation = self._key_generation
        sql = "SELECT EXISTS (SELECT 1 FROM api_keys)"
        found = bool(await self._run(lambda conn: _scalar(conn, sql)))
        with self._keys_lock:
            if found:
                self._has_keys = True
            elif generation == self._key_generation:
                self._no_keys_at = now
        return found

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

    async def novel_used(self, tenant: str, since: float) -> int:
        sql = (
            "SELECT COUNT(*) FROM ledger WHERE tenant = %s AND ts >= %s AND outcome = 'ok' "
            "AND extra -> 'novel' IN ('true'::jsonb, '1'::jsonb)"
        )
        return int(await self._run(lambda conn: _scalar(conn, sql, (tenant, since))))

    # --- stored answers and registry -----------------------------------------------------
    async def put_entry(self, entry: StoredEntry) -> None:
        await self._execute(_INSERT_ENTRY, [getattr(entry, c) for c in _ENTRY_COLUMNS])

    async def entries(self, embedder: str) -> list[StoredEntry]:
        sql = _ENTRY_SELECT + " WHERE embedder = %s ORDER BY key"
        rows = await self._run(lambda conn: _all(conn, sql, (embedder,)))
        return [_entry_from(r) for r in rows]

    async def get_entry(self, key: int) -> StoredEntry | None:
        r = await self._run(lambda conn: _one(conn, _ENTRY_SELECT + " WHERE key = %s", (key,)))
        return _entry_from(r) if r is not None else None

    async def get_entry_by_id(self, public_id: str) -> StoredEntry | None:
        sql = _ENTRY_SELECT + " WHERE id = %s"
        r = await self._run(lambda conn: _one(conn, sql, (public_id,)))
        return _entry_from(r) if r is not None else None

    async def get_entry_by_exact(self, exact: str) -> StoredEntry | None:
        sql = (
            _ENTRY_SELECT + " WHERE exact = %s AND NOT revoked ORDER BY created DESC, key DESC "
            "LIMIT 1"
        )
        r = await self._run(lambda conn: _one(conn, sql, (exact,)))
        return _entry_from(r) if r is not None else None

    async def max_entry_key(self) -> int:
        sql = "SELECT COALESCE(MAX(key), 0) FROM reuse_entries"
        return int(await self._run(lambda conn: _scalar(conn, sql)))

    async def note_hit(self, key: int, ts: float, n: int = 1) -> None:
        await self._execute(
            "UPDATE reuse_entries SET hits = hits + %s, last_hit = %s WHERE key = %s",
            (n, ts, key),
        )

    async def delete_entries(self, keys: list[int]) -> None:
        if not keys:
            return

        async def delete(conn: _Conn) -> None:
            await conn.execute("DELETE FROM reuse_entries WHERE key = ANY(%s::bigint[])", (keys,))
            await conn.execute(
                "DELETE FROM reuse_question_variants WHERE entry = ANY(%s::bigint[])", (keys,)
            )

        await self._run(delete, tx=True)

    async def set_entry_document(
        self, entry: int, doc_id: str | None, revoked: bool = False
    ) -> None:
        await self._execute(
            "UPDATE reuse_entries SET document_id = %s, revoked = %s WHERE key = %s",
            (doc_id, revoked, entry),
        )

    async def add_question_variant(self, entry: int, exact: str, query: str, ts: float) -> None:
        await self._execute(
            "INSERT INTO reuse_question_variants (exact, entry, query, ts) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (exact) DO UPDATE SET entry = EXCLUDED.entry, query = EXCLUDED.query, "
            "ts = EXCLUDED.ts",
            (exact, entry, query, ts),
        )

    async def question_variants(self) -> list[tuple[str, int]]:
        sql = "SELECT exact, entry FROM reuse_question_variants ORDER BY ts, exact"
        rows = await self._run(lambda conn: _all(conn, sql))
        return [(str(r["exact"]), int(r["entry"])) for r in rows]

    async def add_asker(self, entry: int, asker: str, query: str, ts: float) -> int:
        async def add(conn: _Conn) -> int:
            # askers of one entry one at a time, so each count includes every earlier asker
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_ASKERS, str(entry))
            )
            await conn.execute(
                "INSERT INTO reuse_askers (entry, asker, query, ts) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (entry, asker, query, ts),
            )
            return int(
                await _scalar(conn, "SELECT COUNT(*) FROM reuse_askers WHERE entry = %s", (entry,))
            )

        return await self._run(add, tx=True)

    async def asker_count(self, entry: int) -> int:
        sql = "SELECT COUNT(*) FROM reuse_askers WHERE entry = %s"
        return int(await self._run(lambda conn: _scalar(conn, sql, (entry,))))

    async def variants(self, entry: int) -> list[str]:
        sql = "SELECT DISTINCT query FROM reuse_askers WHERE entry = %s ORDER BY query"
        rows = await self._run(lambda conn: _all(conn, sql, (entry,)))
        return [str(r["query"]) for r in rows]

    # --- the change log ------------------------------------------------------------------
    async def new_entry_key(self) -> int:
        sql_ = "SELECT nextval('reuse_entry_keys')"
        return int(await self._run(lambda conn: _scalar(conn, sql_)))

    async def change_head(self) -> int:
        sql_ = "SELECT COALESCE(MAX(seq), 0) FROM reuse_changes"
        return int(await self._run(lambda conn: _scalar(conn, sql_)))

    async def changes(self, after: int, limit: int = 1000) -> list[ChangeRow]:
        sql_ = CHANGES_SQL.format("%s")
        rows = await self._run(lambda conn: _all(conn, sql_, (after, limit)))
        return [change_from(r) for r in rows]

    async def wait_for_changes(self, after: int, timeout_s: float) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError("store is not open")
        await self._hop(self._wait_for_changes(after, timeout_s), loop)

    async def prune_changes(self, before: float) -> int:
        return await self._execute(PRUNE_CHANGES_SQL.format("%s"), (before,))

    def _ensure_listener(self) -> None:
        """Start the listener (from any thread) unless it runs."""
        loop = self._loop
        if loop is not None and (self._listener is None or self._listener.done()):
            loop.call_soon_threadsafe(self._start_listener)

    def _start_listener(self) -> None:
        """On the store's loop."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _wait_for_changes(self, after: int, timeout_s: float) -> None:
        """On the store's loop: until a change after ``after`` is announced, or the timeout."""
        self._start_listener()
        if self._notified > after:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    def _announce(self, seq: int | None) -> None:
        if seq is not None:
            self._notified = max(self._notified, seq)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _listen(self) -> None:
        """Hold one connection that ``LISTEN``s on this schema's channels (the change log's
        and the keys'); reconnect after a failure. Missed announcements of the change log
        cost nothing but latency: waiters time out and the follower reads the log by
        sequence number. Key checks are trusted only while this listens."""
        while True:
            try:
                async with await AsyncConnection.connect(self.url, autocommit=True) as conn:
                    schema = await _scalar(conn, "SELECT current_schema()")
                    keys = f"boundgate_keys_{schema}"
                    for channel in (f"boundgate_reuse_{schema}", keys):
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._keys_changed()  # whatever happened while not listening: look now
                    self._listening = True
                    self._announce(None)
                    async for n in conn.notifies():
                        if n.channel == keys:
                            self._keys_changed()
                        else:
                            self._announce(int(n.payload) if n.payload.isdigit() else None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarting, a network cut
                log.warning("change-log listener: %s; reconnecting in 1 s", exc)
                await asyncio.sleep(1.0)
            finally:
                self._listening = False

    async def _stop_listening(self) -> None:
        self._listening = False
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # --- budgets and rate limits ---------------------------------------------------------
    async def reserve(self, hold_id: str, claims: list[Claim], now: float) -> int | None:
        # one statement however many claims: boundgate_reserve (migration 0004) takes them
        # in counter order, each a conditional upsert, undoing all if one does not fit
        order = sorted(range(len(claims)), key=lambda i: (claims[i].counter, claims[i].window))
        ordered = [claims[i] for i in order]
        sql = (
            "SELECT boundgate_reserve(%s, %s::text[], %s::float8[], %s::bigint[], "
            "%s::bigint[], %s::float8[], %s)"
        )
        params = (
            hold_id,
            [c.counter for c in ordered],
            [c.window for c in ordered],
            [c.amount for c in ordered],
            [c.limit for c in ordered],
            [c.hold_s for c in ordered],
            now,
        )
        for attempt in range(5):
            try:
                refused = await self._run(lambda conn: _scalar(conn, sql, params))
                return None if refused is None else order[int(refused)]
            except DeadlockDetected:
                # a settle and a sweep of the same expired hold, locking in opposite order:
                # PostgreSQL rolled this one back, so it can simply run again
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    async def settle(self, hold_id: str, counter: str, window: float, used: int) -> None:
        params = {"hold_id": hold_id, "counter": counter, "window": window, "used": used}
        for attempt in range(5):
            try:
                await self._execute(_SETTLE, params)
                return
            except DeadlockDetected:
                if attempt == 4:
                    raise

    async def counter_state(self, counter: str, window: float, now: float) -> CounterState:
        sql = (
            "SELECT (SELECT used FROM limit_counters WHERE counter = %(c)s AND "
            "window_start = %(w)s) AS used, COALESCE(SUM(amount), 0) AS held, "
            "MIN(expires) AS expiry FROM limit_holds WHERE counter = %(c)s AND "
            "window_start = %(w)s AND expires >= %(now)s"
        )
        params = {"c": counter, "w": window, "now": now}
        r = await self._run(lambda conn: _one(conn, sql, params))
        assert r is not None
        return CounterState(int(r["used"] or 0), int(r["held"]), r["expiry"])

    async def prune_counters(self, before: float) -> None:
        async def prune(conn: _Conn) -> None:
            where = "window_start < %s AND window_start <> 0"
            await conn.execute(f"DELETE FROM limit_holds WHERE {where}", (before,))
            await conn.execute(f"DELETE FROM limit_counters WHERE {where}", (before,))

        await self._run(prune, tx=True)

    # --- documents -----------------------------------------------------------------------
    async def put_document(self, doc: DocumentRow) -> None:
        insert = f"INSERT INTO documents ({_cols(_DOC_COLUMNS)}) VALUES ({_marks(_DOC_COLUMNS)})"
        values = [getattr(doc, c) for c in _DOC_COLUMNS]

        async def write(conn: _Conn) -> None:
            await conn.execute(insert, values)
            if doc.supersedes is not None:
                await conn.execute(
                    "UPDATE documents SET state = 'superseded', superseded_by = %s WHERE id = %s",
                    (doc.id, doc.supersedes),
                )

        await self._run(write, tx=True)

    async def get_document(self, doc_id: str) -> DocumentRow | None:
        r = await self._run(lambda conn: _one(conn, _DOC_SELECT + " WHERE id = %s", (doc_id,)))
        return _doc_from(r) if r is not None else None

    async def documents(
        self, state: str | None = None, limit: int | None = None
    ) -> list[DocumentRow]:
        sql = _DOC_SELECT
        params: list[Any] = []
        if state is not None:
            sql += " WHERE state = %s"
            params.append(state)
        sql += " ORDER BY created DESC, seq DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        rows = await self._run(lambda conn: _all(conn, sql, params))
        return [_doc_from(r) for r in rows]

    async def set_document_state(
        self, doc_id: str, state: str, superseded_by: str | None = None
    ) -> None:
        await self._execute(
            "UPDATE documents SET state = %s, superseded_by = COALESCE(%s::text, superseded_by) "
            "WHERE id = %s",
            (state, superseded_by, doc_id),
        )

    async def _state_counts(self, table: str) -> dict[str, int]:
        sql = f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state"
        rows = await self._run(lambda conn: _all(conn, sql))
        return {str(r["state"]): int(r["n"]) for r in rows}

    async def document_counts(self) -> dict[str, int]:
        return await self._state_counts("documents")

    # --- verifier labels -----------------------------------------------------------------
    async def add_observation(self, obs: ObservationRow) -> None:
        await self._execute(
            "INSERT INTO reuse_observations "
            "(ts, entry, similarity, correct, source, request_id, density, pair_score) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                obs.ts,
                obs.entry,
                obs.similarity,
                obs.correct,
                obs.source,
                obs.request_id,
                obs.density,
                obs.pair_score,
            ),
        )

    async def observations(self) -> list[ObservationRow]:
        sql = (
            "SELECT ts, entry, similarity, correct, source, request_id, density, pair_score "
            "FROM reuse_observations ORDER BY id"
        )
        rows = await self._run(lambda conn: _all(conn, sql))
        return [
            ObservationRow(
                r["ts"],
                r["entry"],
                float(r["similarity"]),
                bool(r["correct"]),
                r["source"],
                r["request_id"],
                float(r["density"]),
                None if r["pair_score"] is None else float(r["pair_score"]),
            )
            for r in rows
        ]

    async def lookup_similarities(self) -> list[tuple[float | None, float, float | None]]:
        sql = (
            "SELECT similarity, extra ->> 'density' AS density, "
            "extra ->> 'pair_score' AS pair_score FROM ledger "
            "WHERE extra -> 'semantic_lookup' IN ('1'::jsonb, 'true'::jsonb)"
        )
        rows = await self._run(lambda conn: _all(conn, sql))
        return [
            (
                None if r["similarity"] is None else float(r["similarity"]),
                float(r["density"] or 0.0),
                None if r["pair_score"] is None else float(r["pair_score"]),
            )
            for r in rows
        ]

    # --- jobs ----------------------------------------------------------------------------
    async def put_job(self, job: JobRow) -> bool:
        # no conflict target: a clash on the id or on the dedupe key writes nothing
        sql = (
            f"INSERT INTO jobs ({_cols(_JOB_COLUMNS)}) VALUES ({_marks(_JOB_COLUMNS)}) "
            "ON CONFLICT DO NOTHING"
        )
        return await self._execute(sql, [getattr(job, c) for c in _JOB_COLUMNS]) == 1

    async def claim_job(self, owner: str, now: float, lease_s: float) -> JobRow | None:
        # SKIP LOCKED: a job another replica is claiming right now is passed over, not waited
        # for (and re-checked against the condition once locked)
        sql = (
            "UPDATE jobs SET state = 'running', lease_owner = %s, lease_expires = %s, "
            "attempts = attempts + 1 WHERE id = (SELECT id FROM jobs WHERE "
            "(state = 'pending' AND not_before <= %s) OR "
            "(state = 'running' AND lease_expires < %s) "
            "ORDER BY not_before, seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_cols(_JOB_COLUMNS)}"
        )
        params = (owner, now + lease_s, now, now)
        r = await self._run(lambda conn: _one(conn, sql, params))
        return _job_from(r) if r is not None else None

    async def finish_job(self, job_id: str, owner: str, state: str, result: str | None) -> bool:
        sql = (
            "UPDATE jobs SET state = %s, result = %s, lease_owner = NULL, lease_expires = NULL "
            "WHERE id = %s AND state = 'running' AND lease_owner = %s"
        )
        return await self._execute(sql, (state, result, job_id, owner)) == 1

    async def renew_job(self, job_id: str, owner: str, until: float) -> bool:
        sql = (
            "UPDATE jobs SET lease_expires = %s "
            "WHERE id = %s AND state = 'running' AND lease_owner = %s"
        )
        return await self._execute(sql, (until, job_id, owner)) == 1

    async def reschedule_job(self, job_id: str, not_before: float) -> bool:
        sql = "UPDATE jobs SET not_before = %s WHERE id = %s AND state = 'pending'"
        return await self._execute(sql, (not_before, job_id)) == 1

    async def cancel_job(self, job_id: str) -> bool:
        sql = "UPDATE jobs SET state = 'cancelled' WHERE id = %s AND state = 'pending'"
        return await self._execute(sql, (job_id,)) == 1

    async def jobs(self, state: str | None = None) -> list[JobRow]:
        sql = _JOB_SELECT + (" WHERE state = %s" if state else "") + " ORDER BY created, seq"
        params = (state,) if state else ()
        rows = await self._run(lambda conn: _all(conn, sql, params))
        return [_job_from(r) for r in rows]

    async def job_counts(self) -> dict[str, int]:
        return await self._state_counts("jobs")

    # --- files and batches ---------------------------------------------------------------
    async def put_file(self, f: FileRow) -> None:
        await self._execute(
            "INSERT INTO files (id, tenant, purpose, filename, bytes, created, content) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (f.id, f.tenant, f.purpose, f.filename, f.size, f.created, f.content),
        )

    async def get_file(self, file_id: str) -> FileRow | None:
        sql = (
            "SELECT id, tenant, purpose, filename, bytes, created, content FROM files WHERE id = %s"
        )
        r = await self._run(lambda conn: _one(conn, sql, (file_id,)))
        if r is None:
            return None
        return FileRow(
            r["id"], r["tenant"], r["purpose"], r["filename"], r["bytes"], r["created"],
            bytes(r["content"]),
        )  # fmt: skip

    async def put_batch(self, batch_id: str, tenant: str, created: float, body: str) -> None:
        await self._execute(
            "INSERT INTO batches (id, tenant, created, body) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, "
            "created = EXCLUDED.created, body = EXCLUDED.body",
            (batch_id, tenant, created, body),
        )

    async def get_batch(self, batch_id: str) -> tuple[str, str] | None:
        sql = "SELECT tenant, body FROM batches WHERE id = %s"
        r = await self._run(lambda conn: _one(conn, sql, (batch_id,)))
        return (str(r["tenant"]), str(r["body"])) if r is not None else None

    async def batches(self, limit: int = 100) -> list[tuple[str, str, float, str]]:
        sql = (
            "SELECT id, tenant, created, body FROM batches ORDER BY created DESC, id DESC LIMIT %s"
        )
        rows = await self._run(lambda conn: _all(conn, sql, (limit,)))
        return [(str(r["id"]), str(r["tenant"]), float(r["created"]), str(r["body"])) for r in rows]

    async def put_batch_line(self, row: BatchLineRow) -> None:
        await self._execute(
            "INSERT INTO batch_lines (batch_id, line, kind, record, energy_wh, carbon_g, "
            "avoided_wh) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (row.batch_id, row.line, row.kind, row.record, row.energy_wh, row.carbon_g,
             row.avoided_wh),
        )  # fmt: skip

    async def batch_lines(self, batch_id: str) -> list[BatchLineRow]:
        sql = (
            "SELECT batch_id, line, kind, record, energy_wh, carbon_g, avoided_wh "
            "FROM batch_lines WHERE batch_id = %s ORDER BY line"
        )
        rows = await self._run(lambda conn: _all(conn, sql, (batch_id,)))
        return [BatchLineRow(**r) for r in rows]

    async def batch_line_counts(self, batch_id: str) -> tuple[int, int]:
        sql = (
            "SELECT COUNT(*) FILTER (WHERE kind = 'output') AS outputs, "
            "COUNT(*) FILTER (WHERE kind = 'error') AS errors "
            "FROM batch_lines WHERE batch_id = %s"
        )
        r = await self._run(lambda conn: _one(conn, sql, (batch_id,)))
        return (int(r["outputs"]), int(r["errors"])) if r is not None else (0, 0)

    async def drop_batch_lines(self, batch_id: str) -> None:
        await self._execute("DELETE FROM batch_lines WHERE batch_id = %s", (batch_id,))

    # --- creativity buffer ---------------------------------------------------------------
    async def note_novel_ask(self, exact: str, asker: str, request: str, ts: float) -> int:
        async def note(conn: _Conn) -> int:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NOVEL, exact)
            )
            await conn.execute(
                "INSERT INTO novel_asks (exact, asker, request, ts) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (exact, asker) DO UPDATE SET request = EXCLUDED.request, "
                "ts = EXCLUDED.ts",
                (exact, asker, request, ts),
            )
            sql = "SELECT COUNT(*) FROM novel_asks WHERE exact = %s"
            return int(await _scalar(conn, sql, (exact,)))

        return await self._run(note, tx=True)

    async def novel_request(self, exact: str) -> str | None:
        sql = "SELECT request FROM novel_asks WHERE exact = %s ORDER BY ts DESC LIMIT 1"
        r = await self._run(lambda conn: _scalar(conn, sql, (exact,)))
        return str(r) if r is not None else None

    async def add_variants(self, variants: list[VariantRow]) -> None:
        if not variants:
            if self._pool is None:
                raise RuntimeError("store is not open")
            return
        columns = [c for c in _VARIANT_COLUMNS if c != "id"]
        sql = f"INSERT INTO variants ({_cols(columns)}) VALUES ({_marks(columns)})"
        rows = [[getattr(v, c) for c in columns] for v in variants]

        async def add(conn: _Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(sql, rows)

        await self._run(add, tx=True)

    async def take_variant(self, exact: str, asker: str, ts: float) -> VariantRow | None:
        select = (
            f"SELECT {_cols(_VARIANT_COLUMNS)} FROM variants v WHERE exact = %s AND NOT EXISTS "
            "(SELECT 1 FROM variant_serves s WHERE s.variant = v.id AND s.asker = %s) "
            "ORDER BY (SELECT COUNT(*) FROM variant_serves s WHERE s.variant = v.id), id LIMIT 1"
        )

        async def take(conn: _Conn) -> VariantRow | None:
            # takes of one prompt one at a time: each sees every serve before it
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_VARIANTS, exact)
            )
            r = await _one(conn, select, (exact, asker))
            if r is None:
                return None
            await conn.execute(
                "INSERT INTO variant_serves (variant, asker, ts) VALUES (%s, %s, %s)",
                (r["id"], asker, ts),
            )
            return VariantRow(**{c: r[c] for c in _VARIANT_COLUMNS})

        return await self._run(take, tx=True)

    async def variant_count(self, exact: str) -> int:
        sql = "SELECT COUNT(*) FROM variants WHERE exact = %s"
        return int(await self._run(lambda conn: _scalar(conn, sql, (exact,))))

    async def unused_variants(self, exact: str) -> int:
        sql = (
            "SELECT COUNT(*) FROM variants v WHERE exact = %s AND NOT EXISTS "
            "(SELECT 1 FROM variant_serves s WHERE s.variant = v.id)"
        )
        return int(await self._run(lambda conn: _scalar(conn, sql, (exact,))))
