"""Signed, versioned bound documents.

The conventions every method keeps are the package docstring's.
"""

from __future__ import annotations

from typing import Protocol

from ..rows import (
    DocumentProblem,
    DocumentRow,
    StoredEntry,
)


class DocumentStore(Protocol):
    """Bound JSON-LD documents and their lifecycle (active, stale, superseded, revoked)."""

    async def put_document(self, doc: DocumentRow) -> bool:
        """Insert a document, with the key it verifies with (``public_key``: an imported
        document's issuer key; None: this gateway's own), and bind it, all in one
        transaction: its entry (``doc.entry``) is pointed at it, and a new version marks
        the one it supersedes (``doc.supersedes``) superseded, so no reader ever sees the
        new version and an old one that is still current, or a document whose entry does
        not name it. Both are conditional: the entry must be stored, not revoked and bound
        to no other document (two binds of one entry at once: one wins); the superseded
        document must still be current, ``active`` or ``stale`` (one revoked or superseded
        meanwhile stays so). If either is not so, nothing is written and it returns False;
        else True. A document without an entry (``entry`` None) is only inserted. Raises
        the implementation's integrity error if the id exists."""

    async def import_document(self, entry: StoredEntry, doc: DocumentRow) -> StoredEntry | None:
        """Store an imported document and the entry that serves its answer, in one
        transaction, the entry pointed at the document and the document at the entry. An
        entry stored under ``entry.id`` already (by an import that stopped between its two
        writes, before they were one) is used instead of ``entry``, whatever its key: the
        document is bound to it (and stored ``revoked`` if that entry is). Returns the entry
        the document is bound to, as stored; None, writing nothing, if a document with
        ``doc.id`` exists already (atomic: of concurrent imports of one document one
        writes)."""

    async def get_document(self, doc_id: str) -> DocumentRow | None:
        """The document ``doc_id`` (rows written before keys were kept: ``public_key``
        None); None if there is none."""

    async def documents(
        self, state: str | None = None, limit: int | None = None
    ) -> list[DocumentRow]:
        """Documents in ``state`` (None: any), newest ``created`` first, at most ``limit``."""

    async def set_document_state(
        self,
        doc_id: str,
        state: str,
        superseded_by: str | None = None,
        *,
        expected: str | None = None,
    ) -> bool:
        """Set a document's state (and ``superseded_by``, when given), if it is in state
        ``expected`` (None: any; one conditional update, so a state another process set
        meanwhile, a revocation, is never overwritten). False if there is no such document
        or it is not in ``expected``."""

    async def revoke_document(self, doc_id: str) -> list[int] | None:
        """Revoke a document and, in the same transaction, every entry that serves it: each
        entry pointed at it (``document_id``), and its own entry (``doc.entry``) if that is
        pointed at no document (a bind that stopped between its writes, before they were
        one). Entries are kept, revoked. Returns the keys of those entries (revoked now or
        before), or None if there is no such document."""

    async def has_own_documents(self) -> bool:
        """Whether any document verifies with the gateway's own key (``public_key`` None:
        bound here, or stored before imported documents kept their keys)."""

    async def document_counts(self) -> dict[str, int]:
        """Documents per state (states with none are absent), for metrics."""

    async def document_problems(self) -> list[DocumentProblem]:
        """Where documents and the entries serving them disagree, as a gateway from before
        their writes were single transactions could leave them (``consistency.CHECKS``: a
        revoked document an entry still serves, a current one no entry serves or whose
        entry does not name it, an entry naming a document that is not stored, a revocation
        a rebind undid); in the checks' order, sorted within each. Reads only."""

    async def repair_documents(self, everything: bool = False) -> list[DocumentProblem]:
        """Repair what ``document_problems`` finds, in the safe direction, all in one
        transaction (on PostgreSQL one repair at a time across replicas), and return what
        was repaired; writes nothing when nothing is found. Always (every start): never
        serve what was revoked, revoke a superseded document whose revocation a rebind
        undid, complete a bind that stopped halfway. With ``everything`` (an operator's
        ``docs check --repair``) also: revoke a current document nothing serves, delete an
        entry naming a document never stored (``consistency.Check.automatic``)."""
