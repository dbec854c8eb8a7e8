"""The Limiter over a real store: sliding requests-per-minute, daily budgets held and
settled, leases of holds whose process died, and one budget for two processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from boundgate.clock import FakeClock
from boundgate.errors import ErrorCode, RateLimitError
from boundgate.settings import LimitsSettings
from boundgate.store import SQLiteStore, Store
from boundgate.tenants import DAY_S, Limiter, Tenant

T0 = 20_000 * DAY_S + 3600.0  # 01:00 UTC on some day


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []

    def make() -> Store:
        if request.param == "sqlite":
            s: Store = SQLiteStore(tmp_path / "limits.db")
        else:
            from boundgate.store.postgres import PostgresStore

            s = PostgresStore(request.getfixturevalue("postgres_schema"), max_size=4)
        s.open()
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def limiter(store: Store, clock: FakeClock, **limits: object) -> Limiter:
    return Limiter(store, clock, LimitsSettings(**limits))  # type: ignore[arg-type]


def test_requests_per_minute_is_a_sliding_window(make_store: Callable[[], Store]) -> None:
    clock = FakeClock(T0)
    lim = limiter(make_store(), clock, rpm=3)
    acme = Tenant("acme")

    async def main() -> None:
        for _ in range(3):
            await lim.admit(acme, 10)
            clock.advance(10)
        with pytest.raises(RateLimitError) as exc:
            await lim.admit(acme, 10)  # at +30 s: the first leaves the window at +60 s
        assert exc.value.retry_after == pytest.approx(30.0)
        assert await lim.rpm_wait_s(acme) == pytest.approx(30.0)
        await lim.admit(Tenant("globex"), 10)  # other tenants are not affected
        clock.advance(30.5)
        assert await lim.rpm_wait_s(acme) == 0.0
        await lim.admit(acme, 10)
        with pytest.raises(RateLimitError):
            await lim.admit(acme, 10)  # the ones at +10 and +20 are still in the window

    asyncio.run(main())


def test_daily_budget_holds_then_settles(make_store: Callable[[], Store]) -> None:
    clock = FakeClock(T0)
    lim = limiter(make_store(), clock, daily_tokens=100)
    acme = Tenant("acme")

    async def main() -> None:
        first = await lim.admit(acme, 60)
        await lim.admit(acme, 40)
        with pytest.raises(RateLimitError) as exc:
            await lim.admit(acme, 1)
        assert exc.value.code == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        assert exc.value.retry_after == pytest.approx(DAY_S - 3600.0)
        lim.settle(first, 10)  # used 10 of the 60 it held
        lim.settle(first, 10)  # idempotent
        await lim.drain()
        await lim.admit(acme, 50)
        with pytest.raises(RateLimitError):
            await lim.admit(acme, 1)
        clock.advance(DAY_S)  # a new UTC day, a new budget
        await lim.admit(acme, 100)

    asyncio.run(main())


def test_a_further_hold_is_not_a_request_and_a_settle_can_be_waited_for(
    make_store: Callable[[], Store],
) -> None:
    """An auto request's next rung: ``count=False`` holds on the budget without counting a
    request per minute; ``settle_now`` returns once the store has the real usage, so the next
    hold sees the room given back (no ``drain``)."""
    clock = FakeClock(T0)
    lim = limiter(make_store(), clock, rpm=1, daily_tokens=100)
    acme = Tenant("acme")

    async def main() -> None:
        first = await lim.admit(acme, 60)
        await lim.admit(acme, 30, count=False)  # not refused for the minute's one request
        with pytest.raises(RateLimitError) as exc:
            await lim.admit(acme, 30, count=False)  # 60 + 30 + 30 > 100
        assert exc.value.code == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        await lim.settle_now(first, 10)
        await lim.admit(acme, 60, count=False)  # 10 used + 30 + 60 held
        with pytest.raises(RateLimitError) as exc:
            await lim.admit(acme, 0)  # the minute's one request was the first
        assert exc.value.code == ErrorCode.RATE_LIMIT_EXCEEDED

    asyncio.run(main())


def test_a_key_without_limits_never_touches_the_counters(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    lim = limiter(store, FakeClock(T0), rpm=1, daily_tokens=10)
    free = Tenant("acme", rpm=0, daily_tokens=0)

    async def main() -> None:
        for _ in range(5):
            lim.settle(await lim.admit(free, 1_000), 1_000)
        await lim.drain()
        state = await store.counter_state("tokens:acme", T0 // DAY_S * DAY_S, T0)
        assert (state.used, state.held) == (0, 0)

    asyncio.run(main())


def test_the_hold_of_a_dead_process_expires_with_its_lease(
    make_store: Callable[[], Store],
) -> None:
    clock = FakeClock(T0)
    acme = Tenant("acme")
    dead = limiter(make_store(), clock, daily_tokens=100, reservation_lease_s=300)
    alive = limiter(make_store(), clock, daily_tokens=100, reservation_lease_s=300)

    async def main() -> None:
        await dead.admit(acme, 90)  # never settled: its process was killed
        with pytest.raises(RateLimitError):
            await alive.admit(acme, 20)
        clock.advance(301)
        alive.settle(await alive.admit(acme, 20), 20)
        await alive.drain()

    asyncio.run(main())


def test_two_processes_share_one_budget(make_store: Callable[[], Store]) -> None:
    clock = FakeClock(T0)
    acme = Tenant("acme")
    limiters = [limiter(make_store(), clock, daily_tokens=1000) for _ in range(2)]

    async def one(lim: Limiter) -> int:
        try:
            res = await lim.admit(acme, 70)
        except RateLimitError:
            return 0
        await asyncio.sleep(0)
        lim.settle(res, 50)
        return 50

    async def main() -> list[int]:
        got = await asyncio.gather(*[one(lim) for _ in range(20) for lim in limiters])
        for lim in limiters:
            await lim.drain()
        return list(got)

    used = sum(asyncio.run(main()))
    assert 700 <= used <= 1000  # at most 1000 held at once: at least 14 of 40 admitted


def test_the_migration_carries_todays_usage_over_from_the_ledger(tmp_path: Path) -> None:
    """Budgets were counted from the ledger before the counters existed: a database migrated
    mid-day keeps what its tenants already spent today."""
    import json
    import sqlite3
    import time

    from boundgate.store.sqlite import load_migrations

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied REAL NOT NULL)"
    )
    for version, name, sql in load_migrations():
        if version > 8:
            break
        for statement in sql.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    now = time.time()
    rows = [  # (id, ts, prompt, completion, reuse, extra)
        ("a", now, 10, 20, None, None),
        ("b", now, 5, 5, "hit-exact", None),  # served from a stored answer: free
        ("c", now - 2 * DAY_S, 100, 100, None, None),  # another day
        ("d", now, 1, 2, "miss", json.dumps({"novel": True})),
    ]
    for rid, ts, p, c, reuse, extra in rows:
        conn.execute(
            "INSERT INTO ledger (id, ts, tenant, endpoint, prompt_tokens, completion_tokens, "
            "outcome, status, reuse, extra) VALUES (?, ?, 'acme', '/v1/chat/completions', ?, ?, "
            "'ok', 200, ?, ?)",
            (rid, ts, p, c, reuse, extra),
        )
    conn.close()
    store = SQLiteStore(db)
    store.open()
    try:
        day = float(int(now // DAY_S) * DAY_S)
        tokens = asyncio.run(store.counter_state("tokens:acme", day, now))
        novel = asyncio.run(store.counter_state("novel:acme", day, now))
        assert (tokens.used, novel.used) == (33, 1)
    finally:
        store.close()


def test_two_processes_share_one_novelty_budget(make_store: Callable[[], Store]) -> None:
    from boundgate.reuse.variants import CreativityBuffer
    from boundgate.settings import CreativitySettings

    clock = FakeClock(T0)
    limits = LimitsSettings(novelty_per_day=5)
    buffers = [
        CreativityBuffer(make_store(), None, clock, CreativitySettings(), limits) for _ in range(2)
    ]

    async def one(buf: CreativityBuffer) -> bool:
        try:
            await buf.admit_novel("acme")
        except RateLimitError as exc:
            assert exc.code == ErrorCode.NOVELTY_BUDGET_EXHAUSTED
            return False
        return True

    async def main() -> list[bool]:
        return list(await asyncio.gather(*[one(b) for _ in range(8) for b in buffers]))

    assert sum(asyncio.run(main())) == 5
    assert not asyncio.run(buffers[0].budget_left("acme"))
    clock.advance(DAY_S)
    assert asyncio.run(buffers[1].budget_left("acme"))


def test_a_running_requests_hold_is_renewed_past_its_lease(
    make_store: Callable[[], Store],
) -> None:
    """An audit's finding: a hold's lease (900 s by default) was never renewed, so the next
    claim that did not fit freed the hold of a request still running (a long stream, a wait
    behind a busy local model) and two requests together overran the budget. The process
    renews its running requests' holds (``renew``, every third of the lease); a settled
    one is not held any more, and a dropped one (never settled) is not renewed for ever."""
    clock = FakeClock(T0)
    lim = limiter(make_store(), clock, daily_tokens=50, reservation_lease_s=900)
    acme = Tenant("acme")

    async def main() -> None:
        running = await lim.admit(acme, 41)
        for _ in range(4):  # 20 minutes of generation, renewed every 5
            clock.advance(300)
            await lim.renew()
        with pytest.raises(RateLimitError) as exc:
            await lim.admit(acme, 41)  # 41 of 50 are still held by the running request
        assert exc.value.code == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        await lim.settle_now(running, 41)
        with pytest.raises(RateLimitError):
            await lim.admit(acme, 41)  # settled: 41 used
        clock.advance(DAY_S)
        dropped = await lim.admit(acme, 41)  # its request went away without settling
        del dropped
        import gc

        gc.collect()
        clock.advance(300)
        await lim.renew()  # nothing of it renewed: its lease frees it
        clock.advance(601)
        lim.settle(await lim.admit(acme, 41), 41)
        await lim.drain()

    asyncio.run(main())


def test_a_processs_own_claim_never_frees_its_running_requests_hold(
    make_store: Callable[[], Store],
) -> None:
    """The audit's reproduction: request A admitted, 15 minutes and a second pass (901 s,
    the lease 900 s) without a renewal by the timer, then B: B's claim does not fit and would
    free expired holds, but the limiter renews its own running requests' due holds first."""
    clock = FakeClock(T0)
    lim = limiter(make_store(), clock, daily_tokens=50, reservation_lease_s=900)
    acme = Tenant("acme")

    async def main() -> None:
        running = await lim.admit(acme, 41)
        clock.advance(901)
        with pytest.raises(RateLimitError):
            await lim.admit(acme, 41)
        await lim.settle_now(running, 41)

    asyncio.run(main())


def test_keep_held_renews_in_the_background(make_store: Callable[[], Store]) -> None:
    """``keep_held`` (the server's background task) renews every third of the lease."""
    store = make_store()
    clock = FakeClock(T0)
    lim = limiter(store, clock, daily_tokens=50, reservation_lease_s=0.03)
    day = T0 // DAY_S * DAY_S

    async def main() -> None:
        res = await lim.admit(Tenant("acme"), 41)
        clock.advance(1000)
        task = asyncio.create_task(lim.keep_held())
        try:
            for _ in range(1000):
                state = await store.counter_state("tokens:acme", day, clock.time())
                if state.held:
                    break
                await asyncio.sleep(0.01)
            assert state.held == 41 and state.next_expiry == pytest.approx(T0 + 1000.03)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        lim.settle(res, 41)
        await lim.drain()

    asyncio.run(main())


def test_each_key_is_counted_on_its_own_counters(make_store: Callable[[], Store]) -> None:
    """An audit's finding: limits are set per key but were counted per tenant, so the keys of
    one tenant shared one counter, each compared with its own limit (a key with a large
    budget spent a small one's), and a key without a limit charged nothing while its
    tenant's other keys paid for none of it. Each key has counters of its own now; work done
    without a key's limits (open mode, a tenant's background work) has the tenant's."""
    store = make_store()
    clock = FakeClock(T0)
    lim = limiter(store, clock, rpm=2, daily_tokens=100)  # the defaults a key may not set

    async def main() -> None:
        small = Tenant.of_key((await store.create_key("acme", daily_tokens=50)).key)
        large = Tenant.of_key((await store.create_key("acme", rpm=0, daily_tokens=0)).key)
        plain = Tenant.of_key((await store.create_key("acme")).key)  # the defaults, its own
        for _ in range(5):  # unlimited: it charges nobody
            lim.settle(await lim.admit(large, 1_000), 1_000)
        await lim.settle_now(await lim.admit(small, 50), 40)
        with pytest.raises(RateLimitError) as exc:
            await lim.admit(small, 11)  # its own 40 of 50
        assert small.limits_key is not None and small.limits_key in exc.value.message
        await lim.settle_now(await lim.admit(plain, 100), 90)  # the default budget: its own
        await lim.settle_now(await lim.admit(plain, 10), 10)
        with pytest.raises(RateLimitError) as exc:
            await lim.admit(plain, 1)  # its third request this minute (the default rpm)
        assert exc.value.code == ErrorCode.RATE_LIMIT_EXCEEDED
        await lim.admit(Tenant("acme"), 100)  # the tenant's own work: a counter of its own
        await lim.drain()
        day = T0 // DAY_S * DAY_S
        used = await store.counters_used("tokens:", day)
        assert used == {
            f"tokens:key:{small.limits_key}": 40,
            f"tokens:key:{plain.limits_key}": 100,
            "tokens:acme": 0,  # held, not settled
        }

    asyncio.run(main())


def test_background_work_takes_the_strictest_of_every_limit_of_the_keys(
    make_store: Callable[[], Store],
) -> None:
    """An audit's finding: a tenant's background work (a rebind) took the strictest of its
    keys' limits among those the keys set themselves, so a key on the settings' default
    (here 1000 tokens a day) did not count and the work ran under 50 000; nor did the keys'
    daily reasoning budgets count at all. Each limit is the strictest of what applies to the
    tenant's active keys, defaults included (0, unlimited, the loosest), counted on the
    tenant's own counters."""
    from boundgate.scheduler.handlers import background_tenant

    store = make_store()
    lim = limiter(store, FakeClock(T0), rpm=0, daily_tokens=1000, daily_reasoning_tokens=300)

    async def main() -> None:
        await store.create_key("acme", daily_reasoning_tokens=100)  # daily tokens: 1000
        await store.create_key("acme", rpm=30, daily_tokens=50_000, daily_reasoning_tokens=200)
        await store.create_key("acme", rpm=0, daily_tokens=0)  # unlimited, reasoning 300
        t = await background_tenant(store, lim, "acme")
        assert (t.rpm, t.daily_tokens, t.daily_reasoning_tokens) == (30, 1000, 100)
        assert t.counted_as == "acme"  # the tenant's own, no key's

    asyncio.run(main())
