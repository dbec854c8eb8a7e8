"""SQLite store: WAL, one writer thread with group commit, numbered migrations.

Why one writer: SQLite allows one write transaction at a time; funnelling every write through
one thread removes ``database is locked`` retries and lets many concurrent requests share one
``BEGIN IMMEDIATE … COMMIT`` (group commit), which is what makes per-request durable ledger
rows cheap. Between processes (``serve --workers N`` on one file), each writer takes an
exclusive ``flock`` on ``<db>.write-lock`` around its transaction: the kernel hands the lock
to a waiting process the moment it is released, where SQLite's own busy handler sleeps and
polls (1, 2, 5 … 100 ms) and can starve one process for a second under steady load.
``synchronous=NORMAL`` in WAL mode keeps committed transactions across a process crash
(``kill -9``); only an OS crash or power loss can drop the last ones.

Reads use one connection per thread; WAL lets them run beside the writer. Every data method
is async (the protocols in ``protocols.py``): reads hop to a worker thread, writes wait for
the writer thread's commit, so the event loop never blocks on SQLite. The exception is the key
cache (``verify_key``, ``has_keys``, ``list_keys``): one tiny fingerprint query on the caller's
thread, cheaper than a thread hop on every request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

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
_ENTRY_COLUMNS = [f.name for f in fields(StoredEntry)]
_INSERT_ENTRY = (
    f"INSERT OR IGNORE INTO reuse_entries ({', '.join(_ENTRY_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ENTRY_COLUMNS)})"
)


def _entry_from(r: sqlite3.Row) -> StoredEntry:
    data = {c: r[c] for c in _ENTRY_COLUMNS}
    data["vector"] = bytes(data["vector"])
    data["revoked"] = bool(data["revoked"])
    return StoredEntry(**data)


_DOC_COLUMNS = [f.name for f in fields(DocumentRow)]
_PROFILE_COLUMNS = [f.name for f in fields(EnergyProfileRow)]
_JOB_COLUMNS = [f.name for f in fields(JobRow)]


def load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every ``migrations/NNNN_name.sql`` file, in order."""
    out = []
    for entry in resources.files("boundgate.store.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text()))
    return sorted(out)


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


def _settle(conn: sqlite3.Connection, hold_id: str, counter: str, window: float, used: int) -> None:
    """``LimitStore.settle`` in the writer's transaction."""
    r = conn.execute(
        "DELETE FROM limit_holds WHERE hold_id = ? AND counter = ? AND window_start = ? "
        "RETURNING amount",
        (hold_id, counter, window),
    ).fetchone()
    conn.execute(
        "UPDATE limit_counters SET used = used + ?, reserved = reserved - ? "
        "WHERE counter = ? AND window_start = ?",
        (used, r[0] if r is not None else 0, counter, window),
    )


def _row_from(r: sqlite3.Row) -> LedgerRow:
    data = {col: r[col] for col in _LEDGER_COLUMNS}
    data["stream"] = bool(data["stream"])
    data["extra"] = json.loads(data["extra"]) if data["extra"] else {}
    return LedgerRow(**data)


_T = TypeVar("_T")
_Write = tuple[str, Any, Callable[[BaseException | None], None]]
_CALL = "<call>"  # a write whose params is a function of the writer's connection


def _apply(conn: sqlite3.Connection, sql: str, params: Any) -> None:
    if sql == _CALL:
        params(conn)
    else:
        conn.execute(sql, params)


_TAKE = (
    # the first claim of a window creates its row; later ones add to it while it fits
    "INSERT INTO limit_counters (counter, window_start, used, reserved) "
    "SELECT :counter, :window, :used, :held WHERE :amount <= :limit "
    "ON CONFLICT (counter, window_start) DO UPDATE SET used = used + :used, "
    "reserved = reserved + :held WHERE used + reserved + :amount <= :limit RETURNING 1"
)


def _take(conn: sqlite3.Connection, hold_id: str, c: Claim, now: float) -> bool:
    """Take claim ``c`` if it fits, freeing expired holds first when it does not."""
    held = c.amount if c.hold_s is not None else 0
    params = {
        "counter": c.counter, "window": c.window, "amount": c.amount, "limit": c.limit,
        "used": c.amount - held, "held": held,
    }  # fmt: skip
    taken = conn.execute(_TAKE, params).fetchone() is not None
    if not taken:
        freed = conn.execute(
            "DELETE FROM limit_holds WHERE counter = ? AND window_start = ? AND expires < ? "
            "RETURNING amount",
            (c.counter, c.window, now),
        ).fetchall()
        if not freed:
            return False
        conn.execute(
            "UPDATE limit_counters SET reserved = reserved - ? "
            "WHERE counter = ? AND window_start = ?",
            (sum(r[0] for r in freed), c.counter, c.window),
        )
        taken = conn.execute(_TAKE, params).fetchone() is not None
    if taken and c.hold_s is not None:
        conn.execute(
            "INSERT INTO limit_holds (hold_id, counter, window_start, amount, expires) "
            "VALUES (?, ?, ?, ?, ?)",
            (hold_id, c.counter, c.window, c.amount, now + c.hold_s),
        )
    return taken


log = logging.getLogger("boundgate.store")


class _WriteLock:
    """An exclusive ``flock`` on a file beside the database, held around every write
    transaction so that writer threads of several processes queue in the kernel instead of in
    SQLite's sleeping busy handler (``busy_timeout`` stays, for writers that do not take the
    lock, such as the ``sqlite3`` shell, and as the fallback when the file cannot be opened:
    a read-only data directory). A lock file deleted or replaced while held open is noticed
    on the next write (its inode no longer is the path's) and opened afresh, so processes
    never end up locking different files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        if self._fd is not None:
            return
        for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):  # flock needs no write access
            try:
                self._fd = os.open(self.path, flags, 0o600)
                return
            except OSError as exc:
                error = exc
        log.warning("cannot open %s (%s): SQLite's busy handler orders writers", self.path, error)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _current(self, fd: int) -> bool:
        try:
            held, now = os.fstat(fd), os.stat(self.path)
        except FileNotFoundError:
            return False
        return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = self._fd
        while fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self._current(fd):
                break
            fcntl.flock(fd, fcntl.LOCK_UN)  # deleted or replaced: lock the file now there
            self.close()
            self.open()
            fd = self._fd
        try:
            yield
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)


class SQLiteStore(Store):
    announces_changes = False  # followers poll the change log

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._keys: dict[str, tuple[ApiKey, bytes, bytes]] = {}
        self._keys_fingerprint: tuple[int, int] | None = None
        self._has_keys = False
        self._write_lock = _WriteLock(self.path.with_name(self.path.name + ".write-lock"))

    # --- connections ---------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    # --- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock.open()
        conn = self._connect()
        with self._write_lock.held():
            self._migrate(conn)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="boundgate-store-writer", daemon=True
        )
        self._writer.start()
        self._refresh_keys(force=True)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in load_migrations():
                if version in done:
                    continue
                for statement in sql.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._writes.put(None)
            writer.join()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._local = threading.local()
        self._write_lock.close()

    # --- the writer ----------------------------------------------------------------------
    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stop = False
        while not stop:
            batch: list[_Write] = []
            item = self._writes.get()
            if item is None:
                break
            batch.append(item)
            while True:  # drain whatever else is waiting: one transaction for all of it
                try:
                    nxt = self._writes.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            with self._write_lock.held():
                self._commit_batch(conn, batch)
        conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Write]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params, _ in batch:
                _apply(conn, sql, params)
            conn.execute("COMMIT")
        except Exception:  # the writer thread must outlive any one bad write
            # (sqlite3.Error, or e.g. a UnicodeEncodeError or OverflowError from a parameter)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # Isolate the failing statement: commit the others one by one.
            for sql, params, done in batch:
                try:
                    _apply(conn, sql, params)
                except Exception as exc:
                    done(exc)
                else:
                    done(None)
            return
        for _, _, done in batch:
            done(None)

    def _submit(self, sql: str, params: Any, done: Callable[[BaseException | None], None]) -> None:
        if self._writer is None:
            raise RuntimeError("store is not open")
        self._writes.put((sql, params, done))

    async def _execute(self, sql: str, params: Any) -> None:
        """Queue one write and wait until it is committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def resolve(exc: BaseException | None) -> None:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

        def done(exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(resolve, exc)

        self._submit(sql, params, done)
        await fut

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the writer's connection inside its transaction; return its result."""
        box: list[_T] = []

        def run(conn: sqlite3.Connection) -> None:
            # a group commit that failed runs ``fn`` again after the rollback: keep only the
            # result of the run that was committed
            box[:] = [fn(conn)]

        await self._execute(_CALL, run)
        return box[0]

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on a worker thread's reader connection; return its result."""
        return await asyncio.to_thread(lambda: fn(self._reader()))

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
                """
                SELECT COALESCE(model, '') AS model,
                       COALESCE(reuse, '') IN ('hit-exact', 'hit-semantic', 'hit-coalesced',
                                               'stale') AS reused,
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
                """
                SELECT tenant, COALESCE(model, '') AS model, COUNT(*) AS requests,
                       SUM(outcome = 'error') AS errors,
                       SUM(prompt_tokens) AS prompt_tokens,
                       SUM(completion_tokens) AS completion_tokens,
                       SUM(wh) AS wh, SUM(wh_low) AS wh_low, SUM(wh_high) AS wh_high,
                       SUM(gco2) AS gco2, AVG(latency_ms) AS avg_latency_ms,
                       SUM(COALESCE(reuse, '') IN ('hit-exact', 'hit-semantic', 'hit-coalesced',
                                                   'stale')) AS reused,
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
                """
                SELECT CAST(ts / :p AS INTEGER) * :p AS start, tenant, COUNT(*) AS requests,
                       SUM(outcome = 'error') AS errors,
                       SUM(COALESCE(reuse, '') IN ('hit-exact', 'hit-semantic', 'hit-coalesced',
                                                   'stale')) AS reused,
                       SUM(wh) AS wh, SUM(gco2) AS gco2,
                       SUM(avoided_wh) AS avoided_wh, SUM(avoided_gco2) AS avoided_gco2,
                       SUM(route IS NOT NULL) AS routed,
                       SUM(rightsizing_avoided_wh) AS rightsizing_avoided_wh,
                       SUM(rightsizing_avoided_gco2) AS rightsizing_avoided_gco2
                FROM ledger WHERE ts >= :since GROUP BY start, tenant
                """,
                params,
            ).fetchall()
            # Batches keep their counterfactual (carbon had they run at submission) in their JSON
            # object; count the ones that ran, in the period they finished.
            batch_rows = conn.execute(
                """
                SELECT CAST(finished / :p AS INTEGER) * :p AS start, tenant, COUNT(*) AS batches,
                       SUM(saved) AS saved
                FROM (
                    SELECT tenant,
                           COALESCE(json_extract(body, '$.completed_at'),
                                    json_extract(body, '$.cancelled_at')) AS finished,
                           json_extract(body, '$.boundgate.shifting_saved_g') AS saved
                    FROM batches
                    WHERE json_extract(body, '$.boundgate.started_at') IS NOT NULL
                      AND json_extract(body, '$.boundgate.state') IN ('done', 'cancelled')
                )
                WHERE finished >= :since GROUP BY start, tenant
                """,
                params,
            ).fetchall()
            return period_rows(ledger_rows, batch_rows)

        return await self._read(run)

    # --- reuse ---------------------------------------------------------------------------
    async def put_entry(self, entry: StoredEntry) -> None:
        await self._execute(_INSERT_ENTRY, tuple(getattr(entry, c) for c in _ENTRY_COLUMNS))

    async def entries(self, embedder: str) -> list[StoredEntry]:
        def run(conn: sqlite3.Connection) -> list[StoredEntry]:
            rows = conn.execute(
                "SELECT * FROM reuse_entries WHERE embedder = ? ORDER BY key", (embedder,)
            )
            return [_entry_from(r) for r in rows]

        return await self._read(run)

    async def get_entry(self, key: int) -> StoredEntry | None:
        def run(conn: sqlite3.Connection) -> StoredEntry | None:
            r = conn.execute("SELECT * FROM reuse_entries WHERE key = ?", (key,)).fetchone()
            return _entry_from(r) if r is not None else None

        return await self._read(run)

    async def get_entry_by_id(self, public_id: str) -> StoredEntry | None:
        def run(conn: sqlite3.Connection) -> StoredEntry | None:
            r = conn.execute("SELECT * FROM reuse_entries WHERE id = ?", (public_id,)).fetchone()
            return _entry_from(r) if r is not None else None

        return await self._read(run)

    async def get_entry_by_exact(self, exact: str) -> StoredEntry | None:
        def run(conn: sqlite3.Connection) -> StoredEntry | None:
            r = conn.execute(
                "SELECT * FROM reuse_entries WHERE exact = ? AND NOT revoked "
                "ORDER BY created DESC, key DESC LIMIT 1",
                (exact,),
            ).fetchone()
            return _entry_from(r) if r is not None else None

        return await self._read(run)

    async def max_entry_key(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            r = conn.execute("SELECT COALESCE(MAX(key), 0) FROM reuse_entries").fetchone()
            return int(r[0])

        return await self._read(run)

    async def note_hit(self, key: int, ts: float, n: int = 1) -> None:
        await self._execute(
            "UPDATE reuse_entries SET hits = hits + ?, last_hit = ? WHERE key = ?", (n, ts, key)
        )

    async def delete_entries(self, keys: list[int]) -> None:
        for key in keys:
            await self._execute("DELETE FROM reuse_entries WHERE key = ?", (key,))
            await self._execute("DELETE FROM reuse_question_variants WHERE entry = ?", (key,))

    async def add_observation(self, obs: ObservationRow) -> None:
        await self._execute(
            "INSERT INTO reuse_observations "
            "(ts, entry, similarity, correct, source, request_id, density, pair_score) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                obs.ts,
                obs.entry,
                obs.similarity,
                int(obs.correct),
                obs.source,
                obs.request_id,
                obs.density,
                obs.pair_score,
            ),
        )

    async def observations(self) -> list[ObservationRow]:
        def run(conn: sqlite3.Connection) -> list[ObservationRow]:
            rows = conn.execute(
                "SELECT ts, entry, similarity, correct, source, request_id, density, pair_score "
                "FROM reuse_observations ORDER BY id"
            )
            return [
                ObservationRow(
                    r[0],
                    r[1],
                    float(r[2]),
                    bool(r[3]),
                    r[4],
                    r[5],
                    float(r[6]),
                    None if r[7] is None else float(r[7]),
                )
                for r in rows
            ]

        return await self._read(run)

    async def lookup_similarities(self) -> list[tuple[float | None, float, float | None]]:
        def run(conn: sqlite3.Connection) -> list[tuple[float | None, float, float | None]]:
            rows = conn.execute(
                "SELECT similarity, json_extract(extra, '$.density'), "
                "json_extract(extra, '$.pair_score') FROM ledger "
                "WHERE json_extract(extra, '$.semantic_lookup') = 1"
            )
            return [
                (
                    None if r[0] is None else float(r[0]),
                    float(r[1] or 0.0),
                    None if r[2] is None else float(r[2]),
                )
                for r in rows
            ]

        return await self._read(run)

    async def add_question_variant(self, entry: int, exact: str, query: str, ts: float) -> None:
        await self._execute(
            "INSERT OR REPLACE INTO reuse_question_variants (exact, entry, query, ts) "
            "VALUES (?, ?, ?, ?)",
            (exact, entry, query, ts),
        )

    async def question_variants(self) -> list[tuple[str, int]]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            rows = conn.execute("SELECT exact, entry FROM reuse_question_variants ORDER BY ts")
            return [(str(r[0]), int(r[1])) for r in rows]

        return await self._read(run)

    # --- the change log ------------------------------------------------------------------
    async def new_entry_key(self) -> int:
        def take(conn: sqlite3.Connection) -> int:
            # above any key stored without one (older code, imports of old files)
            r = conn.execute(
                "UPDATE reuse_entry_keys SET next = MAX(next, "
                "(SELECT COALESCE(MAX(key), 0) FROM reuse_entries)) + 1 RETURNING next"
            ).fetchone()
            return int(r[0])

        return int(await self._call(take))

    async def change_head(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            r = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM reuse_changes").fetchone()
            return int(r[0])

        return await self._read(run)

    async def changes(self, after: int, limit: int = 1000) -> list[ChangeRow]:
        def run(conn: sqlite3.Connection) -> list[ChangeRow]:
            rows = conn.execute(CHANGES_SQL.format("?"), (after, limit))
            return [change_from(r) for r in rows]

        return await self._read(run)

    async def wait_for_changes(self, after: int, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)  # SQLite cannot tell other processes: they poll

    async def prune_changes(self, before: float) -> int:
        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute(PRUNE_CHANGES_SQL.format("?"), (before,)).rowcount

        return int(await self._call(prune))

    # --- registry and documents ------------------------------------------------------------
    async def add_asker(self, entry: int, asker: str, query: str, ts: float) -> int:
        def add(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT OR IGNORE INTO reuse_askers (entry, asker, query, ts) VALUES (?, ?, ?, ?)",
                (entry, asker, query, ts),
            )
            r = conn.execute("SELECT COUNT(*) FROM reuse_askers WHERE entry = ?", (entry,))
            return int(r.fetchone()[0])

        return int(await self._call(add))

    async def asker_count(self, entry: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            r = conn.execute("SELECT COUNT(*) FROM reuse_askers WHERE entry = ?", (entry,))
            return int(r.fetchone()[0])

        return await self._read(run)

    async def variants(self, entry: int) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT query FROM reuse_askers WHERE entry = ? ORDER BY query", (entry,)
            )
            return [r[0] for r in rows]

        return await self._read(run)

    async def put_document(self, doc: DocumentRow) -> None:
        insert = (
            f"INSERT INTO documents ({', '.join(_DOC_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _DOC_COLUMNS)})"
        )
        values = tuple(getattr(doc, c) for c in _DOC_COLUMNS)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(insert, values)
            if doc.supersedes is not None:
                conn.execute(
                    "UPDATE documents SET state = 'superseded', superseded_by = ? WHERE id = ?",
                    (doc.id, doc.supersedes),
                )

        await self._call(write)

    async def get_document(self, doc_id: str) -> DocumentRow | None:
        def run(conn: sqlite3.Connection) -> DocumentRow | None:
            r = conn.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
            return DocumentRow(**{c: r[c] for c in _DOC_COLUMNS}) if r is not None else None

        return await self._read(run)

    async def documents(
        self, state: str | None = None, limit: int | None = None
    ) -> list[DocumentRow]:
        def run(conn: sqlite3.Connection) -> list[DocumentRow]:
            sql = "SELECT * FROM documents"
            params: list[Any] = []
            if state is not None:
                sql += " WHERE state = ?"
                params.append(state)
            sql += " ORDER BY created DESC, rowid DESC"
            if limit is not None:
                sql += " LIMIT ?"
                params.append(limit)
            rows = conn.execute(sql, params)
            return [DocumentRow(**{c: r[c] for c in _DOC_COLUMNS}) for r in rows]

        return await self._read(run)

    async def set_document_state(
        self, doc_id: str, state: str, superseded_by: str | None = None
    ) -> None:
        await self._execute(
            "UPDATE documents SET state = ?, superseded_by = COALESCE(?, superseded_by) "
            "WHERE id = ?",
            (state, superseded_by, doc_id),
        )

    async def set_entry_document(
        self, entry: int, doc_id: str | None, revoked: bool = False
    ) -> None:
        await self._execute(
            "UPDATE reuse_entries SET document_id = ?, revoked = ? WHERE key = ?",
            (doc_id, int(revoked), entry),
        )

    # --- jobs ----------------------------------------------------------------------------
    async def put_job(self, job: JobRow) -> bool:
        sql = (
            f"INSERT OR IGNORE INTO jobs ({', '.join(_JOB_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _JOB_COLUMNS)})"
        )
        values = tuple(getattr(job, c) for c in _JOB_COLUMNS)
        return bool(await self._call(lambda conn: conn.execute(sql, values).rowcount == 1))

    async def claim_job(self, owner: str, now: float, lease_s: float) -> JobRow | None:
        sql = (
            "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?, "
            "attempts = attempts + 1 WHERE id = (SELECT id FROM jobs WHERE "
            "(state = 'pending' AND not_before <= ?) OR "
            "(state = 'running' AND lease_expires < ?) ORDER BY not_before LIMIT 1) "
            "RETURNING *"
        )

        due = await self._read(
            lambda conn: conn.execute(
                "SELECT 1 FROM jobs WHERE (state = 'pending' AND not_before <= ?) OR "
                "(state = 'running' AND lease_expires < ?) LIMIT 1",
                (now, now),
            ).fetchone()
        )
        if due is None:  # the common case: no write transaction at all
            return None

        def claim(conn: sqlite3.Connection) -> JobRow | None:
            r = conn.execute(sql, (owner, now + lease_s, now, now)).fetchone()
            return JobRow(**{c: r[c] for c in _JOB_COLUMNS}) if r is not None else None

        return await self._call(claim)

    async def finish_job(self, job_id: str, owner: str, state: str, result: str | None) -> bool:
        sql = (
            "UPDATE jobs SET state = ?, result = ?, lease_owner = NULL, lease_expires = NULL "
            "WHERE id = ? AND state = 'running' AND lease_owner = ?"
        )
        params = (state, result, job_id, owner)
        return bool(await self._call(lambda conn: conn.execute(sql, params).rowcount == 1))

    async def _state_counts(self, table: str) -> dict[str, int]:
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(f"SELECT state, COUNT(*) FROM {table} GROUP BY state")
            return {str(r[0]): int(r[1]) for r in rows}

        return await self._read(run)

    async def job_counts(self) -> dict[str, int]:
        return await self._state_counts("jobs")

    async def document_counts(self) -> dict[str, int]:
        return await self._state_counts("documents")

    async def renew_job(self, job_id: str, owner: str, until: float) -> bool:
        sql = (
            "UPDATE jobs SET lease_expires = ? "
            "WHERE id = ? AND state = 'running' AND lease_owner = ?"
        )
        params = (until, job_id, owner)
        return bool(await self._call(lambda conn: conn.execute(sql, params).rowcount == 1))

    async def reschedule_job(self, job_id: str, not_before: float) -> bool:
        sql = "UPDATE jobs SET not_before = ? WHERE id = ? AND state = 'pending'"
        return bool(
            await self._call(lambda conn: conn.execute(sql, (not_before, job_id)).rowcount == 1)
        )

    async def jobs(self, state: str | None = None) -> list[JobRow]:
        def run(conn: sqlite3.Connection) -> list[JobRow]:
            sql = "SELECT * FROM jobs" + (" WHERE state = ?" if state else "") + " ORDER BY created"
            rows = conn.execute(sql, (state,) if state else ())
            return [JobRow(**{c: r[c] for c in _JOB_COLUMNS}) for r in rows]

        return await self._read(run)

    # --- files and batches -----------------------------------------------------------------
    async def put_file(self, f: FileRow) -> None:
        await self._execute(
            "INSERT INTO files (id, tenant, purpose, filename, bytes, created, content) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f.id, f.tenant, f.purpose, f.filename, f.size, f.created, f.content),
        )

    async def get_file(self, file_id: str) -> FileRow | None:
        def run(conn: sqlite3.Connection) -> FileRow | None:
            r = conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
            if r is None:
                return None
            return FileRow(
                r["id"], r["tenant"], r["purpose"], r["filename"], r["bytes"], r["created"],
                bytes(r["content"]),
            )  # fmt: skip

        return await self._read(run)

    async def put_batch(self, batch_id: str, tenant: str, created: float, body: str) -> None:
        await self._execute(
            "INSERT OR REPLACE INTO batches (id, tenant, created, body) VALUES (?, ?, ?, ?)",
            (batch_id, tenant, created, body),
        )

    async def get_batch(self, batch_id: str) -> tuple[str, str] | None:
        def run(conn: sqlite3.Connection) -> tuple[str, str] | None:
            r = conn.execute(
                "SELECT tenant, body FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            return (r[0], r[1]) if r is not None else None

        return await self._read(run)

    async def batches(self, limit: int = 100) -> list[tuple[str, str, float, str]]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, str, float, str]]:
            rows = conn.execute(
                "SELECT id, tenant, created, body FROM batches ORDER BY created DESC LIMIT ?",
                (limit,),
            )
            return [(str(r[0]), str(r[1]), float(r[2]), str(r[3])) for r in rows]

        return await self._read(run)

    async def put_batch_line(self, row: BatchLineRow) -> None:
        await self._execute(
            "INSERT OR IGNORE INTO batch_lines (batch_id, line, kind, record, energy_wh, "
            "carbon_g, avoided_wh) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.batch_id, row.line, row.kind, row.record, row.energy_wh, row.carbon_g,
             row.avoided_wh),
        )  # fmt: skip

    async def batch_lines(self, batch_id: str) -> list[BatchLineRow]:
        def run(conn: sqlite3.Connection) -> list[BatchLineRow]:
            rows = conn.execute(
                "SELECT batch_id, line, kind, record, energy_wh, carbon_g, avoided_wh "
                "FROM batch_lines WHERE batch_id = ? ORDER BY line",
                (batch_id,),
            )
            return [BatchLineRow(*r) for r in rows]

        return await self._read(run)

    async def batch_line_counts(self, batch_id: str) -> tuple[int, int]:
        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            r = conn.execute(
                "SELECT COALESCE(SUM(kind = 'output'), 0), COALESCE(SUM(kind = 'error'), 0) "
                "FROM batch_lines WHERE batch_id = ?",
                (batch_id,),
            ).fetchone()
            return int(r[0]), int(r[1])

        return await self._read(run)

    async def drop_batch_lines(self, batch_id: str) -> None:
        await self._execute("DELETE FROM batch_lines WHERE batch_id = ?", (batch_id,))

    async def cancel_job(self, job_id: str) -> bool:
        sql = "UPDATE jobs SET state = 'cancelled' WHERE id = ? AND state = 'pending'"
        return bool(await self._call(lambda conn: conn.execute(sql, (job_id,)).rowcount == 1))

    # --- creativity buffer -----------------------------------------------------------------
    async def note_novel_ask(self, exact: str, asker: str, request: str, ts: float) -> int:
        def note(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT OR REPLACE INTO novel_asks (exact, asker, request, ts) VALUES (?, ?, ?, ?)",
                (exact, asker, request, ts),
            )
            r = conn.execute("SELECT COUNT(*) FROM novel_asks WHERE exact = ?", (exact,))
            return int(r.fetchone()[0])

        return int(await self._call(note))

    async def novel_request(self, exact: str) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            r = conn.execute(
                "SELECT request FROM novel_asks WHERE exact = ? ORDER BY ts DESC LIMIT 1", (exact,)
            ).fetchone()
            return str(r[0]) if r is not None else None

        return await self._read(run)

    async def add_variants(self, variants: list[VariantRow]) -> None:
        def add(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO variants (exact, answer, finish_reason, prompt_tokens, "
                "completion_tokens, cost_wh, cost_gco2, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (v.exact, v.answer, v.finish_reason, v.prompt_tokens, v.completion_tokens,
                     v.cost_wh, v.cost_gco2, v.created)
                    for v in variants
                ],
            )  # fmt: skip

        await self._call(add)

    async def take_variant(self, exact: str, asker: str, ts: float) -> VariantRow | None:
        def take(conn: sqlite3.Connection) -> VariantRow | None:
            r = conn.execute(
                "SELECT * FROM variants v WHERE exact = ? AND NOT EXISTS (SELECT 1 FROM "
                "variant_serves s WHERE s.variant = v.id AND s.asker = ?) "
                "ORDER BY (SELECT COUNT(*) FROM variant_serves s WHERE s.variant = v.id), id "
                "LIMIT 1",
                (exact, asker),
            ).fetchone()
            if r is None:
                return None
            conn.execute(
                "INSERT INTO variant_serves (variant, asker, ts) VALUES (?, ?, ?)",
                (r["id"], asker, ts),
            )
            return VariantRow(
                r["id"], r["exact"], r["answer"], r["finish_reason"], r["prompt_tokens"],
                r["completion_tokens"], r["cost_wh"], r["cost_gco2"], r["created"],
            )  # fmt: skip

        return await self._call(take)

    async def variant_count(self, exact: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            r = conn.execute("SELECT COUNT(*) FROM variants WHERE exact = ?", (exact,))
            return int(r.fetchone()[0])

        return await self._read(run)

    async def unused_variants(self, exact: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            r = conn.execute(
                "SELECT COUNT(*) FROM variants v WHERE exact = ? AND NOT EXISTS "
                "(SELECT 1 FROM variant_serves s WHERE s.variant = v.id)",
                (exact,),
            )
            return int(r.fetchone()[0])

        return await self._read(run)

    async def novel_used(self, tenant: str, since: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            r = conn.execute(
                "SELECT COUNT(*) FROM ledger WHERE tenant = ? AND ts >= ? AND "
                "json_extract(extra, '$.novel') = 1 AND outcome = 'ok'",
                (tenant, since),
            )
            return int(r.fetchone()[0])

        return await self._read(run)

    async def tokens_used(self, tenant: str, since: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            r = conn.execute(
                "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM ledger "
                "WHERE tenant = ? AND ts >= ? AND COALESCE(reuse, '') NOT LIKE 'hit%'",
                (tenant, since),
            ).fetchone()
            return int(r[0])

        return await self._read(run)

    async def reasoning_tokens_used(self, tenant: str, since: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            r = conn.execute(
                "SELECT COALESCE(SUM(reasoning_tokens), 0) FROM ledger "
                "WHERE tenant = ? AND ts >= ? AND COALESCE(reuse, '') NOT LIKE 'hit%'",
                (tenant, since),
            ).fetchone()
            return int(r[0])

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

    # --- budgets and rate limits -------------------------------------------------------
    async def reserve(self, hold_id: str, claims: list[Claim], now: float) -> int | None:
        order = sorted(range(len(claims)), key=lambda i: (claims[i].counter, claims[i].window))

        def take(conn: sqlite3.Connection) -> int | None:
            # one savepoint: inside the writer's transaction (or alone, when a failed group
            # is retried one write at a time) all claims are taken or none
            conn.execute("SAVEPOINT reserve")
            refused: int | None = None
            try:
                for i in order:
                    if not _take(conn, hold_id, claims[i], now):
                        refused = i
                        break
            except BaseException:
                conn.execute("ROLLBACK TO reserve")
                conn.execute("RELEASE reserve")
                raise
            if refused is not None:
                conn.execute("ROLLBACK TO reserve")
            conn.execute("RELEASE reserve")
            return refused

        return await self._call(take)

    async def settle(self, hold_id: str, counter: str, window: float, used: int) -> None:
        await self._call(lambda conn: _settle(conn, hold_id, counter, window, used))

    async def counter_state(self, counter: str, window: float, now: float) -> CounterState:
        def run(conn: sqlite3.Connection) -> CounterState:
            used = conn.execute(
                "SELECT used FROM limit_counters WHERE counter = ? AND window_start = ?",
                (counter, window),
            ).fetchone()
            held, expiry = conn.execute(
                "SELECT COALESCE(SUM(amount), 0), MIN(expires) FROM limit_holds "
                "WHERE counter = ? AND window_start = ? AND expires >= ?",
                (counter, window, now),
            ).fetchone()
            return CounterState(int(used[0]) if used else 0, int(held), expiry)

        return await self._read(run)

    async def prune_counters(self, before: float) -> None:
        def prune(conn: sqlite3.Connection) -> None:
            where = "window_start < ? AND window_start <> 0"
            conn.execute(f"DELETE FROM limit_holds WHERE {where}", (before,))
            conn.execute(f"DELETE FROM limit_counters WHERE {where}", (before,))

        await self._call(prune)

    # --- keys ----------------------------------------------------------------------------
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
            "daily_reasoning_tokens, salt, hash) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (
                m.id,
                tenant,
                int(admin),
                m.created,
                rpm,
                daily_tokens,
                daily_reasoning_tokens,
                m.salt,
                m.digest,
            ),
        )
        self._refresh_keys(force=True)
        key = ApiKey(
            m.id, tenant, admin, m.created, False, rpm, daily_tokens, daily_reasoning_tokens
        )
        return NewKey(key=key, secret=m.secret)

    def _refresh_keys(self, force: bool = False) -> None:
        """Reload the key table if it changed (also when another process changed it).

        Keys are never deleted, so (count, revoked count) changes with every create and revoke;
        checking it is one tiny query, cheaper than re-reading the table on every request.
        """
        conn = self._reader()
        count, revoked = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(revoked), 0) FROM api_keys"
        ).fetchone()
        fingerprint = (int(count), int(revoked))
        if not force and fingerprint == self._keys_fingerprint:
            return
        keys: dict[str, tuple[ApiKey, bytes, bytes]] = {}
        for r in conn.execute("SELECT * FROM api_keys"):
            key = ApiKey(
                r["id"],
                r["tenant"],
                bool(r["admin"]),
                r["created"],
                bool(r["revoked"]),
                r["rpm"],
                r["daily_tokens"],
                r["daily_reasoning_tokens"],
            )
            keys[key.id] = (key, bytes(r["salt"]), bytes(r["hash"]))
        self._keys = keys
        self._has_keys = bool(keys)
        self._keys_fingerprint = fingerprint

    async def verify_key(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        self._refresh_keys()
        entry = self._keys.get(key_id)
        if entry is None:
            return None
        key, salt, digest = entry
        if not secret_matches(secret, salt, digest) or key.revoked:
            return None
        return key

    async def list_keys(self) -> list[ApiKey]:
        self._refresh_keys(force=True)
        return sorted((k for k, _, _ in self._keys.values()), key=lambda k: k.created)

    async def revoke_key(self, key_id: str) -> bool:
        self._refresh_keys(force=True)
        if key_id not in self._keys:
            return False
        await self._execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,))
        self._refresh_keys(force=True)
        return True

    async def has_keys(self) -> bool:
        self._refresh_keys()
        return self._has_keys
