"""What only the SQLite store does (the shared contract is in test_store_contract.py):
migrations, WAL, the writer thread, writes from threads, how keys are kept."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from boundgate.store import LedgerRow, SQLiteStore
from helpers import (
    BATCHES_INSERT,
    KEYS_LEDGER_INSERT,
    REQUIRES_DOCUMENTS,
    REQUIRES_DOCUMENTS_INSERT,
    REQUIRES_JOBS_INSERT,
    assert_job_requirements,
    assert_keys_used_today,
    batches_rows,
    keys_ledger_rows,
    requires_jobs,
)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "b.db")
    s.open()
    yield s  # type: ignore[misc]
    s.close()


def row(i: int, tenant: str = "t", **kw: object) -> LedgerRow:
    return LedgerRow(
        id=f"r{i}",
        ts=1000.0 + i,
        tenant=tenant,
        endpoint="/v1/chat/completions",
        model="m",
        prompt_tokens=2,
        completion_tokens=3,
        wh=0.5,
        wh_low=0.25,
        wh_high=1.0,
        gco2=0.1,
        **kw,
    )  # type: ignore[arg-type]


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        s = SQLiteStore(tmp_path / "b.db")
        s.open()
        s.close()
    conn = sqlite3.connect(tmp_path / "b.db")
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] >= 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@contextlib.contextmanager
def _migrated_before(version: int, db: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a new database ``db`` with the migrations before ``version`` applied
    and recorded, as an older gateway left it; committed when the block ends."""
    from boundgate.store.sqlite import load_migrations

    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
        )
        for number, name, sql in load_migrations():
            if number < version:
                conn.executescript(sql)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (number, name))
        yield conn


def test_documents_stored_before_keys_were_kept_read_as_signed_by_the_own_key(
    tmp_path: Path,
) -> None:
    """Migration 0015 on a database of the migrations before it: the documents already there
    (all bound by the gateway itself) keep no key, NULL: verified with the own key."""
    from boundgate.store import DocumentRow

    db = tmp_path / "old.db"
    with _migrated_before(15, db) as conn:
        conn.execute(
            "INSERT INTO documents (id, entry, tenant, model, model_version, state, created, body)"
            " VALUES ('doc_old', NULL, 't', 'm', 'v1', 'active', 1.0, '{}')"
        )
    s = SQLiteStore(db)
    s.open()
    try:
        old = asyncio.run(s.get_document("doc_old"))
        assert old is not None and old.public_key is None and old.body == "{}"
        new = DocumentRow("doc_new", None, "t", "m", "v1", "active", None, None, 2.0, "{}", "PEM")
        asyncio.run(s.put_document(new))
        assert asyncio.run(s.get_document("doc_new")) == new
    finally:
        s.close()


def test_keys_counters_start_from_their_usage_today(tmp_path: Path) -> None:
    """Migration 0021 (limits counted per key) on a database of the migrations before it:
    each key's counters start from what its requests used today (hits and other days free),
    not from zero, so a database migrated mid-day does not give each key a fresh budget."""
    import time

    db = tmp_path / "old.db"
    now = time.time()
    with _migrated_before(21, db) as conn:
        for row in keys_ledger_rows(now):
            conn.execute(KEYS_LEDGER_INSERT.replace("?", "?"), row)
    s = SQLiteStore(db)
    s.open()
    try:
        assert_keys_used_today(s, now)
    finally:
        s.close()


def test_the_stranded_batches_sweep_reads_only_batches_not_ended(tmp_path: Path) -> None:
    """Migration 0022 on a database of the migrations before it: an audit's finding was
    that ``stranded_batches`` (every process, every ``scheduler.replan_s``) read every batch
    ever made. The batches already there are indexed by whether they ended, and the sweep
    reads the index of those not ended, in its order (no sort)."""
    from boundgate.store.sqlite.work import STRANDED_BATCHES_SQL

    db = tmp_path / "old.db"
    rows = batches_rows()
    with _migrated_before(22, db) as conn:
        conn.executemany(BATCHES_INSERT, rows)
    s = SQLiteStore(db)
    s.open()
    try:
        assert asyncio.run(s.stranded_batches()) == [(rows[-1][2], None)]
    finally:
        s.close()
    with sqlite3.connect(db) as conn:
        plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + STRANDED_BATCHES_SQL)]
        assert any(step.endswith("USING INDEX batches_open") for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan  # read in order
        indexed = conn.execute(
            "SELECT id FROM batches INDEXED BY batches_open WHERE json_extract(body, '$.status') "
            "NOT IN ('completed', 'failed', 'expired', 'cancelled')"
        )
        assert [r[0] for r in indexed] == ["b_open"]


def test_jobs_queued_before_dedupe_keys_were_freed_are_kept(tmp_path: Path) -> None:
    """Migrations 0017 and 0018 on a database of the migrations before them (the jobs table
    rebuilt without the column's UNIQUE): the jobs are kept, none held back, and a failed
    job's dedupe key can be used again while a pending one's cannot."""
    from boundgate.store import JobRow

    db = tmp_path / "old.db"
    with _migrated_before(17, db) as conn:
        for job_id, state in (("job_failed", "failed"), ("job_pending", "pending")):
            conn.execute(
                "INSERT INTO jobs (id, kind, payload, state, created, not_before, deadline, "
                "attempts, dedupe) VALUES (?, 'rebind', '{}', ?, 1.0, 2.0, 3.0, 3, ?)",
                (job_id, state, f"rebind:{state}"),
            )
    s = SQLiteStore(db)
    s.open()
    try:
        jobs = asyncio.run(s.jobs())
        assert [(j.id, j.state, j.attempts, j.hold_until) for j in jobs] == [
            ("job_failed", "failed", 3, 0.0), ("job_pending", "pending", 3, 0.0),
        ]  # fmt: skip

        def again(dedupe: str) -> bool:
            new = JobRow("job_new_" + dedupe, "rebind", "{}", "pending", 4.0, 4.0, 9.0,
                         dedupe=dedupe)  # fmt: skip
            return asyncio.run(s.put_job(new))

        assert again("rebind:failed") and not again("rebind:pending")
    finally:
        s.close()


def test_open_rebind_jobs_get_their_models_version_as_requirement(tmp_path: Path) -> None:
    """Migration 0023 on a database of the migrations before it: each open rebind job that
    names its version requires its document's model at that version, so replicas on another
    version pass it over; the others require nothing."""
    db = tmp_path / "old.db"
    with _migrated_before(23, db) as conn:
        conn.executemany(REQUIRES_DOCUMENTS_INSERT, REQUIRES_DOCUMENTS)
        conn.executemany(REQUIRES_JOBS_INSERT, requires_jobs())
    s = SQLiteStore(db)
    s.open()
    try:
        assert_job_requirements(s)
    finally:
        s.close()


def test_a_write_that_cannot_be_encoded_fails_alone_and_the_writer_lives_on(
    store: SQLiteStore,
) -> None:
    """A lone surrogate cannot be stored as UTF-8: that write fails with its own error, and
    the writer thread goes on committing (it used to die, and every later write hung)."""
    with pytest.raises(UnicodeEncodeError):
        asyncio.run(store.record(row(1, backend="x\ud800")))
    asyncio.run(store.record(row(2)))
    assert asyncio.run(store.get_row("r2")) is not None and asyncio.run(store.get_row("r1")) is None


def test_the_writer_lives_on_when_a_callers_event_loop_has_closed(store: SQLiteStore) -> None:
    """A write whose caller's event loop closed before it was committed (its task cancelled
    at the loop's end) killed the writer thread with "Event loop is closed" when it reported
    back, and every later write hung (seen once in a CI run's warnings)."""
    held, holding = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        holding.set()
        held.wait(10)

    async def leave_writes_behind() -> None:
        asyncio.get_running_loop().create_task(store._call(hold))
        asyncio.get_running_loop().create_task(store.record(row(1)))
        await asyncio.to_thread(holding.wait, 10)  # the writer is inside ``hold``

    asyncio.run(leave_writes_behind())  # cancels both tasks and closes the loop
    held.set()  # the writer reports both writes to the closed loop

    async def later() -> None:
        await asyncio.wait_for(store.record(row(2)), 10)

    asyncio.run(later())
    assert asyncio.run(store.get_row("r2")) is not None


def test_records_from_threads(store: SQLiteStore) -> None:
    def work(base: int) -> None:
        for i in range(50):
            asyncio.run(store.record(row(base + i)))

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(asyncio.run(store.ledger())) == 200


def test_keys_store_only_a_salted_hash(store: SQLiteStore, tmp_path: Path) -> None:
    new = asyncio.run(store.create_key("acme", admin=True, rpm=5))
    assert new.secret.startswith(f"bg-{new.key.id}-")
    raw = (tmp_path / "b.db").read_bytes()
    # the secret part may itself hold "-" (URL-safe base64): take all of it, never a piece
    secret_part = new.secret.removeprefix(f"bg-{new.key.id}-")
    assert len(secret_part) >= 20 and secret_part.encode() not in raw
    assert asyncio.run(store.verify_key(new.secret)) is not None


def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    """Two gateway workers on one host open a new database at the same moment: the migration
    runs once (``BEGIN IMMEDIATE``: the second waits for the first, then finds it done)."""
    import os
    import subprocess
    import sys

    from boundgate.store.sqlite import load_migrations

    db = tmp_path / "new.db"
    code = (
        "import sys; from boundgate.store import SQLiteStore; "
        "s = SQLiteStore(sys.argv[1]); s.open(); s.close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db)], env=os.environ.copy())
        for _ in range(4)
    ]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    with sqlite3.connect(db) as conn:
        versions = sorted(r[0] for r in conn.execute("SELECT version FROM schema_migrations"))
    assert versions == [v for v, _, _ in load_migrations()]


def test_writers_of_several_processes_queue_on_one_file_lock(tmp_path: Path) -> None:
    """Every write transaction holds an exclusive ``flock`` on ``<db>.write-lock``, the lock
    another process's writer (``serve --workers N``) takes too: while someone else holds it,
    nothing is committed; once released, the write commits. (flock locks belong to an open
    file, so this process's own descriptor stands in for another process.)"""
    import fcntl
    import os

    s = SQLiteStore(tmp_path / "b.db")
    s.open()
    fd = os.open(tmp_path / "b.db.write-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)

        async def run() -> None:
            write = asyncio.ensure_future(s.record(row(1)))
            done, _ = await asyncio.wait([write], timeout=0.3)
            assert not done  # held elsewhere: the writer waits for the lock
            fcntl.flock(fd, fcntl.LOCK_UN)
            await asyncio.wait_for(write, 30)

        asyncio.run(run())
        assert asyncio.run(s.get_row("r1")) is not None
    finally:
        os.close(fd)
        s.close()


def test_a_deleted_write_lock_file_is_replaced_not_split(tmp_path: Path) -> None:
    """The lock file deleted while a process holds it open (a trial's ``rm``): the next write
    notices its descriptor is no longer the path's file and locks the file now there, so
    processes started later (which create a new one) still queue with this one."""
    import fcntl
    import os

    s = SQLiteStore(tmp_path / "b.db")
    s.open()
    lock = tmp_path / "b.db.write-lock"
    try:
        lock.unlink()
        asyncio.run(s.record(row(1)))
        assert lock.exists()  # opened afresh
        fd = os.open(lock, os.O_RDWR)  # what a newly started process locks
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)

            async def run() -> None:
                write = asyncio.ensure_future(s.record(row(2)))
                done, _ = await asyncio.wait([write], timeout=0.3)
                assert not done
                fcntl.flock(fd, fcntl.LOCK_UN)
                await asyncio.wait_for(write, 30)

            asyncio.run(run())
        finally:
            os.close(fd)
    finally:
        s.close()


def test_close_waits_for_a_read_still_running_on_its_thread(tmp_path: Path) -> None:
    """A read outlives a cancelled task (its worker thread runs on): the job runner's poll at
    shutdown read on a connection ``close`` closed under it, and the test process segfaulted
    in sqlite3. ``close`` now waits for running reads before closing their connections."""
    store = SQLiteStore(tmp_path / "s.db")
    store.open()
    reading, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> int:
        reading.set()
        release.wait(10)
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])

    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(_run_read(store, slow)))
    reader.start()
    assert reading.wait(10)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.5)
    assert closer.is_alive()  # waiting for the read
    release.set()
    reader.join(10)
    closer.join(10)
    assert got == [0] and not closer.is_alive()


def _run_read(store: SQLiteStore, fn: object) -> object:
    try:
        return asyncio.run(store._read(fn))  # type: ignore[arg-type]
    except Exception as exc:  # the old close: "Cannot operate on a closed database"
        return exc
