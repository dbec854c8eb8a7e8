"""What the PostgreSQL store does beyond the contract (``test_store_contract.py``): replicas
starting together migrate once, and one instance serves callers on several event loops."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from boundgate.store import LedgerRow
from boundgate.store.postgres import PostgresStore, load_migrations
from helpers import (
    BATCHES_INSERT,
    KEYS_LEDGER_INSERT,
    REQUIRES_DOCUMENTS,
    REQUIRES_DOCUMENTS_INSERT,
    REQUIRES_JOBS_INSERT,
    arun,
    assert_job_requirements,
    assert_keys_used_today,
    batches_rows,
    keys_ledger_rows,
    requires_jobs,
    wait_until,
)


@contextlib.contextmanager
def _migrated_before(version: int, url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection (autocommit) to the schema at ``url`` with the migrations before
    ``version`` applied and recorded, as a gateway of that time left it: what is written
    through it is what the migrations from ``version`` on find."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied DOUBLE PRECISION NOT NULL)"
        )
        for number, name, sql in load_migrations():
            if number < version:
                conn.execute(sql.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, 0)", (number, name))
        yield conn


def test_replicas_opening_together_migrate_once(postgres_schema: str) -> None:
    stores = [PostgresStore(postgres_schema, max_size=2) for _ in range(4)]
    errors: list[BaseException] = []

    def open_one(s: PostgresStore) -> None:
        try:
            s.open()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with psycopg.connect(postgres_schema) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert sorted(versions) == [v for v, _, _ in load_migrations()]
    finally:
        for s in stores:
            s.close()


def test_one_instance_serves_several_event_loops(postgres_schema: str) -> None:
    store = PostgresStore(postgres_schema)
    store.open()
    try:
        for i in range(3):  # each asyncio.run is a new loop (the CLI does this)
            asyncio.run(store.record(LedgerRow(f"r{i}", float(i), "t", "/v1/completions")))

        results: list[int] = []

        def in_thread() -> None:  # and a loop on another thread
            results.append(len(asyncio.run(store.ledger())))

        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        assert results == [3]
    finally:
        store.close()
    with pytest.raises(RuntimeError):
        asyncio.run(store.ledger())


def test_every_pooled_connection_has_tcp_keepalives(postgres_schema: str) -> None:
    """A connection to a host that vanished without a word (no FIN, no RST) waited on the
    kernel's defaults, two hours, before a statement on it failed; libpq's keepalives give
    it up within about a minute."""
    store = PostgresStore(postgres_schema, max_size=2)
    store.open()
    try:

        async def parameters(conn: Any) -> dict[str, str]:
            return dict(conn.info.get_parameters())

        got = arun(store._run(parameters))
        assert (got["keepalives"], got["keepalives_idle"], got["keepalives_count"]) == (
            "1",
            "30",
            "3",
        ), got
    finally:
        store.close()


def test_key_checks_follow_keys_created_and_revoked_through_another_instance(
    postgres_schema: str,
) -> None:
    """With ``store.key_cache_s`` above 0, key checks are kept for a moment and dropped when
    the keys' channel announces a change, so what one replica or the CLI does to a key holds
    on every other within that bound; the bound of ``wait_until`` is a guard, not a timing."""
    a = PostgresStore(postgres_schema, max_size=2, key_cache_s=0.5)
    b = PostgresStore(postgres_schema, max_size=2, key_cache_s=0.5)
    a.open()
    b.open()
    try:
        assert arun(b.has_keys()) is False  # open mode, and now cached as such
        assert arun(b.has_keys()) is False
        secret = arun(a.create_key("acme")).secret
        wait_until(lambda: arun(b.has_keys()), timeout=30)
        key = arun(b.verify_key(secret))
        assert key is not None and key.tenant == "acme"
        assert arun(b.verify_key(secret)) == key
        assert arun(a.revoke_key(key.id))
        assert arun(a.verify_key(secret)) is None  # the revoking instance: at once
        wait_until(lambda: arun(b.verify_key(secret)) is None, timeout=30)
        assert arun(b.verify_key(secret.replace("-", "-x", 1))) is None
    finally:
        a.close()
        b.close()


def test_the_schema_covers_every_sqlite_table_and_column(
    postgres_schema: str, tmp_path: Path
) -> None:
    """Migration parity: whatever SQLite's migrations create, PostgreSQL's create too (PostgreSQL
    adds ``seq`` columns for insertion order)."""
    import sqlite3

    from boundgate.store import SQLiteStore

    lite = SQLiteStore(tmp_path / "x.db")
    lite.open()
    lite.close()
    with sqlite3.connect(tmp_path / "x.db") as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not r[0].startswith("sqlite_")  # SQLite's own (AUTOINCREMENT's counters)
        ]
        sqlite_cols = {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    store = PostgresStore(postgres_schema)
    store.open()
    store.close()
    schema = postgres_schema.rsplit("%3D", 1)[1]
    with psycopg.connect(postgres_schema) as conn:
        pg_cols: dict[str, set[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s",
            (schema,),
        ):
            pg_cols.setdefault(table, set()).add(column)
        sequences = {
            r[0]
            for r in conn.execute(
                "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = %s",
                (schema,),
            )
        }
    for table, columns in sqlite_cols.items():
        if table in sequences:  # a key counter: a table in SQLite, a sequence in PostgreSQL
            continue
        assert table in pg_cols, f"table {table} is missing from PostgreSQL"
        assert columns <= pg_cols[table], f"{table}: {columns - pg_cols[table]} missing"


def test_the_migration_carries_todays_usage_over_from_the_ledger(postgres_schema: str) -> None:
    import json
    import time

    with _migrated_before(2, postgres_schema) as conn:
        now = time.time()
        for rid, ts, p, c, reuse, extra in [
            ("a", now, 10, 20, None, None),
            ("b", now, 5, 5, "hit-exact", None),
            ("c", now - 2 * 86400, 100, 100, None, None),
            ("d", now, 1, 2, "miss", json.dumps({"novel": True})),
        ]:
            conn.execute(
                "INSERT INTO ledger (id, ts, tenant, endpoint, prompt_tokens, completion_tokens, "
                "outcome, status, reuse, extra) VALUES (%s, %s, 'acme', '/v1/chat/completions', "
                "%s, %s, 'ok', 200, %s, %s::jsonb)",
                (rid, ts, p, c, reuse, extra),
            )
    store = PostgresStore(postgres_schema)
    store.open()
    try:
        day = float(int(now // 86400) * 86400)
        tokens = asyncio.run(store.counter_state("tokens:acme", day, now))
        novel = asyncio.run(store.counter_state("novel:acme", day, now))
        assert (tokens.used, novel.used) == (33, 1)
    finally:
        store.close()


def test_keys_counters_start_from_their_usage_today(postgres_schema: str) -> None:
    """Migration 0016 (limits counted per key; SQLite's 0021) on a database of the migrations
    before it: each key's counters start from what its requests used today."""
    import time

    now = time.time()
    with _migrated_before(16, postgres_schema) as conn:
        for row in keys_ledger_rows(now):
            conn.execute(KEYS_LEDGER_INSERT.replace("?", "%s"), row)
    store = PostgresStore(postgres_schema)
    store.open()
    try:
        assert_keys_used_today(store, now)
    finally:
        store.close()


def test_the_stranded_batches_sweep_reads_only_batches_not_ended(postgres_schema: str) -> None:
    """Migration 0017 (SQLite's 0022) on a database of the migrations before it: the sweep
    for stranded batches (every replica, every ``scheduler.replan_s``) read every batch ever
    made, an audit found; it reads the partial index of the batches not ended."""
    from boundgate.store.postgres.work import STRANDED_BATCHES_SQL

    rows = batches_rows()
    with _migrated_before(17, postgres_schema) as conn, conn.cursor() as cur:
        cur.executemany(BATCHES_INSERT.replace("?", "%s"), rows)
    store = PostgresStore(postgres_schema)
    store.open()
    try:
        assert asyncio.run(store.stranded_batches()) == [(rows[-1][2], None)]
    finally:
        store.close()
    with psycopg.connect(postgres_schema, autocommit=True) as conn:
        conn.execute("ANALYZE batches")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + STRANDED_BATCHES_SQL))
    assert "batches_open" in plan and "Seq Scan on batches" not in plan, plan


def test_documents_stored_before_keys_were_kept_read_as_signed_by_the_own_key(
    postgres_schema: str,
) -> None:
    """Migration 0010 on a database of the migrations before it: the documents already there
    (all bound by the gateway itself) keep no key, NULL: verified with the own key."""
    from boundgate.store import DocumentRow

    with _migrated_before(10, postgres_schema) as conn:
        conn.execute(
            "INSERT INTO documents (id, entry, tenant, model, model_version, state, created, body)"
            " VALUES ('doc_old', NULL, 't', 'm', 'v1', 'active', 1.0, '{}')"
        )
    store = PostgresStore(postgres_schema)
    store.open()
    try:
        old = asyncio.run(store.get_document("doc_old"))
        assert old is not None and old.public_key is None and old.body == "{}"
        new = DocumentRow("doc_new", None, "t", "m", "v1", "active", None, None, 2.0, "{}", "PEM")
        asyncio.run(store.put_document(new))
        assert asyncio.run(store.get_document("doc_new")) == new
    finally:
        store.close()


def test_open_rebind_jobs_get_their_models_version_as_requirement(postgres_schema: str) -> None:
    """Migration 0018 (SQLite's 0023) on a database of the migrations before it: each open
    rebind job that names its version requires its document's model at that version, written
    as jobs.model_requirement writes it; the others require nothing."""
    with _migrated_before(18, postgres_schema) as conn, conn.cursor() as cur:
        cur.executemany(REQUIRES_DOCUMENTS_INSERT.replace("?", "%s"), REQUIRES_DOCUMENTS)
        cur.executemany(REQUIRES_JOBS_INSERT.replace("?", "%s"), requires_jobs())
    store = PostgresStore(postgres_schema)
    store.open()
    try:
        assert_job_requirements(store)
    finally:
        store.close()


# what an exact hit sends on the response path (streamed or not): the key check
# (verify_key; has_keys is kept once a key exists) and the ledger row, whose statement also
# checks the answer is still live (record_hit); a key with limits adds its reservation, and
# the ledger row's statement gives its token hold back (no settle after the response).
# bench/pg_hit_path.py measures the rest.
EXACT_HIT_STATEMENTS = 2
EXACT_HIT_STATEMENTS_WITH_LIMITS = 3


def test_an_exact_hit_sends_two_statements_to_postgresql_three_with_limits_streamed_or_not(
    postgres_url: str, postgres_schema: str, tmp_path: Path
) -> None:
    from boundgate.assembly import build_app
    from boundgate.backends.fake import FakeBackend
    from boundgate.testing import PgCountingProxy
    from helpers import Live, fake_settings

    port = int(postgres_url.split("@127.0.0.1:")[1].split("/")[0])
    proxy = PgCountingProxy(port)
    settings = fake_settings(tmp_path)
    settings.reuse.embedder = "hash"
    settings.reuse.persist_index = False
    settings.dashboard.enabled = False
    settings.scheduler.poll_s = 3600.0  # no job-runner polls among the counted statements
    store = PostgresStore(proxy.url(postgres_schema), max_size=4)
    app = build_app(settings, store=store, backends={"fake": FakeBackend("fake", params_b=1)})
    try:
        with Live.in_process(app) as live:
            for quota, most, stream in (
                ({}, EXACT_HIT_STATEMENTS, False),
                ({}, EXACT_HIT_STATEMENTS, True),
                ({"rpm": 10**6, "daily_tokens": 10**9}, EXACT_HIT_STATEMENTS_WITH_LIMITS, False),
                ({"rpm": 10**6, "daily_tokens": 10**9}, EXACT_HIT_STATEMENTS_WITH_LIMITS, True),
            ):
                secret = arun(store.create_key(f"acme{len(quota)}{stream}", **quota)).secret
                body = {"messages": [{"role": "user", "content": "Why is the sky blue?"}]}
                body["temperature"] = 0
                body["stream"] = stream
                headers = {"Authorization": f"Bearer {secret}"}

                def ask(body: dict[str, object] = body, headers: dict[str, str] = headers) -> str:
                    r = live.http.post("/v1/chat/completions", json=body, headers=headers)
                    assert r.status_code == 200, r.text
                    return str(r.headers["x-boundgate-reuse"])

                assert ask() == "miss"
                assert ask() == "hit-exact"
                time.sleep(0.5)  # the warm-up's background work
                sent = []
                start, t0 = proxy.statements, time.monotonic()
                for _ in range(40):
                    before = proxy.statements
                    assert ask() == "hit-exact"
                    sent.append(proxy.statements - before)
                elapsed = time.monotonic() - t0
                time.sleep(0.5)  # work left after the responses (settles) is counted too
                # background work (hit counts, the change-log follower, the job runner) only
                # adds to a request's count: the fewest seen is the response path's own
                assert 0 < min(sent) <= most, (quota, stream, sent)
                # and in all, little beyond it: the slack is for that background work (about
                # 2 statements a second: hit counts, 1 s, and the change-log follower's read)
                slack = 10 + 3 * (elapsed + 0.5)
                assert proxy.statements - start <= 40 * most + slack, (quota, stream, sent)
    finally:
        proxy.close()
