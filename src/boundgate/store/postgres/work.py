"""The PostgreSQL store's background work: jobs (``JobStore``), files and batches
(``FileStore``) and the creativity buffer (``CreativityStore``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import fields
from typing import Any

from ..aggregate import BATCH_STATUSES_ENDED_SQL, JOB_OPEN_SQL
from ..rows import (
    BatchLineRow,
    FileRow,
    IdempotencyKey,
    JobRow,
    VariantRow,
)
from .core import (
    _LOCK_NOVEL,
    _LOCK_VARIANTS,
    PostgresBase,
    _all,
    _cols,
    _Conn,
    _marks,
    _one,
    _rowcount,
    _scalar,
)

_JOB_COLUMNS = [f.name for f in fields(JobRow)]


_JOB_SELECT = f"SELECT {_cols(_JOB_COLUMNS)} FROM jobs"
_VARIANT_COLUMNS = [f.name for f in fields(VariantRow)]
_KEY_COLUMNS = [f.name for f in fields(IdempotencyKey)]
_KEY_SELECT = f"SELECT {_cols(_KEY_COLUMNS)} FROM idempotency_keys"
_INSERT_FILE = (
    "INSERT INTO files (id, tenant, purpose, filename, bytes, created, content) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
# an unfinished batch reading the file as its input (``delete_file``), given as FILE
_INPUT_IN_USE = (
    "SELECT 1 FROM batches WHERE (body::jsonb ->> 'input_file_id') = FILE "
    f"AND (body::jsonb ->> 'status') NOT IN {BATCH_STATUSES_ENDED_SQL}"
)
# the batches not ended, oldest first, with their jobs' states: the WHERE on the batch's status
# is the partial index batches_open's (migration 0017), so the planner can read that index,
# not every batch ever made
STRANDED_BATCHES_SQL = (
    "SELECT b.body, j.state FROM batches b "
    "LEFT JOIN jobs j ON j.id = b.body::jsonb -> 'boundgate' ->> 'job_id' "
    f"WHERE (b.body::jsonb ->> 'status') NOT IN {BATCH_STATUSES_ENDED_SQL} "
    f"AND (j.state IS NULL OR j.state NOT IN {JOB_OPEN_SQL}) "
    "ORDER BY b.created, b.id"
)


def _file_values(f: FileRow) -> tuple[object, ...]:
    return (f.id, f.tenant, f.purpose, f.filename, f.size, f.created, f.content)


async def _keep_key(conn: _Conn, k: IdempotencyKey) -> IdempotencyKey | None:
    """Keep idempotency key ``k`` (expired keys go first), inside the caller's transaction;
    None once kept, else the key kept already under its (tenant, key_id, route, key), which
    has not expired (a request under the same key committing at once: waited for)."""
    # this key's own expired row (the insert below takes its place), and up to 100 others,
    # skipping rows another request's transaction holds: no waits, no lock-order deadlocks
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE tenant = %s AND key_id = %s AND route = %s "
        "AND key = %s AND expires <= %s",
        (k.tenant, k.key_id, k.route, k.key, k.created),
    )
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
        "WHERE expires <= %s LIMIT 100 FOR UPDATE SKIP LOCKED)",
        (k.created,),
    )
    sql = (
        f"INSERT INTO idempotency_keys ({_cols(_KEY_COLUMNS)}) VALUES ({_marks(_KEY_COLUMNS)}) "
        "ON CONFLICT DO NOTHING"
    )
    if await _rowcount(conn, sql, [getattr(k, c) for c in _KEY_COLUMNS]) == 1:
        return None
    r = await _one(
        conn,
        _KEY_SELECT + " WHERE tenant = %s AND key_id = %s AND route = %s AND key = %s",
        (k.tenant, k.key_id, k.route, k.key),
    )
    assert r is not None  # (a conflict is a row; keys are deleted only once expired)
    return IdempotencyKey(**r)


def _job_from(r: dict[str, Any]) -> JobRow:
    return JobRow(**{c: r[c] for c in _JOB_COLUMNS})


class PostgresWork(PostgresBase):
    """``JobStore``, ``FileStore`` and ``CreativityStore`` on PostgreSQL."""

    # --- jobs ----------------------------------------------------------------------------
    async def put_job(self, job: JobRow) -> bool:
        # no conflict target: a clash on the id or on the dedupe key of a pending or running
        # job (the partial index jobs_dedupe_open) writes nothing
        sql = (
            f"INSERT INTO jobs ({_cols(_JOB_COLUMNS)}) VALUES ({_marks(_JOB_COLUMNS)}) "
            "ON CONFLICT DO NOTHING"
        )
        return await self._execute(sql, [getattr(job, c) for c in _JOB_COLUMNS]) == 1

    async def claim_job(
        self, owner: str, now: float, lease_s: float, accepts: Collection[str] = ()
    ) -> JobRow | None:
        # SKIP LOCKED: a job another replica is claiming right now is passed over, not waited
        # for (and re-checked against the condition once locked); a job requiring what this
        # process does not run is passed over, never written, until its deadline, and after
        # it while a live runner meets its requirement (that one runs it late)
        sql = (
            "UPDATE jobs SET state = 'running', lease_owner = %s, lease_expires = %s, "
            "attempts = attempts + 1 WHERE id = (SELECT id FROM jobs WHERE "
            "((state = 'pending' AND not_before <= %s) OR "
            "(state = 'running' AND lease_expires < %s)) "
            "AND (requires IS NULL OR requires = ANY(%s::text[]) OR (deadline <= %s AND "
            "NOT EXISTS (SELECT 1 FROM job_runners r WHERE r.requires = jobs.requires "
            "AND r.expires > %s))) "
            "ORDER BY deadline, not_before, seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_cols(_JOB_COLUMNS)}"
        )
        params = (owner, now + lease_s, now, now, sorted(accepts), now, now)
        r = await self._run(lambda conn: _one(conn, sql, params))
        return _job_from(r) if r is not None else None

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
            "UPDATE jobs SET state = %s, result = %s, lease_owner = NULL, lease_expires = NULL, "
            "not_before = COALESCE(%s, not_before), hold_until = COALESCE(%s, hold_until), "
            "attempts = attempts - %s WHERE id = %s AND state = 'running' AND lease_owner = %s"
        )
        params = (state, result, retry_at, retry_at, int(handed_back), job_id, owner)
        return await self._execute(sql, params) == 1

    async def note_runner(
        self, owner: str, accepts: Collection[str], now: float, until: float
    ) -> None:
        rows = [(requires, owner, until) for requires in sorted(set(accepts))]

        async def note(conn: _Conn) -> None:
            await conn.execute(
                "DELETE FROM job_runners WHERE owner = %s OR expires <= %s", (owner, now)
            )
            if rows:
                async with conn.cursor() as cur:
                    await cur.executemany("INSERT INTO job_runners VALUES (%s, %s, %s)", rows)

        await self._run(note, tx=True)

    async def forget_runner(self, owner: str) -> None:
        await self._execute("DELETE FROM job_runners WHERE owner = %s", (owner,))

    async def live_requirements(self, now: float, besides: str | None = None) -> frozenset[str]:
        sql = (
            "SELECT DISTINCT requires FROM job_runners "
            "WHERE expires > %s AND owner IS DISTINCT FROM %s"
        )
        rows = await self._run(lambda conn: _all(conn, sql, (now, besides)))
        return frozenset(str(r["requires"]) for r in rows)

    async def renew_job(self, job_id: str, owner: str, until: float) -> bool:
        sql = (
            "UPDATE jobs SET lease_expires = %s "
            "WHERE id = %s AND state = 'running' AND lease_owner = %s"
        )
        return await self._execute(sql, (until, job_id, owner)) == 1

    async def reschedule_job(self, job_id: str, not_before: float) -> bool:
        sql = (
            "UPDATE jobs SET not_before = %s "
            "WHERE id = %s AND state = 'pending' AND hold_until <= %s"
        )
        return await self._execute(sql, (not_before, job_id, not_before)) == 1

    async def cancel_job(self, job_id: str) -> bool:
        sql = "UPDATE jobs SET state = 'cancelled' WHERE id = %s AND state = 'pending'"
        return await self._execute(sql, (job_id,)) == 1

    async def jobs(self, state: str | None = None) -> list[JobRow]:
        sql = _JOB_SELECT + (" WHERE state = %s" if state else "") + " ORDER BY created, seq"
        params = (state,) if state else ()
        rows = await self._run(lambda conn: _all(conn, sql, params))
        return [_job_from(r) for r in rows]

    async def job_counts(self) -> dict[str, int]:
        return await self._state_counts("jobs")

    # --- files and batches ---------------------------------------------------------------
    async def put_file(
        self, f: FileRow, idempotency: IdempotencyKey | None = None
    ) -> IdempotencyKey | None:
        if idempotency is None:
            await self._execute(_INSERT_FILE, _file_values(f))
            return None

        async def put(conn: _Conn) -> IdempotencyKey | None:
            kept = await _keep_key(conn, idempotency)
            if kept is None:
                await conn.execute(_INSERT_FILE, _file_values(f))
            return kept

        return await self._run(put, tx=True)

    async def delete_file(self, file_id: str, now: float) -> bool:
        async def delete(conn: _Conn) -> bool:
            # the row locked before the batches are read (put_batch holds it FOR SHARE while
            # it stores a batch made from it): the check below sees every such batch
            await conn.execute("SELECT 1 FROM files WHERE id = %s FOR UPDATE", (file_id,))
            await conn.execute("DELETE FROM idempotency_keys WHERE object_id = %s", (file_id,))
            if await _one(conn, _INPUT_IN_USE.replace("FILE", "%s"), (file_id,)) is not None:
                sql = "UPDATE files SET deleted = %s WHERE id = %s AND deleted IS NULL"
                return await _rowcount(conn, sql, (now, file_id)) == 1

            sql = "DELETE FROM files WHERE id = %s AND deleted IS NULL"
            return await _rowcount(conn, sql, (file_id,)) == 1

        return await self._run(delete, tx=True)

    async def purge_deleted_files(self) -> int:
        sql = (
            "DELETE FROM files WHERE deleted IS NOT NULL AND NOT EXISTS ("
            + _INPUT_IN_USE.replace("FILE", "files.id")
            + ")"
        )
        return await self._run(lambda conn: _rowcount(conn, sql), tx=True)

    async def get_file(
        self, file_id: str, deleted: bool = False, content: bool = True
    ) -> FileRow | None:
        columns = "content" if content else "''::bytea AS content"
        sql = (
            f"SELECT id, tenant, purpose, filename, bytes, created, {columns} FROM files "
            "WHERE id = %s AND (%s OR deleted IS NULL)"
        )
        r = await self._run(lambda conn: _one(conn, sql, (file_id, deleted)))
        if r is None:
            return None
        return FileRow(
            r["id"], r["tenant"], r["purpose"], r["filename"], r["bytes"], r["created"],
            bytes(r["content"]),
        )  # fmt: skip

    async def idempotency_key(
        self, tenant: str, key_id: str, route: str, key: str, now: float
    ) -> IdempotencyKey | None:
        sql = (
            _KEY_SELECT + " WHERE tenant = %s AND key_id = %s AND route = %s AND key = %s "
            "AND expires > %s"
        )
        params = (tenant, key_id, route, key, now)
        r = await self._run(lambda conn: _one(conn, sql, params))
        return IdempotencyKey(**r) if r is not None else None

    async def put_batch(
        self,
        batch_id: str,
        tenant: str,
        created: float,
        body: str,
        idempotency: IdempotencyKey | None = None,
        input_file_id: str | None = None,
    ) -> IdempotencyKey | None:
        sql = (
            "INSERT INTO batches (id, tenant, created, body) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, "
            "created = EXCLUDED.created, body = EXCLUDED.body"
        )
        values = (batch_id, tenant, created, body)
        if idempotency is None and input_file_id is None:
            await self._execute(sql, values)
            return None

        async def put(conn: _Conn) -> IdempotencyKey | None:
            kept = await _keep_key(conn, idempotency) if idempotency is not None else None
            if kept is not None:  # a request under the key made its batch: that one
                return kept
            if input_file_id is not None:
                # the file's row held (FOR SHARE) until the batch is committed: a
                # delete_file, which locks it FOR UPDATE before it looks for batches, runs
                # wholly before (the row gone: refused here) or after (the batch seen)
                live = "SELECT 1 FROM files WHERE id = %s AND deleted IS NULL FOR SHARE"
                if await _one(conn, live, (input_file_id,)) is None:
                    raise LookupError(input_file_id)  # the transaction, key too, undone
            await conn.execute(sql, values)
            return None

        return await self._run(put, tx=True)

    async def replace_batch(
        self, batch_id: str, old_body: str, body: str, files: Sequence[FileRow] = ()
    ) -> bool:
        sql = "UPDATE batches SET body = %s WHERE id = %s AND body = %s"
        if not files:
            return await self._execute(sql, (body, batch_id, old_body)) == 1

        async def replace(conn: _Conn) -> bool:
            if await _rowcount(conn, sql, (body, batch_id, old_body)) != 1:
                return False
            async with conn.cursor() as cur:
                await cur.executemany(_INSERT_FILE, [_file_values(f) for f in files])
            return True

        return await self._run(replace, tx=True)

    async def get_batch(self, batch_id: str) -> tuple[str, str] | None:
        sql = "SELECT tenant, body FROM batches WHERE id = %s"
        r = await self._run(lambda conn: _one(conn, sql, (batch_id,)))
        return (str(r["tenant"]), str(r["body"])) if r is not None else None

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
            "WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s) AND deleted IS NULL "
            "AND (%(purpose)s::text IS NULL OR purpose = %(purpose)s) "
            f"AND (%(after)s::text IS NULL OR (created, id) {cmp} "
            "(SELECT created, id FROM files WHERE id = %(after)s "
            "AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s))) "
            f"ORDER BY created {order}, id {order} LIMIT %(limit)s"
        )
        params = {"tenant": tenant, "purpose": purpose, "after": after, "limit": limit}
        rows = await self._run(lambda conn: _all(conn, sql, params))
        return [
            FileRow(r["id"], r["tenant"], r["purpose"], r["filename"], r["bytes"], r["created"],
                    b"")
            for r in rows
        ]  # fmt: skip

    async def batches(
        self, limit: int = 100, tenant: str | None = None, after: str | None = None
    ) -> list[tuple[str, str, float, str]]:
        sql = (
            "SELECT id, tenant, created, body FROM batches "
            "WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s) "
            "AND (%(after)s::text IS NULL OR (created, id) < "
            "(SELECT created, id FROM batches WHERE id = %(after)s "
            "AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s))) "
            "ORDER BY created DESC, id DESC LIMIT %(limit)s"
        )
        params = {"tenant": tenant, "after": after, "limit": limit}
        rows = await self._run(lambda conn: _all(conn, sql, params))
        return [(str(r["id"]), str(r["tenant"]), float(r["created"]), str(r["body"])) for r in rows]

    async def put_batch_line(self, row: BatchLineRow) -> None:
        await self._execute(
            "INSERT INTO batch_lines (batch_id, line, kind, record, energy_wh, carbon_g, "
            "avoided_wh) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (row.batch_id, row.line, row.kind, row.record, row.energy_wh, row.carbon_g,
             row.avoided_wh),
        )  # fmt: skip

    async def batch_lines(self, batch_id: str) -> list[BatchLineRow]:
        sql = (
            "SELECT batch_id, line, kind, record, energy_wh, carbon_g, avoided_wh "
            "FROM batch_lines WHERE batch_id = %s ORDER BY line"
        )
        rows = await self._run(lambda conn: _all(conn, sql, (batch_id,)))
        return [BatchLineRow(**r) for r in rows]

    async def batch_line_counts(self, batch_id: str) -> tuple[int, int]:
        sql = (
            "SELECT COUNT(*) FILTER (WHERE kind = 'output') AS outputs, "
            "COUNT(*) FILTER (WHERE kind = 'error') AS errors "
            "FROM batch_lines WHERE batch_id = %s"
        )
        r = await self._run(lambda conn: _one(conn, sql, (batch_id,)))
        return (int(r["outputs"]), int(r["errors"])) if r is not None else (0, 0)

    async def drop_batch_lines(self, batch_id: str) -> None:
        await self._execute("DELETE FROM batch_lines WHERE batch_id = %s", (batch_id,))

    async def stranded_batches(self) -> list[tuple[str, str | None]]:
        rows = await self._run(lambda conn: _all(conn, STRANDED_BATCHES_SQL))
        return [(str(r["body"]), r["state"]) for r in rows]

    # --- creativity buffer ---------------------------------------------------------------
    async def note_novel_ask(self, exact: str, asker: str, request: str, ts: float) -> int:
        async def note(conn: _Conn) -> int:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NOVEL, exact)
            )
            await conn.execute(
                "INSERT INTO novel_asks (exact, asker, request, ts) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (exact, asker) DO UPDATE SET request = EXCLUDED.request, "
                "ts = EXCLUDED.ts",
                (exact, asker, request, ts),
            )
            sql = "SELECT COUNT(*) FROM novel_asks WHERE exact = %s"
            return int(await _scalar(conn, sql, (exact,)))

        return await self._run(note, tx=True)

    async def novel_request(self, exact: str) -> str | None:
        sql = "SELECT request FROM novel_asks WHERE exact = %s ORDER BY ts DESC LIMIT 1"
        r = await self._run(lambda conn: _scalar(conn, sql, (exact,)))
        return str(r) if r is not None else None

    async def add_variants(self, variants: list[VariantRow]) -> None:
        if not variants:
            if self._pool is None:
                raise RuntimeError("store is not open")
            return
        columns = [c for c in _VARIANT_COLUMNS if c != "id"]
        sql = f"INSERT INTO variants ({_cols(columns)}) VALUES ({_marks(columns)})"
        rows = [[getattr(v, c) for c in columns] for v in variants]

        async def add(conn: _Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(sql, rows)

        await self._run(add, tx=True)

    async def take_variant(self, exact: str, asker: str, ts: float) -> VariantRow | None:
        select = (
            f"SELECT {_cols(_VARIANT_COLUMNS)} FROM variants v WHERE exact = %s AND NOT EXISTS "
            "(SELECT 1 FROM variant_serves s WHERE s.variant = v.id AND s.asker = %s) "
            "ORDER BY (SELECT COUNT(*) FROM variant_serves s WHERE s.variant = v.id), id LIMIT 1"
        )

        async def take(conn: _Conn) -> VariantRow | None:
            # takes of one prompt one at a time: each sees every serve before it
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_VARIANTS, exact)
            )
            r = await _one(conn, select, (exact, asker))
            if r is None:
                return None
            await conn.execute(
                "INSERT INTO variant_serves (variant, asker, ts) VALUES (%s, %s, %s)",
                (r["id"], asker, ts),
            )
            return VariantRow(**{c: r[c] for c in _VARIANT_COLUMNS})

        return await self._run(take, tx=True)

    async def variant_count(self, exact: str) -> int:
        sql = "SELECT COUNT(*) FROM variants WHERE exact = %s"
        return int(await self._run(lambda conn: _scalar(conn, sql, (exact,))))

    async def unused_variants(self, exact: str) -> int:
        sql = (
            "SELECT COUNT(*) FROM variants v WHERE exact = %s AND NOT EXISTS "
            "(SELECT 1 FROM variant_serves s WHERE s.variant = v.id)"
        )
        return int(await self._run(lambda conn: _scalar(conn, sql, (exact,))))
