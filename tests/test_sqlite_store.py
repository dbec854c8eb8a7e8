"""The SQLite store: migrations, durable group-committed ledger, keys."""

from __future__ import annotations

import asyncio
import json
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
    asyncio.run(store.record(row(1, extra={"doc": "abc"}, stream=True)))
    got = asyncio.run(store.get_row("r1"))
    assert got is not None and got.extra == {"doc": "abc"} and got.stream is True
    assert got.wh == 0.5 and got.tenant == "t"
    assert asyncio.run(store.get_row("nope")) is None


def test_a_write_that_cannot_be_encoded_fails_alone_and_the_writer_lives_on(
    store: SQLiteStore,
) -> None:
    """A lone surrogate cannot be stored as UTF-8: that write fails with its own error, and
    the writer thread goes on committing (it used to die, and every later write hung)."""
    with pytest.raises(UnicodeEncodeError):
        asyncio.run(store.record(row(1, backend="x\ud800")))
    asyncio.run(store.record(row(2)))
    assert asyncio.run(store.get_row("r2")) is not None and asyncio.run(store.get_row("r1")) is None


def test_many_concurrent_async_records_are_all_committed(store: SQLiteStore) -> None:
    async def main() -> None:
        await asyncio.gather(*[store.record(row(i)) for i in range(500)])

    asyncio.run(main())
    assert len(asyncio.run(store.ledger())) == 500
    assert [r.id for r in asyncio.run(store.ledger(limit=2))] == ["r499", "r498"]


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


def test_report_and_tokens_used(store: SQLiteStore) -> None:
    for i in range(3):
        asyncio.run(store.record(row(i, tenant="a")))
    asyncio.run(store.record(row(10, tenant="b", outcome="error", status=400)))
    rep = {r.tenant: r for r in asyncio.run(store.report())}
    assert rep["a"].requests == 3 and rep["a"].wh == pytest.approx(1.5)
    assert rep["b"].errors == 1
    assert asyncio.run(store.tokens_used("a", 0)) == 15
    assert asyncio.run(store.tokens_used("a", 1001.5)) == 5
    assert asyncio.run(store.report(since=2000)) == []


def test_report_by_period_groups_days_hours_tenants_and_batches(store: SQLiteStore) -> None:
    day = 86400.0
    d0 = 20000 * day  # a UTC midnight
    asyncio.run(
        store.record(LedgerRow("a1", d0 + 10, "a", "/v1/chat/completions", wh=1.0, gco2=0.5))
    )
    asyncio.run(store.record(
        LedgerRow(
            "a2", d0 + 3700, "a", "/v1/chat/completions",
            reuse="hit-exact", avoided_wh=2.0, avoided_gco2=0.8,
        )
    ))  # fmt: skip
    asyncio.run(store.record(LedgerRow("a3", d0 + day + 5, "a", "/v1/chat/completions", wh=3.0)))
    asyncio.run(
        store.record(LedgerRow("b1", d0 + 20, "b", "/v1/completions", outcome="error", status=400))
    )
    asyncio.run(store.record(LedgerRow("old", d0 - 1, "a", "/v1/completions", wh=9.0)))

    def batch(bid: str, finished: float, saved: float, started: str | None, state: str) -> None:
        body = {
            "id": bid,
            "completed_at": int(finished) if state == "done" else None,
            "cancelled_at": int(finished) if state == "cancelled" else None,
            "boundgate": {"started_at": started, "state": state, "shifting_saved_g": saved},
        }
        asyncio.run(store.put_batch(bid, "b", finished - 100, json.dumps(body)))

    batch("x", d0 + day + 60, 1.25, "2024-10-04T00:00:00Z", "done")
    batch("y", d0 + day + 90, 0.25, "2024-10-04T00:00:00Z", "cancelled")  # stopped mid-run
    batch("z", d0 + day + 90, 0.0, None, "cancelled")  # never ran: no saving to report
    batch("w", d0 + 2 * day, 0.0, "2024-10-04T00:00:00Z", "running")  # not finished yet

    days = asyncio.run(store.report_by_period(d0))
    assert [(r.start, r.tenant) for r in days] == [
        (d0, "a"),
        (d0, "b"),
        (d0 + day, "a"),
        (d0 + day, "b"),
    ]
    a0, b0, a1, b1 = days
    assert (a0.requests, a0.reused, a0.wh, a0.avoided_wh) == (2, 1, 1.0, 2.0)
    assert a0.avoided_gco2 == pytest.approx(0.8) and a0.batches == 0
    assert (b0.requests, b0.errors) == (1, 1)
    assert (a1.requests, a1.wh) == (1, 3.0)
    assert (b1.requests, b1.batches) == (0, 2)
    assert b1.shifting_saved_gco2 == pytest.approx(1.5)

    hours = asyncio.run(store.report_by_period(d0, 3600))
    assert [(r.start - d0, r.tenant, r.requests) for r in hours[:3]] == [
        (0.0, "a", 1),
        (0.0, "b", 1),
        (3600.0, "a", 1),
    ]
    assert asyncio.run(store.report_by_period(d0 + 3 * day)) == []
    with pytest.raises(ValueError):
        asyncio.run(store.report_by_period(d0, 0))


def test_keys(store: SQLiteStore, tmp_path: Path) -> None:
    assert not asyncio.run(store.has_keys())
    new = asyncio.run(store.create_key("acme", admin=True, rpm=5))
    assert new.secret.startswith(f"bg-{new.key.id}-")
    key = asyncio.run(store.verify_key(new.secret))
    assert key is not None and key.tenant == "acme" and key.admin and key.rpm == 5
    for bad in ["", "nope", f"bg-{new.key.id}-wrong", new.secret + "x", "bg-zzzz-" + "a" * 43]:
        assert asyncio.run(store.verify_key(bad)) is None
    raw = (tmp_path / "b.db").read_bytes()
    assert new.secret.split("-")[2].encode() not in raw  # only the salted hash is stored

    # Another process (here: another instance) creates and revokes keys.
    other = SQLiteStore(tmp_path / "b.db")
    other.open()
    second = asyncio.run(other.create_key("globex"))
    assert asyncio.run(store.verify_key(second.secret)) is not None
    assert asyncio.run(other.revoke_key(second.key.id))
    assert not asyncio.run(other.revoke_key("missing"))
    other.close()
    assert asyncio.run(store.verify_key(second.secret)) is None
    assert asyncio.run(store.has_keys())
    assert asyncio.run(store.revoke_key(new.key.id))
    assert asyncio.run(store.has_keys())  # revoking every key does not reopen the gateway
    assert [k.revoked for k in asyncio.run(store.list_keys())] == [True, True]
