"""Keys: the data directory's signing key (``_signer``), the keys documents are checked with
(``_Keys``, ``_public_key``, ``_document_key``), and ``docs new-key``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ...reuse import binding
from ..console import fail
from .common import ConfigOpt, DataDirOpt


def _signer(settings: Any, store: Any = None) -> binding.Signer | None:
    """The data directory's signing key; None where it has none. With ``store`` (to sign):
    made where it has none if the store holds no document signed with a lost one
    (``documents.load_signer``), else a one-line error, exit 2. A key file that is not an
    Ed25519 private key is a one-line error too (exit 2). Commands that only revoke, verify
    or import never make one: a key made there would not be the gateway's."""
    from ...reuse.documents import load_signer

    data_dir = settings.server.data_dir
    try:
        if store is None:
            return binding.Signer.load(data_dir)
        return asyncio.run(load_signer(store, data_dir))
    except ValueError as exc:  # SigningKeyLost, or not an Ed25519 key
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(first, 2) from None


def _document_key(doc: Any, issuer: Any, key: Any) -> tuple[Any, str | None]:
    """(the key ``doc`` verifies with, None): ``key``, the exporting gateway's, for a bare
    document; the issuer key an item carries (``issuer``) if ``key`` endorsed it for this
    document. (None, what is wrong) if it did not."""
    if issuer is None:
        return key, None
    endorsed = binding.endorsed_key(issuer, doc, key)
    return (endorsed.key, None) if endorsed.ok else (None, endorsed.reason)


class _Keys:
    """The keys documents are checked with: ``--public-key`` (a file's exporting gateway's)
    alone when given; else this data directory's (``binding.data_dir_keys``): for a document
    (or an issuer key's endorsement) whose proof names one of them, that one (an earlier
    signing key, kept as ``signing-key.FINGERPRINT.pub.pem`` when it was lost, verifies what
    it signed), else its signing key's, ``signing-key.pub.pem`` (a one-line error, exit 2,
    if it is not there, when first needed)."""

    def __init__(self, given: Path | None, settings: Any) -> None:
        self.given = given
        self.settings = settings
        held = {} if given is not None else binding.data_dir_keys(settings.server.data_dir)
        self.held = {k: (key, _source(path)) for k, (key, path) in held.items()}
        self._default: tuple[Any, str] | None = None

    def default(self) -> tuple[Any, str]:
        """(the key, where it is from) of ``--public-key``, else of the data directory."""
        if self._default is None:
            path = self.given or self.settings.server.data_dir / binding.PUBLIC_KEY_FILE
            self._default = (_public_key(self.given, self.settings), str(path))
        return self._default

    def named(self, key_id: Any) -> tuple[Any, str]:
        """(key, where it is from) for the key ``key_id`` names: this data directory's of
        that id, else ``default``."""
        held = self.held.get(key_id) if isinstance(key_id, str) else None
        return held if held is not None else self.default()

    def of(self, doc: Any, issuer: Any) -> tuple[Any, str | None, str]:
        """(the key ``doc`` verifies with, what is wrong before that check, where the key is
        from): the key its proof names, or the issuer key an export carries beside it if
        the key of the exporter that endorsed it (``_document_key``) is this one."""
        if issuer is None:
            key, source = self.named(binding.proof_key_id(doc))
            return key, None, source
        by = issuer.get("endorsedBy") if isinstance(issuer, dict) else None
        trusted, source = self.named(by)
        key, reason = _document_key(doc, issuer, trusted)
        return key, reason, f"the issuer's, endorsed by {binding.key_id(trusted)}, {source}"


def _source(path: Path) -> str:
    """How ``docs verify`` names a key file of the data directory."""
    if path.name == binding.PUBLIC_KEY_FILE:
        return str(path)
    return f"{path}, an earlier signing key of this data directory"


def _public_key(given: Path | None, settings: Any) -> Any:
    """The Ed25519 public key in PEM file ``given`` (``--public-key``), else in the data
    directory's; a one-line error (exit 2) if it is not, naming the file it looked for."""
    from cryptography.exceptions import UnsupportedAlgorithm

    path = given or settings.server.data_dir / binding.PUBLIC_KEY_FILE
    if not path.exists():
        if given is None:  # run in another directory than the gateway's, likely
            raise fail(
                f"public key not found: {path.resolve()}, the data directory's (the default): "
                "give the exporting gateway's with --public-key",
                2,
            )
        raise fail(f"public key not found: {path.resolve()} (--public-key)", 2)
    try:
        return binding.load_public_key(path)
    except (OSError, ValueError, UnsupportedAlgorithm) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(f"{path} is not an Ed25519 public key in PEM: {first}", 2) from None


def docs_new_key(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Start a new signing key where this data directory's is lost.

    The server refuses to start, and docs bind to sign, without the key while the store
    holds documents it signed: restore signing-key.pem from a backup (or another replica)
    if you can. Otherwise this makes a new key pair. Documents signed with the lost key
    then verify with its public key, kept as signing-key.FINGERPRINT.pub.pem when
    signing-key.pub.pem still held it: docs verify uses it for them, and docs export
    carries it beside them endorsed by the new key (without that file, give the old public
    key to docs verify with --public-key). Exit 2 where a signing key is there."""
    from .. import _settings, out

    settings = _settings(config, data_dir=data_dir)
    where = settings.server.data_dir
    if not where.is_dir():
        raise fail(f"no data directory {where.resolve()}: give --config or --data-dir", 2)
    existing = _signer(settings)
    if existing is not None:
        raise fail(
            f"{(where / binding.PRIVATE_KEY_FILE).resolve()} is there (key "
            f"{binding.key_id(existing.public)}): nothing to do",
            2,
        )
    signer = binding.Signer.load_or_create(where)
    out.print(f"new signing key {binding.key_id(signer.public)} in {where.resolve()}")
    for kept in sorted(where.glob(binding.kept_public_key_file("*"))):
        out.print(f"an earlier key's public key: {kept.resolve()}", highlight=False)
