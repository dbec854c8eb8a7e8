"""API key material, the same for every store: how a key is minted, where its id sits in the
secret, and how a secret is checked against what is stored (a salt and a digest, never the
secret)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

KEY_PREFIX = "bg"  # secrets read "bg-<id>-<random>"


def hash_secret(salt: bytes, secret: str) -> bytes:
    """HMAC-SHA256 of ``secret`` under ``salt`` (32 bytes). Keys carry 256 random bits, so a
    slow password hash adds nothing against guessing; a salted HMAC keeps the stored value
    useless without the key and stays cheap on the hot path (every request verifies a key)."""
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class MintedKey:
    id: str  # 8 hex characters, public (part of the secret, shown in listings)
    secret: str  # shown once to its owner, never stored
    salt: bytes  # 16 random bytes, stored
    digest: bytes  # hash_secret(salt, secret), stored
    created: float  # unix seconds


def mint_key() -> MintedKey:
    """A new key: a public id, a secret with 256 random bits, and what a store keeps of it."""
    key_id = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}-{key_id}-{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    return MintedKey(key_id, secret, salt, hash_secret(salt, secret), time.time())


def key_id_of(secret: str) -> str | None:
    """The id part of a well-formed secret; None for anything else."""
    parts = secret.split("-", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    return parts[1]


def secret_matches(secret: str, salt: bytes, digest: bytes) -> bool:
    """Whether ``secret`` is the one ``digest`` was made from (constant-time compare)."""
    return hmac.compare_digest(hash_secret(salt, secret), digest)
