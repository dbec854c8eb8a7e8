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
is async (the protocols in ``protocols/``): reads hop to a worker thread, writes wait for
the writer thread's commit, so the event loop never blocks on SQLite. The exception is the key
cache (``verify_key``, ``get_key``, ``has_keys``, ``list_keys``): one tiny fingerprint query on
the caller's thread, cheaper than a thread hop on every request's path.
"""

from __future__ import annotations

from ..protocols import Store
from .answers import SQLiteAnswers
from .core import load_migrations
from .ledger import SQLiteLedger
from .limits import SQLiteTenants
from .work import SQLiteWork

__all__ = ["SQLiteStore", "load_migrations"]


class SQLiteStore(SQLiteLedger, SQLiteAnswers, SQLiteWork, SQLiteTenants, Store):
    """The embedded store: one SQLite file (``store.url`` unset), every protocol of
    ``protocols/``; each aggregate's methods live in its own module of this package."""
