"""What the ``docs`` commands share: their options and arguments, a document's id as given,
the store opened, a reuse engine on it, and the states a document can be in."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ...reuse import binding

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file (or BOUNDGATE_CONFIG); its data directory holds the store.",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory holding the store (default ./.boundgate)."),
]
DOC_URN = "urn:boundgate:doc:"


def doc_id_of(given: str) -> str:
    """The store's id (``doc_…``) of a document named by it or by its full ``@id``
    (``urn:boundgate:doc:sha256:…``, what ``docs import`` and ``docs verify`` print)."""
    return binding.short_id(given) if given.startswith(DOC_URN) else given


DocIdArg = Annotated[
    str,
    typer.Argument(
        help="A document's id (doc_…, from docs list, or its full urn:boundgate:doc:… @id).",
        callback=doc_id_of,
    ),
]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option("--public-key", help="PEM public key (default: the data directory's)."),
]


@contextmanager
def _opened(config: Path | None, data_dir: Path | None) -> Iterator[tuple[Any, Any]]:
    """(settings, open store) for the ``with`` block; exits 2 if the data directory holds no
    SQLite store (creating none)."""
    from .. import _settings, opened_store

    settings = _settings(config, data_dir=data_dir)
    with opened_store(settings, existing=True) as store:
        yield settings, store


def _engine(
    settings: Any, store: Any, *, embedder: bool = False, signer: binding.Signer | None = None
) -> Any:
    """A reuse engine on ``store`` (never loaded: the commands use its ``documents``), signing
    with ``signer`` (None: nothing is bound)."""
    from ...assembly import build_embedder
    from ...reuse.embedder import HashEmbedder
    from ...reuse.engine import ReuseEngine
    from ...reuse.verifier import Verifier

    return ReuseEngine(
        store=store,
        embedder=build_embedder(settings) if embedder else HashEmbedder(),
        verifier=Verifier(settings.reuse),
        settings=settings.reuse,
        rebind_window_s=settings.scheduler.rebind_window_s,
        signer=signer,
    )


class DocState(enum.StrEnum):
    """A bound document's states (``DocumentStore``)."""

    active = "active"
    stale = "stale"
    superseded = "superseded"
    revoked = "revoked"


class ExportState(enum.StrEnum):
    """What ``docs export --state`` writes: documents in one state, or all of them."""

    active = "active"
    stale = "stale"
    superseded = "superseded"
    revoked = "revoked"
    all = "all"
