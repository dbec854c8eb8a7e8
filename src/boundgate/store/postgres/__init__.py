"""PostgreSQL store: the protocols of ``protocols/`` over one database that several gateway
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
check (``verify_key``, ``get_key``, and ``has_keys`` while there is no key) is kept for at
most that long and dropped the moment the change-log listener hears, on the keys' channel (a
trigger, migration 0007), that any replica or the CLI created, revoked or changed a key; it
is used only while that listener is connected. So a revoke holds on every replica
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

from ..protocols import Store
from .answers import PostgresAnswers
from .core import load_migrations
from .ledger import PostgresLedger
from .tenants import PostgresTenants
from .work import PostgresWork

__all__ = ["PostgresStore", "load_migrations"]


class PostgresStore(PostgresLedger, PostgresAnswers, PostgresWork, PostgresTenants, Store):
    """The store on the PostgreSQL database at ``url`` (a libpq connection string or URI;
    ``options=-csearch_path=…`` picks a schema). ``min_size``/``max_size``: the pool's
    connections."""
