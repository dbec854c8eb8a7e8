"""The PostgreSQL store's core: the pool on the store's own event-loop thread, migrations
under an advisory lock, the change-log listener (LISTEN/NOTIFY) and the key-check cache
it clears; the aggregates' mixins (the package's other modules) build on
:class:`PostgresBase`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from importlib import resources
from typing import Any, TypeVar

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ..aggregate import (
    CHANGES_SQL,
    PRUNE_CHANGES_SQL,
    change_from,
)
from ..rows import ChangeRow

log = logging.getLogger("boundgate.store")

_T = TypeVar("_T")
_Conn = AsyncConnection[Any]

# one bigint key for the migration lock; the per-row locks use the two-int4 key space, which
# PostgreSQL keeps apart from the bigint one
_MIGRATION_LOCK = 0x626F756E64676174  # "boundgat"
_LOCK_ASKERS, _LOCK_NOVEL, _LOCK_VARIANTS = 1, 2, 3


def _q(column: str) -> str:
    return f'"{column}"'


def _cols(columns: list[str]) -> str:
    return ", ".join(_q(c) for c in columns)


def _marks(columns: list[str]) -> str:
    return ", ".join("%s" for _ in columns)


def load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every ``migrations_postgres/NNNN_name.sql`` file, in order."""
    out = []
    for entry in resources.files("boundgate.store.migrations_postgres").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text()))
    return sorted(out)


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


class PostgresBase:
    """Pool, lifecycle, the loop hop and the change-log listener: what every aggregate's
    methods run on."""

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

    def _keys_changed(self) -> None:
        """A key was created, revoked or changed (here, or announced): forget key checks."""
        with self._keys_lock:
            self._key_generation += 1
            self._key_rows.clear()
            self._no_keys_at = None

    async def _state_counts(self, table: str) -> dict[str, int]:
        sql = f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state"
        rows = await self._run(lambda conn: _all(conn, sql))
        return {str(r["state"]): int(r["n"]) for r in rows}
