"""Persistence: the ledger, API keys, reuse entries and observations."""

from .base import (
    ApiKey,
    DocumentRow,
    FileRow,
    JobRow,
    LedgerQuery,
    LedgerRow,
    NewKey,
    ObservationRow,
    PeriodRow,
    ReportRow,
    Store,
    StoredEntry,
    VariantRow,
)
from .sqlite import SQLiteStore

__all__ = [
    "ApiKey",
    "DocumentRow",
    "FileRow",
    "JobRow",
    "LedgerQuery",
    "LedgerRow",
    "NewKey",
    "ObservationRow",
    "PeriodRow",
    "ReportRow",
    "SQLiteStore",
    "Store",
    "StoredEntry",
    "VariantRow",
]
