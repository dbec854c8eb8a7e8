"""The store's two errors: the database out of reach, and a schema newer than this version.

The conventions every method keeps are the package docstring's.
"""

from __future__ import annotations


class StoreUnavailableError(Exception):
    """The store's database cannot be reached now (see the module docstring): the call did
    nothing that can be relied on, and the same call may succeed later. Not an error of the
    request, so not one of ``errors.py``'s: the server turns it into 503 ``store_unavailable``
    without trying to ledger it (the ledger is what cannot be reached)."""


class SchemaTooNewError(Exception):
    """The database holds migrations this version of boundgate does not know: a newer
    version migrated it, and this one would write rows its tables no longer take (a trial
    saw 500s and streams cut without an error). Raised by ``open``; nothing was changed."""


def check_schema_known(applied: set[int], known: list[tuple[int, str, str]]) -> None:
    """Raise :class:`SchemaTooNewError` when ``applied`` (the database's migration versions)
    holds one above the highest of ``known`` (this version's ``(version, name, sql)``)."""
    newest = max((v for v, _, _ in known), default=0)
    ahead = sorted(v for v in applied if v > newest)
    if ahead:
        raise SchemaTooNewError(
            f"its schema is at migration {ahead[-1]}, newer than this version of boundgate "
            f"knows ({newest}): a newer boundgate migrated it; run that version (or a newer "
            "one) against it"
        )
