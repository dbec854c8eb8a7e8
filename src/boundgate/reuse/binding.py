"""Bound documents: signed, versioned JSON-LD records of answers worth keeping.

When a meaning has been asked by enough distinct askers, its answer is *bound*: frozen into a
JSON-LD document that names the question variants seen, the answer, the model and version
that produced it, the parameters and scope it is valid for, and what it supersedes. The
document's ``@id`` is the SHA-256 of its canonical JSON (RFC 8785, via ``rfc8785``) without
``@id`` and ``proof``; the ``proof`` is an Ed25519 signature over the canonical JSON of
everything but ``proof``. Anyone holding the public key can verify a document offline; any
change to any field breaks the id or the signature.

Documents never change. A new answer (model changed, operator rebinds) is a new document whose
``supersedes`` names the old one, with a diff of the answer.
"""

from __future__ import annotations

import base64
import copy
import difflib
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CONTEXT: dict[str, Any] = {
    "@vocab": "https://schema.org/",
    "bg": "https://boundgate.dev/ns/v1#",
    "sec": "https://w3id.org/security#",
    "proof": {"@id": "sec:proof", "@type": "@json"},
    "bg:parameters": {"@type": "@json"},
    "bg:scope": {"@type": "@json"},
    "bg:changes": {"@type": "@json"},
}
PRIVATE_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub.pem"


def canonical(doc: dict[str, Any]) -> bytes:
    return rfc8785.dumps(doc)


def content_id(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k not in ("@id", "proof")}
    return "urn:boundgate:doc:sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def short_id(doc_id: str) -> str:
    """The id used in URLs, headers and the CLI: ``doc_`` + the first 24 hex digits."""
    return "doc_" + doc_id.rsplit(":", 1)[-1][:24]


def key_fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """The gateway's Ed25519 key pair, kept in the data directory (created on first use)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self.private = private
        self.public = private.public_key()
        self.fingerprint = key_fingerprint(self.public)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Signer:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / PRIVATE_KEY_FILE
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 private key")
            signer = cls(loaded)
        else:
            signer = cls(Ed25519PrivateKey.generate())
            pem = signer.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
        pub = data_dir / PUBLIC_KEY_FILE
        if not pub.exists():
            pub.write_bytes(public_pem(signer.public))
        return signer

    def sign(self, doc: dict[str, Any], created: datetime) -> dict[str, Any]:
        """The document with ``@id`` set and a ``proof`` added."""
        doc = {k: v for k, v in doc.items() if k not in ("@id", "proof")}
        doc["@id"] = content_id(doc)
        signature = self.private.sign(canonical(doc))
        doc["proof"] = {
            "type": "Ed25519Signature2020",
            "cryptosuite": "boundgate-jcs-ed25519-2026",
            "created": created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "verificationMethod": f"urn:boundgate:key:{self.fingerprint}",
            "proofPurpose": "assertionMethod",
            "proofValue": base64.b64encode(signature).decode(),
        }
        return doc


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str  # "valid" or what is wrong


def verify(doc: Any, public: Ed25519PublicKey) -> Verification:
    """Check a document's content id and signature with only the public key."""
    if not isinstance(doc, dict):
        return Verification(False, "not a JSON object")
    proof = doc.get("proof")
    if not isinstance(proof, dict) or not isinstance(proof.get("proofValue"), str):
        return Verification(False, "missing proof")
    body = {k: v for k, v in doc.items() if k != "proof"}
    if body.get("@id") != content_id(body):
        return Verification(False, "content does not match its id (tampered)")
    method = proof.get("verificationMethod", "")
    if method != f"urn:boundgate:key:{key_fingerprint(public)}":
        return Verification(False, f"signed by another key ({method})")
    try:
        signature = base64.b64decode(proof["proofValue"], validate=True)
        public.verify(signature, canonical(body))
    except (InvalidSignature, ValueError):
        return Verification(False, "bad signature (tampered)")
    return Verification(True, "valid")


def build(
    *,
    question: str,
    variants: list[str],
    answer: str,
    model: str,
    model_version: str,
    tenant: str,
    scope: dict[str, Any],
    askers: int,
    created: datetime,
    cost_wh: float,
    cost_gco2: float,
    supersedes: str | None = None,
    previous_answer: str | None = None,
    finish_reason: str = "stop",
    completion_tokens: int = 0,
    temperature: float | None = None,
) -> dict[str, Any]:
    """An unsigned bound document (pass it to :meth:`Signer.sign`). ``finish_reason`` and
    ``completion_tokens`` say whether the answer is whole (``stop``) or cut by its limit
    (``length``) at that many tokens: a gateway importing the document serves a cut answer
    only to requests with that very limit (``scope.answer_fits``). ``temperature`` is the
    one the answer was generated at (``bg:temperature``, where known): a gateway importing
    it never serves a sampled answer to a request at temperature 0."""
    doc: dict[str, Any] = {
        "@context": copy.deepcopy(CONTEXT),
        "@type": ["Question", "bg:BoundAnswer"],
        "name": question,
        "bg:questionVariants": sorted(set(variants)),
        "acceptedAnswer": {"@type": "Answer", "text": answer},
        "bg:finishReason": finish_reason,
        "bg:completionTokens": completion_tokens,
        **({} if temperature is None else {"bg:temperature": temperature}),
        "bg:model": {"name": model, "version": model_version},
        "bg:parameters": scope.get("params", {}),
        "bg:scope": {
            "tenant": tenant,
            "endpoint": scope.get("endpoint"),
            "contextSha256": scope.get("context_sha256"),
        },
        "dateCreated": created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "bg:supersedes": supersedes,
        "bg:askerCount": askers,
        "bg:generationEnergyWh": cost_wh,
        "bg:generationCarbonG": cost_gco2,
    }
    if previous_answer is not None:
        diff = "".join(
            difflib.unified_diff(
                previous_answer.splitlines(keepends=True),
                answer.splitlines(keepends=True),
                "previous",
                "current",
            )
        )
        doc["bg:changes"] = {"answerChanged": previous_answer != answer, "diff": diff}
    return doc
