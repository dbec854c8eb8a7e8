"""Persistence: the ledger, API keys (and later documents and jobs)."""

from .base import ApiKey, LedgerRow, NewKey, ReportRow, Store
from .sqlite import SQLiteStore

__all__ = ["ApiKey", "LedgerRow", "NewKey", "ReportRow", "SQLiteStore", "Store"]
