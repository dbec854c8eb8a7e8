"""``boundgate docs``: list, show, verify, export, import, bind and revoke bound documents;
check them against the stored answers serving them (``check``); start a new signing key
(``new-key``).

These commands work on the store directly (SQLite allows it beside a running server); a
server notices a revocation at the next hit on the document's answer. The store is the one of
``--config``'s (or ``--data-dir``'s) data directory, by default ``./.boundgate`` of the current
directory: all but ``import``, ``new-key`` (and ``verify`` of a file) refuse where it holds
no SQLite store rather than create an empty one (``opened_store(existing=True)``).

Exit codes: 2 when what the command is given cannot be used (a file, key, store, document or
stored answer that is not there, a file that is not JSON, a key that is not PEM, a signing
key that is lost, an ``--out`` that cannot be written), 1 when it is there but fails (a
document that does not verify, an import that stops or has nothing to import, an answer
that cannot be bound).

An export holds the active documents exactly as signed. With ``--state`` it may hold others:
each is written wrapped, ``{"state": "revoked", "document": {...}}`` (a signed document
carries no state), and ``docs import`` never serves a wrapped document that is not active
(it verifies it and counts it as not imported). The marker is outside every signature: the
document stripped of it, or from an earlier export, imports as active, and a gateway that
imported it before keeps it; a revocation reaches no other gateway (docs/reuse.md).

The signing key is never made by a command that only revokes, verifies, imports or exports;
``bind`` makes it only where the store holds no document signed with a lost one
(``reuse.documents.load_signer``), and ``new-key`` starts a new one on purpose.

A document this gateway imported is verified with its issuer's key, kept at import; its
export is wrapped too, ``{"document": {...}, "issuer": {...}}`` (with ``"state"`` when not
active), the issuer's key endorsed by this gateway's (``binding.Signer.endorse``), so whoever
verifies the export with this gateway's key verifies that document with its issuer's. So is
one of its own signed with an earlier key, lost since (``docs new-key``), whose public key
the data directory keeps (``binding.data_dir_keys``): ``verify`` checks each of the
gateway's own documents with the key of the data directory its proof names, and says which.

The package, by concern: ``common`` (the options, ``doc_id_of``, the store opened, the
states), ``files`` (document files read, ``read_documents``, ``unwrap``), ``keys`` (the
signing key, the keys documents verify with, ``new-key``), ``checks`` (``verify``,
``check``), ``transfer`` (``export``, ``import``) and ``manage`` (``list``, ``show``,
``bind``, ``revoke``). This module builds ``docs_app`` and registers the commands, in the
order ``--help`` lists them (typer lists them as registered).
"""

from __future__ import annotations

import typer

from .checks import docs_check, docs_verify
from .common import (
    DOC_URN,
    ConfigOpt,
    DataDirOpt,
    DocIdArg,
    DocState,
    ExportState,
    PublicKeyOpt,
    doc_id_of,
)
from .common import _engine as _engine  # tests import it from here, as from docs.py before
from .files import WRAPPER_FIELDS, read_documents, unwrap
from .keys import docs_new_key
from .manage import docs_bind, docs_list, docs_revoke, docs_show
from .transfer import docs_export, docs_import

docs_app = typer.Typer(
    help="Bound documents: signed, versioned answers.\n\n"
    "They are kept in the store of --config's (or --data-dir's) data directory, by default "
    "./.boundgate of the current directory.",
    no_args_is_help=True,
)

docs_app.command("list")(docs_list)
docs_app.command("show")(docs_show)
docs_app.command("verify")(docs_verify)
docs_app.command("export")(docs_export)
docs_app.command("import")(docs_import)
docs_app.command("bind")(docs_bind)
docs_app.command("revoke")(docs_revoke)
docs_app.command("check")(docs_check)
docs_app.command("new-key")(docs_new_key)

__all__ = [
    "DOC_URN",
    "WRAPPER_FIELDS",
    "ConfigOpt",
    "DataDirOpt",
    "DocIdArg",
    "DocState",
    "ExportState",
    "PublicKeyOpt",
    "doc_id_of",
    "docs_app",
    "docs_bind",
    "docs_check",
    "docs_export",
    "docs_import",
    "docs_list",
    "docs_new_key",
    "docs_revoke",
    "docs_show",
    "docs_verify",
    "read_documents",
    "unwrap",
]
