"""Who is asking, and how much they may still ask.

Limits are an API key's: ``boundgate keys create --rpm N --daily-tokens N
--daily-reasoning-tokens N`` gives the key its own, and a limit the key does not set is the
settings' default (``[limits]``), also the key's own. So each key is counted on counters of its
own (``<what>:key:<key id>``): two keys of one tenant never share a budget, and a key without
limits (0) is not charged anything. Work done for a tenant without a key of its own limits
(open local mode; a tenant's background work such as rebinding a stale document, under the
strictest limits of its keys: ``scheduler.handlers.background_tenant``) is counted on the
tenant's counters (``<what>:<tenant>``). :attr:`Tenant.counted_as` names whose counters a
request draws on.

Limits live in the store (:class:`~boundgate.store.LimitStore`), so every gateway process
sharing a database enforces one limit, not one each (issue #14):

- **Daily token budget** (``tokens:…``, window = the UTC day): before a request runs,
  its worst case (input bytes, an upper bound on BPE tokens, plus the tokens the model's
  prompt format adds, ``Backend.template_tokens``, plus ``max_tokens``) is *held*
  against the budget in one conditional update (``used + held + n <= budget``); after it
  finished, the hold is *settled*: replaced by the tokens really used (0 for answers served
  from stored answers). A hold carries a lease (``limits.reservation_lease_s``) that its
  process renews every third of it while the request runs (:meth:`Limiter.keep_held`: a long
  stream, a request queued behind a busy local model; and before each of its own claims, what
  is due), so a claim's sweep of expired holds never frees a running request's; a hold whose
  process died is freed when its lease runs out. Settling happens right after the response, off
  its path (a non-streamed reused answer's holds go back in its ledger row's statement
  instead: :meth:`Limiter.release_of`); until it commits the hold still counts, so the budget
  is only ever over-estimated, never overrun. A ``model: "auto"`` request holds one rung at a
  time: each rung's worst case before it runs, settled (:meth:`Limiter.settle_now`) before the
  next rung holds its own (``count=False``: the request was counted once).
- **Requests per minute** (``rpm:…``): a *sliding* window. Each admitted request holds
  1 for 60 s and is never settled, so at most ``rpm`` requests are admitted in any 60 seconds;
  ``Retry-After`` is when the oldest of them leaves the window.

- **Daily reasoning-token budget** (``reasoning:…``, the UTC day) for reasoning models
  (``limits.daily_reasoning_tokens`` or the key's own): held and settled the same way, with the
  request's worst case (its reasoning cap where the gateway enforces it, else its
  ``max_tokens``) held and the reasoning tokens it reported settled.

All are claimed in one reservation: a request refused by one limit does not count against the
others. A request the daily budget refuses may still be served a stored answer (it uses no
tokens), so it is counted per minute while it looks for one; when none serves it, its
per-minute slot is given back (:meth:`Limiter.uncount`): a refused request never counts
against the rate; nor does one a local model refused before it started on it (its queue
full: 503 ``overloaded``, which the OpenAI SDKs retry by themselves). A request larger than
a whole budget, which no wait makes room for, is the gateway's 400 ``invalid_value`` rather
than a 429 (``Gateway._beyond_budget``). Keys (and tenants) without limits (all 0) never touch
the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from .clock import Clock
from .errors import ErrorCode, RateLimitError
from .settings import LimitsSettings
from .store import (
    ApiKey,
    Claim,
    Hold,
    KeyStore,
    LedgerRow,
    LimitStore,
    NewKey,
    Release,
    StoreUnavailableError,
)
from .store.outages import OutageLog

DAY_S = 86_400
RPM_WINDOW_S = 60.0
PRUNE_EVERY_S = 3600.0  # how often old days' counters are deleted
# settles an outage left undone are tried again this often until the store is back
# (``Limiter.settle_unsettled``), and at most this many are kept (the oldest dropped first)
UNSETTLED_RETRY_S = 5.0
UNSETTLED_KEPT = 100_000
KEEP_DAYS = 2  # days of counters kept (today and yesterday, for late settles)


def day_window(now: float) -> float:
    """The start of the UTC day of ``now`` (unix seconds): a daily counter's window."""
    return float(int(now // DAY_S) * DAY_S)


def kept_from(now: float) -> float:
    """The start of the oldest day whose counters are kept (``KEEP_DAYS``): older ones are
    pruned (``LimitStore.prune_counters``)."""
    return (now // DAY_S - (KEEP_DAYS - 1)) * DAY_S


log = logging.getLogger("boundgate")


@dataclass(frozen=True)
class Tenant:
    """Who a request acts as (``name``, the tenant; ``key_id``, its key, for the ledger) and
    the limits it runs under: ``rpm``, ``daily_tokens`` and ``daily_reasoning_tokens``
    (None: the settings' default; 0: unlimited), those of key ``limits_key`` (counted on that
    key's own counters) or, when None, the tenant's own (counted on the tenant's)."""

    name: str
    key_id: str | None = None
    admin: bool = False
    rpm: int | None = None  # None: settings default; 0: unlimited
    daily_tokens: int | None = None
    daily_reasoning_tokens: int | None = None
    limits_key: str | None = None  # the key whose limits these are (None: the tenant's)

    @classmethod
    def of_key(cls, key: ApiKey) -> Tenant:
        """The tenant an API key acts as, with that key's limits, counted for that key."""
        return cls(
            name=key.tenant,
            key_id=key.id,
            admin=key.admin,
            rpm=key.rpm,
            daily_tokens=key.daily_tokens,
            daily_reasoning_tokens=key.daily_reasoning_tokens,
            limits_key=key.id,
        )

    @property
    def counted_as(self) -> str:
        """Whose counters its limits are counted on: ``key:<id>`` for a key's limits, else
        the tenant's name."""
        return key_counters(self.limits_key) if self.limits_key is not None else self.name

    def describe(self) -> str:
        """Whose limits they are, for a refusal's message."""
        if self.limits_key is not None:
            return f"key {self.limits_key!r} of tenant {self.name!r}"
        return f"tenant {self.name!r}"


_NO_LIMIT = 2**62  # a claim that always fits (the counters are 64-bit integers)


class RotatingStore(KeyStore, LimitStore, Protocol):
    """A store with keys and limit counters (every ``Store`` is one)."""


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate_key` did: the new key (its secret shown once), and the tokens and
    reasoning tokens of today it carries over from the old one."""

    new: NewKey
    tokens_today: int
    reasoning_tokens_today: int


async def rotate_key(store: RotatingStore, old: ApiKey, now: float) -> Rotation:
    """Replace ``old`` with a new key of the same tenant, admin flag and limits, carrying
    today's (UTC) used daily tokens and reasoning tokens over to it, then revoke ``old``.

    Limits are a key's and counted per key, so a new key made by hand started the day at 0
    (an operator's trial: a tenant at 186 of 300 tokens got 300 more by "rotating"). Tokens
    held by the old key's requests still running settle on the old key's counters (they
    are not carried); its requests-per-minute window is not carried either (it lasts a
    minute). Raises ``ValueError`` for a revoked key."""
    if old.revoked:
        raise ValueError(f"key {old.id} is revoked; create a new key instead")
    new = await store.create_key(
        old.tenant,
        admin=old.admin,
        rpm=old.rpm,
        daily_tokens=old.daily_tokens,
        daily_reasoning_tokens=old.daily_reasoning_tokens,
    )
    window = day_window(now)
    was, now_is = key_counters(old.id), key_counters(new.key.id)
    carried = []
    for counter in (tokens_counter, reasoning_counter):
        used = (await store.counter_state(counter(was), window, now)).used
        if used > 0:  # a claim without a hold counts as used at once; no limit to fit under
            claim = Claim(counter(now_is), window, used, _NO_LIMIT)
            await store.reserve(uuid.uuid4().hex, [claim], now)
        carried.append(used)
    await store.revoke_key(old.id)
    return Rotation(new, carried[0], carried[1])


# a tenant's name (``boundgate keys create --tenant``): no other can hold a key, so a
# document bound for another can never be served (``binding.parse`` refuses it)
TENANT_NAME = r"[A-Za-z0-9_.@-]{1,64}"
TENANT_NAME_RULE = "1-64 ASCII letters, digits, or _ . @ -"  # what TENANT_NAME says
OPEN_TENANT = Tenant(name="local", key_id=None, admin=True)
# whom a request refused before its key was read is ledgered under (no tenant's)
UNAUTHENTICATED = Tenant(name="unauthenticated")


def key_counters(key_id: str) -> str:
    """What a key's counters are named after (``tokens:key:<id>``, ...)."""
    return f"key:{key_id}"


def tokens_counter(owner: str) -> str:
    """The daily token budget's counter of ``owner`` (:attr:`Tenant.counted_as`)."""
    return f"tokens:{owner}"


def rpm_counter(owner: str) -> str:
    return f"rpm:{owner}"


def reasoning_counter(owner: str) -> str:
    return f"reasoning:{owner}"


@dataclass
class Reservation:
    """What :meth:`Limiter.admit` held for one request: ``tokens`` on the daily budget of
    ``owner`` (:attr:`Tenant.counted_as`) of ``day`` (UTC day number) under ``hold_id``
    (None: nothing held, no budget)."""

    owner: str
    day: int
    tokens: int
    hold_id: str | None = None
    settled: bool = False
    reasoning_tokens: int = 0  # held on the reasoning budget (0: none held)
    budget_held: bool = True  # ``tokens`` held on the daily token budget under ``hold_id``
    # the hold of the request's per-minute slot (None: not counted, or given back by
    # :meth:`Limiter.uncount`)
    rpm_hold: str | None = None
    renewed: float = 0.0  # when its holds' lease was last set (the clock's time)


class Limiter:
    """Admits requests under their key's limits (``limits``: the defaults; a key's own
    ``rpm``/``daily_tokens``/``daily_reasoning_tokens`` override them), each key counted on
    its own counters (:attr:`Tenant.counted_as`)."""

    def __init__(self, store: LimitStore, clock: Clock, limits: LimitsSettings) -> None:
        self.store = store
        self.clock = clock
        self.limits = limits
        self._settling: set[asyncio.Task[None]] = set()
        # (hold id, counter, owner, window, used) of settles the store was unavailable for;
        # ``keep_held`` is woken to try them again
        self._unsettled: deque[tuple[str, str, str, float, int]] = deque(maxlen=UNSETTLED_KEPT)
        self._wake = asyncio.Event()
        # renewals meeting the store out of reach: one warning per outage, no traceback (a
        # trial's replica logged one at each try)
        self._renewals = OutageLog(log, "budget: renewing the holds of running requests")
        self._pruned_at = float("-inf")
        # the reservations of requests still running, by hold id: their holds are renewed
        # (:meth:`renew`) until they are settled. Weak: a reservation its request dropped
        # without settling (a bug) is not renewed for ever, its lease frees it.
        self._running: weakref.WeakValueDictionary[str, Reservation] = weakref.WeakValueDictionary()

    @property
    def default_rpm(self) -> int:
        return self.limits.rpm

    @property
    def default_daily(self) -> int:
        return self.limits.daily_tokens

    def rpm(self, tenant: Tenant) -> int:
        """``tenant``'s requests per minute (0: unlimited)."""
        return self.limits.rpm if tenant.rpm is None else tenant.rpm

    def budget(self, tenant: Tenant) -> int:
        """``tenant``'s daily token budget (0: unlimited)."""
        return self.limits.daily_tokens if tenant.daily_tokens is None else tenant.daily_tokens

    def reasoning_budget(self, tenant: Tenant) -> int:
        """``tenant``'s daily reasoning-token budget (0: unlimited)."""
        if tenant.daily_reasoning_tokens is None:
            return self.limits.daily_reasoning_tokens
        return tenant.daily_reasoning_tokens

    async def rpm_wait_s(self, tenant: Tenant) -> float:
        """Seconds until ``tenant`` may make another request under its requests-per-minute
        limit (0: now). Deferrable work (batch lines) waits this long instead of failing."""
        rpm = self.rpm(tenant)
        if not rpm:
            return 0.0
        now = self.clock.time()
        state = await self.store.counter_state(rpm_counter(tenant.counted_as), 0.0, now)
        if state.held < rpm or state.next_expiry is None:
            return 0.0
        return min(RPM_WINDOW_S, max(0.0, state.next_expiry - now))

    async def admit(
        self,
        tenant: Tenant,
        reserve_tokens: int,
        reserve_reasoning_tokens: int = 0,
        *,
        budgets: bool = True,
        count: bool = True,
        shrink: str = "lower max_tokens",
    ) -> Reservation:
        """Count one request and hold ``reserve_tokens`` on its key's daily budget (and
        ``reserve_reasoning_tokens`` on its reasoning budget), or raise
        :class:`RateLimitError` (429, ``rate_limit_exceeded``, ``daily_token_budget_exceeded``
        or ``daily_reasoning_budget_exceeded``) with ``retry_after`` in seconds.
        ``budgets=False``: count the request only (a stored answer uses no tokens).
        ``count=False``: hold on the budgets only, for a request already counted (the next
        rung of a ``model: "auto"`` request). ``shrink``: how the request could need fewer
        tokens, for the daily budget's refusal (an embeddings request has no max_tokens)."""
        now = self.clock.time()
        day = int(now // DAY_S)
        rpm = self.rpm(tenant) if count else 0
        budget = self.budget(tenant) if budgets else 0
        reasoning = self.reasoning_budget(tenant) if reserve_reasoning_tokens and budgets else 0
        owner = tenant.counted_as
        if not rpm and not budget and not reasoning:
            return Reservation(owner, day, reserve_tokens)
        claims = []
        if rpm:
            claims.append(Claim(rpm_counter(owner), 0.0, 1, rpm, RPM_WINDOW_S))
        if budget:
            claims.append(
                Claim(
                    tokens_counter(owner),
                    float(day * DAY_S),
                    reserve_tokens,
                    budget,
                    self.limits.reservation_lease_s,
                )
            )
        if reasoning:
            claims.append(
                Claim(
                    reasoning_counter(owner),
                    float(day * DAY_S),
                    reserve_reasoning_tokens,
                    reasoning,
                    self.limits.reservation_lease_s,
                )
            )
        if (budget or reasoning) and self._running:
            await self._renew_due()
        hold_id = uuid.uuid4().hex
        refused = await self.store.reserve(hold_id, claims, now)
        self._maybe_prune(now)
        if refused is None:
            res = Reservation(
                owner,
                day,
                reserve_tokens,
                hold_id if budget or reasoning else None,
                reasoning_tokens=reserve_reasoning_tokens if reasoning else 0,
                budget_held=bool(budget),
                rpm_hold=hold_id if rpm else None,
                renewed=now,
            )
            if res.hold_id is not None:
                self._running[res.hold_id] = res
            return res
        claim = claims[refused]
        state = await self.store.counter_state(claim.counter, claim.window, now)
        if claim.counter == rpm_counter(owner):
            expiry = state.next_expiry if state.next_expiry is not None else now + RPM_WINDOW_S
            # another process's clock read may be a little ahead of ours: never over 60 s
            wait_s = min(RPM_WINDOW_S, max(1.0, expiry - now))
            raise RateLimitError(
                f"{tenant.describe()} is over its limit of {rpm} requests per minute",
                retry_after=wait_s,
            )
        if claim.counter == reasoning_counter(owner):
            left = max(0, reasoning - state.used - state.held)
            raise RateLimitError(
                f"{tenant.describe()} has {left} of its {reasoning} daily reasoning "
                f"tokens left; this request may reason for up to {reserve_reasoning_tokens} "
                "(lower reasoning_effort or max_tokens, or wait for the next UTC day)",
                code=ErrorCode.DAILY_REASONING_BUDGET_EXCEEDED,
                retry_after=(day + 1) * DAY_S - now,
            )
        left = max(0, budget - state.used - state.held)
        raise RateLimitError(
            f"{tenant.describe()} has {left} of its {budget} daily tokens left; "
            f"this request may need up to {reserve_tokens} ({shrink} "
            "or wait for the next UTC day)",
            code=ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED,
            retry_after=(day + 1) * DAY_S - now,
        )

    async def charge_interrupted(self, rows: list[LedgerRow]) -> None:
        """Charge the tokens of requests whose process died mid-answer (their ``interrupted``
        rows, as ``LedgerWriter.recover`` wrote them: the prompt and the output counted at
        the last renewal) to their keys' daily token and reasoning budgets, in the UTC day
        they started. Their process never settled their holds, which free themselves when
        their lease (``limits.reservation_lease_s``) runs out, so until then a key carries
        both (a trial saw the tokens never charged at all). A key without a budget has no
        counter that day: nothing is charged."""
        await self._charge_rows(rows, 1)

    async def uncharge_interrupted(self, rows: list[LedgerRow]) -> None:
        """Take back what :meth:`charge_interrupted` charged for ``rows``: ``interrupted``
        rows a process made of requests that were still running (their notes' leases
        lapsed: their process stalled or could not reach the store), which their own rows
        replaced; their own settles charge their whole usage (``LedgerWriter.on_replaced``)."""
        await self._charge_rows(rows, -1)

    async def _charge_rows(self, rows: list[LedgerRow], sign: int) -> None:
        """Add (``sign`` 1) or take back (-1) the tokens of ``rows`` on their keys' daily
        token and reasoning counters, in the UTC day each started."""
        for row in rows:
            owner = Tenant(row.tenant, row.key_id, limits_key=row.key_id).counted_as
            window = day_window(row.ts)
            charges = (
                (tokens_counter(owner), row.prompt_tokens + row.completion_tokens),
                (reasoning_counter(owner), row.reasoning_tokens),
            )
            for counter, used in charges:
                if used > 0:
                    await self.store.settle(uuid.uuid4().hex, counter, window, sign * used)

    async def uncount(self, res: Reservation) -> None:
        """Give back the per-minute slot ``res`` took: its request was refused after it was
        counted (its daily budget was spent and no stored answer served it), and a refused
        request does not count against its rate. Returns once the store has it (the 429 is
        sent after: a client's next request is not refused for it); idempotent."""
        hold, res.rpm_hold = res.rpm_hold, None
        if hold is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._settle(hold, rpm_counter(res.owner), res.owner, 0.0, 0)
        )
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    def release_of(self, res: Reservation) -> Release | None:
        """The holds of ``res`` as settling it with nothing used would give them back, to be
        released in the statement that records a reused answer's ledger row
        (``LedgerStore.record_hit``): one round trip less than :meth:`settle`. None: nothing
        is held. Call :meth:`released` once that row is committed."""
        if res.settled or res.hold_id is None:
            return None
        window = float(res.day * DAY_S)
        counters = tuple((counter, window) for counter, _ in _held(res, 0, 0))
        return Release(res.hold_id, counters) if counters else None

    def released(self, res: Reservation) -> None:
        """The holds of :meth:`release_of` were given back with the ledger row: ``res`` is
        settled (a later :meth:`settle` does nothing)."""
        res.settled = True
        self._forget(res)

    def settle(self, res: Reservation, actual_tokens: int, reasoning_tokens: int = 0) -> None:
        """Replace a reservation by what was really used (idempotent). The store write runs
        in the background (it may be called while the request is being cancelled);
        :meth:`drain` waits for it."""
        self._settle_tasks(res, actual_tokens, reasoning_tokens)

    async def settle_now(
        self, res: Reservation, actual_tokens: int, reasoning_tokens: int = 0
    ) -> None:
        """:meth:`settle`, returning once the store has the real usage: a request that holds
        again next (an auto request's next rung) is then not refused for the hold it just
        gave back. Cancelling the caller does not cancel the write."""
        tasks = self._settle_tasks(res, actual_tokens, reasoning_tokens)
        if tasks:
            await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))

    def _settle_tasks(
        self, res: Reservation, actual_tokens: int, reasoning_tokens: int
    ) -> list[asyncio.Task[None]]:
        if res.settled:
            return []
        res.settled = True
        self._forget(res)
        if res.hold_id is None:
            return []
        window = float(res.day * DAY_S)
        tasks = []
        for counter, used in _held(res, actual_tokens, reasoning_tokens):
            task = asyncio.get_running_loop().create_task(
                self._settle(res.hold_id, counter, res.owner, window, used)
            )
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
            tasks.append(task)
        return tasks

    async def _settle(
        self, hold_id: str, counter: str, owner: str, window: float, used: int
    ) -> None:
        try:
            await self.store.settle(hold_id, counter, window, used)
        except StoreUnavailableError as exc:
            # an outage: settled again once the store is back (``settle_unsettled``; a
            # trial's key counted 1,404 tokens of the 2,888 its ledger rows held)
            self._unsettled.append((hold_id, counter, owner, window, used))  # oldest dropped
            self._wake.set()
            log.warning(
                "budget: a reservation of %r is settled once the store is back (%s)", owner, exc
            )
        except Exception:  # the hold expires with its lease; the ledger keeps the truth
            log.exception("budget: settling a reservation of %r failed", owner)

    async def settle_unsettled(self) -> int:
        """Settle again, oldest first, what an outage left unsettled (``_settle``); stops at
        the first the store is still unavailable for. Each adds its real usage to its
        counter and gives back its hold if that has not lapsed yet. Returns how many are
        still waiting."""
        while self._unsettled:
            hold_id, counter, owner, window, used = self._unsettled[0]
            try:
                await self.store.settle(hold_id, counter, window, used)
            except StoreUnavailableError:
                break
            except Exception:
                log.exception("budget: settling a reservation of %r failed", owner)
            self._unsettled.popleft()
        return len(self._unsettled)

    def _forget(self, res: Reservation) -> None:
        if res.hold_id is not None:
            self._running.pop(res.hold_id, None)

    async def renew(self, *, due: bool = False) -> None:
        """Extend the leases of the holds of this process's requests still running (not
        settled yet) by ``limits.reservation_lease_s`` from now; ``due``: only those last
        renewed a third of the lease ago or more."""
        now = self.clock.time()
        every = self.limits.reservation_lease_s / 3
        running = [
            res
            for res in list(self._running.values())
            if res.hold_id is not None
            and not res.settled
            and (not due or now - res.renewed >= every)
        ]
        holds = [
            Hold(res.hold_id, counter, float(res.day * DAY_S))
            for res in running
            if res.hold_id is not None
            for counter, _ in _held(res, 0, 0)
        ]
        if not holds:
            return
        await self.store.renew_holds(holds, now + self.limits.reservation_lease_s)
        for res in running:
            res.renewed = now

    async def _renew_due(self) -> None:
        """Before a claim (which frees expired holds when it does not fit), renew what is
        due of this process's running requests' holds, so its own claims never free them
        whatever :meth:`keep_held`'s timer did (a stalled loop; a clock moved by hand)."""
        try:
            await self.renew(due=True)
        except Exception as exc:  # the claim decides; keep_held tries again
            self._renewals.failed(exc)

    async def keep_held(self) -> None:
        """Renew the holds of running requests every third of their lease (the server runs
        this in the background from start-up on), so however long a request runs (a long
        stream, a wait behind a busy local model) no other request's claim frees its hold;
        those of a process that died lapse with their lease."""
        while True:
            try:
                await self.renew()
                self._renewals.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store restarting: try again next time
                self._renewals.failed(exc)
            self._wake.clear()
            waiting = await self.settle_unsettled()
            every = self.limits.reservation_lease_s / 3
            with contextlib.suppress(TimeoutError):  # or woken by a settle left undone
                await asyncio.wait_for(
                    self._wake.wait(), min(every, UNSETTLED_RETRY_S) if waiting else every
                )

    def _maybe_prune(self, now: float) -> None:
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        task = asyncio.get_running_loop().create_task(self._prune(kept_from(now)))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _prune(self, before: float) -> None:
        try:
            await self.store.prune_counters(before)
        except StoreUnavailableError as exc:  # an outage: the next prune takes them
            log.warning("budget: old counters not pruned, the store is out of reach (%s)", exc)
        except Exception:
            log.exception("budget: pruning old counters failed")

    async def drain(self) -> None:
        """Wait until every settle started so far is committed."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)


def _held(res: Reservation, tokens: int, reasoning_tokens: int) -> list[tuple[str, int]]:
    """The daily counters ``res`` holds on, each with the amount really used on it: the token
    budget (``tokens``) and the reasoning-token budget (``reasoning_tokens``)."""
    held = []
    if res.budget_held:
        held.append((tokens_counter(res.owner), tokens))
    if res.reasoning_tokens:
        held.append((reasoning_counter(res.owner), reasoning_tokens))
    return held
