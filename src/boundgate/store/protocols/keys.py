"""API keys: minted, checked, revoked.

The conventions every method keeps are the package docstring's.
"""

from __future__ import annotations

from typing import Protocol

from ..rows import (
    ApiKey,
    NewKey,
)


class KeyStore(Protocol):
    """API keys and the per-tenant budgets they carry (daily tokens, daily fresh creative
    generations), which are read from the ledger."""

    async def create_key(
        self,
        tenant: str,
        admin: bool = False,
        rpm: int | None = None,
        daily_tokens: int | None = None,
        daily_reasoning_tokens: int | None = None,
    ) -> NewKey:
        """A new key for ``tenant``; the secret is returned once and only its salted hash is
        stored. ``rpm``, ``daily_tokens`` and ``daily_reasoning_tokens``: per-key limits (None:
        the settings' default)."""

    async def verify_key(self, secret: str) -> ApiKey | None:
        """The key whose secret is ``secret``; None if the string is malformed, unknown or
        revoked. Compares in constant time; sees keys created or revoked by other processes.
        This is on every request's path: implementations keep it cheap (a cache validated by
        a tiny query)."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with id ``key_id``, revoked ones included; None if there is none. Sees
        keys revoked by other processes, and is as cheap as :meth:`verify_key` (a batch
        checks its key before every line)."""

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke key ``key_id`` (for good); False if there is no such key."""

    async def has_keys(self) -> bool:
        """True once any key was created, revoked ones included (else: open local mode).

        Revoking the last key must not silently reopen the gateway to everyone.
        """

    async def end_session(self, session_id: str, until: float, now: float) -> None:
        """Record that dashboard session ``session_id`` was signed out: :meth:`session_ended`
        is True for it in every process sharing the store until ``until`` (epoch s; at least
        the session cookie's own expiry). Drops the records whose ``until`` is before
        ``now`` (epoch s)."""

    async def session_ended(self, session_id: str) -> bool:
        """True if dashboard session ``session_id`` was signed out (:meth:`end_session`) and
        its record is kept. One indexed read; on every dashboard page's path."""

    async def tokens_used(self, tenant: str, since: float) -> int:
        """Prompt plus completion tokens ``tenant`` spent since ``since`` (daily budgets);
        requests answered from stored answers (reuse ``hit-*``) count 0. Reads committed
        ledger rows, so a row returned by :meth:`LedgerStore.record` counts at once."""

    async def reasoning_tokens_used(self, tenant: str, since: float) -> int:
        """Reasoning tokens ``tenant`` spent since ``since`` (the daily reasoning budget): the
        ledger's ``reasoning_tokens``, hits counting 0, committed rows at once, as
        :meth:`tokens_used`."""

    async def novel_used(self, tenant: str, since: float) -> int:
        """Fresh above-dial (creative) generations ``tenant`` had since ``since``: ledger rows
        with outcome ok and ``extra["novel"]`` true (the novelty budget)."""
