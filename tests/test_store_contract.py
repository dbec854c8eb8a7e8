"""The store contract: what every implementation of ``boundgate.store.Store`` must do.

Each test runs against every implementation in ``IMPLEMENTATIONS`` (SQLite, and PostgreSQL on
a throwaway server started once per session, see ``pg_server.py``), each time on a fresh,
empty store. Tests go through the protocols only; nothing here knows how a store keeps its
data.

The PostgreSQL tests fail when the server cannot start (the wheel missing, say); set
``BOUNDGATE_TEST_POSTGRES=0`` to skip them instead (``conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from boundgate.store import (
    BatchLineRow,
    Claim,
    CounterState,
    DocumentProblem,
    DocumentRow,
    EnergyProfileRow,
    EntryVector,
    FileRow,
    Hold,
    IdempotencyKey,
    JobRow,
    LedgerQuery,
    LedgerRow,
    ObservationRow,
    Release,
    SQLiteStore,
    Store,
    StoredEntry,
    StoreUnavailableError,
    VariantRow,
)

DAY = 86400.0
D0 = 20000 * DAY  # a UTC midnight


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Store instances on one fresh database (several instances: several processes)."""
    return lambda: SQLiteStore(tmp_path / "contract.db")


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Store instances on one fresh schema of the session's server (``postgres_schema``)."""
    from boundgate.store.postgres import PostgresStore

    url = request.getfixturevalue("postgres_schema")
    return lambda: PostgresStore(url, max_size=4)


IMPLEMENTATIONS: dict[str, Callable[[pytest.FixtureRequest, Path], Callable[[], Store]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens another instance on the same (fresh) database; closes them all afterwards."""
    new = IMPLEMENTATIONS[request.param](request, tmp_path)
    opened: list[Store] = []

    def make() -> Store:
        s = new()
        s.open()
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def row(i: int, tenant: str = "t", **kw: Any) -> LedgerRow:
    fields: dict[str, Any] = {
        "model": "m",
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "wh": 0.5,
        "wh_low": 0.25,
        "wh_high": 1.0,
        "gco2": 0.1,
    }
    fields.update(kw)
    return LedgerRow(
        id=f"r{i}", ts=1000.0 + i, tenant=tenant, endpoint="/v1/chat/completions", **fields
    )


def entry(key: int, embedder: str = "hash", **kw: Any) -> StoredEntry:
    fields: dict[str, Any] = {
        "id": f"ans_{key}",
        "scope": "s",
        "exact": f"x{key}",
        "query": f"question {key}",
        "answer": f"answer {key}",
        "finish_reason": "stop",
        "prompt_tokens": 4,
        "completion_tokens": 5,
        "model": "m",
        "model_version": "v1",
        "tenant": "t",
        "created": 1000.0 + key,
        "cost_wh": 0.25,
        "cost_gco2": 0.125,
        "vector": bytes([key % 256, 1, 2, 3]),
        "embedder": embedder,
        "scope_doc": '{"model":"m"}',
    }
    fields.update(kw)
    return StoredEntry(key=key, **fields)


def doc(doc_id: str, created: float, state: str = "active", **kw: Any) -> DocumentRow:
    fields: dict[str, Any] = {
        "entry": None,
        "tenant": "t",
        "model": "m",
        "model_version": "v1",
        "supersedes": None,
        "superseded_by": None,
        "body": json.dumps({"@id": doc_id}),
    }
    fields.update(kw)
    return DocumentRow(id=doc_id, state=state, created=created, **fields)


def job(job_id: str, not_before: float = 0.0, **kw: Any) -> JobRow:
    fields: dict[str, Any] = {"kind": "k", "payload": "{}", "state": "pending", "deadline": 1e12}
    fields.update(kw)
    return JobRow(id=job_id, created=not_before, not_before=not_before, **fields)


def variant(exact: str, answer: str) -> VariantRow:
    return VariantRow(0, exact, answer, "stop", 3, 4, 0.5, 0.25, 1000.0, "rapl")


# --- lifecycle ------------------------------------------------------------------------------


def test_a_recorded_row_survives_close_and_reopen(make_store: Callable[[], Store]) -> None:
    first = make_store()
    run(first.record(row(1, extra={"doc": "abc"})))
    first.close()
    again = make_store()
    got = run(again.get_row("r1"))
    assert got is not None and got.extra == {"doc": "abc"}


def test_a_write_after_close_raises(store: Store) -> None:
    store.close()
    with pytest.raises(RuntimeError):
        run(store.record(row(1)))


def test_ping_answers_while_open_and_says_unavailable_once_closed(store: Store) -> None:
    """``/readyz`` asks it; ``tests/test_store_outage.py`` stops the database under it."""
    assert run(store.ping()) is None
    store.close()
    with pytest.raises(StoreUnavailableError):
        run(store.ping())


def test_open_is_idempotent(store: Store) -> None:
    store.open()
    run(store.record(row(1)))
    assert run(store.get_row("r1")) is not None


# --- ledger ---------------------------------------------------------------------------------


def test_record_round_trip_and_missing_row(store: Store) -> None:
    original = row(
        1, extra={"doc": "abc", "n": 2}, stream=True, reuse="hit-exact", similarity=0.93,
        user="u", key_id="k", status=201, error_code=None, grid_zone="DE", gco2_per_kwh=300.0,
        reasoning_tokens=2,
    )  # fmt: skip
    run(store.record(original))
    assert run(store.get_row("r1")) == original
    assert run(store.get_row("nope")) is None


def test_record_with_an_existing_id_replaces_the_row(store: Store) -> None:
    run(store.record(row(1, outcome="ok")))
    run(store.record(row(1, outcome="cancelled")))
    rows = run(store.ledger())
    assert [(r.id, r.outcome) for r in rows] == [("r1", "cancelled")]


def test_many_concurrent_records_are_all_committed(store: Store) -> None:
    async def main() -> None:
        await asyncio.gather(*[store.record(row(i)) for i in range(300)])

    run(main())
    assert len(run(store.ledger())) == 300


def _interrupted(i: int, **kw: Any) -> LedgerRow:
    return row(i, outcome="interrupted", status=500, error_code="interrupted", **kw)


def test_an_open_request_becomes_its_row_only_once_its_lease_ran_out(
    make_store: Callable[[], Store],
) -> None:
    a, b = make_store(), make_store()  # two processes on one database
    run(a.open_request(_interrupted(1, extra={"n": 1}), "pa", 100.0))
    assert run(b.recover_requests(99.0)) == []  # its owner still vouches for it
    assert run(b.get_row("r1")) is None
    # the owner renews it with what it used so far; another owner's renewal is ignored
    run(a.renew_requests("pa", 200.0, [_interrupted(1, completion_tokens=7)]))
    run(b.renew_requests("pb", 300.0, [_interrupted(1, completion_tokens=99)]))
    assert run(b.recover_requests(150.0)) == []
    (got,) = run(b.recover_requests(200.5))
    assert got == _interrupted(1, completion_tokens=7)
    assert run(a.get_row("r1")) == got
    assert run(a.recover_requests(1e9)) == []  # recovered once
    assert run(a.report())[0].errors == 1  # not answered: it counts as failed


def test_recording_a_requests_row_closes_its_open_note(store: Store) -> None:
    run(store.open_request(_interrupted(1), "p", 100.0))
    run(store.open_request(_interrupted(2), "p", 100.0))
    run(store.record(row(1)))  # answered: its own row
    assert run(store.record_hit(row(2, reuse="hit-exact"), _stored(store))) is True
    run(store.renew_requests("p", 300.0, [_interrupted(1), _interrupted(2)]))  # no note again
    assert run(store.recover_requests(1e9)) == []
    assert {r.id: r.outcome for r in run(store.ledger())} == {"r1": "ok", "r2": "ok"}


def test_a_recovered_note_never_replaces_a_recorded_row(store: Store) -> None:
    run(store.record(row(1)))
    run(store.open_request(_interrupted(1), "p", 100.0))  # noted after its row (a race)
    assert run(store.recover_requests(1e9)) == []
    assert run(store.get_row("r1")) == row(1)
    assert run(store.recover_requests(1e9)) == []  # the note is gone


def test_concurrent_recoveries_write_each_row_once(make_store: Callable[[], Store]) -> None:
    stores = [make_store() for _ in range(3)]

    async def main() -> list[list[LedgerRow]]:
        await asyncio.gather(
            *[stores[0].open_request(_interrupted(i), "p", 10.0) for i in range(40)]
        )
        return await asyncio.gather(*[s.recover_requests(20.0) for s in stores])

    found = [r.id for rows in run(main()) for r in rows]
    assert sorted(found) == sorted(f"r{i}" for i in range(40))
    assert len(run(stores[0].ledger())) == 40


def _stored(store: Store) -> StoredEntry:
    e = entry(1)
    run(store.put_entry(e))
    return e


def test_ledger_is_newest_first_with_since_and_limit(store: Store) -> None:
    for i in (3, 1, 2):
        run(store.record(row(i)))
    assert [r.id for r in run(store.ledger())] == ["r3", "r2", "r1"]
    assert [r.id for r in run(store.ledger(since=1002.0))] == ["r3", "r2"]
    assert [r.id for r in run(store.ledger(limit=1))] == ["r3"]


def test_query_ledger_filters_and_pages(store: Store) -> None:
    run(store.record(row(1, tenant="a", model="m1")))
    run(store.record(row(2, tenant="a", model="m2", reuse="hit-exact")))
    run(store.record(row(3, tenant="b", model="m1", outcome="error", status=400)))
    run(store.record(row(4, tenant="b", model="m1", reuse="miss")))

    def ids(q: LedgerQuery, limit: int = 100, offset: int = 0) -> list[str]:
        return [r.id for r in run(store.query_ledger(q, limit, offset))]

    assert ids(LedgerQuery()) == ["r4", "r3", "r2", "r1"]
    assert ids(LedgerQuery(tenant="a")) == ["r2", "r1"]
    assert ids(LedgerQuery(model="m1")) == ["r4", "r3", "r1"]
    assert ids(LedgerQuery(outcome="error")) == ["r3"]
    assert ids(LedgerQuery(reuse="hit-exact")) == ["r2"]
    assert ids(LedgerQuery(reuse="none")) == ["r3", "r1"]
    assert ids(LedgerQuery(since=1002.0, until=1004.0)) == ["r3", "r2"]
    assert ids(LedgerQuery(tenant="b", model="m1", reuse="miss")) == ["r4"]
    assert ids(LedgerQuery(), limit=2, offset=1) == ["r3", "r2"]
    assert ids(LedgerQuery(tenant="nobody")) == []


def test_ledger_facets_are_sorted_distinct_and_skip_nulls(store: Store) -> None:
    run(store.record(row(1, tenant="b", model="z")))
    run(store.record(row(2, tenant="a", model=None)))
    run(store.record(row(3, tenant="b", model="y")))
    assert run(store.ledger_facets()) == {"tenant": ["a", "b"], "model": ["y", "z"]}
    assert run(store.ledger_facets(since=1003.0)) == {"tenant": ["b"], "model": ["y"]}


def test_latencies_of_successes_newest_first(store: Store) -> None:
    run(store.record(row(1, latency_ms=10.0)))
    run(store.record(row(2, latency_ms=20.0, reuse="hit-semantic")))
    run(store.record(row(3, latency_ms=30.0, status=500, outcome="error")))
    run(store.record(row(4, latency_ms=40.0, model=None, reuse="stale")))
    assert run(store.latencies(0.0)) == [("", True, 40.0), ("m", True, 20.0), ("m", False, 10.0)]
    assert run(store.latencies(1002.0)) == [("", True, 40.0), ("m", True, 20.0)]
    assert run(store.latencies(0.0, limit=1)) == [("", True, 40.0)]


def test_report_totals_per_tenant_and_model(store: Store) -> None:
    for i in range(3):
        run(store.record(row(i, tenant="a", latency_ms=10.0 * (i + 1))))
    run(store.record(row(10, tenant="b", outcome="error", status=400)))
    run(store.record(row(11, tenant="b", reuse="hit-exact", avoided_wh=2.0, avoided_gco2=1.0)))
    run(store.record(row(12, tenant="b", model=None)))
    rep = {(r.tenant, r.model): r for r in run(store.report())}
    assert list(rep) == [("a", "m"), ("b", ""), ("b", "m")]
    a = rep[("a", "m")]
    assert (a.requests, a.errors, a.prompt_tokens, a.completion_tokens) == (3, 0, 6, 9)
    assert a.wh == pytest.approx(1.5) and a.wh_low == pytest.approx(0.75)
    assert a.wh_high == pytest.approx(3.0) and a.gco2 == pytest.approx(0.3)
    assert a.avg_latency_ms == pytest.approx(20.0)
    b = rep[("b", "m")]
    assert (b.requests, b.errors, b.reused) == (2, 1, 1)
    assert (b.avoided_wh, b.avoided_gco2) == (2.0, 1.0)
    assert [r.tenant for r in run(store.report(since=1010.0))] == ["b", "b"]
    assert run(store.report(since=5000.0)) == []


def test_routed_rows_round_trip_and_their_savings_are_summed(store: Store) -> None:
    routed = row(
        1, task="lookup", route="small;escalated=refusal, big;answered", counterfactual_wh=0.75,
        rightsizing_avoided_wh=0.25, rightsizing_avoided_gco2=0.125,
    )  # fmt: skip
    run(store.record(routed))
    run(store.record(row(2, task="math", route="small;answered", counterfactual_wh=2.0,
                         rightsizing_avoided_wh=1.5, rightsizing_avoided_gco2=0.5)))  # fmt: skip
    run(store.record(row(3)))  # named a model: not routed
    assert run(store.get_row("r1")) == routed
    plain = run(store.get_row("r3"))
    assert (plain.task, plain.route, plain.counterfactual_wh) == (None, None, None)
    assert plain.rightsizing_avoided_wh == 0.0
    (rep,) = run(store.report())
    assert (rep.requests, rep.routed) == (3, 2)
    assert rep.rightsizing_avoided_wh == pytest.approx(1.75)
    assert rep.rightsizing_avoided_gco2 == pytest.approx(0.625)
    (day,) = run(store.report_by_period(0.0))
    assert (day.routed, day.rightsizing_avoided_wh) == (2, pytest.approx(1.75))


def test_report_by_period_groups_days_hours_tenants_and_batches(store: Store) -> None:
    records = [
        LedgerRow("a1", D0 + 10, "a", "/v1/chat/completions", wh=1.0, gco2=0.5),
        LedgerRow(
            "a2", D0 + 3700, "a", "/v1/chat/completions",
            reuse="hit-exact", avoided_wh=2.0, avoided_gco2=0.8,
        ),
        LedgerRow("a3", D0 + DAY + 5, "a", "/v1/chat/completions", wh=3.0),
        LedgerRow("b1", D0 + 20, "b", "/v1/completions", outcome="error", status=400),
        LedgerRow("old", D0 - 1, "a", "/v1/completions", wh=9.0),
    ]  # fmt: skip
    for r in records:
        run(store.record(r))

    ended = {"done": "completed", "cancelled": "cancelled", "failed": "failed",
             "expired": "expired"}  # fmt: skip

    def batch(bid: str, finished: float, saved: float, started: str | None, state: str) -> None:
        body = {
            "id": bid,
            **{f"{s}_at": int(finished) if state == k else None for k, s in ended.items()},
            "boundgate": {"started_at": started, "state": state, "shifting_saved_g": saved},
        }
        run(store.put_batch(bid, "b", finished - 100, json.dumps(body)))

    batch("x", D0 + DAY + 60, 1.25, "2024-10-04T00:00:00Z", "done")
    batch("y", D0 + DAY + 90, 0.25, "2024-10-04T00:00:00Z", "cancelled")  # stopped mid-run
    batch("z", D0 + DAY + 90, 0.0, None, "cancelled")  # never ran: no saving to report
    batch("w", D0 + 2 * DAY, 0.0, "2024-10-04T00:00:00Z", "running")  # not finished yet
    # failed or expired after lines ran: the lines answered were shifted all the same
    batch("f", D0 + DAY + 120, 0.5, "2024-10-04T00:00:00Z", "failed")
    batch("e", D0 + DAY + 150, 0.125, "2024-10-04T00:00:00Z", "expired")
    batch("n", D0 + DAY + 150, 0.0, None, "failed")  # failed before it ran

    days = run(store.report_by_period(D0))
    assert [(r.start, r.tenant) for r in days] == [
        (D0, "a"),
        (D0, "b"),
        (D0 + DAY, "a"),
        (D0 + DAY, "b"),
    ]
    a0, b0, a1, b1 = days
    assert (a0.requests, a0.reused, a0.wh, a0.avoided_wh) == (2, 1, 1.0, 2.0)
    assert a0.avoided_gco2 == pytest.approx(0.8) and a0.batches == 0
    assert (b0.requests, b0.errors) == (1, 1)
    assert (a1.requests, a1.wh) == (1, 3.0)
    assert (b1.requests, b1.batches) == (0, 4)
    assert b1.shifting_saved_gco2 == pytest.approx(1.25 + 0.25 + 0.5 + 0.125)

    hours = run(store.report_by_period(D0, 3600))
    assert [(r.start - D0, r.tenant, r.requests) for r in hours[:3]] == [
        (0.0, "a", 1),
        (0.0, "b", 1),
        (3600.0, "a", 1),
    ]
    assert run(store.report_by_period(D0 + 3 * DAY)) == []
    with pytest.raises(ValueError):
        run(store.report_by_period(D0, 0))


# --- keys and budgets -----------------------------------------------------------------------


def test_keys_verify_list_and_revoke(store: Store) -> None:
    assert not run(store.has_keys())
    new = run(
        store.create_key("acme", admin=True, rpm=5, daily_tokens=100, daily_reasoning_tokens=7)
    )
    key = run(store.verify_key(new.secret))
    assert key == new.key
    assert (key.tenant, key.admin, key.rpm, key.daily_tokens, key.revoked) == (
        "acme", True, 5, 100, False,
    )  # fmt: skip
    assert key.daily_reasoning_tokens == 7
    for bad in ["", "nope", new.secret + "x", new.secret[:-1], new.key.id]:
        assert run(store.verify_key(bad)) is None
    assert run(store.has_keys())
    second = run(store.create_key("globex"))
    assert [k.id for k in run(store.list_keys())] == [new.key.id, second.key.id]
    assert [k.daily_reasoning_tokens for k in run(store.list_keys())] == [7, None]
    assert run(store.get_key(new.key.id)) == new.key
    assert run(store.get_key("missing")) is None
    assert run(store.revoke_key(second.key.id))
    assert run(store.get_key(second.key.id)) == replace(second.key, revoked=True)
    assert run(store.verify_key(second.secret)) is None
    assert not run(store.revoke_key("missing"))
    assert run(store.revoke_key(new.key.id))
    assert run(store.has_keys())  # revoking every key does not reopen the gateway
    assert [k.revoked for k in run(store.list_keys())] == [True, True]


def test_rotating_a_key_carries_todays_counters_to_its_successor(store: Store) -> None:
    """``tenants.rotate_key`` on each store: the successor has the old key's tenant, flag and
    limits, today's used tokens and reasoning tokens (not yesterday's, not held ones), and
    the old key is revoked."""
    from boundgate.tenants import day_window, key_counters, rotate_key

    now = 1_700_000_000.0
    old = run(store.create_key("acme", rpm=5, daily_tokens=100, daily_reasoning_tokens=9)).key
    mine, today, yesterday = key_counters(old.id), day_window(now), day_window(now) - 86400
    run(store.reserve("a", [Claim(f"tokens:{mine}", today, 30, 100)], now))
    run(store.reserve("b", [Claim(f"reasoning:{mine}", today, 4, 9)], now))
    run(store.reserve("c", [Claim(f"tokens:{mine}", yesterday, 50, 100)], now - 86400))
    run(store.reserve("d", [Claim(f"tokens:{mine}", today, 20, 100, 60.0)], now))  # held
    done = run(rotate_key(store, old, now))
    assert (done.tokens_today, done.reasoning_tokens_today) == (30, 4)
    new = done.new.key
    assert (new.tenant, new.admin, new.rpm, new.daily_tokens, new.daily_reasoning_tokens) == (
        "acme", False, 5, 100, 9,
    )  # fmt: skip
    theirs = key_counters(new.id)
    assert run(store.counter_state(f"tokens:{theirs}", today, now)).used == 30
    assert run(store.counter_state(f"reasoning:{theirs}", today, now)).used == 4
    assert run(store.counter_state(f"tokens:{theirs}", yesterday, now)).used == 0
    assert run(store.get_key(old.id)).revoked  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="revoked"):
        run(rotate_key(store, replace(old, revoked=True), now))


def test_keys_changed_by_another_instance_are_seen(make_store: Callable[[], Store]) -> None:
    store, other = make_store(), make_store()
    assert run(store.verify_key("bg-0000-x")) is None  # warm any cache first
    new = run(other.create_key("acme"))
    assert run(store.has_keys())
    assert run(store.verify_key(new.secret)) is not None
    assert run(store.get_key(new.key.id)) == new.key
    assert run(other.revoke_key(new.key.id))
    assert run(store.verify_key(new.secret)) is None
    key = run(store.get_key(new.key.id))
    assert key is not None and key.revoked


def test_a_signed_out_dashboard_session_is_ended_for_every_instance(
    make_store: Callable[[], Store],
) -> None:
    """``end_session`` is seen by another instance on the same data; a record past its
    ``until`` is dropped at the next sign-out, a later one kept."""
    store, other = make_store(), make_store()
    assert not run(store.session_ended("s1"))
    run(store.end_session("s1", until=1_000.0, now=100.0))
    run(store.end_session("s1", until=500.0, now=100.0))  # twice: the later until is kept
    assert run(other.session_ended("s1")) and not run(other.session_ended("s2"))
    run(other.end_session("s2", until=2_000.0, now=999.0))
    assert run(store.session_ended("s1"))  # not past its until yet
    run(other.end_session("s3", until=3_000.0, now=1_001.0))
    assert not run(store.session_ended("s1"))  # dropped: its cookie has expired anyway
    assert run(store.session_ended("s2")) and run(store.session_ended("s3"))


def test_tokens_used_counts_generated_tokens_of_one_tenant(store: Store) -> None:
    run(store.record(row(1, tenant="a")))  # 5 tokens
    run(store.record(row(2, tenant="a", reuse="hit-exact")))  # served from storage: free
    run(store.record(row(3, tenant="a", reuse="miss", prompt_tokens=10, completion_tokens=0)))
    run(store.record(row(4, tenant="b")))
    assert run(store.tokens_used("a", 0.0)) == 15
    assert run(store.tokens_used("a", 1002.0)) == 10
    assert run(store.tokens_used("nobody", 0.0)) == 0


def test_reasoning_tokens_used_counts_generated_reasoning_of_one_tenant(store: Store) -> None:
    run(store.record(row(1, tenant="a", completion_tokens=9, reasoning_tokens=6)))
    run(store.record(row(2, tenant="a", reuse="hit-exact", reasoning_tokens=6)))  # free
    run(store.record(row(3, tenant="a", reuse="miss", reasoning_tokens=2)))
    run(store.record(row(4, tenant="b", reasoning_tokens=5)))
    run(store.record(row(5, tenant="a")))  # a model that does not reason
    assert run(store.reasoning_tokens_used("a", 0.0)) == 8
    assert run(store.reasoning_tokens_used("a", 1002.0)) == 2
    assert run(store.reasoning_tokens_used("nobody", 0.0)) == 0
    assert {(r.tenant, r.reasoning_tokens) for r in run(store.report())} == {("a", 14), ("b", 5)}


def test_novel_used_counts_fresh_creative_generations(store: Store) -> None:
    run(store.record(row(1, tenant="a", extra={"novel": True})))
    run(store.record(row(2, tenant="a", extra={"novel": True}, outcome="error", status=500)))
    run(store.record(row(3, tenant="a")))
    run(store.record(row(4, tenant="b", extra={"novel": True})))
    run(store.record(row(5, tenant="a", extra={"novel": True})))
    assert run(store.novel_used("a", 0.0)) == 2
    assert run(store.novel_used("a", 1002.0)) == 1
    assert run(store.novel_used("b", 0.0)) == 1


# --- the change log (several processes on one store) ---------------------------------------


def test_entry_keys_are_unique_across_instances_and_above_stored_keys(
    make_store: Callable[[], Store],
) -> None:
    a, b = make_store(), make_store()
    run(a.put_entry(entry(5)))

    async def take(s: Store, n: int) -> list[int]:
        return list(await asyncio.gather(*(s.new_entry_key() for _ in range(n))))

    got = run(take(a, 10)) + run(take(b, 10))
    assert len(set(got)) == 20
    assert min(got) > 5


def test_the_change_log_records_every_reuse_change_in_order(
    make_store: Callable[[], Store],
) -> None:
    a, b = make_store(), make_store()
    head = run(b.change_head())
    run(a.put_entry(entry(1)))
    run(a.put_entry(entry(2)))
    run(a.note_hit(1, 5.0))  # bookkeeping: not a change to what is served
    run(a.add_question_variant(1, "x1", "q one", 1.0))
    run(a.set_entry_document(1, "doc_1"))
    run(a.put_document(doc("doc_1", 1.0, entry=1)))
    run(a.set_document_state("doc_1", "revoked"))
    run(a.set_entry_document(1, "doc_1", revoked=True))
    obs = ObservationRow(2.0, 2, 0.9, True, "verify", "r1", 0.1, 0.8)
    run(a.add_observation(obs))
    run(a.delete_entries([2]))
    got = run(b.changes(head))
    assert [(c.kind, c.entry, c.ref) for c in got] == [
        ("entry", 1, None),
        ("entry", 2, None),
        ("variant", 1, "x1"),
        ("entry-update", 1, None),
        ("document", 1, "doc_1"),
        ("document", 1, "doc_1"),
        ("entry-update", 1, None),
        ("label", 2, None),
        ("delete", 2, None),
    ]
    assert got[7].observation == obs
    assert [c.observation for c in got[:7] + got[8:]] == [None] * 8
    seqs = [c.seq for c in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert run(b.change_head()) == seqs[-1]
    assert [c.seq for c in run(b.changes(seqs[2], limit=2))] == seqs[3:5]
    assert run(b.changes(seqs[-1])) == []


def test_semantic_lookups_in_the_ledger_are_in_the_change_log(store: Store) -> None:
    head = run(store.change_head())
    run(store.record(row(1, similarity=0.9, extra={"semantic_lookup": 1, "pair_score": 0.5})))
    run(store.record(row(2, extra={"semantic_lookup": 1, "density": 0.25})))
    run(store.record(row(3, similarity=0.8)))  # not a semantic lookup
    got = run(store.changes(head))
    assert [(c.kind, c.lookup) for c in got] == [
        ("lookup", (0.9, 0.0, 0.5)),
        ("lookup", (None, 0.25, None)),
    ]
    assert [c.lookup for c in run(store.changes(head))] == [
        tuple(x) for x in run(store.lookup_similarities())
    ]


def test_a_lookup_change_carries_its_id_and_a_replaced_row_logs_none(store: Store) -> None:
    """The process that made a lookup knows its echo by id (lookups of one value are many);
    a row replaced under its id (a streamed hit amended to cancelled) was counted once."""
    head = run(store.change_head())
    big = 2**63 - 1
    run(store.record(row(1, similarity=0.9, extra={"semantic_lookup": 1, "lookup_id": big})))
    run(store.record(row(2, extra={"semantic_lookup": 1, "lookup_id": 7})))
    run(store.record(row(3, extra={"semantic_lookup": 1})))  # an older gateway's: no id
    amended = row(1, similarity=0.9, outcome="cancelled", status=499)
    amended.extra = {"semantic_lookup": 1, "lookup_id": big}
    run(store.record(amended))
    got = run(store.changes(head))
    assert [(c.kind, c.lookup, c.lookup_id) for c in got] == [
        ("lookup", (0.9, 0.0, None), big),
        ("lookup", (None, 0.0, None), 7),
        ("lookup", (None, 0.0, None), None),
    ]
    assert len(run(store.lookup_similarities())) == 3  # what a restart counts: the same


def test_concurrent_writers_number_changes_without_gaps_seen_late(
    make_store: Callable[[], Store],
) -> None:
    """Two instances storing at once: a follower reading after its last seen number never
    finds a change numbered below one it has already read."""
    a, b, follower = make_store(), make_store(), make_store()

    async def scenario() -> list[int]:
        seen: list[int] = []
        last = await follower.change_head()

        async def write(s: Store, base: int) -> None:
            for i in range(20):
                await s.put_entry(entry(base + i))

        async def follow() -> None:
            nonlocal last
            while len(seen) < 40:
                for c in await follower.changes(last):
                    seen.append(c.entry or 0)
                    last = c.seq
                await asyncio.sleep(0)

        await asyncio.wait_for(asyncio.gather(write(a, 100), write(b, 200), follow()), 60)
        return seen

    seen = run(scenario())
    assert sorted(seen) == [*range(100, 120), *range(200, 220)]


def test_prune_changes_drops_old_changes_but_never_moves_the_head_back(store: Store) -> None:
    for k in (1, 2, 3):
        run(store.put_entry(entry(k)))
    head = run(store.change_head())
    assert run(store.prune_changes(0.0)) == 0  # nothing is that old
    assert len(run(store.changes(0))) == 3
    assert run(store.prune_changes(4e9)) == 2  # all old: the newest stays, as the head
    assert [c.seq for c in run(store.changes(0))] == [head]
    assert run(store.change_head()) == head
    run(store.put_entry(entry(4)))
    assert [c.entry for c in run(store.changes(head))] == [4]


def test_wait_for_changes_returns_by_its_timeout(store: Store) -> None:
    head = run(store.change_head())
    run(store.wait_for_changes(head, 0.05))  # nothing changed: returns after the timeout
    run(store.put_entry(entry(1)))
    run(store.wait_for_changes(head, 0.05))  # changed: returns (at once where notified)
    assert run(store.change_head()) > head


# --- stored answers and registry ------------------------------------------------------------


def test_entries_round_trip_and_lookups(store: Store) -> None:
    assert run(store.max_entry_key()) == 0
    e = entry(1, request='{"m":1}', cost_method="rapl")
    run(store.put_entry(e))
    run(store.put_entry(entry(3, embedder="other")))
    run(store.put_entry(entry(2)))
    assert run(store.get_entry(1)) == e
    assert run(store.get_entry_by_id("ans_1")) == e
    assert run(store.get_entry(99)) is None
    assert run(store.get_entry_by_id("ans_99")) is None
    # every embedder's: a start matches them all exactly, and re-embeds the others' vectors
    assert [(x.key, x.embedder) for x in run(store.entries())] == [
        (1, "hash"),
        (2, "hash"),
        (3, "other"),
    ]
    assert run(store.get_entries([3, 99, 1])) == [e, run(store.get_entry(3))]
    assert run(store.get_entries([])) == []
    assert run(store.max_entry_key()) == 3


def test_entry_vectors_are_replaced_once_and_log_no_change(
    make_store: Callable[[], Store],
) -> None:
    """A process with another embedder re-embeds stored entries and writes the vectors back;
    a second process doing the same at once writes nothing more (the first one's vector stays),
    a revoked entry keeps its old vector, and followers see no new answer in the log."""
    a, b = make_store(), make_store()
    run(a.put_entry(entry(1, embedder="old", hits=7, last_hit=1500.0)))
    run(a.put_entry(entry(2, embedder="old")))
    run(a.put_entry(entry(3, embedder="old", document_id="doc_3", revoked=True)))
    run(a.put_entry(entry(4, embedder="new", vector=b"")))  # none yet: may be given one
    head = run(a.change_head())
    mine = [
        EntryVector(1, b"\x01" * 8, replaces="old"),
        EntryVector(2, b"\x02" * 8, replaces="old"),
        EntryVector(3, b"\x03" * 8, replaces="old"),
        EntryVector(4, b"\x04" * 8, replaces="new"),
        EntryVector(99, b"\x09" * 8, replaces="old"),  # no such entry
    ]
    assert run(a.set_entry_vectors("new", mine)) == 3
    theirs = [EntryVector(k, b"\xff" * 8, replaces="old") for k in (1, 2, 3)]
    assert run(b.set_entry_vectors("new", theirs)) == 0  # done already: skipped
    assert run(b.set_entry_vectors("new", [])) == 0
    got = {e.key: e for e in run(b.entries())}
    assert [(got[k].embedder, got[k].vector) for k in (1, 2, 4)] == [
        ("new", b"\x01" * 8),
        ("new", b"\x02" * 8),
        ("new", b"\x04" * 8),
    ]
    assert (got[1].hits, got[1].last_hit, got[1].id) == (7, 1500.0, "ans_1")
    assert got[3] == entry(3, embedder="old", document_id="doc_3", revoked=True)
    assert run(b.changes(head)) == []


def test_the_newest_live_entry_of_an_exact_hash_is_read_from_any_instance(
    make_store: Callable[[], Store],
) -> None:
    a, b = make_store(), make_store()
    assert run(b.get_entry_by_exact("x")) is None
    run(a.put_entry(entry(1, exact="x", created=1000.0)))
    run(a.put_entry(entry(2, exact="x", created=1002.0)))
    run(a.put_entry(entry(3, exact="y", created=1003.0)))
    got = run(b.get_entry_by_exact("x"))
    assert got is not None and got.key == 2 and got == run(b.get_entry(2))
    run(a.set_entry_document(2, None, revoked=True))  # revoked: never read back
    got = run(b.get_entry_by_exact("x"))
    assert got is not None and got.key == 1
    run(a.delete_entries([1]))
    assert run(b.get_entry_by_exact("x")) is None


def test_put_entry_with_an_existing_key_keeps_the_first(store: Store) -> None:
    run(store.put_entry(entry(1, answer="first")))
    run(store.put_entry(entry(1, answer="second")))
    got = run(store.get_entry(1))
    assert got is not None and got.answer == "first"


def test_concurrent_hits_all_count(store: Store) -> None:
    run(store.put_entry(entry(1)))

    async def main() -> None:
        await asyncio.gather(*[store.note_hit(1, 2000.0 + i) for i in range(20)])

    run(main())
    got = run(store.get_entry(1))
    assert got is not None and got.hits == 20 and got.last_hit is not None
    run(store.note_hit(1, 3000.0, n=5))  # hits counted in memory, written at once
    got = run(store.get_entry(1))
    assert got is not None and (got.hits, got.last_hit) == (25, 3000.0)
    run(store.note_hit(99, 1.0))  # no such entry: nothing happens
    assert run(store.get_entry(99)) is None


def test_delete_entries_drops_them_and_their_question_variants(store: Store) -> None:
    for k in (1, 2):
        run(store.put_entry(entry(k)))
        run(store.add_question_variant(k, f"q{k}", f"words {k}", 1000.0 + k))
    run(store.delete_entries([1, 42]))
    assert run(store.get_entry(1)) is None and run(store.get_entry(2)) is not None
    assert run(store.question_variants()) == [("q2", 2)]


def test_delete_entries_keeps_an_entry_bound_to_a_document(store: Store) -> None:
    """A process that has not yet seen another's binding may evict or replace the entry it
    knows unbound: the delete kept nothing back, the document was left with nothing serving
    it, and the next start's repair revoked it (a review's finding). A bound entry stays,
    with its question variants."""
    for k in (1, 2):
        run(store.put_entry(entry(k)))
        run(store.add_question_variant(k, f"q{k}", f"words {k}", 1000.0 + k))
    run(store.set_entry_document(1, "doc_a"))
    run(store.delete_entries([1, 2]))
    kept = run(store.get_entry(1))
    assert kept is not None and kept.document_id == "doc_a" and run(store.get_entry(2)) is None
    assert run(store.question_variants()) == [("q1", 1)]


def test_set_entry_document_and_revoked_flag(store: Store) -> None:
    run(store.put_entry(entry(1)))
    run(store.set_entry_document(1, "doc_a"))
    got = run(store.get_entry(1))
    assert got is not None and (got.document_id, got.revoked) == ("doc_a", False)
    run(store.set_entry_document(1, "doc_a", revoked=True))
    got = run(store.get_entry(1))
    assert got is not None and got.revoked
    run(store.set_entry_document(1, None))
    got = run(store.get_entry(1))
    assert got is not None and (got.document_id, got.revoked) == (None, False)


def test_record_hit_writes_the_row_only_while_the_entry_is_as_it_was_read(
    make_store: Callable[[], Store],
) -> None:
    a, b = make_store(), make_store()  # b changes the entry, as another replica would
    stored = entry(1)
    run(a.put_entry(stored))
    full = row(1, reuse="hit-exact", extra={"doc": "abc"}, stream=True, similarity=1.0)
    assert run(a.record_hit(full, stored)) is True
    assert run(a.get_row("r1")) == full
    run(b.set_entry_document(1, "doc_a"))  # bound since it was read: not as it was read
    assert run(a.record_hit(row(2), stored)) is False
    rebound = run(a.get_entry(1))
    assert rebound is not None and run(a.record_hit(row(2), rebound)) is True
    run(b.set_entry_document(1, "doc_a", revoked=True))
    assert run(a.record_hit(row(3), rebound)) is False
    run(b.put_entry(entry(5, id="ans_other")))  # same key, another answer: never counted live
    assert run(a.record_hit(row(4), entry(5))) is False
    run(b.delete_entries([2]))
    assert run(a.record_hit(row(5), entry(2))) is False  # never stored
    assert [r.id for r in run(a.ledger())] == ["r2", "r1"]


def test_record_hit_gives_back_the_holds_it_is_given_only_with_its_row(store: Store) -> None:
    day = (D0, "tokens:t")
    claims = [Claim("rpm:t", 0.0, 1, 10, 60.0), Claim(day[1], D0, 100, 1000, 60.0)]
    assert run(store.reserve("h1", claims, D0 + 5)) is None
    assert run(store.reserve("h2", claims, D0 + 5)) is None
    stored = entry(1)
    run(store.put_entry(stored))
    release = Release("h1", ((day[1], D0),))  # the rpm hold is never given back
    gone = entry(9)
    assert run(store.record_hit(row(1), gone, release)) is False
    assert run(store.counter_state(day[1], D0, D0 + 6)) == CounterState(0, 200, D0 + 65)
    assert run(store.record_hit(row(2), stored, release)) is True
    assert run(store.counter_state(day[1], D0, D0 + 6)) == CounterState(0, 100, D0 + 65)
    assert run(store.counter_state("rpm:t", 0.0, D0 + 6)).held == 2
    assert run(store.record_hit(row(3), stored)) is True  # nothing to give back
    # settling the released hold again later (a cancelled request) changes nothing
    run(store.settle("h1", day[1], D0, 0))
    assert run(store.counter_state(day[1], D0, D0 + 6)) == CounterState(0, 100, D0 + 65)
    assert [r.id for r in run(store.ledger())] == ["r3", "r2"]


def test_question_variants_oldest_first_and_replaced_by_hash(store: Store) -> None:
    for k in (1, 2):
        run(store.put_entry(entry(k)))
    run(store.add_question_variant(1, "qa", "words a", 1003.0))
    run(store.add_question_variant(2, "qb", "words b", 1001.0))
    assert run(store.question_variants()) == [("qb", 2), ("qa", 1)]
    run(store.add_question_variant(2, "qa", "words a again", 1005.0))  # same hash, other entry
    assert run(store.question_variants()) == [("qb", 2), ("qa", 2)]


def test_askers_count_distinct_and_keep_their_words(store: Store) -> None:
    run(store.put_entry(entry(1)))
    assert run(store.asker_count(1)) == 0 and run(store.variants(1)) == []
    assert run(store.add_asker(1, "alice", "how tall", 1.0)) == 1
    assert run(store.add_asker(1, "alice", "how tall", 2.0)) == 1  # the same asker once
    assert run(store.add_asker(1, "bob", "height of", 3.0)) == 2
    assert run(store.add_asker(1, "carol", "how tall", 4.0)) == 3
    assert run(store.asker_count(1)) == 3
    assert run(store.variants(1)) == ["height of", "how tall"]


def test_concurrent_askers_each_get_their_own_count(store: Store) -> None:
    run(store.put_entry(entry(1)))

    async def main() -> list[int]:
        return list(
            await asyncio.gather(*[store.add_asker(1, f"a{i}", "q", 1.0) for i in range(10)])
        )

    assert sorted(run(main())) == list(range(1, 11))


# --- documents ------------------------------------------------------------------------------


def test_documents_round_trip_filter_and_counts(store: Store) -> None:
    a = doc("doc_a", 1.0, entry=None)
    run(store.put_document(a))
    run(store.put_document(doc("doc_b", 3.0, state="stale")))
    run(store.put_document(doc("doc_c", 2.0)))
    assert run(store.get_document("doc_a")) == a
    assert run(store.get_document("doc_zz")) is None
    assert [d.id for d in run(store.documents())] == ["doc_b", "doc_c", "doc_a"]
    assert [d.id for d in run(store.documents(state="active"))] == ["doc_c", "doc_a"]
    assert [d.id for d in run(store.documents(limit=1))] == ["doc_b"]
    assert run(store.document_counts()) == {"active": 2, "stale": 1}


def test_a_document_keeps_the_key_it_was_imported_with(store: Store) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    run(store.put_document(doc("doc_own", 1.0)))
    run(store.put_document(doc("doc_theirs", 2.0, public_key=pem)))
    own, theirs = run(store.get_document("doc_own")), run(store.get_document("doc_theirs"))
    assert own is not None and own.public_key is None
    assert theirs is not None and theirs.public_key == pem
    assert [d.public_key for d in run(store.documents())] == [pem, None]


def test_a_new_version_supersedes_the_old_in_one_step(store: Store) -> None:
    run(store.put_document(doc("doc_v1", 1.0)))
    run(store.put_document(doc("doc_v2", 2.0, supersedes="doc_v1")))
    old = run(store.get_document("doc_v1"))
    assert old is not None and (old.state, old.superseded_by) == ("superseded", "doc_v2")
    assert [d.id for d in run(store.documents(state="active"))] == ["doc_v2"]


def test_set_document_state_keeps_superseded_by_unless_given(store: Store) -> None:
    run(store.put_document(doc("doc_a", 1.0)))
    run(store.set_document_state("doc_a", "superseded", superseded_by="doc_b"))
    run(store.set_document_state("doc_a", "revoked"))
    got = run(store.get_document("doc_a"))
    assert got is not None and (got.state, got.superseded_by) == ("revoked", "doc_b")
    run(store.set_document_state("doc_missing", "revoked"))  # nothing happens
    assert run(store.get_document("doc_missing")) is None


def test_a_document_state_changes_only_from_the_state_expected(store: Store) -> None:
    """``set_document_state`` with ``expected`` is a compare-and-set: a stale document that
    cannot be rebound is made active again, but never one revoked meanwhile."""
    run(store.put_document(doc("doc_a", 1.0, state="stale")))
    run(store.put_document(doc("doc_b", 2.0, state="stale")))
    run(store.set_document_state("doc_b", "revoked"))  # revoked after it was read stale
    assert run(store.set_document_state("doc_a", "active", expected="stale")) is True
    assert run(store.set_document_state("doc_b", "active", expected="stale")) is False
    assert run(store.set_document_state("doc_a", "active", expected="stale")) is False  # once
    assert run(store.set_document_state("doc_missing", "active", expected="stale")) is False
    states = {d.id: d.state for d in run(store.documents())}
    assert states == {"doc_a": "active", "doc_b": "revoked"}


def test_own_documents_are_those_without_an_issuer_key(store: Store) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    assert run(store.has_own_documents()) is False
    run(store.put_document(doc("doc_theirs", 1.0, public_key=pem)))  # imported
    assert run(store.has_own_documents()) is False
    run(store.put_document(doc("doc_own", 2.0, state="revoked")))  # bound here: any state
    assert run(store.has_own_documents()) is True


def test_a_document_id_is_written_once(store: Store) -> None:
    run(store.put_document(doc("doc_a", 1.0)))
    with pytest.raises(Exception):  # noqa: B017 - each implementation's own integrity error
        run(store.put_document(doc("doc_a", 2.0, body="{}")))
    got = run(store.get_document("doc_a"))
    assert got is not None and got.created == 1.0


def test_a_document_is_bound_to_its_entry_in_the_same_step(store: Store) -> None:
    for k in (1, 2):
        run(store.put_entry(entry(k)))
    run(store.set_entry_document(2, None, revoked=True))
    head = run(store.change_head())
    assert run(store.put_document(doc("doc_a", 1.0, entry=1))) is True
    got = run(store.get_entry(1))
    assert got is not None and got.document_id == "doc_a"
    assert [(c.kind, c.entry, c.ref) for c in run(store.changes(head))] == [
        ("document", 1, "doc_a"),
        ("entry-update", 1, None),
    ]
    # an entry bound to another document, revoked, or not stored: nothing is written
    for doc_id, key in (("doc_b", 1), ("doc_c", 2), ("doc_d", 9)):
        assert run(store.put_document(doc(doc_id, 2.0, entry=key))) is False
        assert run(store.get_document(doc_id)) is None
    bound, revoked = run(store.get_entries([1, 2]))
    assert (bound.document_id, revoked.document_id) == ("doc_a", None)
    assert run(store.put_document(doc("doc_e", 3.0))) is True  # no entry: inserted alone


def test_concurrent_binds_of_one_entry_have_one_winner(make_store: Callable[[], Store]) -> None:
    a, b = make_store(), make_store()
    run(a.put_entry(entry(1)))

    async def main() -> list[bool]:
        stores = [a, b, a, b]
        return list(
            await asyncio.gather(
                *[s.put_document(doc(f"doc_{i}", 1.0, entry=1)) for i, s in enumerate(stores)]
            )
        )

    assert run(main()).count(True) == 1
    got = run(b.get_entry(1))
    assert got is not None and [d.id for d in run(b.documents())] == [got.document_id]


def test_a_new_version_supersedes_only_a_current_document(store: Store) -> None:
    run(store.put_entry(entry(1)))
    run(store.put_document(doc("doc_v1", 1.0, state="stale")))
    run(store.set_document_state("doc_v1", "revoked"))  # revoked while its rebind ran
    assert run(store.put_document(doc("doc_v2", 2.0, entry=1, supersedes="doc_v1"))) is False
    old = run(store.get_document("doc_v1"))
    assert old is not None and (old.state, old.superseded_by) == ("revoked", None)
    assert run(store.get_document("doc_v2")) is None
    got = run(store.get_entry(1))
    assert got is not None and got.document_id is None  # not bound either
    run(store.put_document(doc("doc_s1", 3.0, state="stale")))
    assert run(store.put_document(doc("doc_s2", 4.0, entry=1, supersedes="doc_s1"))) is True
    run(store.put_entry(entry(2)))
    # superseded already (a second rebind of it): no second successor
    assert run(store.put_document(doc("doc_s3", 5.0, entry=2, supersedes="doc_s1"))) is False
    first = run(store.get_document("doc_s1"))
    assert first is not None and (first.state, first.superseded_by) == ("superseded", "doc_s2")


def test_set_document_state_only_from_the_state_expected(store: Store) -> None:
    run(store.put_document(doc("doc_a", 1.0)))
    run(store.put_document(doc("doc_b", 2.0)))
    assert run(store.set_document_state("doc_a", "revoked")) is True
    assert run(store.set_document_state("doc_a", "stale", expected="active")) is False
    assert run(store.set_document_state("doc_b", "stale", expected="active")) is True
    states = {d.id: d.state for d in run(store.documents())}
    assert states == {"doc_a": "revoked", "doc_b": "stale"}
    assert run(store.set_document_state("doc_missing", "revoked")) is False


def test_import_document_writes_its_entry_and_itself_together(store: Store) -> None:
    head = run(store.change_head())
    got = run(store.import_document(entry(5, id="ans_i"), doc("doc_i", 1.0, entry=5)))
    assert got is not None and (got.key, got.document_id) == (5, "doc_i")
    stored, imported = run(store.get_entry(5)), run(store.get_document("doc_i"))
    assert stored is not None and stored.document_id == "doc_i"
    assert imported is not None and imported.entry == 5
    assert [(c.kind, c.entry, c.ref) for c in run(store.changes(head))] == [
        ("entry", 5, None),
        ("document", 5, "doc_i"),
    ]
    # imported before: nothing is written
    assert run(store.import_document(entry(6, id="ans_i6"), doc("doc_i", 2.0, entry=6))) is None
    assert run(store.get_entry(6)) is None
    # an entry an import left without its document (two writes, interrupted): used, whatever
    # its key, and the document bound to it
    run(store.put_entry(entry(1, id="ans_j", document_id="doc_j")))
    got = run(store.import_document(entry(7, id="ans_j"), doc("doc_j", 3.0, entry=7)))
    assert got is not None and (got.key, got.document_id) == (1, "doc_j")
    imported = run(store.get_document("doc_j"))
    assert imported is not None and imported.entry == 1 and run(store.get_entry(7)) is None
    # ... a revoked one stays revoked, and so is its document
    run(store.put_entry(entry(2, id="ans_k", revoked=True)))
    got = run(store.import_document(entry(8, id="ans_k"), doc("doc_k", 4.0, entry=8)))
    assert got is not None and (got.key, got.revoked, got.document_id) == (2, True, "doc_k")
    imported = run(store.get_document("doc_k"))
    assert imported is not None and (imported.entry, imported.state) == (2, "revoked")


def test_concurrent_imports_of_one_document_write_it_once(
    make_store: Callable[[], Store],
) -> None:
    a, b = make_store(), make_store()

    async def main() -> list[StoredEntry | None]:
        stores = [a, b, a, b]
        return list(
            await asyncio.gather(
                *[
                    s.import_document(entry(10 + i, id="ans_x"), doc("doc_x", 1.0, entry=10 + i))
                    for i, s in enumerate(stores)
                ]
            )
        )

    written = [e for e in run(main()) if e is not None]
    assert len(written) == 1
    (stored,) = run(b.entries())
    imported = run(b.get_document("doc_x"))
    assert stored.key == written[0].key and imported is not None and imported.entry == stored.key


def test_revoke_document_revokes_every_entry_that_serves_it(store: Store) -> None:
    # pointed at the document, which names no entry (an import run again after it stopped
    # between its two writes named an entry never stored)
    run(store.put_entry(entry(1, document_id="doc_a")))
    run(store.put_document(doc("doc_a", 1.0)))
    # named by the document, never pointed at it (a bind stopped between its two writes)
    run(store.put_entry(entry(2)))
    run(store.put_document(doc("doc_b", 2.0, entry=2)))
    run(store.set_entry_document(2, None))
    run(store.put_entry(entry(3)))  # another answer
    run(store.put_document(doc("doc_c", 3.0, entry=3)))
    assert run(store.revoke_document("doc_a")) == [1]
    assert run(store.revoke_document("doc_b")) == [2]
    assert [(e.key, e.revoked) for e in run(store.entries())] == [(1, True), (2, True), (3, False)]
    states = {d.id: d.state for d in run(store.documents())}
    assert states == {"doc_a": "revoked", "doc_b": "revoked", "doc_c": "active"}
    assert run(store.revoke_document("doc_a")) == [1]  # again: the same, nothing changes
    assert run(store.revoke_document("doc_missing")) is None


def damaged(store: Store) -> None:
    """Documents and entries as gateways before their writes were single transactions could
    leave them, beside consistent ones that must stay as they are."""
    # revoked, two entries still serving it: its own (its revocation stopped before it) and
    # one an import run again pointed at it
    run(store.put_entry(entry(1)))
    run(store.put_document(doc("doc_revoked", 1.0, "revoked", entry=1)))
    run(store.put_entry(entry(2, document_id="doc_revoked")))
    # superseded by a rebind that finished over its revocation (its entry still revoked)
    run(store.put_entry(entry(3)))
    run(store.put_document(doc("doc_undone", 2.0, "superseded", entry=3, superseded_by="x")))
    run(store.set_entry_document(3, "doc_undone", revoked=True))
    # active, its entry never pointed at it (a bind stopped between its two writes)
    run(store.put_entry(entry(4)))
    run(store.put_document(doc("doc_unbound", 3.0, entry=4)))
    run(store.set_entry_document(4, None))
    # active, its entry deleted ("wrong" feedback on its exact hit), and one naming none
    run(store.put_entry(entry(5)))
    run(store.put_document(doc("doc_deleted", 4.0, "stale", entry=5)))
    run(store.set_entry_document(5, None))  # (deletes keep bound entries now)
    run(store.delete_entries([5]))
    run(store.put_document(doc("doc_no_entry", 5.0)))
    # a bind that stopped halfway, run again: two active documents, the entry names the second
    run(store.put_entry(entry(6)))
    run(store.put_document(doc("doc_first", 6.0, entry=6)))
    run(store.set_entry_document(6, None))
    run(store.put_document(doc("doc_second", 7.0, entry=6)))
    # an entry naming a document never stored (an import stopped between its writes)
    run(store.put_entry(entry(7, document_id="doc_never")))
    run(store.add_question_variant(7, "x7b", "question 7 again", 1.0))
    # consistent: active, superseded by a live version, stale, revoked whole, and a revoked
    # entry naming no stored document (never served)
    for key, doc_id, state in (
        (10, "doc_ok", "active"),
        (11, "doc_old", "superseded"),
        (12, "doc_stale", "stale"),
        (13, "doc_gone", "revoked"),
    ):
        run(store.put_entry(entry(key)))
        run(store.put_document(doc(doc_id, 10.0 + key, state, entry=key)))
    run(store.set_entry_document(13, "doc_gone", revoked=True))
    run(store.put_entry(entry(14, document_id="doc_nowhere", revoked=True)))


def test_documents_and_entries_that_disagree_are_found_and_repaired_once(store: Store) -> None:
    """A store an older gateway left damaged: ``document_problems`` finds each kind (reading
    only), ``repair_documents`` puts right at every start what cannot be valid (nothing
    revoked is served again, a bind is completed) and returns what it did, leaving what only
    an operator can judge; ``everything`` (``docs check --repair``) then revokes a document
    nothing serves and drops an entry of a document never stored; run again, nothing."""
    damaged(store)
    expected = [
        DocumentProblem("revocation_undone", "doc_undone", 3),
        DocumentProblem("unbound_entry", "doc_unbound", 4),
        DocumentProblem("unserved", "doc_deleted", 5),
        DocumentProblem("unserved", "doc_first", 6),
        DocumentProblem("unserved", "doc_no_entry", None),
        DocumentProblem("missing_document", "doc_never", 7),
        DocumentProblem("revoked_served", "doc_revoked", 1),
        DocumentProblem("revoked_served", "doc_revoked", 2),
    ]
    assert run(store.document_problems()) == expected
    assert run(store.document_problems()) == expected  # a check writes nothing
    head = run(store.change_head())
    asked = [p for p in expected if p.kind in ("unserved", "missing_document")]
    assert run(store.repair_documents()) == [p for p in expected if p not in asked]
    assert run(store.change_head()) > head  # other processes follow the repair
    assert run(store.document_problems()) == asked
    assert run(store.repair_documents()) == []  # a start leaves these to an operator
    assert run(store.repair_documents(everything=True)) == asked
    assert run(store.document_problems()) == []
    assert run(store.repair_documents(everything=True)) == []
    states = {d.id: d.state for d in run(store.documents())}
    assert states == {
        "doc_revoked": "revoked",
        "doc_undone": "revoked",
        "doc_unbound": "active",
        "doc_deleted": "revoked",
        "doc_no_entry": "revoked",
        "doc_first": "revoked",
        "doc_second": "active",
        "doc_ok": "active",
        "doc_old": "superseded",
        "doc_stale": "stale",
        "doc_gone": "revoked",
    }
    entries = {e.key: (e.document_id, e.revoked) for e in run(store.entries())}
    assert entries == {
        1: ("doc_revoked", True),
        2: ("doc_revoked", True),
        3: ("doc_undone", True),
        4: ("doc_unbound", False),
        6: ("doc_second", False),
        10: ("doc_ok", False),
        11: ("doc_old", False),
        12: ("doc_stale", False),
        13: ("doc_gone", True),
        14: ("doc_nowhere", True),
    }
    assert run(store.question_variants()) == []  # the dropped entry's too


def test_a_consistent_store_has_nothing_to_repair_and_repairing_writes_nothing(
    store: Store,
) -> None:
    run(store.put_entry(entry(1)))
    run(store.put_document(doc("doc_ok", 1.0, entry=1)))
    head = run(store.change_head())
    assert run(store.document_problems()) == []
    assert run(store.repair_documents()) == []
    assert run(store.change_head()) == head


# --- verifier labels ------------------------------------------------------------------------


def test_observations_in_the_order_added(store: Store) -> None:
    obs = [
        ObservationRow(1.0, 7, 0.91, True, "verify", "req_1", 0.25, 0.8),
        ObservationRow(0.5, None, 0.42, False, "feedback", None),
        ObservationRow(2.0, 3, 0.77, True, "feedback", "req_3", 0.0, None),
    ]
    for o in obs:
        run(store.add_observation(o))
    assert run(store.observations()) == obs


def test_lookup_similarities_come_from_semantic_lookups_in_the_ledger(store: Store) -> None:
    run(store.record(row(1, similarity=0.8, extra={"semantic_lookup": 1, "density": 0.3})))
    run(store.record(row(2, extra={"semantic_lookup": 1})))  # no candidate
    run(store.record(row(3, similarity=0.6, extra={"semantic_lookup": 1, "pair_score": 0.9})))
    run(store.record(row(4, similarity=0.99)))  # not a semantic lookup
    assert sorted(run(store.lookup_similarities()), key=repr) == sorted(
        [(0.8, 0.3, None), (None, 0.0, None), (0.6, 0.0, 0.9)], key=repr
    )


# --- jobs -----------------------------------------------------------------------------------


def test_put_job_is_idempotent_by_id_and_dedupe_key(store: Store) -> None:
    assert run(store.put_job(job("j1", dedupe="rebind:d")))
    assert not run(store.put_job(job("j2", dedupe="rebind:d")))
    assert not run(store.put_job(job("j1")))
    assert run(store.put_job(job("j3")))
    assert [j.id for j in run(store.jobs())] == ["j1", "j3"]


def test_a_dedupe_key_is_free_again_once_its_job_has_finished(store: Store) -> None:
    """Only a pending or running job holds its dedupe key: a rebind that failed for good can
    be queued again (the next start's stale check), as can one cancelled or done."""
    assert run(store.put_job(job("j1", dedupe="rebind:d")))
    run(store.claim_job("r1", 100.0, 60.0))
    assert not run(store.put_job(job("j2", dedupe="rebind:d")))  # running: held
    assert run(store.finish_job("j1", "r1", "pending", None))
    assert not run(store.put_job(job("j2", dedupe="rebind:d")))  # pending to retry: held
    run(store.claim_job("r1", 100.0, 60.0))
    assert run(store.finish_job("j1", "r1", "failed", None))
    assert run(store.put_job(job("j2", dedupe="rebind:d")))  # failed: free
    assert not run(store.put_job(job("j3", dedupe="rebind:d")))  # j2 holds it
    assert run(store.cancel_job("j2"))
    assert run(store.put_job(job("j3", dedupe="rebind:d")))  # cancelled: free
    run(store.claim_job("r1", 100.0, 60.0))
    assert run(store.finish_job("j3", "r1", "done", None))
    assert run(store.put_job(job("j4", dedupe="rebind:d")))  # done: free
    assert not run(store.put_job(job("j1")))  # an id stays taken
    states = {j.id: (j.state, j.dedupe) for j in run(store.jobs())}
    assert states == {
        "j1": ("failed", "rebind:d"), "j2": ("cancelled", "rebind:d"),
        "j3": ("done", "rebind:d"), "j4": ("pending", "rebind:d"),
    }  # fmt: skip


def test_concurrent_puts_with_a_finished_jobs_dedupe_key_have_one_winner(store: Store) -> None:
    run(store.put_job(job("old", dedupe="same", state="failed")))

    async def main() -> list[bool]:
        return list(
            await asyncio.gather(*[store.put_job(job(f"j{i}", dedupe="same")) for i in range(8)])
        )

    assert sorted(run(main())) == [False] * 7 + [True]
    assert sorted(j.state for j in run(store.jobs())) == ["failed", "pending"]


def test_concurrent_puts_with_one_dedupe_key_have_one_winner(store: Store) -> None:
    async def main() -> list[bool]:
        return list(
            await asyncio.gather(*[store.put_job(job(f"j{i}", dedupe="same")) for i in range(8)])
        )

    assert sorted(run(main())) == [False] * 7 + [True]
    assert len(run(store.jobs())) == 1


def test_jobs_oldest_first_by_state_and_counts(store: Store) -> None:
    run(store.put_job(job("j2", 20.0)))
    run(store.put_job(job("j1", 10.0)))
    run(store.put_job(job("j3", 30.0, state="done")))
    assert [j.id for j in run(store.jobs())] == ["j1", "j2", "j3"]
    assert [j.id for j in run(store.jobs("pending"))] == ["j1", "j2"]
    assert run(store.jobs("failed")) == []
    assert run(store.job_counts()) == {"pending": 2, "done": 1}


def test_claim_job_leases_the_earliest_due_job(store: Store) -> None:
    assert run(store.claim_job("r1", 100.0, 60.0)) is None  # empty
    run(store.put_job(job("later", 150.0)))
    assert run(store.claim_job("r1", 100.0, 60.0)) is None  # not due yet
    run(store.put_job(job("second", 90.0)))
    run(store.put_job(job("first", 80.0)))
    got = run(store.claim_job("r1", 100.0, 60.0))
    assert got is not None and got.id == "first"
    assert (got.state, got.lease_owner, got.lease_expires, got.attempts) == (
        "running", "r1", 160.0, 1,
    )  # fmt: skip
    assert run(store.claim_job("r2", 100.0, 60.0)).id == "second"
    assert run(store.claim_job("r2", 100.0, 60.0)) is None  # "first" is leased until 160
    # the lease of "first" expires: another runner takes it over, one more attempt
    again = run(store.claim_job("r3", 161.0, 60.0))
    assert again is not None and (again.id, again.lease_owner, again.attempts) == (
        "first", "r3", 2,
    )  # fmt: skip


def test_claim_job_takes_the_earliest_deadline_among_the_due(store: Store) -> None:
    """An auditor's trial: two batches planned for one clean hour ran in the order they were
    planned, and a 2-line batch with a 1 h window expired unrun behind a 2,000-line one with
    24 h. Among due jobs, the earliest deadline goes first."""
    run(store.put_job(job("big", 80.0, deadline=80.0 + 24 * 3600)))
    run(store.put_job(job("small", 90.0, deadline=90.0 + 3600)))
    run(store.put_job(job("not_due", 150.0, deadline=200.0)))
    assert [run(store.claim_job("r1", 100.0, 60.0)).id for _ in range(2)] == ["small", "big"]
    assert run(store.claim_job("r1", 100.0, 60.0)) is None


def test_the_lease_holder_renews_its_lease(store: Store) -> None:
    run(store.put_job(job("long", 0.0)))
    claimed = run(store.claim_job("r1", 100.0, 60.0))
    assert claimed is not None and claimed.lease_expires == 160.0
    assert run(store.renew_job("long", "r1", 250.0))
    assert not run(store.renew_job("long", "r2", 400.0))  # not the holder
    assert run(store.claim_job("r2", 200.0, 60.0)) is None  # still leased at 200
    taken = run(store.claim_job("r2", 251.0, 60.0))  # the holder stopped renewing
    assert taken is not None and taken.lease_owner == "r2"
    assert not run(store.renew_job("long", "r1", 500.0))  # r1 lost it
    assert run(store.finish_job("long", "r2", "done", None))
    assert not run(store.renew_job("long", "r2", 600.0))  # finished


def test_concurrent_claims_never_get_the_same_job(store: Store) -> None:
    for i in range(6):
        run(store.put_job(job(f"j{i}", float(i))))

    async def main() -> list[JobRow | None]:
        return list(
            await asyncio.gather(*[store.claim_job(f"r{i}", 100.0, 60.0) for i in range(12)])
        )

    claimed = [j.id for j in run(main()) if j is not None]
    assert sorted(claimed) == [f"j{i}" for i in range(6)]


def test_concurrent_claims_from_two_instances_never_get_the_same_job(
    make_store: Callable[[], Store],
) -> None:
    a, b = make_store(), make_store()
    for i in range(6):
        run(a.put_job(job(f"j{i}", float(i))))

    async def main() -> list[JobRow | None]:
        calls = [s.claim_job(f"r{i}", 100.0, 60.0) for i in range(6) for s in (a, b)]
        return list(await asyncio.gather(*calls))

    claimed = [j.id for j in run(main()) if j is not None]
    assert sorted(claimed) == [f"j{i}" for i in range(6)]


def test_only_the_lease_holder_finishes_a_job_once(store: Store) -> None:
    run(store.put_job(job("j1")))
    assert not run(store.finish_job("j1", "r1", "done", "{}"))  # pending: not leased
    run(store.claim_job("r1", 100.0, 60.0))
    assert not run(store.finish_job("j1", "intruder", "done", "{}"))
    assert run(store.finish_job("j1", "r1", "done", '{"ok": 1}'))
    assert not run(store.finish_job("j1", "r1", "failed", "{}"))  # the first call counts
    (done,) = run(store.jobs())
    assert (done.state, done.result, done.lease_owner, done.lease_expires) == (
        "done", '{"ok": 1}', None, None,
    )  # fmt: skip
    assert not run(store.finish_job("missing", "r1", "done", None))


def test_only_the_lease_holder_renews_a_running_job(store: Store) -> None:
    run(store.put_job(job("j1")))
    assert not run(store.renew_job("j1", "r1", 500.0))  # pending: not leased
    run(store.claim_job("r1", 100.0, 60.0))
    assert not run(store.renew_job("j1", "intruder", 500.0))
    assert run(store.renew_job("j1", "r1", 500.0))
    assert run(store.claim_job("r2", 200.0, 60.0)) is None  # the renewed lease holds
    (running,) = run(store.jobs())
    assert (running.lease_owner, running.lease_expires) == ("r1", 500.0)
    run(store.finish_job("j1", "r1", "done", None))
    assert not run(store.renew_job("j1", "r1", 900.0))  # finished


def test_a_job_finished_as_pending_is_claimed_again(store: Store) -> None:
    run(store.put_job(job("j1")))
    run(store.claim_job("r1", 100.0, 60.0))
    assert run(store.finish_job("j1", "r1", "pending", '{"error": "x"}'))
    again = run(store.claim_job("r2", 101.0, 60.0))
    assert again is not None and (again.id, again.attempts) == ("j1", 2)


def test_a_job_held_back_for_a_retry_is_never_rescheduled_before_its_hold(store: Store) -> None:
    run(store.put_job(job("j1", 10.0)))
    assert run(store.jobs())[0].hold_until == 0.0  # not held
    run(store.claim_job("r1", 100.0, 60.0))
    assert run(store.finish_job("j1", "r1", "pending", '{"error": "429"}', retry_at=7300.0))
    (held,) = run(store.jobs())
    assert (held.state, held.not_before, held.hold_until) == ("pending", 7300.0, 7300.0)
    assert run(store.claim_job("r1", 7299.0, 60.0)) is None  # not due before its hold
    assert not run(store.reschedule_job("j1", 160.0))  # a re-plan cannot undo the hold
    assert run(store.reschedule_job("j1", 9000.0))  # later than the hold: moved
    assert run(store.reschedule_job("j1", 7300.0))  # back to the hold itself: allowed
    assert run(store.jobs())[0].not_before == 7300.0
    # a retry without a hold keeps its start and its hold
    got = run(store.claim_job("r2", 7300.0, 60.0))
    assert got is not None and got.attempts == 2
    assert run(store.finish_job("j1", "r2", "pending", None))
    (again,) = run(store.jobs())
    assert (again.not_before, again.hold_until) == (7300.0, 7300.0)


def test_a_job_handed_back_is_held_and_its_attempt_not_counted(store: Store) -> None:
    run(store.put_job(job("j1", 10.0)))
    claimed = run(store.claim_job("r1", 100.0, 60.0))
    assert claimed is not None and claimed.attempts == 1
    result = '{"handed_back": "not here"}'
    assert run(store.finish_job("j1", "r1", "pending", result, retry_at=160.0, handed_back=True))
    (back,) = run(store.jobs())
    assert (back.state, back.attempts, back.not_before, back.hold_until) == (
        "pending",
        0,
        160.0,
        160.0,
    )
    assert run(store.claim_job("r2", 159.0, 60.0)) is None  # held for every runner
    again = run(store.claim_job("r2", 160.0, 60.0))
    assert again is not None and again.attempts == 1


def test_a_job_that_requires_another_process_is_passed_over_until_its_deadline(
    store: Store,
) -> None:
    """A claim leaves alone, writing nothing, a job whose requirement the claiming process
    does not meet (a rebind for a model version it does not run), and takes it past its
    deadline; a job that requires nothing is anyone's."""
    run(store.put_job(job("v2", 10.0, requires='["m","v2"]', deadline=500.0)))
    run(store.put_job(job("free", 20.0)))
    got = run(store.claim_job("old", 100.0, 60.0, accepts={'["m","v1"]'}))
    assert got is not None and got.id == "free"
    assert run(store.claim_job("old", 100.0, 60.0, accepts={'["m","v1"]'})) is None
    assert run(store.claim_job("none", 100.0, 60.0)) is None
    (untouched,) = [j for j in run(store.jobs()) if j.id == "v2"]
    assert (untouched.state, untouched.attempts, untouched.lease_owner) == ("pending", 0, None)
    assert untouched.requires == '["m","v2"]'
    got = run(store.claim_job("new", 100.0, 60.0, accepts={'["m","v1"]', '["m","v2"]'}))
    assert got is not None and (got.id, got.attempts, got.requires) == ("v2", 1, '["m","v2"]')
    assert run(store.finish_job("v2", "new", "pending", None))
    late = run(store.claim_job("old", 500.0, 60.0, accepts={'["m","v1"]'}))  # its deadline
    assert late is not None and late.id == "v2"


def test_a_late_job_stays_for_a_live_runner_that_meets_its_requirement(store: Store) -> None:
    """Past its deadline a job is claimed by a process that does not meet its requirement
    (to finish it as skipped) only once no runner that meets it is alive: a runner is alive
    until the time its last note gives, and not at all once it is forgotten. A runner's note
    replaces its last one; a note of nothing says it waits for nothing."""
    v1, v2 = '["m","v1"]', '["m","v2"]'
    run(store.put_job(job("late", 10.0, requires=v2, deadline=500.0)))
    run(store.note_runner("new", {v2, '["n","x"]'}, 400.0, 800.0))
    run(store.note_runner("old", {v1}, 400.0, 800.0))
    assert run(store.claim_job("old", 600.0, 60.0, accepts={v1})) is None
    (untouched,) = run(store.jobs())
    assert (untouched.state, untouched.attempts) == ("pending", 0)
    assert run(store.claim_job("old", 800.0, 60.0, accepts={v1})) is not None  # "new" ran out
    assert run(store.finish_job("late", "old", "pending", None))

    run(store.note_runner("new", {v2}, 800.0, 1200.0))  # back
    assert run(store.claim_job("old", 900.0, 60.0, accepts={v1})) is None
    got = run(store.claim_job("new", 900.0, 60.0, accepts={v2}))  # it runs it, late
    assert got is not None and got.id == "late"
    assert run(store.finish_job("late", "new", "pending", None))

    run(store.note_runner("new", set(), 900.0, 1300.0))  # it no longer runs v2
    got = run(store.claim_job("old", 900.0, 60.0, accepts={v1}))
    assert got is not None and got.id == "late"
    assert run(store.finish_job("late", "old", "pending", None))

    run(store.note_runner("new", {v2}, 900.0, 1300.0))
    assert run(store.claim_job("old", 900.0, 60.0, accepts={v1})) is None
    run(store.forget_runner("new"))  # it stopped
    got = run(store.claim_job("old", 900.0, 60.0, accepts={v1}))
    assert got is not None and got.id == "late"
    run(store.forget_runner("nobody"))  # forgetting a runner never noted is no error


def test_the_requirements_live_runners_meet(store: Store) -> None:
    """What the runners alive at a time meet (a runner asks about the others, for a late job
    without a requirement it cannot run): each runner's last note until its time runs out,
    none once it is forgotten; ``besides`` leaves out one runner's."""
    v1, v2, x = '["m","v1"]', '["m","v2"]', '["n","x"]'
    assert run(store.live_requirements(100.0)) == frozenset()
    run(store.note_runner("new", {v2, x}, 400.0, 800.0))
    run(store.note_runner("old", {v1}, 400.0, 600.0))
    run(store.note_runner("twin", {v2}, 400.0, 800.0))
    assert run(store.live_requirements(500.0)) == {v1, v2, x}
    assert run(store.live_requirements(500.0, besides="old")) == {v2, x}
    assert run(store.live_requirements(500.0, besides="new")) == {v1, v2}
    assert run(store.live_requirements(600.0)) == {v2, x}  # "old" ran out
    run(store.note_runner("new", {x}, 700.0, 900.0))  # a note replaces the last one
    assert run(store.live_requirements(700.0, besides="twin")) == {x}
    run(store.forget_runner("new"))
    assert run(store.live_requirements(700.0)) == {v2}
    assert run(store.live_requirements(800.0)) == frozenset()


def test_runners_noted_on_one_store_are_seen_by_every_process(
    make_store: Callable[[], Store],
) -> None:
    """Notes are the store's, not a process's: a runner noted through one instance keeps a
    late job from another instance's claim."""
    a, b = make_store(), make_store()
    run(a.put_job(job("late", 10.0, requires='["m","v2"]', deadline=500.0)))
    run(a.note_runner("new", {'["m","v2"]'}, 400.0, 800.0))
    assert run(b.claim_job("old", 600.0, 60.0, accepts={'["m","v1"]'})) is None
    run(a.note_runner("new", {'["m","v2"]'}, 600.0, 700.0))  # a shorter note replaces it
    got = run(b.claim_job("old", 700.0, 60.0, accepts={'["m","v1"]'}))
    assert got is not None and got.id == "late"


def test_reschedule_and_cancel_only_pending_jobs(store: Store) -> None:
    run(store.put_job(job("p", 10.0)))
    run(store.put_job(job("r", 5.0)))
    run(store.claim_job("runner", 100.0, 60.0))  # "r" is running
    assert run(store.reschedule_job("p", 500.0))
    assert not run(store.reschedule_job("r", 500.0))
    assert not run(store.reschedule_job("missing", 500.0))
    assert {j.id: j.not_before for j in run(store.jobs())} == {"p": 500.0, "r": 5.0}
    assert not run(store.cancel_job("r"))
    assert not run(store.cancel_job("missing"))
    assert run(store.cancel_job("p"))
    assert not run(store.cancel_job("p"))  # cancelled already
    assert not run(store.reschedule_job("p", 600.0))
    assert run(store.job_counts()) == {"cancelled": 1, "running": 1}
    assert run(store.claim_job("other", 150.0, 60.0)) is None  # cancelled: never claimed


# --- files and batches ----------------------------------------------------------------------


def test_files_round_trip_once(store: Store) -> None:
    f = FileRow("file-1", "acme", "batch", "in.jsonl", 5, 1000.0, b"\x00{}\n\xff")
    run(store.put_file(f))
    assert run(store.get_file("file-1")) == f
    assert run(store.get_file("file-2")) is None
    with pytest.raises(Exception):  # noqa: B017 - each implementation's own integrity error
        run(store.put_file(FileRow("file-1", "other", "batch", "x", 1, 1.0, b"x")))
    assert run(store.get_file("file-1")) == f


def test_batches_insert_replace_and_newest_first(store: Store) -> None:
    run(store.put_batch("b1", "acme", 10.0, '{"status": "in_progress"}'))
    run(store.put_batch("b2", "globex", 20.0, "{}"))
    run(store.put_batch("b1", "acme", 10.0, '{"status": "completed"}'))
    assert run(store.get_batch("b1")) == ("acme", '{"status": "completed"}')
    assert run(store.get_batch("b9")) is None
    assert run(store.batches()) == [
        ("b2", "globex", 20.0, "{}"),
        ("b1", "acme", 10.0, '{"status": "completed"}'),
    ]
    assert [b[0] for b in run(store.batches(limit=1))] == ["b2"]


def test_a_batch_is_replaced_only_if_unchanged_since_it_was_read(store: Store) -> None:
    run(store.put_batch("b1", "acme", 10.5, '{"status": "in_progress"}'))
    assert run(store.replace_batch("b1", '{"status": "in_progress"}', '{"status": "cancelling"}'))
    # a writer holding the old object (the batch's run) does not overwrite the cancel
    assert not run(
        store.replace_batch("b1", '{"status": "in_progress"}', '{"status": "completed"}')
    )
    assert run(store.get_batch("b1")) == ("acme", '{"status": "cancelling"}')
    assert not run(store.replace_batch("b9", "{}", "{}"))  # none: nothing replaced
    assert run(store.batches()) == [("b1", "acme", 10.5, '{"status": "cancelling"}')]


def test_batches_and_files_list_by_tenant_with_a_cursor(store: Store) -> None:
    for i, tenant in enumerate(["acme", "globex", "acme", "acme"]):
        run(store.put_batch(f"b{i}", tenant, 10.0 + i, "{}"))
        content = b"x" * (i + 1)
        run(
            store.put_file(
                FileRow(f"f{i}", tenant, "batch", f"{i}.jsonl", i + 1, 10.0 + i, content)
            )
        )
    run(store.put_batch("b4", "acme", 13.0, "{}"))  # the same second as b3: ids order them
    assert [b[0] for b in run(store.batches(tenant="acme"))] == ["b4", "b3", "b2", "b0"]
    assert [b[0] for b in run(store.batches(2, tenant="acme", after="b4"))] == ["b3", "b2"]
    assert [b[0] for b in run(store.batches(tenant="acme", after="b2"))] == ["b0"]
    assert run(store.batches(tenant="acme", after="nope")) == []
    assert run(store.batches(tenant="acme", after="b1")) == []  # globex's: tells nothing
    assert run(store.files(tenant="acme", after="f1")) == []
    assert [b[0] for b in run(store.batches(after="b2"))] == ["b1", "b0"]
    acme = run(store.files(tenant="acme"))
    assert [f.id for f in acme] == ["f3", "f2", "f0"]
    assert acme[0] == FileRow("f3", "acme", "batch", "3.jsonl", 4, 13.0, b"")  # no content
    assert [f.id for f in run(store.files(tenant="acme", ascending=True, limit=2))] == [
        "f0",
        "f2",
    ]
    assert [f.id for f in run(store.files(tenant="acme", after="f3", limit=1))] == ["f2"]
    assert [f.id for f in run(store.files(after="f1", ascending=True))] == ["f2", "f3"]
    assert run(store.files(purpose="batch_output")) == []
    assert run(store.delete_file("f2", 20.0)) is True
    assert run(store.delete_file("f2", 20.0)) is False
    assert run(store.get_file("f2")) is None
    assert [f.id for f in run(store.files(tenant="acme"))] == ["f3", "f0"]


def test_a_file_deleted_while_an_unfinished_batch_reads_it_is_kept_for_that_batch(
    store: Store,
) -> None:
    """A break-it trial: a batch handed back (its key's rate limit, a restart) read its
    input again, found it deleted and failed, its accepted lines never run. The input of a
    batch not ended is hidden from the API and kept for it, dropped once the batch ends."""
    f = FileRow("in-1", "acme", "batch", "in.jsonl", 2, 10.0, b"{}")
    other = FileRow("in-2", "acme", "batch", "in.jsonl", 2, 11.0, b"{}")
    run(store.put_file(f))
    run(store.put_file(other))
    body = {"id": "batch_1", "input_file_id": "in-1", "status": "in_progress"}
    run(store.put_batch("batch_1", "acme", 12.0, json.dumps(body)))
    assert run(store.delete_file("in-1", 20.0)) is True
    assert run(store.delete_file("in-1", 21.0)) is False  # deleted already
    assert run(store.get_file("in-1")) is None
    assert run(store.get_file("in-1", deleted=True)) == f  # for its batch
    assert [x.id for x in run(store.files(tenant="acme"))] == ["in-2"]
    assert [x.id for x in run(store.files(tenant="acme", after="in-1"))] == []  # a cursor still
    assert run(store.delete_file("in-2", 20.0)) is True  # no batch reads it: gone
    assert run(store.get_file("in-2", deleted=True)) is None
    assert run(store.purge_deleted_files()) == 0  # its batch runs on
    assert run(store.get_file("in-1", deleted=True)) == f
    run(store.put_batch("batch_1", "acme", 12.0, json.dumps({**body, "status": "completed"})))
    assert run(store.purge_deleted_files()) == 1
    assert run(store.get_file("in-1", deleted=True)) is None
    # without its content (a list's cursor check read a 143 MB file for its tenant)
    assert run(store.get_file("in-2")) is None
    run(store.put_file(other))
    assert run(store.get_file("in-2", content=False)) == replace(other, content=b"")


def test_a_batch_made_from_a_file_is_stored_only_while_the_file_is_there(store: Store) -> None:
    """A re-check: a DELETE between a batch's reading of its input and its storing found no
    batch using the file and dropped it; the batch was accepted and none of its lines ran.
    Made with ``input_file_id``, a batch is stored only if the file is there (not deleted),
    atomically with ``delete_file``."""
    f = FileRow("in-1", "acme", "batch", "in.jsonl", 2, 10.0, b"{}")
    run(store.put_file(f))
    body = json.dumps({"id": "b1", "input_file_id": "in-1", "status": "in_progress"})
    assert run(store.put_batch("b1", "acme", 11.0, body, input_file_id="in-1")) is None
    assert run(store.get_batch("b1")) is not None
    assert run(store.delete_file("in-1", 12.0)) is True  # hidden: b1 reads it
    body2 = json.dumps({"id": "b2", "input_file_id": "in-1", "status": "in_progress"})
    with pytest.raises(LookupError):
        run(store.put_batch("b2", "acme", 13.0, body2, input_file_id="in-1"))
    with pytest.raises(LookupError):
        run(store.put_batch("b3", "acme", 13.0, body2, input_file_id="nope"))
    with pytest.raises(LookupError):  # under an idempotency key: no key kept either
        run(store.put_batch("b4", "acme", 13.0, body2, idem("k-b4", "b4"), input_file_id="nope"))
    assert run(store.get_batch("b2")) is None and run(store.get_batch("b4")) is None
    assert run(store.idempotency_key("acme", "k1", "POST /v1/batches", "k-b4", 13.0)) is None
    # a request under a key that made its batch gets that one, the file gone or not (a
    # re-check: a second create under the key, its input deleted meanwhile, was 404)
    g = FileRow("in-9", "acme", "batch", "in.jsonl", 2, 10.0, b"{}")
    run(store.put_file(g))
    body9 = json.dumps({"id": "b9", "input_file_id": "in-9", "status": "in_progress"})
    key = idem("k-b9", "b9")
    assert run(store.put_batch("b9", "acme", 14.0, body9, key, input_file_id="in-9")) is None
    assert run(store.delete_file("in-9", 15.0)) is True
    again = idem("k-b9", "b10")
    assert run(store.put_batch("b10", "acme", 16.0, body9, again, input_file_id="in-9")) == key
    assert run(store.get_batch("b10")) is None


def test_batch_lines_are_kept_once_in_input_order_until_dropped(store: Store) -> None:
    out = BatchLineRow("b1", 2, "output", '{"custom_id": "c"}', 0.5, 0.25, 0.125)
    err = BatchLineRow("b1", 0, "error", '{"custom_id": "a"}', 0.0, 0.0, 0.0)
    other = BatchLineRow("b2", 1, "output", "{}", 1.0, 1.0, 1.0)
    for row in (out, err, other):
        run(store.put_batch_line(row))
    # the first write wins: a line served again by a second runner keeps its first record
    run(store.put_batch_line(BatchLineRow("b1", 2, "error", "{}", 9.0, 9.0, 9.0)))
    assert run(store.batch_lines("b1")) == [err, out]
    assert run(store.batch_line_counts("b1")) == (1, 1)
    assert run(store.batch_line_counts("b9")) == (0, 0)
    run(store.drop_batch_lines("b1"))
    assert run(store.batch_lines("b1")) == []
    assert run(store.batch_lines("b2")) == [other]


def test_stranded_batches_are_those_not_ended_that_no_job_will_run(store: Store) -> None:
    """A batch is stored before its job is queued: the batches no runner will end are those
    not ended whose job is missing (the process died in between) or finished."""
    for state in ("pending", "running", "done", "failed", "cancelled"):
        run(store.put_job(job(f"job_{state}", kind="batch", state=state)))

    def batch(bid: str, created: float, status: str, job_id: str) -> str:
        body = json.dumps({"id": bid, "status": status, "boundgate": {"job_id": job_id}})
        run(store.put_batch(bid, "t", created, body))
        return body

    stranded = [
        (batch("b_no_job", 1.0, "in_progress", "job_never_queued"), None),
        (batch("b_done", 2.0, "in_progress", "job_done"), "done"),
        (batch("b_failed", 3.0, "in_progress", "job_failed"), "failed"),
        (batch("b_cancelled", 4.0, "cancelling", "job_cancelled"), "cancelled"),
    ]
    batch("b_running", 5.0, "in_progress", "job_running")  # (an expired lease: taken over)
    batch("b_pending", 6.0, "cancelling", "job_pending")
    batch("b_ended", 7.0, "completed", "job_never_queued_either")
    batch("b_failed_too", 8.0, "failed", "job_failed")
    assert run(store.stranded_batches()) == stranded


def idem(key: str, object_id: str, created: float = 100.0, **kw: Any) -> IdempotencyKey:
    """An idempotency key of acme's key k1 on ``POST /v1/batches``, kept a day."""
    fields: dict[str, Any] = {
        "tenant": "acme", "key_id": "k1", "route": "POST /v1/batches", "key": key,
        "fingerprint": "f1", "object_id": object_id, "created": created,
        "expires": created + DAY,
    }  # fmt: skip
    fields.update(kw)
    return IdempotencyKey(**fields)


def test_a_batch_under_an_idempotency_key_is_made_once_until_the_key_expires(
    store: Store,
) -> None:
    """An audit's finding: a client retrying ``POST /v1/batches`` after a lost answer made a
    second batch. The key is kept with the batch: a second put under it writes nothing and
    says which batch the key made; other tenants, keys and routes have keys of their own."""
    first = idem("retry-1", "b1")
    assert run(store.put_batch("b1", "acme", 100.0, '{"id": "b1"}', first)) is None
    again = idem("retry-1", "b2", created=200.0, fingerprint="f2")
    assert run(store.put_batch("b2", "acme", 200.0, '{"id": "b2"}', again)) == first
    assert run(store.get_batch("b2")) is None  # nothing written
    assert run(store.idempotency_key("acme", "k1", "POST /v1/batches", "retry-1", 200.0)) == first
    for other in (
        idem("retry-1", "b3", tenant="globex"),
        idem("retry-1", "b4", key_id="k2"),
        idem("retry-1", "b5", key_id=""),
    ):
        assert run(store.put_batch(other.object_id, other.tenant, 100.0, "{}", other)) is None
    assert [b[0] for b in run(store.batches())] == ["b5", "b4", "b3", "b1"]
    assert run(store.idempotency_key("acme", "k1", "POST /v1/files", "retry-1", 200.0)) is None
    # expired: free again, and the next request under it makes a batch of its own
    later = 100.0 + DAY
    assert run(store.idempotency_key("acme", "k1", "POST /v1/batches", "retry-1", later)) is None
    renewed = idem("retry-1", "b6", created=later)
    assert run(store.put_batch("b6", "acme", later, "{}", renewed)) is None
    assert run(store.idempotency_key("acme", "k1", "POST /v1/batches", "retry-1", later)) == (
        renewed
    )
    assert run(store.put_batch("b1", "acme", 100.0, '{"id": "b1", "v": 2}')) is None  # no key


def test_a_file_under_an_idempotency_key_is_stored_once_and_deleting_it_frees_the_key(
    store: Store,
) -> None:
    f1 = FileRow("file-1", "acme", "batch", "in.jsonl", 2, 100.0, b"{}")
    key = idem("upload-1", "file-1", route="POST /v1/files")
    assert run(store.put_file(f1, key)) is None
    f2 = FileRow("file-2", "acme", "batch", "in.jsonl", 2, 150.0, b"{}")
    assert run(store.put_file(f2, idem("upload-1", "file-2", route="POST /v1/files"))) == key
    assert run(store.get_file("file-2")) is None
    with pytest.raises(Exception):  # noqa: B017 - each implementation's own integrity error
        run(store.put_file(f1, idem("upload-2", "file-1", route="POST /v1/files")))
    # the failed put kept no key either (one transaction)
    assert run(store.idempotency_key("acme", "k1", "POST /v1/files", "upload-2", 100.0)) is None
    assert run(store.delete_file("file-1", 200.0)) is True
    assert run(store.idempotency_key("acme", "k1", "POST /v1/files", "upload-1", 100.0)) is None
    assert run(store.put_file(f2, idem("upload-1", "file-2", route="POST /v1/files"))) is None
    assert run(store.get_file("file-2")) == f2


def test_puts_under_one_idempotency_key_from_several_processes_write_once(
    make_store: Callable[[], Store],
) -> None:
    stores = [make_store() for _ in range(3)]

    async def race() -> list[IdempotencyKey | None]:
        return list(
            await asyncio.gather(
                *(
                    s.put_batch(f"b{i}", "acme", 100.0, "{}", idem("same", f"b{i}"))
                    for i, s in enumerate(stores)
                )
            )
        )

    results = run(race())
    assert results.count(None) == 1  # one wrote; the others were told its batch
    (winner,) = [f"b{i}" for i, r in enumerate(results) if r is None]
    assert {r.object_id for r in results if r is not None} == {winner}
    assert [b[0] for b in run(stores[0].batches())] == [winner]


def test_a_batch_ending_writes_its_files_only_if_its_replace_wins(store: Store) -> None:
    """An audit's finding: a batch's run and its cancel (or failure hook) could both write
    output files for it, one set left orphaned. The files go with the compare-and-set."""
    run(store.put_batch("b1", "acme", 10.0, '{"status": "in_progress"}'))
    out = FileRow("file-out", "acme", "batch_output", "b1_output.jsonl", 3, 11.0, b"{}\n")
    err = FileRow("file-err", "acme", "batch_output", "b1_error.jsonl", 3, 11.0, b"{}\n")
    assert run(
        store.replace_batch("b1", '{"status": "in_progress"}', '{"status": "cancelled"}', [out])
    )
    lost = FileRow("file-out2", "acme", "batch_output", "b1_output.jsonl", 3, 12.0, b"{}\n")
    assert not run(
        store.replace_batch("b1", '{"status": "in_progress"}', '{"status": "failed"}', [lost, err])
    )
    assert [f.id for f in run(store.files(purpose="batch_output"))] == ["file-out"]
    assert run(store.get_file("file-out")) == out
    # a file that cannot be stored (its id is taken) leaves the object as it was
    with pytest.raises(Exception):  # noqa: B017 - each implementation's own integrity error
        run(store.replace_batch("b1", '{"status": "cancelled"}', '{"status": "x"}', [out]))
    assert run(store.get_batch("b1")) == ("acme", '{"status": "cancelled"}')


# --- creativity buffer ----------------------------------------------------------------------


def test_novel_asks_count_distinct_askers_and_keep_the_latest_request(store: Store) -> None:
    assert run(store.novel_request("p")) is None
    assert run(store.note_novel_ask("p", "alice", '{"n": 1}', 1.0)) == 1
    assert run(store.note_novel_ask("p", "alice", '{"n": 2}', 2.0)) == 1
    assert run(store.note_novel_ask("p", "bob", '{"n": 3}', 3.0)) == 2
    assert run(store.note_novel_ask("other", "bob", '{"n": 4}', 4.0)) == 1
    assert run(store.novel_request("p")) == '{"n": 3}'


def test_variants_are_served_once_per_asker_least_served_first(store: Store) -> None:
    assert run(store.take_variant("p", "alice", 1.0)) is None
    run(store.add_variants([variant("p", "one"), variant("p", "two"), variant("q", "other")]))
    assert (run(store.variant_count("p")), run(store.unused_variants("p"))) == (2, 2)
    first = run(store.take_variant("p", "alice", 1.0))
    assert first is not None and first.exact == "p" and first.answer in ("one", "two")
    assert (first.prompt_tokens, first.completion_tokens, first.cost_wh) == (3, 4, 0.5)
    assert first.cost_method == "rapl"  # how its generation was measured
    assert run(store.unused_variants("p")) == 1
    bob = run(store.take_variant("p", "bob", 2.0))
    assert bob is not None and bob.id != first.id  # the unserved one goes first
    assert run(store.unused_variants("p")) == 0
    second = run(store.take_variant("p", "alice", 3.0))
    assert second is not None and second.id == bob.id
    assert run(store.take_variant("p", "alice", 4.0)) is None  # alice has had them all
    assert run(store.variant_count("q")) == 1 and run(store.unused_variants("q")) == 1


def test_concurrent_takes_never_hand_one_variant_twice(store: Store) -> None:
    run(store.add_variants([variant("p", f"v{i}") for i in range(3)]))

    async def takes(askers: list[str]) -> list[VariantRow | None]:
        return list(await asyncio.gather(*[store.take_variant("p", a, 1.0) for a in askers]))

    # three askers at once, three unserved variants: each gets a different one
    got = run(takes(["a", "b", "c"]))
    assert all(v is not None for v in got)
    assert len({v.id for v in got if v is not None}) == 3
    # one asker five times at once: the three variants once each, then nothing
    got = run(takes(["d"] * 5))
    ids = [v.id for v in got if v is not None]
    assert len(ids) == 3 and len(set(ids)) == 3


# --- energy profiles ------------------------------------------------------------------------


def profile(model: str, at: float, host: str = "h1", **kw: Any) -> EnergyProfileRow:
    fields: dict[str, Any] = {
        "model_version": f"{model}@v1",
        "cpu": "Some CPU @ 2.0GHz",
        "method": "estimate",
        "prompt_wh_per_1k_tokens": 0.1,
        "prompt_wh_per_1k_tokens_low": 0.05,
        "prompt_wh_per_1k_tokens_high": 0.2,
        "output_wh_per_1k_tokens": 1.0,
        "output_wh_per_1k_tokens_low": 0.5,
        "output_wh_per_1k_tokens_high": 2.0,
        "prompt_tokens_per_s": 800.0,
        "output_tokens_per_s": 40.0,
        "runs": 3,
        "prompt_tokens": 500,
        "output_tokens": 64,
    }
    fields.update(kw)
    return EnergyProfileRow(model=model, measured_at=at, host=host, **fields)


def test_profiles_give_the_newest_of_each_model(store: Store) -> None:
    assert run(store.profiles()) == []
    old = profile("b-model", 10.0)
    new = profile("b-model", 20.0, method="rapl", model_version="b-model@v2")
    a = profile("a-model", 15.0)
    for p in (new, a, old):  # insertion order is not measurement order
        run(store.put_profile(p))
    assert run(store.profiles()) == [a, new]
    same_time = profile("a-model", 15.0, runs=5)  # a tie: the later insertion wins
    run(store.put_profile(same_time))
    assert run(store.profiles())[0] == same_time


def test_profiles_of_one_host(store: Store) -> None:
    here = profile("m", 10.0, host="here")
    there = profile("m", 20.0, host="there")
    run(store.put_profile(here))
    run(store.put_profile(there))
    assert run(store.profiles("here")) == [here]
    assert run(store.profiles("there")) == [there]
    assert run(store.profiles()) == [there]
    assert run(store.profiles("elsewhere")) == []


def test_profiles_survive_close_and_reopen(make_store: Callable[[], Store]) -> None:
    store = make_store()
    p = profile("m", 10.0)
    run(store.put_profile(p))
    store.close()
    store.open()
    assert run(store.profiles()) == [p]


# --- budgets and rate limits (LimitStore) ------------------------------------------------


def tokens(amount: int, limit: int = 100, hold_s: float | None = 900.0) -> Claim:
    return Claim("tokens:acme", D0, amount, limit, hold_s)


def test_a_claim_is_taken_while_it_fits(store: Store) -> None:
    assert run(store.reserve("h1", [tokens(60)], D0 + 1)) is None
    assert run(store.reserve("h2", [tokens(40)], D0 + 2)) is None
    assert run(store.reserve("h3", [tokens(1)], D0 + 3)) == 0  # 60 + 40 + 1 > 100
    assert run(store.counter_state("tokens:acme", D0, D0 + 3)) == CounterState(0, 100, D0 + 901)
    assert run(store.reserve("h4", [tokens(101)], D0 + 3)) == 0  # never fits a new window
    assert run(store.counter_state("tokens:other", D0, D0)) == CounterState(0, 0, None)


def test_settle_replaces_the_hold_by_real_usage(store: Store) -> None:
    run(store.reserve("h1", [tokens(60)], D0))
    run(store.reserve("h2", [tokens(30)], D0))
    run(store.settle("h1", "tokens:acme", D0, 25))
    assert run(store.counter_state("tokens:acme", D0, D0)) == CounterState(25, 30, D0 + 900)
    assert run(store.reserve("h3", [tokens(45)], D0)) is None  # 25 + 30 + 45 = 100
    assert run(store.reserve("h4", [tokens(1)], D0)) == 0


def test_a_claim_without_a_hold_counts_as_used_at_once(store: Store) -> None:
    assert run(store.reserve("h1", [tokens(3, limit=5, hold_s=None)], D0)) is None
    assert run(store.counter_state("tokens:acme", D0, D0)) == CounterState(3, 0, None)
    assert run(store.reserve("h2", [tokens(3, limit=5, hold_s=None)], D0)) == 0


def test_counters_used_by_prefix_and_window(store: Store) -> None:
    """What ``/v1/boundgate/stats`` lists of the feedback counters: one read for every
    tenant's counters of a day, by literal prefix (a ``_`` or ``%`` is no wildcard)."""
    for counter, window in (
        ("fb:a_b", D0),
        ("fb:a_b", D0),
        ("fb:axb", D0),
        ("fb:c", D0 - DAY),
        ("fbx:a", D0),
        ("f%:z", D0),
    ):
        assert run(store.reserve(f"h{counter}", [Claim(counter, window, 1, 9, None)], D0)) is None
    run(store.reserve("held", [Claim("fb:held", D0, 4, 9, 60.0)], D0))
    assert run(store.counters_used("fb:", D0)) == {"fb:a_b": 2, "fb:axb": 1, "fb:held": 0}
    assert run(store.counters_used("fb:a_", D0)) == {"fb:a_b": 2}
    assert run(store.counters_used("f%", D0)) == {"f%:z": 1}
    assert run(store.counters_used("fb:", D0 - DAY)) == {"fb:c": 1}
    assert run(store.counters_used("nothing:", D0)) == {}


def test_all_claims_or_none(store: Store) -> None:
    rpm = Claim("rpm:acme", 0.0, 1, 5, 60.0)
    assert run(store.reserve("h1", [rpm, tokens(90)], D0)) is None
    assert run(store.reserve("h2", [rpm, tokens(20)], D0)) == 1  # the tokens do not fit
    state = run(store.counter_state("rpm:acme", 0.0, D0))
    assert (state.used, state.held) == (0, 1)  # and the request was not counted either
    assert run(store.reserve("h3", [tokens(20), rpm], D0)) == 0  # index in the caller's order


def test_expired_holds_stop_counting(store: Store) -> None:
    """A gateway killed mid-request never settles: its hold frees itself when the lease ends."""
    assert run(store.reserve("dead", [tokens(80, hold_s=10.0)], D0)) is None
    assert run(store.reserve("h2", [tokens(30)], D0 + 9)) == 0
    assert run(store.counter_state("tokens:acme", D0, D0 + 11)).held == 0
    assert run(store.reserve("h2", [tokens(30)], D0 + 11)) is None
    run(store.settle("dead", "tokens:acme", D0, 50))  # settled late: usage still counts
    assert run(store.counter_state("tokens:acme", D0, D0 + 11)) == CounterState(50, 30, D0 + 911)
    assert run(store.reserve("h3", [tokens(21)], D0 + 11)) == 0


def test_renewed_holds_outlive_their_lease(store: Store) -> None:
    """A request still running has its process renew its holds (``renew_holds``): a claim
    that does not fit frees expired holds only. Only the holds named are renewed (not the
    request's per-minute hold under the same id), a lease is never shortened, a settled hold
    stays gone, and one that expired but was not freed yet counts again."""
    rpm = Claim("rpm:acme", 0.0, 1, 5, 60.0)
    assert run(store.reserve("long", [tokens(80, hold_s=10.0), rpm], D0)) is None
    run(store.renew_holds([Hold("long", "tokens:acme", D0)], D0 + 100))
    run(store.renew_holds([Hold("long", "tokens:acme", D0)], D0 + 20))  # never shorter
    assert run(store.reserve("h2", [tokens(30)], D0 + 50)) == 0  # still held
    assert run(store.counter_state("tokens:acme", D0, D0 + 50)) == CounterState(0, 80, D0 + 100)
    assert run(store.counter_state("rpm:acme", 0.0, D0 + 61)).held == 0  # its window passed
    run(store.settle("long", "tokens:acme", D0, 70))
    run(store.renew_holds([Hold("long", "tokens:acme", D0)], D0 + 200))  # settled: gone
    assert run(store.counter_state("tokens:acme", D0, D0 + 50)) == CounterState(70, 0, None)
    assert run(store.reserve("lapsed", [tokens(20, hold_s=10.0)], D0 + 50)) is None
    assert run(store.counter_state("tokens:acme", D0, D0 + 70)).held == 0  # expired, not freed
    run(store.renew_holds([Hold("lapsed", "tokens:acme", D0), Hold("none", "x", D0)], D0 + 300))
    assert run(store.counter_state("tokens:acme", D0, D0 + 70)) == CounterState(70, 20, D0 + 300)
    assert run(store.reserve("h3", [tokens(11)], D0 + 70)) == 0  # 70 + 20 + 11 > 100
    run(store.renew_holds([], D0 + 400))  # nothing to renew: nothing happens


def test_holds_alone_are_a_sliding_window(store: Store) -> None:
    def rpm(at: float, hold: str) -> int | None:
        return run(store.reserve(hold, [Claim("rpm:acme", 0.0, 1, 3, 60.0)], at))

    assert [rpm(D0 + t, f"h{t}") for t in (0, 10, 20, 30)] == [None, None, None, 0]
    state = run(store.counter_state("rpm:acme", 0.0, D0 + 30))
    assert (state.held, state.next_expiry) == (3, D0 + 60)  # Retry-After: 30 s
    assert rpm(D0 + 60.5, "a") is None  # the first one left the window
    assert rpm(D0 + 61, "b") == 0
    assert rpm(D0 + 70.5, "b") is None


def test_concurrent_reservations_from_two_instances_never_overshoot(
    make_store: Callable[[], Store],
) -> None:
    a, b = make_store(), make_store()

    async def main() -> list[int | None]:
        calls = [
            s.reserve(f"{n}-{i}", [tokens(7), Claim("rpm:acme", 0.0, 1, 1000, 60.0)], D0)
            for i in range(20)
            for n, s in (("a", a), ("b", b))
        ]
        return list(await asyncio.gather(*calls))

    granted = [r for r in run(main()) if r is None]
    assert len(granted) == 14  # 14 × 7 = 98 ≤ 100 < 15 × 7
    assert run(a.counter_state("tokens:acme", D0, D0)).held == 98
    assert run(b.counter_state("rpm:acme", 0.0, D0)).held == 14


def test_prune_drops_old_windows_only(store: Store) -> None:
    run(store.reserve("h1", [Claim("tokens:acme", D0 - DAY, 5, 10, 900.0)], D0 - DAY))
    run(store.reserve("h2", [tokens(5)], D0))
    run(store.reserve("h3", [Claim("rpm:acme", 0.0, 1, 10, 60.0)], D0))
    run(store.prune_counters(D0))
    assert run(store.counter_state("tokens:acme", D0 - DAY, D0 - DAY)) == CounterState(0, 0, None)
    assert run(store.counter_state("tokens:acme", D0, D0)).held == 5
    assert run(store.counter_state("rpm:acme", 0.0, D0)).held == 1
