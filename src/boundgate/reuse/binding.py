"""Bound documents: signed, versioned JSON-LD records of answers worth keeping.

When a meaning has been asked by enough distinct askers, its answer is *bound*: frozen into a
JSON-LD document that names the question variants seen, the answer, the model and version
that produced it, the parameters and scope it is valid for, and what it supersedes. The
document's ``@id`` is the SHA-256 of its canonical JSON (RFC 8785, via ``rfc8785``) without
``@id`` and ``proof``; the ``proof`` is a W3C Data Integrity proof (``DataIntegrityProof``)
with the cryptosuite ``eddsa-jcs-2022`` (W3C, "Data Integrity EdDSA Cryptosuites v1.0" §3.3):
an Ed25519 signature over the SHA-256 of the canonical JSON of the proof's options (the proof
without ``proofValue``, with the document's ``@context``) followed by the SHA-256 of the
canonical JSON of everything but ``proof``, as multibase base58-btc, the key named as a
``did:key`` (W3C CCG, "The did:key Method v0.7"). So any verifier of that cryptosuite can check
a document offline with the public key, and any change to any field breaks the id or the
signature. Documents signed before keep verifying: ``Ed25519Signature2020`` proofs of
boundgate's own suites (``SUITE_2026``, the same algorithm in base64 with the key named by
fingerprint; ``SUITE_V1``, the first, over the document alone, whose options must be exactly
the ones boundgate wrote).

A gateway verifies its own documents with its own key, and a document it imported with the
key that verified it at import, its issuer's (kept in the store). Its export carries that
key beside such a document, endorsed (``Signer.endorse``: an Ed25519 signature by the
exporting gateway over the key and the document's ``@id``), so whoever trusts the exporter
can verify the document too (``endorsed_key``).

A validly signed document may still hold what no gateway should serve (a negative energy, a
date that is not one): ``parse`` reads what an import needs, and refuses the rest with a
``DocumentError`` naming the field.

Documents never change. A new answer (model changed, operator rebinds) is a new document whose
``supersedes`` names the old one, with a diff of the answer.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import difflib
import hashlib
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import base58
import rfc8785
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import InvalidRequestError
from ..jsontext import MAX_JSON_DEPTH, nested_too_deeply, nul_at

log = logging.getLogger("boundgate.reuse")

# the Data Integrity context first (it defines ``proof`` and ``DataIntegrityProof``), then
# boundgate's terms; documents bound before held the second part alone, with ``proof``
CONTEXT: list[Any] = [
    "https://w3id.org/security/data-integrity/v2",
    {
        "@vocab": "https://schema.org/",
        "bg": "https://boundgate.dev/ns/v1#",
        "bg:parameters": {"@type": "@json"},
        "bg:scope": {"@type": "@json"},
        "bg:changes": {"@type": "@json"},
    },
]
# the context of the first documents: boundgate's terms alone, with ``proof`` among them
LEGACY_CONTEXT: dict[str, Any] = {
    "@vocab": "https://schema.org/",
    "bg": "https://boundgate.dev/ns/v1#",
    "sec": "https://w3id.org/security#",
    "proof": {"@id": "sec:proof", "@type": "@json"},
    "bg:parameters": {"@type": "@json"},
    "bg:scope": {"@type": "@json"},
    "bg:changes": {"@type": "@json"},
}
DOCUMENT_TYPE = "bg:BoundAnswer"  # among a bound document's ``@type``s (beside ``Question``)
PRIVATE_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub.pem"
PROOF_TYPE = "DataIntegrityProof"
PROOF_PURPOSE = "assertionMethod"
SUITE = "eddsa-jcs-2022"  # W3C Data Integrity EdDSA Cryptosuites v1.0, §3.3
LEGACY_PROOF_TYPE = "Ed25519Signature2020"  # the type of boundgate's own suites' proofs
SUITE_2026 = "boundgate-jcs-ed25519-proof-2026"  # SUITE's algorithm, base64, key by fingerprint
SUITE_V1 = "boundgate-jcs-ed25519-2026"  # the first documents: signs the document only
PROOF_FIELDS = frozenset(
    {"type", "cryptosuite", "created", "verificationMethod", "proofPurpose", "proofValue"}
)
# the multicodec prefix of an Ed25519 public key (0xed, varint), as did:key and Multikey spell it
_ED25519_PUB = b"\xed\x01"
ENDORSEMENT_TYPE = "bg:IssuerKeyEndorsement"
ENDORSEMENT_FIELDS = frozenset({"type", "publicKeyPem", "endorsedBy", "proofValue"})
# The most one answer can plausibly have cost: 1 kWh is an 8-GPU node (~10 kW) generating for
# six minutes, far beyond any single completion; a document claiming more would let one
# imported answer dominate the energy reports (each hit counts it as avoided).
MAX_ANSWER_WH = 1000.0
# ... and its carbon at 2 gCO2e/Wh, twice the intensity of a coal-fired grid.
MAX_ANSWER_GCO2 = 2.0 * MAX_ANSWER_WH
MAX_TEMPERATURE = 2.0  # the API's own bound (chat and text completions)
# the largest count a document may carry: I-JSON's interoperable integers (RFC 7493 §2.2,
# ±(2**53 − 1)); a trial's signed 1e300 tokens passed `docs verify` and crashed the import
# (SQLite's INTEGER holds 64 bits)
MAX_COUNT = 2**53 - 1
# The most UTF-8 bytes one token may stand for in an imported answer: the packaged model's
# longest token is 32 bytes (SmolLM2's vocabulary, measured), MiniLM's 18; a kilobyte leaves
# other models' vocabularies a wide margin. A trusted signer's 5 MB answer said to be 12
# tokens long was served to max_tokens 16 with usage 12 (a break-it trial).
MAX_TOKEN_BYTES = 1024
# how deep a document may nest: a request body's depth (``jsontext.MAX_JSON_DEPTH``) and the
# levels a document puts its parameters below it (``bg:parameters``)
DOCUMENT_DEPTH = MAX_JSON_DEPTH + 2


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


def key_id(public: Ed25519PublicKey) -> str:
    """How a proof names the key that signed it (``verificationMethod``):
    ``urn:boundgate:key:`` + ``key_fingerprint``."""
    return key_id_of(key_fingerprint(public))


def key_id_of(fingerprint: str) -> str:
    return f"urn:boundgate:key:{fingerprint}"


def did_key(public: Ed25519PublicKey) -> str:
    """The key's ``did:key`` identifier: ``did:key:z6Mk…``, the multibase base58-btc of the
    Ed25519 multicodec prefix and the raw key (W3C CCG, "The did:key Method v0.7")."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "did:key:z" + base58.b58encode(_ED25519_PUB + raw).decode()


def verification_method(public: Ed25519PublicKey) -> str:
    """How a proof names the key that signed it (``verificationMethod``): the key's
    ``did:key`` and, as its fragment, the key's multibase (``did:key:z6Mk…#z6Mk…``)."""
    did = did_key(public)
    return f"{did}#{did.removeprefix('did:key:')}"


def did_key_public(method: str) -> Ed25519PublicKey | None:
    """The Ed25519 public key a ``did:key`` verification method (or identifier) names;
    None if ``method`` is not one."""
    did = method.split("#", 1)[0]
    if not did.startswith("did:key:z"):
        return None
    try:
        raw = base58.b58decode(did.removeprefix("did:key:z"))
    except ValueError:
        return None
    if len(raw) != 34 or not raw.startswith(_ED25519_PUB):
        return None
    return Ed25519PublicKey.from_public_bytes(raw[2:])


class Signer:
    """The gateway's Ed25519 key pair, kept in the data directory (created on first use)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self.private = private
        self.public = private.public_key()
        self.fingerprint = key_fingerprint(self.public)

    @classmethod
    def load(cls, data_dir: Path) -> Signer | None:
        """The key pair of ``data_dir``; None if it holds no private key (``load_or_create``
        makes one; whether it may is the caller's question: a store holding documents
        signed with a key that is lost wants that key back, ``documents.load_signer``).
        ``signing-key.pub.pem`` is checked against the private key: written if missing, and
        rewritten if it holds another key, the other one kept beside it
        (``keep_public_key``). Raises ``ValueError`` if the file there is not an Ed25519
        private key."""
        path = data_dir / PRIVATE_KEY_FILE
        if not path.exists():
            return None
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        signer = cls(loaded)
        _write_public_key(data_dir, signer.public)
        return signer

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Signer:
        """The key pair of ``data_dir``, made there if it has none (``load``). Processes
        (workers, replicas) starting together on one new directory all end with the same key:
        each writes a candidate to a file of its own and links it into place, the first link
        wins and the others load it (an exclusive create let a second process fail with
        FileExistsError, or read the winner's file half written). Raises ``ValueError`` if
        the file there is not an Ed25519 private key."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / PRIVATE_KEY_FILE
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".signing-key-")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
                    fh.flush()
                    os.fsync(fh.fileno())
                with contextlib.suppress(FileExistsError):  # another process's came first
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        signer = cls.load(data_dir)
        assert signer is not None  # linked above, by this process or another
        return signer

    def sign(self, doc: dict[str, Any], created: datetime) -> dict[str, Any]:
        """The document with ``@id`` set and a ``proof`` added (``data_integrity_proof``)."""
        doc = {k: v for k, v in doc.items() if k not in ("@id", "proof")}
        doc["@id"] = content_id(doc)
        doc["proof"] = data_integrity_proof(self.private, doc, created)
        return doc

    def endorse(self, doc_id: str, issuer: Ed25519PublicKey) -> dict[str, str]:
        """What an export carries beside document ``doc_id`` (its ``@id``) signed by another
        gateway's key ``issuer``: ``{"type": ENDORSEMENT_TYPE, "publicKeyPem": <issuer's
        PEM>, "endorsedBy": <this key's id>, "proofValue": <base64 Ed25519 signature over
        endorsement_input>}``, this gateway's word that ``issuer`` is the key the document
        verified with when it was imported here."""
        options = {
            "type": ENDORSEMENT_TYPE,
            "publicKeyPem": public_pem(issuer).decode(),
            "endorsedBy": key_id(self.public),
        }
        signature = self.private.sign(endorsement_input(doc_id, options))
        return {**options, "proofValue": base64.b64encode(signature).decode()}


def data_integrity_proof(
    private: Ed25519PrivateKey, doc: dict[str, Any], created: datetime
) -> dict[str, Any]:
    """The ``eddsa-jcs-2022`` proof of ``doc`` (without a ``proof``) by ``private`` at
    ``created`` (W3C, "Data Integrity EdDSA Cryptosuites v1.0" §3.3.1–3.3.5): its options
    (``type`` ``DataIntegrityProof``, ``cryptosuite``, ``created``, ``verificationMethod``,
    ``proofPurpose``, and the document's ``@context`` where it has one) and ``proofValue``,
    the Ed25519 signature over ``signing_input`` as multibase base58-btc (``z…``). Raises
    ValueError for what JSON canonicalization cannot represent."""
    options: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": SUITE,
        "created": _timestamp(created),
        "verificationMethod": verification_method(private.public_key()),
        "proofPurpose": PROOF_PURPOSE,
    }
    if "@context" in doc:
        options["@context"] = copy.deepcopy(doc["@context"])
    signature = private.sign(signing_input(doc, options))
    return {**options, "proofValue": "z" + base58.b58encode(signature).decode()}


def proof_key_id(doc: Any) -> str | None:
    """The id of the key a document's proof says signed it (``urn:boundgate:key:<fingerprint>``,
    ``key_id``): its ``verificationMethod``, a ``did:key`` read as the key it names; None if
    it names none."""
    proof = doc.get("proof") if isinstance(doc, dict) else None
    method = proof.get("verificationMethod") if isinstance(proof, dict) else None
    if not isinstance(method, str):
        return None
    named = did_key_public(method)
    return key_id(named) if named is not None else method


def data_dir_keys(data_dir: Path) -> dict[str, tuple[Ed25519PublicKey, Path]]:
    """The public keys a data directory holds, by key id (``key_id``), with their files: its
    signing key's (``signing-key.pub.pem``) and the earlier ones kept beside it when its
    private key was replaced (``kept_public_key_file``: ``signing-key.<fingerprint>.pub.pem``,
    what ``docs new-key`` keeps of a lost key), so a document signed with a lost key is
    verified with its own key (the one its proof names). Files that are not Ed25519 public
    keys are skipped; a key in two files is given with ``signing-key.pub.pem``."""
    keys: dict[str, tuple[Ed25519PublicKey, Path]] = {}
    kept = sorted(data_dir.glob(kept_public_key_file("*")))
    for path in [*kept, data_dir / PUBLIC_KEY_FILE]:  # the signing key's last: it wins
        try:
            key = public_key_from_pem(path.read_bytes())
        except (OSError, ValueError):
            continue
        keys[key_id(key)] = (key, path)
    return keys


def kept_public_key_file(fingerprint: str) -> str:
    """The name ``signing-key.pub.pem`` is kept under when it held key ``fingerprint``
    but the private key beside it is another (``Signer.load``)."""
    return f"signing-key.{fingerprint}.pub.pem"


def _write_public_key(data_dir: Path, public: Ed25519PublicKey) -> None:
    """Make ``signing-key.pub.pem`` hold ``public``, the private key's: the file others are
    given to verify this gateway's documents with (a stale one, left from a lost private
    key, made ``docs verify`` call every new document "signed by another key"). A file
    holding another key is kept first under ``kept_public_key_file`` (what that key signed
    verifies with it) and a warning logged. Atomic and the same bytes from every process."""
    pub = data_dir / PUBLIC_KEY_FILE
    try:
        held = pub.read_bytes()
    except FileNotFoundError:
        held = None
    if held is not None:
        try:
            other = key_fingerprint(public_key_from_pem(held))
        except ValueError:
            other = None  # not a key: nothing to keep
        if other == key_fingerprint(public):
            return
        if other is not None:
            kept = data_dir / kept_public_key_file(other)
            with contextlib.suppress(FileExistsError):  # another process kept it first
                os.link(pub, kept)
            log.warning(
                "%s held the public key %s, not the one of %s (%s): rewritten; the other is "
                "kept as %s, to verify the documents that key signed",
                pub, key_id_of(other), PRIVATE_KEY_FILE, key_id(public), kept.name,
            )  # fmt: skip
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".signing-key-pub-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(public_pem(public))
    os.chmod(tmp, 0o644)
    os.replace(tmp, pub)


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 date and time with its offset (``...Z`` or ``+hh:mm``) as an aware
    datetime; None if ``value`` is not one (a bare date or a time without offset is not)."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def signing_input(body: dict[str, Any], options: dict[str, Any]) -> bytes:
    """What the proof's signature is over: for ``SUITE`` and ``SUITE_2026``, SHA-256 of the
    canonical options (the proof without ``proofValue``) then SHA-256 of the canonical
    document without ``proof`` (eddsa-jcs-2022's hashData, §3.3.4); for ``SUITE_V1`` the
    canonical document alone. Raises ValueError (rfc8785's CanonicalizationError) for what
    JSON canonicalization cannot represent (NaN, integers beyond 2**53)."""
    if options.get("cryptosuite") == SUITE_V1:
        return canonical(body)
    return hashlib.sha256(canonical(options)).digest() + hashlib.sha256(canonical(body)).digest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_from_pem(pem: str | bytes) -> Ed25519PublicKey:
    """The Ed25519 public key in ``pem`` (SubjectPublicKeyInfo, as ``public_pem`` writes it).
    Raises ValueError if it is not one (malformed, or another algorithm's key)."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except UnsupportedAlgorithm as exc:
        raise ValueError(f"not an Ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


@dataclass(frozen=True)
class Verification:
    """The outcome of ``verify`` or ``endorsed_key``."""

    ok: bool
    reason: str  # "valid" or what is wrong
    key: Ed25519PublicKey | None = None  # endorsed_key: the key it found endorsed


def _secured(doc: Any) -> tuple[dict[str, Any], dict[str, Any]] | Verification:
    """A secured document's body (all but ``proof``) and its proof, or why it is not one."""
    if not isinstance(doc, dict):
        return Verification(False, "not a JSON object")
    proof = doc.get("proof")
    if not isinstance(proof, dict) or not isinstance(proof.get("proofValue"), str):
        return Verification(False, "missing proof")
    return {k: v for k, v in doc.items() if k != "proof"}, proof


def verify(doc: Any, public: Ed25519PublicKey) -> Verification:
    """Check a document's content id, proof and signature with only the public key
    (``verify_proof``). Never raises: what is wrong is the ``reason``."""
    split = _secured(doc)
    if isinstance(split, Verification):
        return split
    body, _ = split
    try:
        if body.get("@id") != content_id(body):
            return Verification(False, "content does not match its id (tampered)")
    except ValueError as exc:  # NaN, an integer beyond 2**53: no canonical form
        return Verification(False, f"not canonical JSON ({exc})")
    return verify_proof(doc, public)


def verify_proof(doc: Any, public: Ed25519PublicKey) -> Verification:
    """Check a secured document's proof with ``public``, the key it must name. The proof must
    be one boundgate writes: ``DataIntegrityProof`` with ``eddsa-jcs-2022`` (its key a
    ``did:key``, its value multibase base58-btc, its ``@context``, if given, the document's
    own, §3.3.2), or ``Ed25519Signature2020`` with ``SUITE_2026`` or
    ``SUITE_V1`` (the key by fingerprint, base64); ``proofPurpose`` ``PROOF_PURPOSE``,
    ``created`` a timestamp with its offset, no other fields. Never raises."""
    split = _secured(doc)
    if isinstance(split, Verification):
        return split
    body, proof = split
    suite = proof.get("cryptosuite")
    standard = suite == SUITE
    allowed = PROOF_FIELDS | {"@context"} if standard else PROOF_FIELDS
    if suite not in (SUITE, SUITE_2026, SUITE_V1):
        return Verification(False, f"unsupported cryptosuite {suite!r}")
    extra = sorted(set(proof) - allowed)
    if extra:
        return Verification(False, f"unexpected proof field {extra[0]!r}")
    if proof.get("type") != (PROOF_TYPE if standard else LEGACY_PROOF_TYPE):
        return Verification(False, f"unsupported proof type {proof.get('type')!r}")
    if proof.get("proofPurpose") != PROOF_PURPOSE:
        return Verification(False, f"unsupported proofPurpose {proof.get('proofPurpose')!r}")
    if parse_timestamp(proof.get("created")) is None:
        return Verification(False, f"proof.created is not a timestamp ({proof.get('created')!r})")
    method = proof.get("verificationMethod", "")
    if method != (verification_method(public) if standard else key_id(public)):
        return Verification(False, f"signed by another key ({method})")
    options = {k: v for k, v in proof.items() if k != "proofValue"}
    if standard and "@context" in options and options["@context"] != body.get("@context"):
        # §3.3.2 lets a document's @context go on past the proof's, unsigned: not here
        return Verification(False, "proof.@context is not the document's")
    value: str = proof["proofValue"]
    try:
        if standard:
            if not value.startswith("z"):
                return Verification(False, "proofValue is not multibase base58-btc")
            signature = base58.b58decode(value[1:])
        else:
            signature = base64.b64decode(value, validate=True)
        public.verify(signature, signing_input(body, options))
    except (InvalidSignature, ValueError):
        return Verification(False, "bad signature (tampered)")
    return Verification(True, "valid")


def endorsement_input(doc_id: str, options: dict[str, Any]) -> bytes:
    """What an endorsement's signature is over: the canonical JSON of its options (the
    endorsement without ``proofValue``) with ``"document": doc_id`` added. Its ``type``
    keeps it apart from a document's signing input (a document has an ``@id``)."""
    return canonical({**options, "document": doc_id})


def endorsed_key(endorsement: Any, doc: Any, trusted: Ed25519PublicKey) -> Verification:
    """Check the issuer key an export carries beside ``doc`` (``Signer.endorse``) against
    the key of the gateway that wrote the export, ``trusted``: the endorsement must be an
    object of exactly ``ENDORSEMENT_FIELDS``, of ``type`` ``ENDORSEMENT_TYPE``, endorsed by
    ``trusted`` for this document's ``@id``, and carry an Ed25519 public key in PEM. Returns
    ``Verification(True, "valid", key)`` with the carried key (verify the document with it),
    else ``ok`` False and what is wrong. Never raises."""
    if not isinstance(endorsement, dict):
        return Verification(False, "issuer endorsement is not a JSON object")
    extra = sorted(set(endorsement) - ENDORSEMENT_FIELDS)
    if extra:
        return Verification(False, f"unexpected issuer endorsement field {extra[0]!r}")
    if endorsement.get("type") != ENDORSEMENT_TYPE:
        return Verification(
            False, f"unsupported issuer endorsement type {endorsement.get('type')!r}"
        )
    doc_id = doc.get("@id") if isinstance(doc, dict) else None
    pem, value = endorsement.get("publicKeyPem"), endorsement.get("proofValue")
    if not isinstance(doc_id, str) or not isinstance(pem, str) or not isinstance(value, str):
        return Verification(False, "issuer endorsement without a document id, key or proof")
    by = endorsement.get("endorsedBy")
    if by != key_id(trusted):
        return Verification(False, f"issuer key endorsed by another key ({by})")
    options = {k: v for k, v in endorsement.items() if k != "proofValue"}
    try:
        trusted.verify(base64.b64decode(value, validate=True), endorsement_input(doc_id, options))
        key = public_key_from_pem(pem)
    except (InvalidSignature, ValueError):
        return Verification(False, "bad issuer endorsement (tampered)")
    return Verification(True, "valid", key)


class DocumentError(InvalidRequestError):
    """A document (signed or not) whose content boundgate cannot serve: ``field`` names the
    offending field (also the error's ``param``), ``problem`` says what is wrong with it.
    Over HTTP an OpenAI-shaped 400 ``invalid_value``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", param=field)
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Content:
    """What a gateway reads from a bound document to serve its answer (``parse``)."""

    question: str
    answer: str
    model: str
    model_version: str
    tenant: str
    endpoint: str | None
    context_sha256: str | None
    params: dict[str, Any]
    created: datetime  # aware: when the document was bound (``dateCreated``)
    # aware: when its answer was generated (``bg:answerCreated``); None: not said (documents
    # bound before it), so the answer's age is unknown
    answer_created: datetime | None
    finish_reason: str  # "stop" or "length"
    completion_tokens: int  # ≥ 0; 0: not said
    temperature: float | None  # 0 to MAX_TEMPERATURE; None: not said (taken as sampled)
    cost_wh: float  # 0 to MAX_ANSWER_WH
    cost_gco2: float  # 0 to MAX_ANSWER_GCO2


def _number(doc: dict[str, Any], field: str, ceiling: float, unit: str = "") -> float:
    """A finite number from 0 to ``ceiling``; absent: 0 (documents that do not say)."""
    value = doc.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DocumentError(field, f"must be a number, not {value!r}")
    if not math.isfinite(value) or not 0 <= value <= ceiling:
        bound = f"{ceiling:g} {unit}".rstrip()
        raise DocumentError(field, f"must be from 0 to {bound}, not {value!r}")
    return float(value)


def _text(obj: dict[str, Any], key: str, field: str, *, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not optional and not value):
        kind = "a string or null" if optional else "a non-empty string"
        raise DocumentError(field, f"must be {kind}, not {value!r}")
    return value


def _cut(value: Any, size: int = 80) -> str:
    """``repr(value)``, cut to ``size`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= size else text[: size - 1] + "…"


def _tenant(scope: dict[str, Any]) -> str:
    """``bg:scope.tenant``: a tenant's name as keys are made for (``tenants.TENANT_NAME``); a
    document for any other could never be served (a trial imported one of 10,000 characters)."""
    from ..tenants import TENANT_NAME, TENANT_NAME_RULE

    tenant = str(_text(scope, "tenant", "bg:scope.tenant"))
    if not re.fullmatch(TENANT_NAME, tenant):
        raise DocumentError("bg:scope.tenant", f"must be {TENANT_NAME_RULE}, not {tenant[:80]!r}")
    return tenant


def _object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise DocumentError(key, f"must be an object, not {value!r}")
    return value


# a document dated later than this after the reader's clock is refused: its age would read
# as negative, and max-age or a freshness policy would serve it as new for ever (a trial
# imported one dated 9999-12-31); a day covers clocks that disagree
MAX_FUTURE_S = 86400.0
EARLIEST_CREATED = datetime(2020, 1, 1, tzinfo=UTC)  # no document of this kind is older


def _date(doc: dict[str, Any], field: str, now: float | None) -> datetime:
    """``doc[field]``: a timestamp with its offset, from ``EARLIEST_CREATED`` to
    ``MAX_FUTURE_S`` after ``now`` (unix seconds; the system clock when None)."""
    when = parse_timestamp(doc.get(field))
    if when is None:
        raise DocumentError(field, f"must be a timestamp with its offset, not {doc.get(field)!r}")
    latest = (time.time() if now is None else now) + MAX_FUTURE_S
    if not EARLIEST_CREATED <= when <= datetime.fromtimestamp(latest, tz=UTC):
        raise DocumentError(
            field,
            f"must lie between {EARLIEST_CREATED.date()} and a day from now, not "
            f"{doc.get(field)!r}",
        )
    return when


def parse(doc: dict[str, Any], now: float | None = None) -> Content:
    """The servable content of a document, checked field by field (call ``verify`` first: this does
    not look at the signature). Raises ``DocumentError`` for a missing or malformed field:
    ``@context`` (``CONTEXT``, or ``LEGACY_CONTEXT`` of the first documents), ``@type``
    (``DOCUMENT_TYPE`` or a list holding it), ``name``, ``acceptedAnswer.text``,
    ``bg:model.name``/``.version``, ``bg:scope.tenant`` (non-empty strings; the question not
    blank, the tenant a name keys are made for, ``tenants.TENANT_NAME``),
    ``bg:scope.endpoint``/``.contextSha256`` (strings or null), ``bg:parameters`` (an object),
    ``dateCreated`` (a timestamp with its offset, from ``EARLIEST_CREATED`` to ``MAX_FUTURE_S``
    after ``now``, unix seconds, the system clock when None), ``bg:answerCreated`` (the same),
    ``bg:finishReason`` (``stop`` or ``length``), ``bg:completionTokens`` and ``bg:askerCount``
    (integers, 0 to ``MAX_COUNT``; the answer no longer than its completion tokens can hold,
    ``MAX_TOKEN_BYTES`` a token, where they are given), ``bg:temperature`` (0 to
    ``MAX_TEMPERATURE``), ``bg:generationEnergyWh`` (finite, 0 to ``MAX_ANSWER_WH`` Wh),
    ``bg:generationCarbonG`` (finite, 0 to ``MAX_ANSWER_GCO2`` gCO2e), ``bg:questionVariants``
    (strings), ``bg:supersedes`` (a string or null). The optional fields may be absent
    (documents bound before them): the answer then counts as whole, its tokens, temperature and
    age as unknown, its energy as 0. No string (nor key) anywhere in it may hold NUL
    (``jsontext.nul_at``): PostgreSQL cannot store one. Nor may it nest more than
    ``DOCUMENT_DEPTH`` levels, as a request body may not: the scope hash walks its
    parameters recursively (a trial's, 480 levels deep, overflowed Python's stack in ``docs
    import``, and ``docs verify`` called it valid)."""
    if (nul := nul_at(doc)) is not None:
        raise DocumentError(nul[0] or "document", "holds the NUL character (\\u0000)")
    if nested_too_deeply(doc, DOCUMENT_DEPTH):
        raise DocumentError("document", f"is nested too deeply (more than {DOCUMENT_DEPTH} levels)")
    # the terms below mean what boundgate's context says they mean: under another context
    # ("name" mapped elsewhere, no schema.org vocabulary) the same keys are another document
    if doc.get("@context") not in (CONTEXT, LEGACY_CONTEXT):
        raise DocumentError(
            "@context",
            f"must be a bound document's (binding.CONTEXT), not {_cut(doc.get('@context'))}",
        )
    types = doc.get("@type")
    if DOCUMENT_TYPE not in (types if isinstance(types, list) else [types]):
        raise DocumentError("@type", f"must include {DOCUMENT_TYPE!r}, not {_cut(types)}")
    question = _text(doc, "name", "name")
    if not str(question).strip():
        raise DocumentError("name", "must be a question, not blank")
    answer = _text(_object(doc, "acceptedAnswer"), "text", "acceptedAnswer.text")
    model = _object(doc, "bg:model")
    scope = _object(doc, "bg:scope")
    params = _object(doc, "bg:parameters")
    created = _date(doc, "dateCreated", now)
    answer_created = _date(doc, "bg:answerCreated", now) if "bg:answerCreated" in doc else None
    finish_reason = doc.get("bg:finishReason", "stop")
    if finish_reason not in ("stop", "length"):
        raise DocumentError("bg:finishReason", f"must be 'stop' or 'length', not {finish_reason!r}")
    for field in ("bg:completionTokens", "bg:askerCount"):
        count = doc.get(field, 0)
        # 3.0 and 3e0 are the signed 3 (RFC 8785 writes each as 3): a tool that rewrote the
        # integers as decimals made a trial's valid export refused
        integral = isinstance(count, float) and count.is_integer()
        if isinstance(count, bool) or (not isinstance(count, int) and not integral):
            raise DocumentError(field, f"must be an integer ≥ 0, not {count!r}")
        if not 0 <= count <= MAX_COUNT:
            raise DocumentError(field, f"must be an integer from 0 to 2**53 - 1, not {count!r}")
    tokens = int(doc.get("bg:completionTokens", 0))  # 3.0: checked integral
    if tokens and (size := len(str(answer).encode())) > tokens * MAX_TOKEN_BYTES:
        raise DocumentError(
            "acceptedAnswer.text",
            f"is {size} bytes, more than its {tokens} completion tokens (bg:completionTokens) "
            f"can hold at {MAX_TOKEN_BYTES} bytes a token",
        )
    temperature = doc.get("bg:temperature")
    if temperature is not None:
        temperature = _number(doc, "bg:temperature", MAX_TEMPERATURE)
    variants = doc.get("bg:questionVariants", [])
    if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
        raise DocumentError("bg:questionVariants", "must be a list of strings")
    _text(doc, "bg:supersedes", "bg:supersedes", optional=True)
    return Content(
        question=str(question),
        answer=str(answer),
        model=str(_text(model, "name", "bg:model.name")),
        model_version=str(_text(model, "version", "bg:model.version")),
        tenant=_tenant(scope),
        endpoint=_text(scope, "endpoint", "bg:scope.endpoint", optional=True),
        context_sha256=_text(scope, "contextSha256", "bg:scope.contextSha256", optional=True),
        params=params,
        created=created,
        answer_created=answer_created,
        finish_reason=str(finish_reason),
        completion_tokens=tokens,
        temperature=temperature,
        cost_wh=_number(doc, "bg:generationEnergyWh", MAX_ANSWER_WH, "Wh"),
        cost_gco2=_number(doc, "bg:generationCarbonG", MAX_ANSWER_GCO2, "gCO2e"),
    )


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
    answer_created: datetime | None = None,
) -> dict[str, Any]:
    """An unsigned bound document (pass it to :meth:`Signer.sign`). ``created`` is when it is
    bound (``dateCreated``), ``answer_created`` when its answer was generated
    (``bg:answerCreated``): a gateway importing it measures the answer's age (max-age, the
    time-sensitive limit) from that, as its home gateway does. ``finish_reason`` and
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
        "dateCreated": _timestamp(created),
        **({} if answer_created is None else {"bg:answerCreated": _timestamp(answer_created)}),
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
