"""The PostgreSQL store's reuse side: stored answers (``AnswerStore``), documents
(``DocumentStore``) and verifier labels (``LabelStore``)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from psycopg import Rollback

from ..consistency import CHECKS
from ..rows import (
    DocumentProblem,
    DocumentRow,
    EntryVector,
    ObservationRow,
    StoredEntry,
)
from .core import (
    _LOCK_ASKERS,
    PostgresBase,
    _all,
    _cols,
    _Conn,
    _marks,
    _one,
    _rowcount,
    _scalar,
)

_ENTRY_COLUMNS = [f.name for f in fields(StoredEntry)]
_ENTRY_SELECT = f"SELECT {_cols(_ENTRY_COLUMNS)} FROM reuse_entries"
_INTO_ENTRIES = f"INTO reuse_entries ({_cols(_ENTRY_COLUMNS)}) VALUES ({_marks(_ENTRY_COLUMNS)})"
_INSERT_ENTRY = "INSERT " + _INTO_ENTRIES + " ON CONFLICT DO NOTHING"
_DOC_COLUMNS = [f.name for f in fields(DocumentRow)]
_DOC_SELECT = f"SELECT {_cols(_DOC_COLUMNS)} FROM documents"
_INSERT_DOC = f"INSERT INTO documents ({_cols(_DOC_COLUMNS)}) VALUES ({_marks(_DOC_COLUMNS)})"


def _entry_from(r: dict[str, Any]) -> StoredEntry:
    data = {c: r[c] for c in _ENTRY_COLUMNS}
    data["vector"] = bytes(data["vector"])
    return StoredEntry(**data)


def _doc_from(r: dict[str, Any]) -> DocumentRow:
    return DocumentRow(**{c: r[c] for c in _DOC_COLUMNS})


# one bigint key for the documents' repair (the migrations' is another)
_REPAIR_LOCK = 0x626F756E64726570  # "boundrep"


async def _found(conn: _Conn, kind: str, select: str) -> list[DocumentProblem]:
    rows = await _all(conn, select)
    found = (DocumentProblem(kind, str(r["document"]), r["entry"]) for r in rows)
    return sorted(found, key=lambda p: (p.document, p.entry or 0))


async def _bind_entry(conn: _Conn, key: int, doc_id: str) -> bool:
    """Point entry ``key`` at document ``doc_id`` if it is stored, not revoked and bound to
    no other document (row-locked: of two binds at once, the second sees the first's)."""
    return (
        await _rowcount(
            conn,
            "UPDATE reuse_entries SET document_id = %s WHERE key = %s AND NOT revoked "
            "AND (document_id IS NULL OR document_id = %s)",
            (doc_id, key, doc_id),
        )
        == 1
    )


class PostgresAnswers(PostgresBase):
    """``AnswerStore``, ``DocumentStore`` and ``LabelStore`` on PostgreSQL."""

    # --- stored answers and registry -----------------------------------------------------
    async def put_entry(self, entry: StoredEntry) -> None:
        await self._execute(_INSERT_ENTRY, [getattr(entry, c) for c in _ENTRY_COLUMNS])

    async def entries(self) -> list[StoredEntry]:
        sql = _ENTRY_SELECT + " ORDER BY key"
        rows = await self._run(lambda conn: _all(conn, sql))
        return [_entry_from(r) for r in rows]

    async def get_entries(self, keys: list[int]) -> list[StoredEntry]:
        if not keys:
            return []
        sql = _ENTRY_SELECT + " WHERE key = ANY(%s::bigint[]) ORDER BY key"
        rows = await self._run(lambda conn: _all(conn, sql, (keys,)))
        return [_entry_from(r) for r in rows]

    async def set_entry_vectors(self, embedder: str, vectors: list[EntryVector]) -> int:
        if not vectors:
            return 0
        # one statement; the update trigger logs no change for a vector (migration 0005)
        sql = (
            "UPDATE reuse_entries AS e SET vector = v.vector, embedder = %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::bytea[]) AS v(key, replaces, vector) "
            "WHERE e.key = v.key AND e.embedder = v.replaces AND NOT e.revoked"
        )
        params = (
            embedder,
            [v.key for v in vectors],
            [v.replaces for v in vectors],
            [v.vector for v in vectors],
        )
        return await self._execute(sql, params)

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
            # a bound entry stays (its document is revoked, never orphaned)
            cur = await conn.execute(
                "DELETE FROM reuse_entries WHERE key = ANY(%s::bigint[]) "
                "AND document_id IS NULL RETURNING key",
                (keys,),
            )
            deleted = [int(r[0]) for r in await cur.fetchall()]
            await conn.execute(
                "DELETE FROM reuse_question_variants WHERE entry = ANY(%s::bigint[])", (deleted,)
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

    # --- documents -----------------------------------------------------------------------
    async def put_document(self, doc: DocumentRow) -> bool:
        values = [getattr(doc, c) for c in _DOC_COLUMNS]

        async def write(conn: _Conn) -> bool:
            bound = False
            async with conn.transaction() as tx:
                await conn.execute(_INSERT_DOC, values)
                if doc.entry is not None and not await _bind_entry(conn, doc.entry, doc.id):
                    raise Rollback(tx)
                if doc.supersedes is not None:
                    # row-locked: a revocation committed first is seen here, one after waits
                    current = await _rowcount(
                        conn,
                        "UPDATE documents SET state = 'superseded', superseded_by = %s "
                        "WHERE id = %s AND state IN ('active', 'stale')",
                        (doc.id, doc.supersedes),
                    )
                    if current != 1:
                        raise Rollback(tx)
                bound = True
            return bound

        return await self._run(write)

    async def import_document(self, entry: StoredEntry, doc: DocumentRow) -> StoredEntry | None:
        async def write(conn: _Conn) -> StoredEntry | None:
            imported: StoredEntry | None = None
            async with conn.transaction() as tx:
                # concurrent imports of one document: the second waits on the entry's id,
                # then finds the first's entry and document
                fresh = replace(entry, document_id=doc.id)
                inserted = await _one(
                    conn,
                    "INSERT " + _INTO_ENTRIES + " ON CONFLICT (id) DO NOTHING RETURNING key",
                    [getattr(fresh, c) for c in _ENTRY_COLUMNS],
                )
                if inserted is not None:
                    stored = fresh
                else:  # stored by an import that stopped before its document was written
                    r = await _one(conn, _ENTRY_SELECT + " WHERE id = %s FOR UPDATE", (entry.id,))
                    assert r is not None  # the conflict was on its id
                    stored = replace(_entry_from(r), document_id=doc.id)
                    await conn.execute(
                        "UPDATE reuse_entries SET document_id = %s WHERE key = %s",
                        (doc.id, stored.key),
                    )
                state = "revoked" if stored.revoked else doc.state
                row = replace(doc, entry=stored.key, state=state)
                added = await _one(
                    conn,
                    _INSERT_DOC + " ON CONFLICT (id) DO NOTHING RETURNING id",
                    [getattr(row, c) for c in _DOC_COLUMNS],
                )
                if added is None:  # imported before
                    raise Rollback(tx)
                imported = stored
            return imported

        return await self._run(write)

    async def revoke_document(self, doc_id: str) -> list[int] | None:
        async def write(conn: _Conn) -> list[int] | None:
            r = await _one(
                conn,
                "UPDATE documents SET state = 'revoked' WHERE id = %s RETURNING entry",
                (doc_id,),
            )
            if r is None:
                return None
            rows = await _all(
                conn,
                "UPDATE reuse_entries SET revoked = TRUE WHERE document_id = %s RETURNING key",
                (doc_id,),
            )
            if r["entry"] is not None:  # its own entry, if a write before this left it unbound
                rows += await _all(
                    conn,
                    "UPDATE reuse_entries SET revoked = TRUE "
                    "WHERE key = %s AND document_id IS NULL RETURNING key",
                    (r["entry"],),
                )
            return sorted({int(k["key"]) for k in rows})

        return await self._run(write, tx=True)

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
        self,
        doc_id: str,
        state: str,
        superseded_by: str | None = None,
        *,
        expected: str | None = None,
    ) -> bool:
        changed = await self._execute(
            "UPDATE documents SET state = %s, superseded_by = COALESCE(%s::text, superseded_by) "
            "WHERE id = %s AND state = COALESCE(%s::text, state)",
            (state, superseded_by, doc_id, expected),
        )
        return changed == 1

    async def has_own_documents(self) -> bool:
        sql = "SELECT 1 FROM documents WHERE public_key IS NULL LIMIT 1"
        return await self._run(lambda conn: _one(conn, sql)) is not None

    async def document_counts(self) -> dict[str, int]:
        return await self._state_counts("documents")

    async def document_problems(self) -> list[DocumentProblem]:
        async def run(conn: _Conn) -> list[DocumentProblem]:
            return [p for check in CHECKS for p in await _found(conn, check.kind, check.select)]

        return await self._run(run)

    async def repair_documents(self, everything: bool = False) -> list[DocumentProblem]:
        checks = [c for c in CHECKS if everything or c.automatic]
        if not any(p.kind in {c.kind for c in checks} for p in await self.document_problems()):
            return []  # the common case: no write at all

        async def write(conn: _Conn) -> list[DocumentProblem]:
            # replicas starting together repair one at a time: the second finds it done
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_REPAIR_LOCK,))
            repaired: list[DocumentProblem] = []
            for check in checks:  # each read after the repairs before it
                found = await _found(conn, check.kind, check.select)
                if found:
                    for sql in check.repair:
                        await conn.execute(sql.encode())
                    repaired += found
            return repaired

        return await self._run(write, tx=True)

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
