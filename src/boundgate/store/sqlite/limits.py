"""The SQLite store's tenants: budgets and rate limits as atomic claims (``LimitStore``)
and API keys (``KeyStore``)."""

from __future__ import annotations

import sqlite3

from ..keys import key_id_of, mint_key, secret_matches
from ..rows import (
    ApiKey,
    Claim,
    CounterState,
    Hold,
    NewKey,
)
from .core import SQLiteBase


def _settle(conn: sqlite3.Connection, hold_id: str, counter: str, window: float, used: int) -> None:
    """``LimitStore.settle`` in the writer's transaction."""
    r = conn.execute(
        "DELETE FROM limit_holds WHERE hold_id = ? AND counter = ? AND window_start = ? "
        "RETURNING amount",
        (hold_id, counter, window),
    ).fetchone()
    conn.execute(
        "UPDATE limit_counters SET used = used + ?, reserved = reserved - ? "
        "WHERE counter = ? AND window_start = ?",
        (used, r[0] if r is not None else 0, counter, window),
    )


_TAKE = (
    # the first claim of a window creates its row; later ones add to it while it fits
    "INSERT INTO limit_counters (counter, window_start, used, reserved) "
    "SELECT :counter, :window, :used, :held WHERE :amount <= :limit "
    "ON CONFLICT (counter, window_start) DO UPDATE SET used = used + :used, "
    "reserved = reserved + :held WHERE used + reserved + :amount <= :limit RETURNING 1"
)


def _take(conn: sqlite3.Connection, hold_id: str, c: Claim, now: float) -> bool:
    """Take claim ``c`` if it fits, freeing expired holds first when it does not."""
    held = c.amount if c.hold_s is not None else 0
    params = {
        "counter": c.counter, "window": c.window, "amount": c.amount, "limit": c.limit,
        "used": c.amount - held, "held": held,
    }  # fmt: skip
    taken = conn.execute(_TAKE, params).fetchone() is not None
    if not taken:
        freed = conn.execute(
            "DELETE FROM limit_holds WHERE counter = ? AND window_start = ? AND expires < ? "
            "RETURNING amount",
            (c.counter, c.window, now),
        ).fetchall()
        if not freed:
            return False
        conn.execute(
            "UPDATE limit_counters SET reserved = reserved - ? "
            "WHERE counter = ? AND window_start = ?",
            (sum(r[0] for r in freed), c.counter, c.window),
        )
        taken = conn.execute(_TAKE, params).fetchone() is not None
    if taken and c.hold_s is not None:
        conn.execute(
            "INSERT INTO limit_holds (hold_id, counter, window_start, amount, expires) "
            "VALUES (?, ?, ?, ?, ?)",
            (hold_id, c.counter, c.window, c.amount, now + c.hold_s),
        )
    return taken


class SQLiteTenants(SQLiteBase):
    """``LimitStore`` and ``KeyStore`` on SQLite."""

    def open(self) -> None:
        super().open()
        self._refresh_keys(force=True)

    # --- budgets and rate limits -------------------------------------------------------
    async def reserve(self, hold_id: str, claims: list[Claim], now: float) -> int | None:
        order = sorted(range(len(claims)), key=lambda i: (claims[i].counter, claims[i].window))

        def take(conn: sqlite3.Connection) -> int | None:
            # one savepoint: inside the writer's transaction (or alone, when a failed group
            # is retried one write at a time) all claims are taken or none
            conn.execute("SAVEPOINT reserve")
            refused: int | None = None
            try:
                for i in order:
                    if not _take(conn, hold_id, claims[i], now):
                        refused = i
                        break
            except BaseException:
                conn.execute("ROLLBACK TO reserve")
                conn.execute("RELEASE reserve")
                raise
            if refused is not None:
                conn.execute("ROLLBACK TO reserve")
            conn.execute("RELEASE reserve")
            return refused

        return await self._call(take)

    async def settle(self, hold_id: str, counter: str, window: float, used: int) -> None:
        await self._call(lambda conn: _settle(conn, hold_id, counter, window, used))

    async def renew_holds(self, holds: list[Hold], until: float) -> None:
        if not holds:
            return

        def renew(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE limit_holds SET expires = MAX(expires, ?) "
                "WHERE hold_id = ? AND counter = ? AND window_start = ?",
                [(until, h.hold_id, h.counter, h.window) for h in holds],
            )

        await self._call(renew)

    async def counter_state(self, counter: str, window: float, now: float) -> CounterState:
        def run(conn: sqlite3.Connection) -> CounterState:
            used = conn.execute(
                "SELECT used FROM limit_counters WHERE counter = ? AND window_start = ?",
                (counter, window),
            ).fetchone()
            held, expiry = conn.execute(
                "SELECT COALESCE(SUM(amount), 0), MIN(expires) FROM limit_holds "
                "WHERE counter = ? AND window_start = ? AND expires >= ?",
                (counter, window, now),
            ).fetchone()
            return CounterState(int(used[0]) if used else 0, int(held), expiry)

        return await self._read(run)

    async def prune_counters(self, before: float) -> None:
        def prune(conn: sqlite3.Connection) -> None:
            where = "window_start < ? AND window_start <> 0"
            conn.execute(f"DELETE FROM limit_holds WHERE {where}", (before,))
            conn.execute(f"DELETE FROM limit_counters WHERE {where}", (before,))

        await self._call(prune)

    async def counters_used(self, prefix: str, window: float) -> dict[str, int]:
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT counter, used FROM limit_counters "
                "WHERE substr(counter, 1, ?) = ? AND window_start = ?",
                (len(prefix), prefix, window),
            ).fetchall()
            return {str(r[0]): int(r[1]) for r in rows}

        return await self._read(run)

    # --- keys ----------------------------------------------------------------------------
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
            "daily_reasoning_tokens, salt, hash) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (
                m.id,
                tenant,
                int(admin),
                m.created,
                rpm,
                daily_tokens,
                daily_reasoning_tokens,
                m.salt,
                m.digest,
            ),
        )
        self._refresh_keys(force=True)
        key = ApiKey(
            m.id, tenant, admin, m.created, False, rpm, daily_tokens, daily_reasoning_tokens
        )
        return NewKey(key=key, secret=m.secret)

    def _refresh_keys(self, force: bool = False) -> None:
        """Reload the key table if it changed (also when another process changed it).

        Keys are never deleted, so (count, revoked count) changes with every create and revoke;
        checking it is one tiny query, cheaper than re-reading the table on every request.
        """
        conn = self._reader()
        count, revoked = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(revoked), 0) FROM api_keys"
        ).fetchone()
        fingerprint = (int(count), int(revoked))
        if not force and fingerprint == self._keys_fingerprint:
            return
        keys: dict[str, tuple[ApiKey, bytes, bytes]] = {}
        for r in conn.execute("SELECT * FROM api_keys"):
            key = ApiKey(
                r["id"],
                r["tenant"],
                bool(r["admin"]),
                r["created"],
                bool(r["revoked"]),
                r["rpm"],
                r["daily_tokens"],
                r["daily_reasoning_tokens"],
            )
            keys[key.id] = (key, bytes(r["salt"]), bytes(r["hash"]))
        self._keys = keys
        self._has_keys = bool(keys)
        self._keys_fingerprint = fingerprint

    async def verify_key(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        self._refresh_keys()
        entry = self._keys.get(key_id)
        if entry is None:
            return None
        key, salt, digest = entry
        if not secret_matches(secret, salt, digest) or key.revoked:
            return None
        return key

    async def get_key(self, key_id: str) -> ApiKey | None:
        self._refresh_keys()
        entry = self._keys.get(key_id)
        return None if entry is None else entry[0]

    async def list_keys(self) -> list[ApiKey]:
        self._refresh_keys(force=True)
        return sorted((k for k, _, _ in self._keys.values()), key=lambda k: k.created)

    async def revoke_key(self, key_id: str) -> bool:
        self._refresh_keys(force=True)
        if key_id not in self._keys:
            return False
        await self._execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,))
        self._refresh_keys(force=True)
        return True

    async def has_keys(self) -> bool:
        self._refresh_keys()
        return self._has_keys

    async def end_session(self, session_id: str, until: float, now: float) -> None:
        def end(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM dashboard_signouts WHERE until < ?", (now,))
            conn.execute(
                "INSERT INTO dashboard_signouts (session_id, until) VALUES (?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET until = max(until, excluded.until)",
                (session_id, until),
            )

        await self._call(end)

    async def session_ended(self, session_id: str) -> bool:
        sql = "SELECT 1 FROM dashboard_signouts WHERE session_id = ?"
        row = await self._read(lambda conn: conn.execute(sql, (session_id,)).fetchone())
        return row is not None
