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
    SeriesPoint,
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
    "SeriesPoint",
    "Store",
    "StoredEntry",
    "VariantRow",
]
