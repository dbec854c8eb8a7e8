"""Documents and the entries serving them, checked against each other: what the SQL stores
share for ``DocumentStore.document_problems`` and ``repair_documents``.

A gateway before the document writes were single transactions (and before a revocation
reached every entry, a rebind and the stale check stopped undoing revocations, and "wrong"
feedback revoked a bound answer's document) could leave a store whose documents and entries
disagree. Each kind of disagreement below has a check (a SELECT of ``(document, entry)``
rows) and a repair in the safe direction: nothing revoked is ever served again, a document
nothing serves is revoked rather than left current, and only a bind that stopped halfway is
completed. The statements take no parameters and read the same on SQLite and PostgreSQL
(``revoked`` is an integer on one and a boolean on the other: only ``NOT revoked`` and
``TRUE`` are used).

Repairs run in this order, each check read again after the repairs before it (a repair can
make what a later check finds: a document revoked by ``revocation_undone`` may still have
entries serving it, which ``revoked_served`` then revokes). Every start runs the
``automatic`` ones; ``unserved`` and ``missing_document`` run only when an operator asks
(``docs check --repair``): an older replica's import between its two writes looks like a
``missing_document`` for a moment, and a document whose entry a replica deleted before it
saw the binding (before deletes kept bound entries) is valid, not one "wrong" feedback
meant to revoke (a review's findings: both were revoked at the next start).
"""

from __future__ import annotations

from dataclasses import dataclass

from .rows import DocumentProblem

# an entry serving document d: pointed at it and not revoked
_SERVED = "EXISTS (SELECT 1 FROM reuse_entries s WHERE s.document_id = d.id AND NOT s.revoked)"
# document d's own entry, stored, live and pointed at no document (a bind stopped halfway)
_OWN_UNBOUND = (
    "EXISTS (SELECT 1 FROM reuse_entries u WHERE u.key = d.entry AND u.document_id IS NULL "
    "AND NOT u.revoked)"
)
_CURRENT = "d.state IN ('active', 'stale')"


@dataclass(frozen=True)
class Check:
    """One kind of disagreement: ``select`` finds it as ``(document, entry)`` rows; ``repair``
    (statements run in order, in the transaction of the select) puts it right."""

    kind: str
    found: str  # what is wrong, said of the document ({entry}: its entry's key)
    repaired: str  # what the repair does
    select: str
    repair: tuple[str, ...]
    # repaired at every start (``DocumentStore.repair_documents``); else only when asked
    # (``repair_documents(everything=True)``, ``docs check --repair``): what the current
    # code's own writes can leave for a moment (an older replica's import between its two
    # writes) or what only an operator can judge (a document whose entry is gone)
    automatic: bool = True


CHECKS: tuple[Check, ...] = (
    Check(
        "revocation_undone",
        "superseded, but its entry {entry} is revoked: revoked, then superseded by a rebind "
        "that finished or a stale check that ran meanwhile",
        "document revoked",
        "SELECT d.id AS document, e.key AS entry FROM documents d JOIN reuse_entries e "
        "ON e.key = d.entry WHERE d.state = 'superseded' AND e.revoked "
        "AND (e.document_id IS NULL OR e.document_id = d.id)",
        (
            "UPDATE documents SET state = 'revoked' WHERE id IN (SELECT d.id FROM documents d "
            "JOIN reuse_entries e ON e.key = d.entry WHERE d.state = 'superseded' AND e.revoked "
            "AND (e.document_id IS NULL OR e.document_id = d.id))",
        ),
    ),
    Check(
        "unbound_entry",
        "current, but its entry {entry} does not name it: a bind that stopped halfway",
        "entry bound to it",
        "SELECT d.id AS document, d.entry AS entry FROM documents d "
        f"WHERE {_CURRENT} AND NOT {_SERVED} AND {_OWN_UNBOUND}",
        (
            # of two documents a bind run twice left for one entry, the newest
            "UPDATE reuse_entries SET document_id = (SELECT d.id FROM documents d "
            f"WHERE d.entry = reuse_entries.key AND {_CURRENT} AND NOT {_SERVED} "
            "ORDER BY d.created DESC, d.id DESC LIMIT 1) "
            "WHERE document_id IS NULL AND NOT revoked AND key IN (SELECT d.entry FROM "
            f"documents d WHERE {_CURRENT} AND NOT {_SERVED})",
        ),
    ),
    Check(
        "unserved",
        "current, but no entry serves it (its entry {entry} deleted, revoked or bound to "
        "another document): a revocation or 'wrong' feedback that stopped halfway",
        "document revoked",
        "SELECT d.id AS document, d.entry AS entry FROM documents d "
        f"WHERE {_CURRENT} AND NOT {_SERVED} AND NOT {_OWN_UNBOUND}",
        (
            "UPDATE documents SET state = 'revoked' WHERE id IN (SELECT d.id FROM documents d "
            f"WHERE {_CURRENT} AND NOT {_SERVED} AND NOT {_OWN_UNBOUND})",
        ),
        automatic=False,
    ),
    Check(
        "missing_document",
        "not stored, but entry {entry} names it and is served: an import that stopped halfway",
        "entry deleted (run the import again to serve it)",
        "SELECT e.document_id AS document, e.key AS entry FROM reuse_entries e "
        "WHERE e.document_id IS NOT NULL AND NOT e.revoked "
        "AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = e.document_id)",
        (
            "DELETE FROM reuse_question_variants WHERE entry IN (SELECT e.key FROM "
            "reuse_entries e WHERE e.document_id IS NOT NULL AND NOT e.revoked "
            "AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = e.document_id))",
            "DELETE FROM reuse_entries WHERE document_id IS NOT NULL AND NOT revoked "
            "AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = reuse_entries.document_id)",
        ),
        automatic=False,
    ),
    Check(
        "revoked_served",
        "revoked, but its entry {entry} still serves it: a revocation that reached only "
        "some of its entries",
        "entry revoked",
        "SELECT d.id AS document, e.key AS entry FROM documents d JOIN reuse_entries e "
        "ON e.document_id = d.id WHERE d.state = 'revoked' AND NOT e.revoked "
        "UNION SELECT d.id AS document, e.key AS entry FROM documents d JOIN reuse_entries e "
        "ON e.key = d.entry WHERE d.state = 'revoked' AND e.document_id IS NULL "
        "AND NOT e.revoked",
        (
            "UPDATE reuse_entries SET revoked = TRUE WHERE NOT revoked AND (document_id IN "
            "(SELECT id FROM documents WHERE state = 'revoked') OR (document_id IS NULL AND "
            "key IN (SELECT entry FROM documents WHERE state = 'revoked' "
            "AND entry IS NOT NULL)))",
        ),
    ),
)
CHECKS_BY_KIND = {c.kind: c for c in CHECKS}


def describe(problem: DocumentProblem) -> tuple[str, str]:
    """(what is wrong, what its repair does) for ``problem``, in words: the first says it of
    the document (``docs check`` prints its id before it)."""
    check = CHECKS_BY_KIND[problem.kind]
    entry = "none" if problem.entry is None else str(problem.entry)
    return check.found.format(entry=entry), check.repaired
