"""The storage seam: one small async protocol per aggregate, and :class:`Store`, their union.

One module per group of aggregates: ``metering`` (ledger, limits, energy profiles), ``keys``,
``reuse`` (answers, change feed, labels), ``documents``, ``jobs`` (jobs, creativity buffer),
``files`` (Files and Batch APIs); ``errors`` holds the two errors every store raises.

SQLite (``sqlite/``, the default) and PostgreSQL (``postgres/``, ``store.url``, shared by
replicas) implement them; ``tests/test_store_contract.py`` is the suite every implementation
must pass.
Callers only ``await``: a store that blocks (SQLite) does its own thread hop, so no caller
wraps a store call in ``asyncio.to_thread``.

Conventions for every method: times are unix seconds (float), energy Wh, carbon gCO2e,
latencies milliseconds. "Newest first" orders by the row's time, then by insertion for ties.
Every write raises ``RuntimeError`` when called before :meth:`Store.open` or after
:meth:`Store.close` (reads need an opened store too; what they do otherwise is not part of
the contract); a write the database rejects (a duplicate id, a value it cannot encode)
raises the implementation's own error (``sqlite3.Error``, ``UnicodeEncodeError``,
``OverflowError`` for SQLite) and changes nothing. Not found is ``None`` or ``False``, never an
exception.

Durability contract: a write returns only after it is committed, so a response is never sent
for a request whose ledger row (:meth:`LedgerStore.record`) could still be lost to a process
crash (``kill -9``), and a generation is noted (:meth:`LedgerStore.open_request`) before it
starts, so a request whose process dies mid-answer still gets its row (``interrupted``) from
whichever process recovers its note. Writes may be funnelled through one writer; reads may
run concurrently. The methods documented as atomic must stay correct with several gateway
processes sharing one database (row locks or one write transaction, never read-then-write from
the caller).

Reachability: a store whose database cannot be reached (PostgreSQL stopped, the network cut)
raises :class:`StoreUnavailableError` from any call, within a bound the store keeps
(PostgreSQL: ``store.connect_timeout_s``), never after an open-ended wait; once the database is
back, the next calls succeed (connections it broke are replaced, not handed out). Callers
answer it as "try again later" (the server: 503 ``store_unavailable`` with ``Retry-After``);
:meth:`Store.ping` asks for it alone (``/readyz``).
"""

from __future__ import annotations

from typing import Protocol

from .documents import DocumentStore
from .errors import SchemaTooNewError, StoreUnavailableError, check_schema_known
from .files import FileStore
from .jobs import CreativityStore, JobStore
from .keys import KeyStore
from .metering import LedgerStore, LimitStore, ProfileStore
from .reuse import AnswerStore, ChangeFeed, LabelStore

__all__ = [
    "AnswerStore",
    "ChangeFeed",
    "CreativityStore",
    "DocumentStore",
    "FileStore",
    "JobStore",
    "KeyStore",
    "LabelStore",
    "LedgerStore",
    "LimitStore",
    "ProfileStore",
    "SchemaTooNewError",
    "Store",
    "StoreUnavailableError",
    "check_schema_known",
]


class Store(
    LedgerStore,
    KeyStore,
    LimitStore,
    AnswerStore,
    ChangeFeed,
    DocumentStore,
    LabelStore,
    JobStore,
    FileStore,
    CreativityStore,
    ProfileStore,
    Protocol,
):
    """Every aggregate in one store, with a lifecycle. ``open`` and ``close`` are blocking:
    they run once at start-up and shutdown (and in the CLI), outside any request."""

    def open(self) -> None:
        """Create or migrate the schema and start whatever the store needs (connections, a
        writer); idempotent."""

    def close(self) -> None:
        """Flush pending writes and release connections; the store may be opened again."""

    async def ping(self) -> None:
        """Return once the database answered a trivial statement; raise
        :class:`StoreUnavailableError` when it cannot be reached within the store's bound, or
        the store is not open (readiness checks, ``/readyz``)."""

    def out_of_reach(self) -> bool:
        """Whether the last call found no connection to the database and none has answered
        since (a background task's or a request's): a caller that can do without the store
        skips it then rather than wait its bound (``/metrics``' gauges; open local mode's
        check, on its last answer). False for a store always at hand (SQLite)."""
        return False
