"""The SQLite store: migrations, durable group-committed ledger, keys."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from boundgate.store import LedgerRow, SQLiteStore


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


def test_record_round_trip(store: SQLiteStore) -> None:
    store.record_sync(row(1, extra={"doc": "abc"}, stream=True))
    got = store.get_row("r1")
    assert got is not None and got.extra == {"doc": "abc"} and got.stream is True
    assert got.wh == 0.5 and got.tenant == "t"
    assert store.get_row("nope") is None


def test_many_concurrent_async_records_are_all_committed(store: SQLiteStore) -> None:
    async def main() -> None:
        await asyncio.gather(*[store.record(row(i)) for i in range(500)])

    asyncio.run(main())
    assert len(store.ledger()) == 500
    assert [r.id for r in store.ledger(limit=2)] == ["r499", "r498"]


def test_records_from_threads(store: SQLiteStore) -> None:
    def work(base: int) -> None:
        for i in range(50):
            store.record_sync(row(base + i))

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.ledger()) == 200


def test_report_and_tokens_used(store: SQLiteStore) -> None:
    for i in range(3):
        store.record_sync(row(i, tenant="a"))
    store.record_sync(row(10, tenant="b", outcome="error", status=400))
    rep = {r.tenant: r for r in store.report()}
    assert rep["a"].requests == 3 and rep["a"].wh == pytest.approx(1.5)
    assert rep["b"].errors == 1
    assert store.tokens_used("a", 0) == 15
    assert store.tokens_used("a", 1001.5) == 5
    assert store.report(since=2000) == []


def test_keys(store: SQLiteStore, tmp_path: Path) -> None:
    assert not store.has_keys()
    new = store.create_key("acme", admin=True, rpm=5)
    assert new.secret.startswith(f"bg-{new.key.id}-")
    key = store.verify_key(new.secret)
    assert key is not None and key.tenant == "acme" and key.admin and key.rpm == 5
    for bad in ["", "nope", f"bg-{new.key.id}-wrong", new.secret + "x", "bg-zzzz-" + "a" * 43]:
        assert store.verify_key(bad) is None
    raw = (tmp_path / "b.db").read_bytes()
    assert new.secret.split("-")[2].encode() not in raw  # only the salted hash is stored

    # Another process (here: another instance) creates and revokes keys.
    other = SQLiteStore(tmp_path / "b.db")
    other.open()
    second = other.create_key("globex")
    assert store.verify_key(second.secret) is not None
    assert other.revoke_key(second.key.id)
    assert not other.revoke_key("missing")
    other.close()
    assert store.verify_key(second.secret) is None
    assert store.has_keys()
    assert store.revoke_key(new.key.id)
    assert store.has_keys()  # revoking every key does not reopen the gateway
    assert [k.revoked for k in store.list_keys()] == [True, True]
