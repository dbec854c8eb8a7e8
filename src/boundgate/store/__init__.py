"""Persistence: the ledger, API keys, reuse entries and observations."""

from .base import (
    ApiKey,
    DocumentRow,
    JobRow,
    LedgerRow,
    NewKey,
    ObservationRow,
    ReportRow,
    Store,
    StoredEntry,
)
from .sqlite import SQLiteStore

__all__ = [
    "ApiKey",
    "DocumentRow",
    "JobRow",
    "LedgerRow",
    "NewKey",
    "ObservationRow",
    "ReportRow",
    "SQLiteStore",
    "Store",
    "StoredEntry",
]
