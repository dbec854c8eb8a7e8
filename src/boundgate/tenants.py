"""Who is asking, and how much they may still ask.

Budgets are enforced by *reservation*: before a request runs, its worst case (input bytes, an
upper bound on BPE tokens, plus ``max_tokens``) is reserved against the tenant's daily token
budget; when it finishes, the reservation is replaced by the real usage. Checks and
reservations happen without an ``await`` in between, so concurrent requests on the event loop
can never jointly overrun a budget.

Reasoning models have a second daily budget, of reasoning tokens (``limits.daily_reasoning_
tokens``), kept the same way: a request reserves its worst case (its reasoning cap where the
gateway enforces it, else its ``max_tokens``) and settles the reasoning tokens it reported.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .clock import Clock
from .errors import ErrorCode, RateLimitError
from .store import ApiKey, Store

DAY_S = 86_400


@dataclass(frozen=True)
class Tenant:
    name: str
    key_id: str | None = None
    admin: bool = False
    rpm: int | None = None  # None: settings default; 0: unlimited
    daily_tokens: int | None = None
    daily_reasoning_tokens: int | None = None

    @classmethod
    def of_key(cls, key: ApiKey) -> Tenant:
        """The tenant an API key acts as, with that key's limits."""
        return cls(
            name=key.tenant,
            key_id=key.id,
            admin=key.admin,
            rpm=key.rpm,
            daily_tokens=key.daily_tokens,
            daily_reasoning_tokens=key.daily_reasoning_tokens,
        )


OPEN_TENANT = Tenant(name="local", key_id=None, admin=True)


@dataclass
class _Usage:
    day: int
    used: int  # settled tokens today
    reasoning_used: int = 0  # settled reasoning tokens today
    reserved: int = 0  # in-flight reservations
    reasoning_reserved: int = 0
    recent: deque[float] = field(default_factory=deque)  # request times in the last minute


@dataclass
class Reservation:
    tenant: str
    day: int
    tokens: int
    reasoning_tokens: int = 0
    settled: bool = False


class Limiter:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        rpm: int,
        daily_tokens: int,
        daily_reasoning_tokens: int = 0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.default_rpm = rpm
        self.default_daily = daily_tokens
        self.default_daily_reasoning = daily_reasoning_tokens
        self._usage: dict[str, _Usage] = {}

    async def _state(self, tenant: str, now: float) -> _Usage:
        day = int(now // DAY_S)
        st = self._usage.get(tenant)
        if st is None or st.day != day:
            used = await self.store.tokens_used(tenant, day * DAY_S)
            reasoning = await self.store.reasoning_tokens_used(tenant, day * DAY_S)
            st = self._usage.get(tenant)  # another request may have loaded it meanwhile
            if st is None or st.day != day:
                recent = st.recent if st is not None else deque()
                st = _Usage(day=day, used=used, reasoning_used=reasoning, recent=recent)
                self._usage[tenant] = st
        return st

    async def rpm_wait_s(self, tenant: Tenant) -> float:
        """Seconds until ``tenant`` may make another request under its requests-per-minute
        limit (0: now). Deferrable work (batch lines) waits this long instead of failing."""
        now = self.clock.time()
        st = await self._state(tenant.name, now)
        rpm = self.default_rpm if tenant.rpm is None else tenant.rpm
        if not rpm:
            return 0.0
        while st.recent and st.recent[0] <= now - 60:
            st.recent.popleft()
        return 0.0 if len(st.recent) < rpm else max(0.0, st.recent[0] + 60 - now)

    async def admit(
        self, tenant: Tenant, reserve_tokens: int, reserve_reasoning_tokens: int = 0
    ) -> Reservation:
        """Count one request and reserve tokens (and reasoning tokens), or raise 429 with
        Retry-After: ``rate_limit_exceeded``, ``daily_token_budget_exceeded`` or
        ``daily_reasoning_budget_exceeded``."""
        now = self.clock.time()
        st = await self._state(tenant.name, now)
        rpm = self.default_rpm if tenant.rpm is None else tenant.rpm
        if rpm:
            while st.recent and st.recent[0] <= now - 60:
                st.recent.popleft()
            if len(st.recent) >= rpm:
                raise RateLimitError(
                    f"tenant {tenant.name!r} is over its limit of {rpm} requests per minute",
                    retry_after=st.recent[0] + 60 - now,
                )
        budget = self.default_daily if tenant.daily_tokens is None else tenant.daily_tokens
        if budget and st.used + st.reserved + reserve_tokens > budget:
            left = max(0, budget - st.used - st.reserved)
            raise RateLimitError(
                f"tenant {tenant.name!r} has {left} of its {budget} daily tokens left; "
                f"this request may need up to {reserve_tokens} (lower max_tokens "
                "or wait for the next UTC day)",
                code=ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED,
                retry_after=(st.day + 1) * DAY_S - now,
            )
        reasoning_budget = (
            self.default_daily_reasoning
            if tenant.daily_reasoning_tokens is None
            else tenant.daily_reasoning_tokens
        )
        if (
            reasoning_budget
            and reserve_reasoning_tokens
            and st.reasoning_used + st.reasoning_reserved + reserve_reasoning_tokens
            > reasoning_budget
        ):
            left = max(0, reasoning_budget - st.reasoning_used - st.reasoning_reserved)
            raise RateLimitError(
                f"tenant {tenant.name!r} has {left} of its {reasoning_budget} daily reasoning "
                f"tokens left; this request may reason for up to {reserve_reasoning_tokens} "
                "(lower reasoning_effort or max_tokens, or wait for the next UTC day)",
                code=ErrorCode.DAILY_REASONING_BUDGET_EXCEEDED,
                retry_after=(st.day + 1) * DAY_S - now,
            )
        if rpm:
            st.recent.append(now)
        st.reserved += reserve_tokens
        st.reasoning_reserved += reserve_reasoning_tokens
        return Reservation(tenant.name, st.day, reserve_tokens, reserve_reasoning_tokens)

    def settle(self, res: Reservation, actual_tokens: int, reasoning_tokens: int = 0) -> None:
        """Replace a reservation by what was really used (idempotent)."""
        if res.settled:
            return
        res.settled = True
        st = self._usage.get(res.tenant)
        if st is None or st.day != res.day:
            return  # the day rolled over; the ledger holds the truth for the old day
        st.reserved -= res.tokens
        st.used += actual_tokens
        st.reasoning_reserved -= res.reasoning_tokens
        st.reasoning_used += reasoning_tokens
