"""The PostgreSQL store's core: the pool on the store's own event-loop thread, migrations
under an advisory lock, the change-log listener (LISTEN/NOTIFY) and the key-check cache
it clears; the aggregates' mixins (the package's other modules) build on
:class:`PostgresBase`.

The database going away (a trial stopped PostgreSQL under two replicas): every call gets its
connection within ``connect_timeout_s`` or raises ``StoreUnavailableError`` (psycopg_pool's
own default wait is 30 s, and a request that then failed waited as long again to ledger its
error). A pooled connection is checked before it is handed out, so one the server closed
while idle (a restart) is replaced instead of failing its request: with an empty statement
(a round trip) when it was idle ``CHECK_IDLE_S`` or more, or when something arrived on its
socket meanwhile (a server that shuts down says goodbye and closes its end, which shows
there); one given back within that second with nothing arrived since is handed out as it
is, so busy calls keep their round trips. The pool's reconnection attempts give up after
``connect_timeout_s`` rather than backing off for minutes (1, 2, 4 … 128 s between attempts
until 300 s, psycopg_pool's defaults), so once the database is back the next call connects
at once instead of waiting for an attempt scheduled a minute later. Connections are made
with libpq's ``connect_timeout`` too: a host that drops packets (no refusal) fails the
attempt, not the pool. A server that stops answering but keeps its connections (frozen, or a
lock held) is bounded too: each call may take ``statement_timeout_s`` on its connection, a
ping (``/readyz``) ``connect_timeout_s``, then it fails with ``StoreUnavailableError`` (psycopg
cancels the statement on the server, or gives the connection up when that is not answered).
A read-only database (a standby) fails every write, and the ping, the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import select
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from importlib import resources
from typing import Any, TypeVar

from psycopg import AsyncConnection, OperationalError, sql
from psycopg.errors import DeadlockDetected, ReadOnlySqlTransaction
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..aggregate import (
    CHANGES_SQL,
    PRUNE_CHANGES_SQL,
    change_from,
)
from ..outages import OutageLog
from ..protocols import StoreUnavailableError, check_schema_known
from ..rows import ChangeRow

log = logging.getLogger("boundgate.store")


class _QuietPoolConnects(logging.Filter):
    """Drops psycopg_pool's warnings per failed connection attempt ("error connecting in
    'boundgate-store': …", several lines each) and per failed reconnection ("reconnection
    attempt in pool … failed after 5.0 sec"): an outage is logged once by the store's own
    outage log (``store/outages.py``), its tries at debug level. A trial's 10 s outage logged
    about 35 of them per replica, 66 with two workers."""

    QUIET = ("error connecting in", "reconnection attempt in pool")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.QUIET)


_POOL_LOG = logging.getLogger("psycopg.pool")
if not any(isinstance(f, _QuietPoolConnects) for f in _POOL_LOG.filters):
    _POOL_LOG.addFilter(_QuietPoolConnects())

_T = TypeVar("_T")
_Conn = AsyncConnection[Any]

# one bigint key for the migration lock; the per-row locks use the two-int4 key space, which
# PostgreSQL keeps apart from the bigint one
_MIGRATION_LOCK = 0x626F756E64676174  # "boundgat"
_LOCK_ASKERS, _LOCK_NOVEL, _LOCK_VARIANTS = 1, 2, 3

# a pooled connection idle this long (s) is checked before it is handed out (module docstring)
CHECK_IDLE_S = 1.0
# libpq's TCP keepalives (PostgresBase._libpq_options): the first probe after 30 s idle, then
# every 10 s, the connection given up after 3 unanswered (about 60 s; Linux's defaults: 2 h)
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


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


async def _read_only(conn: _Conn) -> bool:
    """Whether this connection's transactions are read-only (a standby, or the server's
    ``default_transaction_read_only``): one round trip, as an empty statement."""
    return bool(await _scalar(conn, "SHOW transaction_read_only") == "on")


def _quiet(conn: _Conn) -> bool:
    """Whether nothing waits to be read on an idle connection's socket (without a round trip):
    an idle connection is sent nothing, but by a server closing it (a shutdown's message, the
    end of the stream, a reset)."""
    try:
        fd = conn.pgconn.socket
    except OperationalError:  # closed or broken
        return False
    poll = select.poll()
    poll.register(fd, select.POLLIN | select.POLLPRI)
    return not poll.poll(0)


def _lost(conn: _Conn, exc: OperationalError) -> bool:
    """Whether ``exc`` means the database went away (not that a statement failed): the
    connection is broken, or the server said so (class 08, connection exception; 57P,
    shutdown or not accepting connections)."""
    return conn.broken or conn.closed or (exc.sqlstate or "").startswith(("08", "57P"))


DEADLOCK_ATTEMPTS = 5  # ``_through_deadlocks``


class _NoConnection(StoreUnavailableError):
    """No pooled connection answered within ``store.connect_timeout_s``."""


# when (monotonic) a call of this context (a request, a background task) last found no
# connection: its next calls within store.connect_timeout_s fail at once, not each after the
# bound again (a trial's dashboard page, three store calls, took 15 s to say the store was
# down). Per context, so a request after the store returns is not refused for another's wait.
_NO_CONNECTION_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "boundgate_no_connection_at", default=None
)


def _reason(exc: BaseException) -> str:
    """An error's message on one line (libpq's span several), or its type's name."""
    return " ".join(str(exc).split()) or type(exc).__name__


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
        connect_timeout_s: float = 5.0,
        key_cache_s: float = 0.0,
        statement_timeout_s: float = 60.0,
    ) -> None:
        """``connect_timeout_s``: how long opening the store, and then any call, waits for a
        connection (``store.connect_timeout_s``) before failing (a call:
        ``StoreUnavailableError``). ``key_cache_s``: how long a key check may be trusted
        (``store.key_cache_s``; 0: every check reads the key table).
        ``statement_timeout_s``: how long a call may take on its connection before it is
        cancelled and fails with ``StoreUnavailableError`` (``store.statement_timeout_s``)."""
        self.url = url
        self.key_cache_s = key_cache_s
        self._statement_timeout_s = statement_timeout_s
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: AsyncConnectionPool[_Conn] | None = None
        # when each pooled connection was last given back (monotonic; on the store's loop)
        self._last_used: weakref.WeakKeyDictionary[_Conn, float] = weakref.WeakKeyDictionary()
        # the last call found no connection, and none has answered since (``out_of_reach``)
        self._out_of_reach = False
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
        probe = await AsyncConnection.connect(self.url, **self._libpq_options)
        await probe.close()
        pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs={"autocommit": True, **self._libpq_options},
            open=False,
            name="boundgate-store",
            # the outage's three bounds (the module docstring)
            check=self._check_if_idle,
            timeout=self._connect_timeout_s,
            reconnect_timeout=self._connect_timeout_s,
        )
        await pool.open(wait=True, timeout=self._connect_timeout_s)
        try:
            async with pool.connection() as conn:
                await self._migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return pool

    @property
    def _libpq_timeout(self) -> int:
        """libpq's ``connect_timeout``: whole seconds, at least 1 (0 would mean none)."""
        return max(1, round(self._connect_timeout_s))

    @property
    def _libpq_options(self) -> dict[str, Any]:
        """Every connection's libpq options: ``connect_timeout``, and TCP keepalives
        (``KEEPALIVE``), so a connection to a host that vanished without a word (a dropped
        network, a killed VM) fails within about a minute instead of the kernel's two hours:
        a statement waiting on it, or the change-log listener, which only waits."""
        return {"connect_timeout": self._libpq_timeout, **KEEPALIVE}

    async def _migrate(self, conn: _Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
            )
            done = {r["version"] for r in await _all(conn, "SELECT version FROM schema_migrations")}
            migrations = load_migrations()
            check_schema_known(done, migrations)
            for version, name, sql in migrations:
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
    async def _run(
        self,
        fn: Callable[[_Conn], Awaitable[_T]],
        tx: bool = False,
        *,
        timeout_s: float | None = None,
    ) -> _T:
        """Run ``fn`` with a pooled connection on the store's loop (in one transaction when
        ``tx``); return its result to the caller's loop. ``StoreUnavailableError`` when no
        connection answers within ``connect_timeout_s``, the one it had was lost, or ``fn``
        took longer than ``timeout_s`` (None: ``statement_timeout_s``) on it."""
        loop, pool = self._loop, self._pool
        if loop is None or pool is None:
            raise RuntimeError("store is not open")
        bound = (self._statement_timeout_s, "store.statement_timeout_s")
        if timeout_s is not None:  # ping: /readyz answers within the connection's bound
            bound = (timeout_s, "store.connect_timeout_s")
        failed_at = _NO_CONNECTION_AT.get()
        if failed_at is not None and time.monotonic() - failed_at < self._connect_timeout_s:
            raise StoreUnavailableError(
                f"no PostgreSQL connection within {self._connect_timeout_s:g} s (this "
                "request's earlier call)"
            )
        try:
            result = await self._hop(self._on_connection(pool, fn, tx, bound), loop)
        except _NoConnection:
            _NO_CONNECTION_AT.set(time.monotonic())
            self._out_of_reach = True
            raise
        self._out_of_reach = False
        return result

    def out_of_reach(self) -> bool:
        return self._out_of_reach

    async def _on_connection(
        self,
        pool: AsyncConnectionPool[_Conn],
        fn: Callable[[_Conn], Awaitable[_T]],
        tx: bool,
        bound: tuple[float, str],
    ) -> _T:
        """On the store's loop: ``fn`` on a connection that answered its check just now, for
        at most ``bound`` (seconds, and the setting that says so): a server that stopped
        answering without closing its connections (a trial froze PostgreSQL: requests and
        ``/readyz`` waited 480 s and more) fails the call instead. psycopg cancels the
        statement on the server, and gives the connection up when that is not answered
        either."""
        timeout_s, setting = bound
        bound_s = self._connect_timeout_s
        try:
            # the pool's own timeout does not cover its check, which a cut network can hold
            async with asyncio.timeout(bound_s + 1.0):
                conn = await pool.getconn(bound_s)
        except (TimeoutError, PoolTimeout) as exc:
            # why is in the pool's log ("error connecting in 'boundgate-store': …")
            raise _NoConnection(f"no PostgreSQL connection within {bound_s:g} s") from exc
        except OperationalError as exc:
            raise StoreUnavailableError(f"PostgreSQL: {_reason(exc)}") from exc
        try:
            async with asyncio.timeout(timeout_s):
                if not tx:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)
        except TimeoutError as exc:
            raise StoreUnavailableError(
                f"PostgreSQL did not answer within {timeout_s:g} s ({setting})"
            ) from exc
        except OperationalError as exc:
            if not _lost(conn, exc):
                raise
            raise StoreUnavailableError(f"PostgreSQL connection lost: {_reason(exc)}") from exc
        except ReadOnlySqlTransaction as exc:
            # a standby after a failover, or default_transaction_read_only: nothing can be
            # ledgered, so nothing is served (a trial saw 500s and dropped connections)
            raise StoreUnavailableError(f"PostgreSQL is read-only: {_reason(exc)}") from exc
        finally:
            self._last_used[conn] = time.monotonic()
            await pool.putconn(conn)  # a broken one is discarded and replaced

    async def _check_if_idle(self, conn: _Conn) -> None:
        """The pool's check (the module docstring): an empty statement, unless the connection
        was given back within ``CHECK_IDLE_S`` and nothing arrived on it since."""
        used = self._last_used.get(conn)
        if used is not None and time.monotonic() - used < CHECK_IDLE_S and _quiet(conn):
            return
        await AsyncConnectionPool.check_connection(conn)

    async def ping(self) -> None:
        """Whether the database answers, and takes writes: a read-only one (a standby, or
        ``default_transaction_read_only``) raises ``StoreUnavailableError`` too, so
        ``/readyz`` answers 503 while every write would fail."""
        if self._loop is None or self._pool is None:
            raise StoreUnavailableError("the PostgreSQL store is not open")
        read_only = await self._run(_read_only, timeout_s=self._connect_timeout_s)
        if read_only:
            raise StoreUnavailableError("PostgreSQL is read-only (transaction_read_only = on)")

    @staticmethod
    async def _hop(coro: Coroutine[Any, Any, _T], loop: asyncio.AbstractEventLoop) -> _T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def _execute(self, sql: str, params: Any = ()) -> int:
        """One statement in its own (autocommit) transaction; the rows it changed."""
        return await self._run(lambda conn: _rowcount(conn, sql, params))

    @staticmethod
    async def _through_deadlocks(call: Callable[[], Awaitable[_T]]) -> _T:
        """``call`` (one statement or transaction) run again when PostgreSQL broke a
        deadlock by rolling it back whole, up to ``DEADLOCK_ATTEMPTS`` times in all: two
        statements that lock the same rows in opposite order (a settle and a sweep of one
        expired hold, a row replacing the interrupted row a peer is writing of its note)."""
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return await call()
            except DeadlockDetected:
                if attempt == DEADLOCK_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

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
        # once per outage (a trial's two minutes of outage logged it 120 times)
        outage = OutageLog(log, "change-log listener", outages=(Exception,))
        while True:
            try:
                async with await AsyncConnection.connect(
                    self.url, autocommit=True, **self._libpq_options
                ) as conn:
                    schema = await _scalar(conn, "SELECT current_schema()")
                    keys = f"boundgate_keys_{schema}"
                    for channel in (f"boundgate_reuse_{schema}", keys):
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._keys_changed()  # whatever happened while not listening: look now
                    self._listening = True
                    self._announce(None)
                    outage.succeeded()
                    async for n in conn.notifies():
                        if n.channel == keys:
                            self._keys_changed()
                        else:
                            self._announce(int(n.payload) if n.payload.isdigit() else None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarting, a network cut: every second
                outage.failed(exc)
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
