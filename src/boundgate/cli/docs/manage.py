"""The store's documents read and changed: ``docs list``, ``show``, ``bind`` and ``revoke``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import typer
from rich.table import Table

from ..console import fail
from .common import ConfigOpt, DataDirOpt, DocIdArg, ExportState, _engine, _opened
from .keys import _signer


def docs_list(
    state: Annotated[
        ExportState | None,
        typer.Option(help="Only documents in this state (all: every state, as without it)."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Bound documents, newest first."""
    from .. import out

    # `all` as `docs export --state` and the API take it (a trial's `--state all` was refused)
    wanted = None if state is None or state is ExportState.all else state.value
    with _opened(config, data_dir) as (_, store):
        rows = asyncio.run(store.documents(state=wanted))
    table = Table()
    table.add_column("id", no_wrap=True, min_width=28)
    table.add_column("state", no_wrap=True)
    # cut to fit a terminal only: piped or redirected, every question is whole
    # (docs/observability.md, Output)
    terminal = out.is_terminal
    table.add_column(
        "question", overflow="ellipsis", no_wrap=True, max_width=40 if terminal else None
    )
    for name in ("model", "askers", "created"):
        table.add_column(name)
    for r in rows:
        body = json.loads(r.body)
        table.add_row(
            r.id,
            r.state,
            str(body.get("name", "")),
            r.model,
            str(body.get("bg:askerCount", "")),
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created)),
        )
    out.print(table)


def docs_show(doc_id: DocIdArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print a document's signed JSON-LD."""
    with _opened(config, data_dir) as (_, store):
        row = asyncio.run(store.get_document(doc_id))
    if row is None:
        raise fail(f"no document {doc_id!r}", 2)
    print(json.dumps(json.loads(row.body), indent=2, ensure_ascii=False))


def docs_bind(
    answer_id: Annotated[str, typer.Argument(help="A stored answer's id (ans_…).")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Bind a stored answer now, whatever its asker count."""
    with _opened(config, data_dir) as (settings, store):
        entry = asyncio.run(store.get_entry_by_id(answer_id))
        if entry is None:
            raise fail(f"no stored answer {answer_id!r}", 2)
        signer = _signer(settings, store)
        row = asyncio.run(_engine(settings, store, signer=signer).documents.bind(entry.key))
    if row is None:
        raise fail(f"answer {answer_id!r} cannot be bound (revoked?)")
    print(row.id)


def docs_revoke(doc_id: DocIdArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop serving a document's answer (the document stays, marked revoked)."""
    with _opened(config, data_dir) as (settings, store):
        ok = asyncio.run(_engine(settings, store).documents.revoke(doc_id))  # signs nothing
    if not ok:
        raise fail(f"no document {doc_id!r}", 2)
    print(f"revoked {doc_id}")
