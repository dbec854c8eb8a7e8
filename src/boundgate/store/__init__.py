"""Persistence: the ledger, API keys, stored answers, documents, labels, jobs, files and
batches. ``protocols.py`` is the seam (one async protocol per aggregate, ``Store`` their
union), ``rows.py`` the rows it speaks, ``sqlite.py`` and ``postgres.py`` the implementations
(``assembly.build_store`` picks one from ``store.url``)."""

from .protocols import (
    AnswerStore,
    CreativityStore,
    DocumentStore,
    FileStore,
    JobStore,
    KeyStore,
    LabelStore,
    LedgerStore,
    LimitStore,
    Store,
)
from .rows import (
    ApiKey,
    Claim,
    CounterState,
    DocumentRow,
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
    "Claim",
    "CounterState",
    "CreativityStore",
    "DocumentRow",
    "DocumentStore",
    "FileRow",
    "FileStore",
    "JobRow",
    "JobStore",
    "KeyStore",
    "LabelStore",
    "LedgerQuery",
    "LedgerRow",
    "LedgerStore",
    "LimitStore",
    "NewKey",
    "ObservationRow",
    "PeriodRow",
    "ReportRow",
    "SQLiteStore",
    "Store",
    "StoredEntry",
    "VariantRow",
]
