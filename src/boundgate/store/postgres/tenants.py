"""The PostgreSQL store's tenants: API keys (``KeyStore``; checks cached per
``store.key_cache_s``) and budgets and rate limits as atomic claims (``LimitStore``)."""

from __future__ import annotations

import time
from typing import Any

from ..keys import key_id_of, mint_key, secret_matches
from ..rows import (
    ApiKey,
    Claim,
    CounterState,
    Hold,
    NewKey,
)
from .core import (
    PostgresBase,
    _all,
    _cols,
    _Conn,
    _one,
    _scalar,
)

_KEY_COLUMNS = [
    "id",
    "tenant",
    "admin",
    "created",
    "revoked",
    "rpm",
    "daily_tokens",
    "daily_reasoning_tokens",
]


_SETTLE = """
WITH h AS (
    DELETE FROM limit_holds
    WHERE hold_id = %(hold_id)s AND counter = %(counter)s AND window_start = %(window)s
    RETURNING amount
)
UPDATE limit_counters
SET used = used + %(used)s, reserved = reserved - COALESCE((SELECT SUM(amount) FROM h), 0)
WHERE counter = %(counter)s AND window_start = %(window)s
"""


_RENEW = """
UPDATE limit_holds AS lh SET expires = GREATEST(lh.expires, %(until)s)
FROM unnest(%(ids)s::text[], %(counters)s::text[], %(windows)s::float8[]) AS h(id, c, w)
WHERE lh.hold_id = h.id AND lh.counter = h.c AND lh.window_start = h.w
"""


class PostgresTenants(PostgresBase):
    """``KeyStore`` and ``LimitStore`` on PostgreSQL."""

    # --- keys and budgets ----------------------------------------------------------------
    async def create_key(
        self,
        tenant: str,
        admin: bool = False,
        rpm: int | None = None,
        daily_tokens: int | None = None,
        daily_reasoning_tokens: int | None = None,
    ) -> NewKey:
        m = mint_key()
        await self._execute(
            "INSERT INTO api_keys (id, tenant, admin, created, revoked, rpm, daily_tokens, "
            "daily_reasoning_tokens, salt, hash) "
            "VALUES (%s, %s, %s, %s, FALSE, %s, %s, %s, %s, %s)",
            (
                m.id,
                tenant,
                admin,
                m.created,
                rpm,
                daily_tokens,
                daily_reasoning_tokens,
                m.salt,
                m.digest,
            ),
        )
        self._has_keys = True
        self._keys_changed()
        key = ApiKey(
            m.id, tenant, admin, m.created, False, rpm, daily_tokens, daily_reasoning_tokens
        )
        return NewKey(key=key, secret=m.secret)

    async def verify_key(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        r = await self._key_row(key_id)
        if r is None:
            return None
        if not secret_matches(secret, bytes(r["salt"]), bytes(r["hash"])) or r["revoked"]:
            return None
        return ApiKey(**{c: r[c] for c in _KEY_COLUMNS})

    async def get_key(self, key_id: str) -> ApiKey | None:
        r = await self._key_row(key_id)
        return None if r is None else ApiKey(**{c: r[c] for c in _KEY_COLUMNS})

    async def _key_row(self, key_id: str) -> dict[str, Any] | None:
        """Key ``key_id``'s row (with its salt and hash): read, or kept for at most
        ``key_cache_s`` while the listener would hear of a change."""
        now = time.monotonic()
        cached = self._key_rows.get(key_id) if self._listening else None
        if cached is not None and now - cached[0] < self.key_cache_s:
            r: dict[str, Any] | None = cached[1]
        else:
            self._ensure_listener()
            generation = self._key_generation
            sql = f"SELECT {_cols(_KEY_COLUMNS)}, salt, hash FROM api_keys WHERE id = %s"
            r = await self._run(lambda conn: _one(conn, sql, (key_id,)))
            if r is not None:
                with self._keys_lock:  # unless a key changed while it was being read
                    if generation == self._key_generation:
                        self._key_rows[key_id] = (now, r)
        return r

    async def list_keys(self) -> list[ApiKey]:
        sql = f"SELECT {_cols(_KEY_COLUMNS)} FROM api_keys ORDER BY created, seq"
        rows = await self._run(lambda conn: _all(conn, sql))
        return [ApiKey(**{c: r[c] for c in _KEY_COLUMNS}) for r in rows]

    async def revoke_key(self, key_id: str) -> bool:
        sql = "UPDATE api_keys SET revoked = TRUE WHERE id = %s"
        revoked = await self._execute(sql, (key_id,)) == 1
        self._keys_changed()
        return revoked

    async def end_session(self, session_id: str, until: float, now: float) -> None:
        async def end(conn: _Conn) -> None:
            await conn.execute("DELETE FROM dashboard_signouts WHERE until < %s", (now,))
            await conn.execute(
                "INSERT INTO dashboard_signouts (session_id, until) VALUES (%s, %s) "
                "ON CONFLICT (session_id) DO UPDATE "
                "SET until = GREATEST(dashboard_signouts.until, excluded.until)",
                (session_id, until),
            )

        await self._run(end, tx=True)

    async def session_ended(self, session_id: str) -> bool:
        sql = "SELECT EXISTS (SELECT 1 FROM dashboard_signouts WHERE session_id = %s)"
        return bool(await self._run(lambda conn: _scalar(conn, sql, (session_id,))))

    async def has_keys(self) -> bool:
        if self._has_keys:  # keys are never deleted: once True, always True
            return True
        now = time.monotonic()
        seen = self._no_keys_at
        if self._listening and seen is not None and now - seen < self.key_cache_s:
            return False
        self._ensure_listener()
        generation = self._key_generation
        sql = "SELECT EXISTS (SELECT 1 FROM api_keys)"
        found = bool(await self._run(lambda conn: _scalar(conn, sql)))
        with self._keys_lock:
            if found:
                self._has_keys = True
            elif generation == self._key_generation:
                self._no_keys_at = now
        return found

    # --- budgets and rate limits ---------------------------------------------------------
    async def reserve(self, hold_id: str, claims: list[Claim], now: float) -> int | None:
        # one statement however many claims: boundgate_reserve (migration 0004) takes them
        # in counter order, each a conditional upsert, undoing all if one does not fit
        order = sorted(range(len(claims)), key=lambda i: (claims[i].counter, claims[i].window))
        ordered = [claims[i] for i in order]
        sql = (
            "SELECT boundgate_reserve(%s, %s::text[], %s::float8[], %s::bigint[], "
            "%s::bigint[], %s::float8[], %s)"
        )
        params = (
            hold_id,
            [c.counter for c in ordered],
            [c.window for c in ordered],
            [c.amount for c in ordered],
            [c.limit for c in ordered],
            [c.hold_s for c in ordered],
            now,
        )
        # a settle and a sweep of the same expired hold lock in opposite order: PostgreSQL
        # rolls one back, which can simply run again
        refused = await self._through_deadlocks(
            lambda: self._run(lambda conn: _scalar(conn, sql, params))
        )
        return None if refused is None else order[int(refused)]

    async def settle(self, hold_id: str, counter: str, window: float, used: int) -> None:
        params = {"hold_id": hold_id, "counter": counter, "window": window, "used": used}
        await self._through_deadlocks(lambda: self._execute(_SETTLE, params))

    async def renew_holds(self, holds: list[Hold], until: float) -> None:
        if not holds:
            return
        params = {
            "until": until,
            "ids": [h.hold_id for h in holds],
            "counters": [h.counter for h in holds],
            "windows": [h.window for h in holds],
        }
        # rows locked by a settle or a sweep in another order: rolled back, run again
        await self._through_deadlocks(lambda: self._execute(_RENEW, params))

    async def counter_state(self, counter: str, window: float, now: float) -> CounterState:
        sql = (
            "SELECT (SELECT used FROM limit_counters WHERE counter = %(c)s AND "
            "window_start = %(w)s) AS used, COALESCE(SUM(amount), 0) AS held, "
            "MIN(expires) AS expiry FROM limit_holds WHERE counter = %(c)s AND "
            "window_start = %(w)s AND expires >= %(now)s"
        )
        params = {"c": counter, "w": window, "now": now}
        r = await self._run(lambda conn: _one(conn, sql, params))
        assert r is not None
        return CounterState(int(r["used"] or 0), int(r["held"]), r["expiry"])

    async def prune_counters(self, before: float) -> None:
        async def prune(conn: _Conn) -> None:
            where = "window_start < %s AND window_start <> 0"
            await conn.execute(f"DELETE FROM limit_holds WHERE {where}", (before,))
            await conn.execute(f"DELETE FROM limit_counters WHERE {where}", (before,))

        await self._run(prune, tx=True)

    async def counters_used(self, prefix: str, window: float) -> dict[str, int]:
        # left() rather than LIKE: the prefix is taken literally ('_' and '%' in a tenant name)
        sql = (
            "SELECT counter, used FROM limit_counters "
            "WHERE left(counter, %(n)s) = %(p)s AND window_start = %(w)s"
        )
        params = {"n": len(prefix), "p": prefix, "w": window}
        rows = await self._run(lambda conn: _all(conn, sql, params))
        return {str(r["counter"]): int(r["used"]) for r in rows}
