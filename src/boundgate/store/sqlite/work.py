"""The SQLite store's background work: jobs (``JobStore``), files and batches
(``FileStore``) and the creativity buffer (``CreativityStore``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from dataclasses import fields

from ..aggregate import BATCH_STATUSES_ENDED_SQL, JOB_OPEN_SQL
from ..rows import (
    BatchLineRow,
    FileRow,
    IdempotencyKey,
    JobRow,
    VariantRow,
)
from .core import SQLiteBase

_JOB_COLUMNS = [f.name for f in fields(JobRow)]
_KEY_COLUMNS = [f.name for f in fields(IdempotencyKey)]
_VARIANT_COLUMNS = [f.name for f in fields(VariantRow)]
_NEW_VARIANT_COLUMNS = [c for c in _VARIANT_COLUMNS if c != "id"]  # the id is the table's
# an unfinished batch reading file ? as its input (``delete_file``)
_INPUT_IN_USE = (
    "SELECT 1 FROM batches WHERE json_extract(body, '$.input_file_id') = ? "
    f"AND json_extract(body, '$.status') NOT IN {BATCH_STATUSES_ENDED_SQL} LIMIT 1"
)
_INSERT_FILE = (
    "INSERT INTO files (id, tenant, purpose, filename, bytes, created, content) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# the batches not ended, oldest first, with their jobs' states: the WHERE on the batch's status
# is the partial index batches_open's, word for word (migration 0022), so SQLite reads that
# index, not every batch ever made
STRANDED_BATCHES_SQL = (
    "SELECT b.body, j.state FROM batches b "
    "LEFT JOIN jobs j ON j.id = json_extract(b.body, '$.boundgate.job_id') "
    f"WHERE json_extract(b.body, '$.status') NOT IN {BATCH_STATUSES_ENDED_SQL} "
    f"AND (j.state IS NULL OR j.state NOT IN {JOB_OPEN_SQL}) "
    "ORDER BY b.created, b.id"
)


def _file_values(f: FileRow) -> tuple[object, ...]:
    return (f.id, f.tenant, f.purpose, f.filename, f.size, f.created, f.content)


@contextlib.contextmanager
def _savepoint(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    """The block's writes kept together or undone together (it raised): inside the writer's
    transaction, or alone when a failed group commit is retried one write at a time (each
    statement would commit on its own then)."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def _keep_key(conn: sqlite3.Connection, k: IdempotencyKey) -> IdempotencyKey | None:
    """Keep idempotency key ``k`` (expired keys go first); None once kept, else the key kept
    already under its (tenant, key_id, route, key), which has not expired."""
    conn.execute("DELETE FROM idempotency_keys WHERE expires <= ?", (k.created,))
    sql = (
        f"INSERT OR IGNORE INTO idempotency_keys ({', '.join(_KEY_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _KEY_COLUMNS)})"
    )
    if conn.execute(sql, tuple(getattr(k, c) for c in _KEY_COLUMNS)).rowcount == 1:
        return None
    r = conn.execute(
        "SELECT * FROM idempotency_keys WHERE tenant = ? AND key_id = ? AND route = ? AND key = ?",
        (k.tenant, k.key_id, k.route, k.key),
    ).fetchone()
    return IdempotencyKey(**{c: r[c] for c in _KEY_COLUMNS})


class SQLiteWork(SQLiteBase):
    """``JobStore``, ``FileStore`` and ``CreativityStore`` on SQLite."""

    # --- jobs ----------------------------------------------------------------------------
    async def put_job(self, job: JobRow) -> bool:
        # OR IGNORE: a clash on the id or on the dedupe key of a pending or running job (the
        # partial index jobs_dedupe_open) writes nothing
        sql = (
            f"INSERT OR IGNORE INTO jobs ({', '.join(_JOB_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _JOB_COLUMNS)})"
        )
        values = tuple(getattr(job, c) for c in _JOB_COLUMNS)
        return bool(await self._call(lambda conn: conn.execute(sql, values).rowcount == 1))

    async def claim_job(
        self, owner: str, now: float, lease_s: float, accepts: Collection[str] = ()
    ) -> JobRow | None:
        # a job requiring what this process does not run is passed over until its deadline,
        # and after it while a live runner meets its requirement (that one runs it late)
        due_sql = (
            "((state = 'pending' AND not_before <= ?) OR (state = 'running' AND "
            "lease_expires < ?)) AND (requires IS NULL OR "
            "requires IN (SELECT value FROM json_each(?)) OR (deadline <= ? AND NOT EXISTS "
            "(SELECT 1 FROM job_runners r WHERE r.requires = jobs.requires AND r.expires > ?)))"
        )
        sql = (
            "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?, "
            f"attempts = attempts + 1 WHERE id = (SELECT id FROM jobs WHERE {due_sql} "
            "ORDER BY deadline, not_before LIMIT 1) RETURNING *"
        )
        due_params = (now, now, json.dumps(sorted(accepts)), now, now)

        due = await self._read(
            lambda conn: conn.execute(
                f"SELECT 1 FROM jobs WHERE {due_sql} LIMIT 1", due_params
            ).fetchone()
        )
        if due is None:  # the common case: no write transaction at all
            return None

        def claim(conn: sqlite3.Connection) -> JobRow | None:
            r = conn.execute(sql, (owner, now + lease_s, *due_params)).fetchone()
            return JobRow(**{c: r[c] for c in _JOB_COLUMNS}) if r is not None else None

        return await self._call(claim)

    async def finish_job(
        self,
        job_id: str,
        owner: str,
        state: str,
        result: str | None,
        *,
        retry_at: float | None = None,
        handed_back: bool = False,
    ) -> bool:
        sql = (
            "UPDATE jobs SET state = ?, result = ?, lease_owner = NULL, lease_expires = NULL, "
            "not_before = COALESCE(?, not_before), hold_until = COALESCE(?, hold_until), "
            "attempts = attempts - ? WHERE id = ? AND state = 'running' AND lease_owner = ?"
        )
        params = (state, result, retry_at, retry_at, int(handed_back), job_id, owner)
        return bool(await self._call(lambda conn: conn.execute(sql, params).rowcount == 1))

    async def note_runner(
        self, owner: str, accepts: Collection[str], now: float, until: float
    ) -> None:
        rows = [(requires, owner, until) for requires in sorted(set(accepts))]

        def note(conn: sqlite3.Connection) -> None:
            with _savepoint(conn, "note_runner"):
                conn.execute(
                    "DELETE FROM job_runners WHERE owner = ? OR expires <= ?", (owner, now)
                )
                conn.executemany("INSERT INTO job_runners VALUES (?, ?, ?)", rows)

        await self._call(note)

    async def forget_runner(self, owner: str) -> None:
        await self._execute("DELETE FROM job_runners WHERE owner = ?", (owner,))

    async def live_requirements(self, now: float, besides: str | None = None) -> frozenset[str]:
        sql = "SELECT DISTINCT requires FROM job_runners WHERE expires > ? AND owner IS NOT ?"
        rows = await self._read(lambda conn: conn.execute(sql, (now, besides)).fetchall())
        return frozenset(str(r[0]) for r in rows)

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
        sql = (
            "UPDATE jobs SET not_before = ? WHERE id = ? AND state = 'pending' AND hold_until <= ?"
        )
        params = (not_before, job_id, not_before)
        return bool(await self._call(lambda conn: conn.execute(sql, params).rowcount == 1))

    async def jobs(self, state: str | None = None) -> list[JobRow]:
        def run(conn: sqlite3.Connection) -> list[JobRow]:
            sql = "SELECT * FROM jobs" + (" WHERE state = ?" if state else "") + " ORDER BY created"
            rows = conn.execute(sql, (state,) if state else ())
            return [JobRow(**{c: r[c] for c in _JOB_COLUMNS}) for r in rows]

        return await self._read(run)

    # --- files and batches -----------------------------------------------------------------
    async def put_file(
        self, f: FileRow, idempotency: IdempotencyKey | None = None
    ) -> IdempotencyKey | None:
        if idempotency is None:
            await self._execute(_INSERT_FILE, _file_values(f))
            return None

        def put(conn: sqlite3.Connection) -> IdempotencyKey | None:
            with _savepoint(conn, "put_file"):
                kept = _keep_key(conn, idempotency)
                if kept is None:
                    conn.execute(_INSERT_FILE, _file_values(f))
                return kept

        return await self._call(put)

    async def delete_file(self, file_id: str, now: float) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            with _savepoint(conn, "delete_file"):
                conn.execute("DELETE FROM idempotency_keys WHERE object_id = ?", (file_id,))
                if conn.execute(_INPUT_IN_USE, (file_id,)).fetchone() is not None:
                    sql = "UPDATE files SET deleted = ? WHERE id = ? AND deleted IS NULL"
                    return conn.execute(sql, (now, file_id)).rowcount == 1
                sql = "DELETE FROM files WHERE id = ? AND deleted IS NULL"
                return conn.execute(sql, (file_id,)).rowcount == 1

        return bool(await self._call(delete))

    async def purge_deleted_files(self) -> int:
        sql = (
            "DELETE FROM files WHERE deleted IS NOT NULL AND NOT EXISTS ("
            + _INPUT_IN_USE.replace("= ?", "= files.id")
            + ")"
        )
        return int(await self._call(lambda conn: conn.execute(sql).rowcount))

    async def get_file(
        self, file_id: str, deleted: bool = False, content: bool = True
    ) -> FileRow | None:
        def run(conn: sqlite3.Connection) -> FileRow | None:
            columns = "*" if content else "id, tenant, purpose, filename, bytes, created"
            sql = f"SELECT {columns} FROM files WHERE id = ? AND (? OR deleted IS NULL)"
            r = conn.execute(sql, (file_id, deleted)).fetchone()
            if r is None:
                return None
            return FileRow(
                r["id"], r["tenant"], r["purpose"], r["filename"], r["bytes"], r["created"],
                bytes(r["content"]) if content else b"",
            )  # fmt: skip

        return await self._read(run)

    async def idempotency_key(
        self, tenant: str, key_id: str, route: str, key: str, now: float
    ) -> IdempotencyKey | None:
        def run(conn: sqlite3.Connection) -> IdempotencyKey | None:
            r = conn.execute(
                "SELECT * FROM idempotency_keys WHERE tenant = ? AND key_id = ? AND route = ? "
                "AND key = ? AND expires > ?",
                (tenant, key_id, route, key, now),
            ).fetchone()
            return IdempotencyKey(**{c: r[c] for c in _KEY_COLUMNS}) if r is not None else None

        return await self._read(run)

    async def put_batch(
        self,
        batch_id: str,
        tenant: str,
        created: float,
        body: str,
        idempotency: IdempotencyKey | None = None,
        input_file_id: str | None = None,
    ) -> IdempotencyKey | None:
        sql = "INSERT OR REPLACE INTO batches (id, tenant, created, body) VALUES (?, ?, ?, ?)"
        values = (batch_id, tenant, created, body)
        if idempotency is None and input_file_id is None:
            await self._execute(sql, values)
            return None

        def put(conn: sqlite3.Connection) -> IdempotencyKey | None:
            with _savepoint(conn, "put_batch"):
                kept = _keep_key(conn, idempotency) if idempotency is not None else None
                if kept is not None:  # a request under the key made its batch: that one
                    return kept
                if input_file_id is not None:  # the one writer: delete_file is before or after
                    live = "SELECT 1 FROM files WHERE id = ? AND deleted IS NULL"
                    if conn.execute(live, (input_file_id,)).fetchone() is None:
                        raise LookupError(input_file_id)  # the key kept above is undone
                conn.execute(sql, values)
                return None

        return await self._call(put)

    async def replace_batch(
        self, batch_id: str, old_body: str, body: str, files: Sequence[FileRow] = ()
    ) -> bool:
        sql = "UPDATE batches SET body = ? WHERE id = ? AND body = ?"
        args = (body, batch_id, old_body)

        def replace(conn: sqlite3.Connection) -> bool:
            with _savepoint(conn, "replace_batch"):
                if conn.execute(sql, args).rowcount != 1:
                    return False
                conn.executemany(_INSERT_FILE, [_file_values(f) for f in files])
                return True

        return bool(await self._call(replace))

    async def get_batch(self, batch_id: str) -> tuple[str, str] | None:
        def run(conn: sqlite3.Connection) -> tuple[str, str] | None:
            r = conn.execute(
                "SELECT tenant, body FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            return (r[0], r[1]) if r is not None else None

        return await self._read(run)

    async def files(
        self,
        tenant: str | None = None,
        purpose: str | None = None,
        limit: int = 100,
        after: str | None = None,
        ascending: bool = False,
    ) -> list[FileRow]:
        cmp, order = (">", "ASC") if ascending else ("<", "DESC")
        sql = (
            "SELECT id, tenant, purpose, filename, bytes, created FROM files "
            "WHERE (:tenant IS NULL OR tenant = :tenant) AND deleted IS NULL "
            "AND (:purpose IS NULL OR purpose = :purpose) "
            f"AND (:after IS NULL OR (created, id) {cmp} "
            "(SELECT created, id FROM files WHERE id = :after "
            "AND (:tenant IS NULL OR tenant = :tenant))) "
            f"ORDER BY created {order}, id {order} LIMIT :limit"
        )
        params = {"tenant": tenant, "purpose": purpose, "after": after, "limit": limit}

        def run(conn: sqlite3.Connection) -> list[FileRow]:
            return [
                FileRow(r[0], r[1], r[2], r[3], r[4], r[5], b"") for r in conn.execute(sql, params)
            ]

        return await self._read(run)

    async def batches(
        self, limit: int = 100, tenant: str | None = None, after: str | None = None
    ) -> list[tuple[str, str, float, str]]:
        sql = (
            "SELECT id, tenant, created, body FROM batches "
            "WHERE (:tenant IS NULL OR tenant = :tenant) AND (:after IS NULL OR (created, id) < "
            "(SELECT created, id FROM batches WHERE id = :after "
            "AND (:tenant IS NULL OR tenant = :tenant))) "
            "ORDER BY created DESC, id DESC LIMIT :limit"
        )
        params = {"tenant": tenant, "after": after, "limit": limit}

        def run(conn: sqlite3.Connection) -> list[tuple[str, str, float, str]]:
            rows = conn.execute(sql, params)
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

    async def stranded_batches(self) -> list[tuple[str, str | None]]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, str | None]]:
            return [(str(r[0]), r[1]) for r in conn.execute(STRANDED_BATCHES_SQL)]

        return await self._read(run)

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
                f"INSERT INTO variants ({', '.join(_NEW_VARIANT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _NEW_VARIANT_COLUMNS)})",
                [[getattr(v, c) for c in _NEW_VARIANT_COLUMNS] for v in variants],
            )

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
            return VariantRow(**{c: r[c] for c in _VARIANT_COLUMNS})

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
