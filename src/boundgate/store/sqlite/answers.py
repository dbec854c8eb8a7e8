"""The SQLite store's reuse side: stored answers and labels (``AnswerStore``,
``LabelStore``), the change log (``ChangeFeed``) and documents (``DocumentStore``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any, TypeVar

from ..aggregate import (
    CHANGES_SQL,
    PRUNE_CHANGES_SQL,
    change_from,
)
from ..consistency import CHECKS
from ..rows import (
    ChangeRow,
    DocumentProblem,
    DocumentRow,
    EntryVector,
    ObservationRow,
    StoredEntry,
)
from .core import SQLiteBase

_ENTRY_COLUMNS = [f.name for f in fields(StoredEntry)]
_INTO_ENTRIES = (
    f"INTO reuse_entries ({', '.join(_ENTRY_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ENTRY_COLUMNS)})"
)
_INSERT_ENTRY = "INSERT OR IGNORE " + _INTO_ENTRIES


_T = TypeVar("_T")


def _entry_from(r: sqlite3.Row) -> StoredEntry:
    data = {c: r[c] for c in _ENTRY_COLUMNS}
    data["vector"] = bytes(data["vector"])
    data["revoked"] = bool(data["revoked"])
    return StoredEntry(**data)


_DOC_COLUMNS = [f.name for f in fields(DocumentRow)]
_INSERT_DOC = (
    f"INSERT INTO documents ({', '.join(_DOC_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _DOC_COLUMNS)})"
)


def _all_or_none(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T | None]
) -> _T | None:
    """``fn``'s writes under one savepoint: kept when it returns a value, undone when it
    returns None or raises. Inside the writer's transaction, or alone when a failed group
    commit is retried one write at a time (each statement would commit on its own then)."""
    conn.execute("SAVEPOINT all_or_none")
    try:
        out = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK TO all_or_none")
        conn.execute("RELEASE all_or_none")
        raise
    if out is None:
        conn.execute("ROLLBACK TO all_or_none")
    conn.execute("RELEASE all_or_none")
    return out


def _bind_entry(conn: sqlite3.Connection, key: int, doc_id: str) -> bool:
    """Point entry ``key`` at document ``doc_id`` if it is stored, not revoked and bound to
    no other document."""
    return (
        conn.execute(
            "UPDATE reuse_entries SET document_id = ? WHERE key = ? AND NOT revoked "
            "AND (document_id IS NULL OR document_id = ?)",
            (doc_id, key, doc_id),
        ).rowcount
        == 1
    )


def _found(conn: sqlite3.Connection, kind: str, select: str) -> list[DocumentProblem]:
    rows = conn.execute(select).fetchall()
    found = (DocumentProblem(kind, str(r["document"]), r["entry"]) for r in rows)
    return sorted(found, key=lambda p: (p.document, p.entry or 0))


class SQLiteAnswers(SQLiteBase):
    """``AnswerStore``, ``LabelStore``, ``ChangeFeed`` and ``DocumentStore`` on SQLite."""

    # --- reuse ---------------------------------------------------------------------------
    async def put_entry(self, entry: StoredEntry) -> None:
        await self._execute(_INSERT_ENTRY, tuple(getattr(entry, c) for c in _ENTRY_COLUMNS))

    async def entries(self) -> list[StoredEntry]:
        def run(conn: sqlite3.Connection) -> list[StoredEntry]:
            rows = conn.execute("SELECT * FROM reuse_entries ORDER BY key")
            return [_entry_from(r) for r in rows]

        return await self._read(run)

    async def get_entries(self, keys: list[int]) -> list[StoredEntry]:
        def run(conn: sqlite3.Connection) -> list[StoredEntry]:
            rows = conn.execute(
                "SELECT * FROM reuse_entries WHERE key IN (SELECT value FROM json_each(?)) "
                "ORDER BY key",
                (json.dumps(keys),),
            )
            return [_entry_from(r) for r in rows]

        return await self._read(run) if keys else []

    async def set_entry_vectors(self, embedder: str, vectors: list[EntryVector]) -> int:
        # vector and embedder are not the update trigger's columns (migration 0012): no
        # change is logged
        params = [(v.vector, embedder, v.key, v.replaces) for v in vectors]

        def write(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute(
                    "UPDATE reuse_entries SET vector = ?, embedder = ? "
                    "WHERE key = ? AND embedder = ? AND NOT revoked",
                    p,
                ).rowcount
                for p in params
            )

        return int(await self._call(write)) if params else 0

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
        def delete(conn: sqlite3.Connection) -> bool:
            for key in keys:  # a bound entry stays (its document is revoked, never orphaned)
                sql = "DELETE FROM reuse_entries WHERE key = ? AND document_id IS NULL"
                if conn.execute(sql, (key,)).rowcount:
                    conn.execute("DELETE FROM reuse_question_variants WHERE entry = ?", (key,))
            return True  # (kept)

        await self._call(lambda conn: _all_or_none(conn, delete))

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

    async def put_document(self, doc: DocumentRow) -> bool:
        values = tuple(getattr(doc, c) for c in _DOC_COLUMNS)

        def write(conn: sqlite3.Connection) -> bool | None:
            conn.execute(_INSERT_DOC, values)
            if doc.entry is not None and not _bind_entry(conn, doc.entry, doc.id):
                return None
            if doc.supersedes is not None:
                current = conn.execute(
                    "UPDATE documents SET state = 'superseded', superseded_by = ? "
                    "WHERE id = ? AND state IN ('active', 'stale')",
                    (doc.id, doc.supersedes),
                ).rowcount
                if current != 1:
                    return None
            return True

        return bool(await self._call(lambda conn: _all_or_none(conn, write)))

    async def import_document(self, entry: StoredEntry, doc: DocumentRow) -> StoredEntry | None:
        def write(conn: sqlite3.Connection) -> StoredEntry | None:
            if conn.execute("SELECT 1 FROM documents WHERE id = ?", (doc.id,)).fetchone():
                return None
            r = conn.execute("SELECT * FROM reuse_entries WHERE id = ?", (entry.id,)).fetchone()
            if r is None:  # a plain insert: another entry under this key is an error
                stored = replace(entry, document_id=doc.id)
                values = tuple(getattr(stored, c) for c in _ENTRY_COLUMNS)
                conn.execute("INSERT " + _INTO_ENTRIES, values)
            else:  # stored by an import that stopped before its document was written
                stored = replace(_entry_from(r), document_id=doc.id)
                conn.execute(
                    "UPDATE reuse_entries SET document_id = ? WHERE key = ?", (doc.id, stored.key)
                )
            state = "revoked" if stored.revoked else doc.state
            row = replace(doc, entry=stored.key, state=state)
            conn.execute(_INSERT_DOC, tuple(getattr(row, c) for c in _DOC_COLUMNS))
            return stored

        return await self._call(lambda conn: _all_or_none(conn, write))

    async def revoke_document(self, doc_id: str) -> list[int] | None:
        def write(conn: sqlite3.Connection) -> list[int] | None:
            r = conn.execute(
                "UPDATE documents SET state = 'revoked' WHERE id = ? RETURNING entry", (doc_id,)
            ).fetchone()
            if r is None:
                return None
            keys = {
                int(k[0])
                for k in conn.execute(
                    "UPDATE reuse_entries SET revoked = 1 WHERE document_id = ? RETURNING key",
                    (doc_id,),
                ).fetchall()
            }
            if r[0] is not None:  # its own entry, if a write before this left it unbound
                keys.update(
                    int(k[0])
                    for k in conn.execute(
                        "UPDATE reuse_entries SET revoked = 1 "
                        "WHERE key = ? AND document_id IS NULL RETURNING key",
                        (r[0],),
                    ).fetchall()
                )
            return sorted(keys)

        return await self._call(lambda conn: _all_or_none(conn, write))

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
        self,
        doc_id: str,
        state: str,
        superseded_by: str | None = None,
        *,
        expected: str | None = None,
    ) -> bool:
        sql = (
            "UPDATE documents SET state = ?, superseded_by = COALESCE(?, superseded_by) "
            "WHERE id = ? AND state = COALESCE(?, state)"
        )
        params = (state, superseded_by, doc_id, expected)
        return bool(await self._call(lambda conn: conn.execute(sql, params).rowcount == 1))

    async def has_own_documents(self) -> bool:
        sql = "SELECT 1 FROM documents WHERE public_key IS NULL LIMIT 1"
        return bool(await self._read(lambda conn: conn.execute(sql).fetchone() is not None))

    async def document_problems(self) -> list[DocumentProblem]:
        def run(conn: sqlite3.Connection) -> list[DocumentProblem]:
            return [p for check in CHECKS for p in _found(conn, check.kind, check.select)]

        return await self._read(run)

    async def repair_documents(self, everything: bool = False) -> list[DocumentProblem]:
        checks = [c for c in CHECKS if everything or c.automatic]
        if not any(p.kind in {c.kind for c in checks} for p in await self.document_problems()):
            return []  # the common case: no write at all

        def write(conn: sqlite3.Connection) -> list[DocumentProblem]:
            repaired: list[DocumentProblem] = []
            for check in checks:  # each read after the repairs before it
                found = _found(conn, check.kind, check.select)
                if found:
                    for sql in check.repair:
                        conn.execute(sql)
                    repaired += found
            return repaired

        return await self._call(lambda conn: _all_or_none(conn, write)) or []

    async def set_entry_document(
        self, entry: int, doc_id: str | None, revoked: bool = False
    ) -> None:
        await self._execute(
            "UPDATE reuse_entries SET document_id = ?, revoked = ? WHERE key = ?",
            (doc_id, int(revoked), entry),
        )
