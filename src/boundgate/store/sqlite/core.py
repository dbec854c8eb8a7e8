"""The SQLite store's core: connections, migrations, the writer thread with group commit
and the cross-process write lock; the aggregates' mixins (the package's other modules)
build on :class:`SQLiteBase`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from ..protocols import StoreUnavailableError, check_schema_known
from ..rows import ApiKey


def load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every ``migrations/NNNN_name.sql`` file, in order."""
    out = []
    for entry in resources.files("boundgate.store.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text()))
    return sorted(out)


_T = TypeVar("_T")
_Write = tuple[str, Any, Callable[[BaseException | None], None]]
_CALL = "<call>"  # a write whose params is a function of the writer's connection


def _apply(conn: sqlite3.Connection, sql: str, params: Any) -> None:
    if sql == _CALL:
        params(conn)
    else:
        conn.execute(sql, params)


log = logging.getLogger("boundgate.store")


_PING = "SELECT version FROM schema_migrations LIMIT 1"  # reads the file, not just the library

# how long ``close`` waits for reads still running on worker threads (s)
READS_CLOSE_WAIT_S = 30.0


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


class SQLiteBase:
    """Connections, lifecycle and the writer: what every aggregate's methods run on."""

    announces_changes = False  # followers poll the change log

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # reads running on worker threads: ``close`` waits for them before it closes their
        # connections (a read that outlived its cancelled task, e.g. the job runner's poll at
        # shutdown, segfaulted in sqlite3 on a connection closed under it)
        self._reading = 0
        self._reads_done = threading.Condition()
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
        with self._write_lock.held():
            # the first connection under the lock too: it turns a new database to WAL, which
            # needs the file to itself, and SQLite refuses that at once ("database is locked",
            # no busy wait) while another process is doing the same
            conn = self._connect()
            self._migrate(conn)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="boundgate-store-writer", daemon=True
        )
        self._writer.start()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            migrations = load_migrations()
            check_schema_known(done, migrations)
            for version, name, sql in migrations:
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
        with self._reads_done:  # a read that starts now waits until the readers are closed
            self._reads_done.wait_for(lambda: self._reading == 0, timeout=READS_CLOSE_WAIT_S)
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            self._local = threading.local()
        self._write_lock.close()

    async def ping(self) -> None:
        """The writer thread running and the database file read (a file gone unreadable, a
        disk gone, fails here)."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            raise StoreUnavailableError("the SQLite store is not open")
        try:
            await self._read(lambda conn: conn.execute(_PING).fetchone())
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailableError(f"SQLite database {self.path}: {exc}") from exc

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
            # the caller's event loop may have closed (its task cancelled): nobody awaits this
            with contextlib.suppress(RuntimeError):
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
        """Run ``fn`` on a worker thread's reader connection; return its result. ``close``
        waits for it to end before closing that connection, also when the awaiting task was
        cancelled meanwhile (the thread runs on)."""

        def run() -> _T:
            with self._reads_done:
                self._reading += 1
            try:
                return fn(self._reader())
            finally:
                with self._reads_done:
                    self._reading -= 1
                    self._reads_done.notify_all()

        return await asyncio.to_thread(run)
