"""Persistence: the ledger, API keys, stored answers, documents, labels, jobs, files and
batches. ``protocols.py`` is the seam (one async protocol per aggregate, ``Store`` their
union), ``rows.py`` the rows it speaks, ``sqlite.py`` the implementation."""

from .protocols import (
    AnswerStore,
    ChangeFeed,
    CreativityStore,
    DocumentStore,
    FileStore,
    JobStore,
    KeyStore,
    LabelStore,
    LedgerStore,
    ProfileStore,
    Store,
)
from .rows import (
    ApiKey,
    ChangeRow,
    DocumentRow,
    EnergyProfileRow,
    FileRow,
    JobRow,
    LedgerQuery,
    LedgerRow,
    NewKey,
    ObservationRow,
    PeriodRow,
    ReportRow,
    StoredEntry,
    VariantRow,
)
from .sqlite import SQLiteStore

__all__ = [
    "AnswerStore",
    "ApiKey",
    "ChangeFeed",
    "ChangeRow",
    "CreativityStore",
    "DocumentRow",
    "DocumentStore",
    "EnergyProfileRow",
    "FileRow",
    "FileStore",
    "JobRow",
    "JobStore",
    "KeyStore",
    "LabelStore",
    "LedgerQuery",
    "LedgerRow",
    "LedgerStore",
    "NewKey",
    "ObservationRow",
    "PeriodRow",
    "ProfileStore",
    "ReportRow",
    "SQLiteStore",
    "Store",
    "StoredEntry",
    "VariantRow",
]
