"""Documents: the prompt registry, binding and the bound documents' life.

A meaning asked by ``reuse.bind_after`` distinct askers is bound: its answer is frozen into a
signed JSON-LD document (``binding.py``). Documents are imported from another gateway,
revoked, and marked stale when their model's version changes (a rebind job is queued for
each; while it waits, ``stale_keys`` lets the engine serve the stale answer marked so). Only a
document whose request is recorded can be rebound: one imported from another gateway (or
stored before requests were) stays active, a document of its own model version, which a
gateway running another version never serves (the version is part of the scope).
``ReuseEngine`` holds one ``Documents`` (``engine.documents``) and calls ``register`` on hits
and fresh answers; the entries themselves stay the engine's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..backends.base import GenerationRequest
from ..clock import Clock
from ..scheduler.jobs import JobQueue, model_requirement
from ..store import DocumentProblem, DocumentRow, Store, StoredEntry
from ..store.consistency import describe
from . import binding
from .binding import Signer
from .embedder import vector_bytes
from .lookup import imported_request, is_recorded_request, request_temperature
from .scope import ReuseKey, exact_hash, reuse_key, scope_hash, verbatim_scope

if TYPE_CHECKING:
    from .engine import ReuseEngine

log = logging.getLogger("boundgate.reuse")


class SigningKeyLost(ValueError):
    """The data directory has no signing key, but the store holds documents this gateway
    signed (``load_signer``): a new key would sign new documents with a key the old ones do
    not name."""


async def load_signer(store: Store, data_dir: Path) -> Signer:
    """The signing key of ``data_dir`` (``Signer.load``); made there if it has none and the
    store holds no document of this gateway's own (``DocumentStore.has_own_documents``: a
    new gateway, or one that never bound). Where it does, the key is lost (a data directory
    restored without it, a replica it was not copied to) and a new one would leave those
    documents failing ``docs verify`` ("signed by another key") and stop an import of this
    gateway's export at the first of them: raises ``SigningKeyLost`` instead, saying how to
    restore it or start a new key on purpose (``boundgate docs new-key``). Raises
    ``ValueError`` if the key file is not an Ed25519 private key."""
    signer = Signer.load(data_dir)
    if signer is not None:
        await _check_signs_like_the_store(store, data_dir, signer)
        return signer
    if await store.has_own_documents():
        path = (data_dir / binding.PRIVATE_KEY_FILE).resolve()
        newest = await _store_key(store)
        which = f" ({newest[0]}, document {newest[1]})" if newest else ""
        raise SigningKeyLost(
            f"the signing key {path} is missing, but the store holds documents signed with "
            f"it{which}: restore the file from a backup (or copy it from another replica); to sign "
            "with a new key instead, run `boundgate docs new-key` (the documents signed "
            "before then verify with the old public key, kept beside the new one)"
        )
    return Signer.load_or_create(data_dir)


# how many of the newest documents are read for the newest one this gateway signed (the rest
# may be imported: signed by their issuers)
_NEWEST_READ = 50


async def _check_signs_like_the_store(store: Store, data_dir: Path, signer: Signer) -> None:
    """Raise ``SigningKeyLost`` where the newest document the store's gateways signed names a
    key this data directory holds neither as its signing key nor as a kept earlier one: the
    replica has a key of its own, and would sign documents the other replicas (and ``docs
    verify`` with their key) find signed by another key, as a trial's replica did after
    serving another database first."""
    newest = await _store_key(store)
    if newest is None:
        return
    named, doc_id = newest
    if named in {binding.key_id(signer.public), *binding.data_dir_keys(data_dir)}:
        return
    path = (data_dir / binding.PRIVATE_KEY_FILE).resolve()
    raise SigningKeyLost(
        f"the signing key {path} ({binding.key_id(signer.public)}) is not the key the "
        f"store's documents are signed with ({named}, document {doc_id}): copy "
        f"{binding.PRIVATE_KEY_FILE} and {binding.PUBLIC_KEY_FILE} from a replica that "
        "signs with it (every replica of one store signs with one key)"
    )


async def _store_key(store: Store) -> tuple[str, str] | None:
    """The key id the newest document this store's gateways signed names, and that
    document's id; None where none of the newest ``_NEWEST_READ`` is one (imported ones are
    signed by their issuers) or it names no key."""
    for row in await store.documents(limit=_NEWEST_READ):
        if row.public_key is not None:
            continue  # imported: its issuer's key
        try:
            named = binding.proof_key_id(json.loads(row.body))
        except ValueError:
            return None
        return (named, row.id) if named is not None else None
    return None


def verifying_key(row: DocumentRow, own: Ed25519PublicKey | None) -> Ed25519PublicKey | None:
    """The key a stored document is verified with: the issuer's key it was verified with at
    import (``row.public_key``), else ``own``, this gateway's (None: none here). Raises
    ValueError if the stored key is not an Ed25519 public key in PEM."""
    if row.public_key is not None:
        return binding.public_key_from_pem(row.public_key)
    return own


class Documents:
    """Askers, binding, import, revocation and stale documents of one ``ReuseEngine``."""

    def __init__(
        self,
        engine: ReuseEngine,
        *,
        signer: Signer | None,
        jobs: JobQueue | None,
        rebind_window_s: float,
        key_dir: Path | None = None,
    ) -> None:
        """``signer``: signs bound documents (None: nothing is bound, unless ``key_dir``).
        ``jobs``: where rebind jobs are queued (None: none are). ``rebind_window_s``: their
        deadline (``scheduler.rebind_window_s``). ``key_dir``: with no ``signer``, the data
        directory whose key ``load_key`` loads, or makes if the store allows it
        (``load_signer``)."""
        self.engine = engine
        self.signer = signer
        self.key_dir = key_dir
        self.jobs = jobs
        self.rebind_window_s = rebind_window_s
        self._askers_seen: dict[int, set[str]] = {}  # entry → asker digests already counted
        self._stale_documents: set[str] = set()  # bound documents of superseded model versions
        self._stale_versions: dict[str, set[str]] = {}  # model → versions with stale documents
        self._refused_logged = False  # binds refused for another key than the store's: logged

    @property
    def store(self) -> Store:
        return self.engine.store

    async def load_key(self) -> None:
        """At start-up, with the store open: the signing key of ``key_dir`` if none was given
        (``load_signer``; raises ``SigningKeyLost`` where the store holds documents signed with
        a key that is not there, or with another key than this one)."""
        if self.key_dir is None:
            return
        if self.signer is None:
            self.signer = await load_signer(self.store, self.key_dir)
        else:  # given (the app is built with the data directory's key, where there is one)
            await _check_signs_like_the_store(self.store, self.key_dir, self.signer)

    async def signing_problem(self) -> str | None:
        """Why this gateway cannot sign documents for its store, or None: its key must be the
        one the store's newest own document names (or the store has none), checked before
        each bind, not only at start-up. Replicas that started together on an empty store
        each made a key of their own (a trial), and the second to bind would sign with
        another key than the first; it binds nothing instead, logs the error (once) and
        counts ``bind_refused_other_key``."""
        if self.key_dir is None or self.signer is None:
            return None
        try:
            await _check_signs_like_the_store(self.store, self.key_dir, self.signer)
        except SigningKeyLost as exc:
            self.engine.count("bind_refused_other_key")
            if not self._refused_logged:
                self._refused_logged = True
                log.error("documents are not bound here: %s", exc)
            return str(exc)
        return None

    async def repair(self) -> list[DocumentProblem]:
        """At start-up, before anything is loaded: make documents and the entries serving
        them agree where a gateway from before their writes were single transactions left
        them disagreeing (``DocumentStore.repair_documents``: a revoked document an entry
        still serves, a revocation a rebind undid, a bind that stopped halfway), in the
        safe direction; each repair is logged as a warning. What only an operator can judge
        (a current document nothing serves, an entry naming a document not stored, as an
        older replica's import is between its two writes) is left to ``boundgate docs
        check --repair``. Returns what was repaired (nothing, and no write, in a consistent
        store)."""
        repaired = await self.store.repair_documents()
        for problem in repaired:
            found, done = describe(problem)
            log.warning("document %s: %s; repaired: %s", problem.document, found, done)
        return repaired

    @property
    def clock(self) -> Clock:  # the engine's, even when a test replaces it
        return self.engine.clock

    def is_stale(self, doc_id: str | None) -> bool:
        """A bound document of a superseded model version (served only marked ``stale``)."""
        return doc_id in self._stale_documents

    def note_state(self, doc: DocumentRow) -> None:
        """Another process changed a document's state (the engine's ``follow``): only a
        stale document is served marked stale, so a superseded or revoked one stops here
        too."""
        if doc.state == "stale":
            self._stale_documents.add(doc.id)
            self._stale_versions.setdefault(doc.model, set()).add(doc.model_version)
        else:
            self._stale_documents.discard(doc.id)

    def forget(self, keys: list[int]) -> None:
        """Drop what is remembered about entries the engine forgot."""
        for k in keys:
            self._askers_seen.pop(k, None)

    async def register(self, entry_key: int, asker: str, query: str) -> str | None:
        """Count a distinct asker for a meaning; bind its answer once enough have asked.
        Returns the document id if this ask bound it."""
        digest = hashlib.sha256(asker.encode()).hexdigest()[:32]  # askers are not stored raw
        seen = self._askers_seen.setdefault(entry_key, set())
        if digest in seen:
            return None  # already counted: no write on the hot path
        count = await self.store.add_asker(entry_key, digest, query, self.clock.time())
        if len(seen) < 64:  # a small memo per entry; beyond it the store deduplicates
            seen.add(digest)
        meta = self.engine.meta(entry_key)
        if meta is not None and meta.document is None and count >= self.engine.settings.bind_after:
            row = await self.bind(entry_key)
            return row.id if row is not None else None
        return None

    async def bind(
        self,
        entry_key: int,
        *,
        supersedes: DocumentRow | None = None,
        previous_answer: str | None = None,
        variants: list[str] | None = None,
        askers: int | None = None,
    ) -> DocumentRow | None:
        """Freeze an entry's answer into a signed document (no-op if already bound: its
        document). With ``supersedes``, a new version of that document: bound only while the
        old one is still current (active or stale, not revoked or superseded meanwhile) and
        of another model version than the entry's; else None, nothing written."""
        if self.signer is None:
            return None
        entry = await self.store.get_entry(entry_key)
        if entry is None or entry.revoked:
            return None
        if entry.document_id:
            return await self.store.get_document(entry.document_id)
        if await self.signing_problem() is not None:
            return None
        if supersedes is not None and supersedes.model_version == entry.model_version:
            return None  # the same version again (a replica not yet upgraded): no new version
        variants = (variants or []) + await self.store.variants(entry_key)
        if askers is None:
            askers = await self.store.asker_count(entry_key)
        now = self.clock.time()
        created = datetime.fromtimestamp(now, tz=UTC)
        unsigned = binding.build(
            question=entry.query,
            variants=variants or [entry.query],
            answer=entry.answer,
            model=entry.model,
            model_version=entry.model_version,
            tenant=entry.tenant,
            scope=json.loads(entry.scope_doc),
            askers=max(1, askers),
            created=created,
            cost_wh=entry.cost_wh,
            cost_gco2=entry.cost_gco2,
            supersedes=json.loads(supersedes.body)["@id"] if supersedes else None,
            previous_answer=previous_answer,
            finish_reason=entry.finish_reason,
            completion_tokens=entry.completion_tokens,
            temperature=request_temperature(entry.request),
            answer_created=datetime.fromtimestamp(entry.created, tz=UTC),
        )
        signed = self.signer.sign(unsigned, created)
        row = DocumentRow(
            id=binding.short_id(signed["@id"]),
            entry=entry_key,
            tenant=entry.tenant,
            model=entry.model,
            model_version=entry.model_version,
            state="active",
            supersedes=supersedes.id if supersedes else None,
            superseded_by=None,
            created=now,
            body=binding.canonical(signed).decode(),
        )
        # the document, its entry pointed at it and the version it supersedes marked so, in
        # one transaction: all of it or (a failure, a process killed) none
        if not await self.store.put_document(row):
            if supersedes is not None:
                return None  # revoked or superseded meanwhile: it stays so
            # bound meanwhile (another process: that document), or revoked or deleted
            now_stored = await self.store.get_entry(entry_key)
            if now_stored is None or now_stored.revoked or not now_stored.document_id:
                return None
            self.engine.pin(entry_key, now_stored.document_id)
            return await self.store.get_document(now_stored.document_id)
        self.engine.pin(entry_key, row.id)
        if supersedes is not None:  # put_document marked it superseded
            self._stale_documents.discard(supersedes.id)
        self.engine.count("bound")
        return row

    async def displaced_by(self, doc: dict[str, Any]) -> str | None:
        """The active bound document that answers the question of ``doc`` (verified, not yet
        imported) in its scope now, as the store's newest answer to it, and whose place its
        import would take (the newest document is served): its id, or None. An import said
        nothing of it (a trial: a second signed document for a question silently replaced
        the first, which stayed listed active)."""
        placed = _Placed.of(binding.parse(doc, self.clock.time()))
        held = await self.store.get_entry_by_exact(placed.exact)
        other = held.document_id if held is not None else None
        if other is None or other == binding.short_id(str(doc["@id"])):
            return None
        row = await self.store.get_document(other)
        return other if row is not None and row.state == "active" else None

    async def import_document(
        self, doc: dict[str, Any], *, public_key: Ed25519PublicKey
    ) -> str | None:
        """Add a document (from ``docs export`` of this or another gateway) so its answer is
        served in its scope, once it verifies with ``public_key``, its issuer's key
        (``binding.verify``). That key is stored with it (``DocumentRow.public_key``; None
        when it is this gateway's own), and every later check of the document uses it.
        Returns its id, or None if it is here already. Raises ``binding.DocumentError`` (an
        InvalidRequestError: 400 over HTTP, ``param`` the field): ``proof`` if the document
        does not verify with ``public_key``; the field if one is missing or out of range
        (``binding.parse``: e.g. an energy that is negative, not finite or above
        ``binding.MAX_ANSWER_WH``). Nothing is stored then."""
        check = binding.verify(doc, public_key)
        if not check.ok:
            raise binding.DocumentError("proof", check.reason)
        content = binding.parse(doc, self.clock.time())
        doc_id = binding.short_id(str(doc["@id"]))
        if await self.store.get_document(doc_id) is not None:
            return None
        tenant = content.tenant
        placed = _Placed.of(content)
        query = content.question
        answer = content.answer
        # whole or cut, and where (documents bound before these fields say neither: whole)
        finish_reason = content.finish_reason
        completion_tokens = content.completion_tokens
        created = content.created
        # the answer's age counts from when it was generated, not bound (documents bound
        # before bg:answerCreated do not say: its age is unknown, ``EntryMeta.age_unknown``;
        # of two clocks that disagree, the earlier time)
        answered = min(content.answer_created or created, created)
        # sampled or greedy (documents bound before bg:temperature do not say: sampled, so
        # never served to temperature 0); only this is known here, not the request itself
        temperature = content.temperature
        # a text completion's prompt is kept to the character and reused exactly only
        fits = not placed.verbatim and self.engine.by_meaning(query, answer)
        vector = (await self.engine.embed([query]))[0] if fits else None
        entry_key = await self.store.new_entry_key()
        entry = StoredEntry(
            key=entry_key,
            id="ans_" + hashlib.sha256(f"import\n{doc['@id']}".encode()).hexdigest()[:24],
            scope=placed.scope_key,
            exact=placed.exact,
            query=query,
            answer=answer,
            finish_reason=finish_reason,
            prompt_tokens=0,
            completion_tokens=completion_tokens,
            model=content.model,
            model_version=content.model_version,
            tenant=tenant,
            created=answered.timestamp(),
            cost_wh=content.cost_wh,
            cost_gco2=content.cost_gco2,
            vector=vector_bytes(vector),
            embedder=self.engine.embedder.name,
            scope_doc=json.dumps(placed.scope_doc, sort_keys=True, separators=(",", ":")),
            document_id=doc_id,
            request=imported_request(temperature, age_known=content.answer_created is not None),
        )
        row = DocumentRow(
            id=doc_id,
            entry=entry_key,
            tenant=tenant,
            model=entry.model,
            model_version=entry.model_version,
            state="active",
            supersedes=None,
            superseded_by=None,
            created=created.timestamp(),
            body=binding.canonical(doc).decode(),
            public_key=None if self.is_own(public_key) else binding.public_pem(public_key).decode(),
        )
        # the entry and the document in one transaction; an entry of this id stored by an
        # import that stopped between the two writes (before they were one) is used
        stored = await self.store.import_document(entry, row)
        if stored is None:
            return None  # imported meanwhile
        if stored.key == entry.key:
            self.engine.admit(entry, vector)
        elif self.engine.meta(stored.key) is not None:
            self.engine.pin(stored.key, doc_id)
        elif not stored.revoked:
            self.engine.admit_stored(stored)
        return doc_id

    def is_own(self, public_key: Ed25519PublicKey) -> bool:
        """``public_key`` is this gateway's own signing key."""
        own = self.signer
        return own is not None and binding.key_fingerprint(public_key) == own.fingerprint

    def key_of(self, row: DocumentRow) -> Ed25519PublicKey | None:
        """The key ``row`` verifies with: an imported document's issuer key, else this
        gateway's own: the key of the data directory (``key_dir``) its proof names where one
        is kept there (signed before ``docs new-key`` replaced a lost key:
        ``binding.data_dir_keys``), else the signing key in use (None: none here). Raises
        ValueError if the stored issuer key is not an Ed25519 public key in PEM."""
        own = self.signer.public if self.signer is not None else None
        if row.public_key is None and self.key_dir is not None:
            try:
                named = binding.proof_key_id(json.loads(row.body))
            except ValueError:
                named = None  # (a body that is no JSON fails its check with any key)
            if named is not None and (own is None or named != binding.key_id(own)):
                kept = binding.data_dir_keys(self.key_dir).get(named)
                if kept is not None:
                    return kept[0]
        return verifying_key(row, own)

    async def revoke(self, doc_id: str) -> bool:
        """Stop serving a document's answer; the document stays, marked revoked, and so do
        the entries that serve it (every one pointed at it: ``DocumentStore.revoke_document``).
        False if there is no such document."""
        keys = await self.store.revoke_document(doc_id)
        if keys is None:
            return False
        await self.engine.forget(keys, delete=False)
        self._stale_documents.discard(doc_id)
        return True

    # --- model versions: stale documents and rebinding ---------------------------------
    async def mark_stale(self, current_versions: dict[str, str]) -> list[str]:
        """Documents bound by another version of a configured model become stale; a rebind
        job is queued for each. Returns the stale document ids.

        Only a document that can be rebound (``rebindable``) becomes stale: one that cannot
        (imported: no request is recorded) was served marked stale for good, its job skipped
        at every start. It stays active, served by no request of another version (as an
        answer never bound); one marked stale before is made active again."""
        stale: list[str] = []
        # both read before any is marked: one marked stale here is not found again
        found = [(state, await self.store.documents(state=state)) for state in ("active", "stale")]
        for state, docs in found:
            for doc in docs:
                current = current_versions.get(doc.model)
                if current is None or current == doc.model_version:
                    continue
                if not await self.rebindable(doc):
                    if state == "stale":
                        await self.unstale(doc.id)
                    continue
                # only while still active: a revocation since the read stays
                if state == "active" and not await self.store.set_document_state(
                    doc.id, "stale", expected="active"
                ):
                    continue
                stale.append(doc.id)
                self._stale_documents.add(doc.id)
                self._stale_versions.setdefault(doc.model, set()).add(doc.model_version)
                if self.jobs is not None:
                    # the version to bind it at: only a process running the model at that
                    # version claims the job (a replica not yet upgraded passes it over; one
                    # that took it anyway hands it back, ``scheduler.handlers.rebind``)
                    await self.jobs.submit(
                        "rebind",
                        {"document": doc.id, "version": current},
                        deadline_s=self.rebind_window_s,
                        duration_s=60.0,
                        dedupe=f"rebind:{doc.id}:{current}",
                        requires=model_requirement(doc.model, current),
                    )
        return stale

    async def rebindable(self, doc: DocumentRow) -> bool:
        """Whether ``doc``'s answer can be recomputed (the ``rebind`` job): its entry records
        the whole request (``is_recorded_request``), which an imported document's does not."""
        entry = await self.store.get_entry(doc.entry) if doc.entry is not None else None
        return entry is not None and is_recorded_request(entry.request)

    async def unstale(self, doc_id: str) -> bool:
        """A stale document that cannot be rebound becomes active again (only if it is still
        stale: a revocation meanwhile stands) and is no longer served marked stale. Returns
        whether it was stale."""
        self._stale_documents.discard(doc_id)
        return await self.store.set_document_state(doc_id, "active", expected="stale")

    def stale_keys(
        self, req: GenerationRequest, *, tenant: str, endpoint: str
    ) -> tuple[ReuseKey, ...]:
        keys = []
        for version in sorted(self._stale_versions.get(req.model, ())):
            k = reuse_key(req, tenant=tenant, model_version=version, endpoint=endpoint)
            if k is not None:
                keys.append(k)
        return tuple(keys)


@dataclass(frozen=True)
class _Placed:
    """Where a document's answer is filed: the reuse scope its fields name (``scope_doc``,
    hashed by ``scope.scope_hash``), whether that scope matches its question verbatim (a
    text completion's prompt) and the exact hash of its question there."""

    scope_doc: dict[str, Any]
    scope_key: str
    verbatim: bool
    exact: str

    @classmethod
    def of(cls, content: binding.Content) -> _Placed:
        scope_doc = {
            "model": content.model,
            "model_version": content.model_version,
            "endpoint": content.endpoint,
            "context_sha256": content.context_sha256,
            "params": content.params,
        }
        scope_key = scope_hash(content.tenant, scope_doc)
        verbatim = verbatim_scope(scope_doc)
        return cls(
            scope_doc,
            scope_key,
            verbatim,
            exact_hash(scope_key, content.question, verbatim=verbatim),
        )
