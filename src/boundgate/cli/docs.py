"""``boundgate docs``: list, show, verify, export, import, bind and revoke bound documents.

These commands work on the store directly (SQLite allows it beside a running server); a
server notices a revocation at the next hit on the document's answer.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..reuse import binding
from .progress import track

docs_app = typer.Typer(help="Bound documents: signed, versioned answers.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option("--public-key", help="PEM public key (default: the data directory's)."),
]


@contextmanager
def _opened(config: Path | None, data_dir: Path | None) -> Iterator[tuple[Any, Any]]:
    """(settings, open store) for the ``with`` block."""
    from . import _settings, opened_store

    settings = _settings(config, data_dir=data_dir)
    with opened_store(settings) as store:
        yield settings, store


def _engine(settings: Any, store: Any, *, embedder: bool = False) -> Any:
    from ..assembly import build_embedder
    from ..reuse.embedder import HashEmbedder
    from ..reuse.engine import ReuseEngine
    from ..reuse.verifier import Verifier

    return ReuseEngine(
        store=store,
        embedder=build_embedder(settings) if embedder else HashEmbedder(),
        verifier=Verifier(settings.reuse),
        settings=settings.reuse,
        rebind_window_s=settings.scheduler.rebind_window_s,
        signer=binding.Signer.load_or_create(settings.server.data_dir),
    )


def _fail(message: str, code: int = 1) -> typer.Exit:
    from . import err

    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _loads(text: str) -> Any:
    """``json.loads``, with what Python's parser refuses beyond JSON's grammar (nesting deeper
    than the recursion limit, integers of over 4300 digits) as a JSONDecodeError too."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text[:64], 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        raise json.JSONDecodeError("an integer literal is too long", text[:64], 0) from None


def read_documents(text: str) -> Iterator[Any]:
    """One JSON document, a JSON array of them, or NDJSON (JSONDecodeError if none)."""
    text = text.strip()
    if not text:
        return
    try:
        data = _loads(text)
    except json.JSONDecodeError:
        for line in text.splitlines():
            if line.strip():
                yield _loads(line)
        return
    if isinstance(data, list):
        yield from data
    else:
        yield data


@docs_app.command("list")
def docs_list(
    state: Annotated[str | None, typer.Option(help="active, stale, superseded, revoked")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Bound documents, newest first."""
    from . import out

    with _opened(config, data_dir) as (_, store):
        rows = asyncio.run(store.documents(state=state))
    table = Table()
    table.add_column("id", no_wrap=True, min_width=28)
    table.add_column("state", no_wrap=True)
    table.add_column("question", overflow="ellipsis", no_wrap=True, max_width=40)
    for name in ("model", "askers", "created"):
        table.add_column(name)
    for r in rows:
        body = json.loads(r.body)
        table.add_row(
            r.id,
            r.state,
            str(body.get("name", ""))[:60],
            r.model,
            str(body.get("bg:askerCount", "")),
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created)),
        )
    out.print(table)


@docs_app.command("show")
def docs_show(doc_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print a document's signed JSON-LD."""
    with _opened(config, data_dir) as (_, store):
        row = asyncio.run(store.get_document(doc_id))
    if row is None:
        raise _fail(f"no document {doc_id!r}")
    print(json.dumps(json.loads(row.body), indent=2, ensure_ascii=False))


@docs_app.command("verify")
def docs_verify(
    file_or_id: Annotated[str, typer.Argument(help="A JSON-LD/NDJSON file, '-', or a doc id.")],
    public_key: PublicKeyOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Check content ids and signatures offline; exit 1 if any document fails."""
    from . import _settings, out

    settings = _settings(config, data_dir=data_dir)
    key_path = public_key or settings.server.data_dir / binding.PUBLIC_KEY_FILE
    if not key_path.exists():
        raise _fail(f"public key not found: {key_path} (give --public-key)", 2)
    key = binding.load_public_key(key_path)
    path = Path(file_or_id)
    if file_or_id == "-" or path.exists():
        try:
            docs = list(read_documents(sys.stdin.read() if file_or_id == "-" else path.read_text()))
        except json.JSONDecodeError as exc:
            raise _fail(f"{file_or_id} is not JSON or NDJSON: {exc}", 2) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {file_or_id}: {exc}", 2) from None
    else:
        from . import opened_store

        with opened_store(settings) as store:
            row = asyncio.run(store.get_document(file_or_id))
        if row is None:
            raise _fail(f"no file or document {file_or_id!r}", 2)
        docs = [json.loads(row.body)]
    if not docs:  # an empty or truncated export verifies nothing: never "all valid"
        raise _fail(f"no documents in {file_or_id}: nothing to verify", 1)
    bad = 0
    for doc in docs:
        result = binding.verify(doc, key)
        name = doc.get("@id", "?") if isinstance(doc, dict) else "?"
        if result.ok:
            out.print(f"[green]valid[/green]   {name}", highlight=False)
        else:
            bad += 1
            out.print(f"[red]INVALID[/red] {name}: {result.reason}", highlight=False)
    if bad:
        raise typer.Exit(1)


@docs_app.command("export")
def docs_export(
    fmt: Annotated[
        str, typer.Option("--format", help="jsonld (a JSON array) or ndjson")
    ] = "jsonld",
    state: Annotated[str | None, typer.Option(help="Only documents in this state.")] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="File (default stdout).")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write signed documents, exactly as stored."""
    if fmt not in ("jsonld", "ndjson"):
        raise typer.BadParameter("--format must be jsonld or ndjson")
    with _opened(config, data_dir) as (_, store):
        rows = asyncio.run(store.documents(state=state))
    # NDJSON/JSON on stdout is machine output: no bar beside it
    bodies = [r.body for r in track(rows, "exporting documents", machine_output=output is None)]
    text = "\n".join(bodies) + "\n" if fmt == "ndjson" else "[" + ",\n".join(bodies) + "]\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


@docs_app.command("import")
def docs_import(
    file: Path,
    public_key: PublicKeyOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Verify documents (with --public-key: the exporting gateway's) and serve their answers."""
    from . import out

    with _opened(config, data_dir) as (settings, store):
        key_path = public_key or settings.server.data_dir / binding.PUBLIC_KEY_FILE
        if not key_path.exists():
            raise _fail(f"public key not found: {key_path} (give --public-key)", 2)
        key = binding.load_public_key(key_path)
        try:
            docs = list(read_documents(file.read_text()))
        except json.JSONDecodeError as exc:
            raise _fail(f"{file} is not JSON or NDJSON: {exc}", 2) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {file}: {exc}", 2) from None
        engine = _engine(settings, store, embedder=True)
        added = skipped = 0
        for doc in track(docs, "importing documents"):
            result = binding.verify(doc, key)
            if not result.ok:
                name = doc.get("@id", "?") if isinstance(doc, dict) else "?"
                raise _fail(f"{name}: {result.reason}; nothing after it imported")
            if asyncio.run(engine.documents.import_document(doc)) is None:
                skipped += 1
            else:
                added += 1
    out.print(f"imported {added}, already present {skipped}")


@docs_app.command("bind")
def docs_bind(
    answer_id: Annotated[str, typer.Argument(help="A stored answer's id (ans_…).")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Bind a stored answer now, whatever its asker count."""
    with _opened(config, data_dir) as (settings, store):
        entry = asyncio.run(store.get_entry_by_id(answer_id))
        if entry is None:
            raise _fail(f"no stored answer {answer_id!r}")
        row = asyncio.run(_engine(settings, store).documents.bind(entry.key))
    if row is None:
        raise _fail(f"answer {answer_id!r} cannot be bound (revoked?)")
    print(row.id)


@docs_app.command("revoke")
def docs_revoke(doc_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop serving a document's answer (the document stays, marked revoked)."""
    with _opened(config, data_dir) as (settings, store):
        ok = asyncio.run(_engine(settings, store).documents.revoke(doc_id))
    if not ok:
        raise _fail(f"no document {doc_id!r}")
    print(f"revoked {doc_id}")
