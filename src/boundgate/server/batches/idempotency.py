"""``Idempotency-Key`` on ``POST /v1/batches`` and ``POST /v1/files`` (Stripe's semantics).

A client that never got the answer to a request that made a batch (the gateway died after
storing it, the connection dropped) sends it again, and without a key the retry makes a second
batch that runs too: twice the cost and twice the energy. A request with the header
``Idempotency-Key`` (printable ASCII, 1 to 255 characters) has its key kept with the object it
made, in the same transaction (``FileStore.put_batch``, ``put_file``), per tenant and API key,
for ``TTL_S`` (24 h):

- the same key with the same parameters gets the object the first request made, as it is now,
  and nothing is made again; of requests under one key at once (in any process), one makes it
  and the others get it;
- the same key with other parameters is refused: 409 ``idempotency_key_reused``;
- a key that has expired, or whose file was deleted, is free again.

The OpenAI SDK sends no such header by itself (``openai._base_client``: its
``_idempotency_header`` is None); pass one per call, ``extra_headers={"Idempotency-Key": key}``,
and the SDK's own retries of that call repeat it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ...errors import ConflictError, InvalidRequestError
from ...gateway import RequestContext
from ...store import IdempotencyKey, Store

HEADER = "Idempotency-Key"
TTL_S = 24 * 3600.0  # how long a key names its object (s)
MAX_KEY_CHARS = 255
BATCHES = "POST /v1/batches"
FILES = "POST /v1/files"


def fingerprint(params: dict[str, Any], content: bytes = b"") -> str:
    """SHA-256 (hex) of a request's parameters (as JSON, keys sorted) and ``content`` (an
    uploaded file's bytes): what a retry under the same key must repeat."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    digest.update(b"\0")
    digest.update(content)
    return digest.hexdigest()


def checked_key(values: list[str]) -> str | None:
    """The header's value (``values``: every ``Idempotency-Key`` header the request sent);
    None when it sent none. Raises ``InvalidRequestError`` (400 ``invalid_value``) for more
    than one (which governs the retry would be a guess: a trial's two headers were read as
    the first), an empty one, one over ``MAX_KEY_CHARS`` characters, or one with a character
    outside printable ASCII."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequestError(f"send one {HEADER} header, not {len(values)}", param=HEADER)
    value = values[0]
    if not 1 <= len(value) <= MAX_KEY_CHARS or not all(" " <= c <= "~" for c in value):
        raise InvalidRequestError(
            f"the {HEADER} header must be 1 to {MAX_KEY_CHARS} printable ASCII characters",
            param=HEADER,
        )
    return value


@dataclass(frozen=True)
class Idempotency:
    """A request's ``Idempotency-Key`` (``key``) on ``route`` (``BATCHES``, ``FILES``), with
    the fingerprint of its parameters."""

    route: str
    key: str
    fingerprint: str

    def _scope(self, ctx: RequestContext) -> tuple[str, str]:
        return ctx.tenant.name, ctx.tenant.key_id or ""

    async def made_before(self, store: Store, ctx: RequestContext, now: float) -> str | None:
        """The id of the object an earlier request under this key made (not expired at
        ``now``); None if there is none. Raises ``ConflictError`` (409) when that request had
        other parameters."""
        tenant, key_id = self._scope(ctx)
        kept = await store.idempotency_key(tenant, key_id, self.route, self.key, now)
        return None if kept is None else self.same_request(kept)

    def kept(self, ctx: RequestContext, object_id: str, now: float) -> IdempotencyKey:
        """The key as the store keeps it with ``object_id``, made at ``now``."""
        tenant, key_id = self._scope(ctx)
        return IdempotencyKey(
            tenant, key_id, self.route, self.key, self.fingerprint, object_id, now, now + TTL_S
        )

    def same_request(self, kept: IdempotencyKey) -> str:
        """``kept``'s object id, if the request it was kept for had this one's parameters;
        else raises ``ConflictError`` (409 ``idempotency_key_reused``)."""
        if kept.fingerprint != self.fingerprint:
            raise ConflictError(
                f"this {HEADER} was used for a request with other parameters (it made "
                f"{kept.object_id}); send a new key for a new request"
            )
        return kept.object_id
