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
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..reuse import binding
from .console import cannot_write, err, fail
from .progress import track

docs_app = typer.Typer(
    help="Bound documents: signed, versioned answers.\n\n"
    "They are kept in the store of --config's (or --data-dir's) data directory, by default "
    "./.boundgate of the current directory.",
    no_args_is_help=True,
)

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
    from . import _settings, opened_store

    settings = _settings(config, data_dir=data_dir)
    with opened_store(settings, existing=True) as store:
        yield settings, store


def _engine(
    settings: Any, store: Any, *, embedder: bool = False, signer: binding.Signer | None = None
) -> Any:
    """A reuse engine on ``store`` (never loaded: the commands use its ``documents``), signing
    with ``signer`` (None: nothing is bound)."""
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
        signer=signer,
    )


def _signer(settings: Any, store: Any = None) -> binding.Signer | None:
    """The data directory's signing key; None where it has none. With ``store`` (to sign):
    made where it has none if the store holds no document signed with a lost one
    (``documents.load_signer``), else a one-line error, exit 2. A key file that is not an
    Ed25519 private key is a one-line error too (exit 2). Commands that only revoke, verify
    or import never make one: a key made there would not be the gateway's."""
    from ..reuse.documents import load_signer

    data_dir = settings.server.data_dir
    try:
        if store is None:
            return binding.Signer.load(data_dir)
        return asyncio.run(load_signer(store, data_dir))
    except ValueError as exc:  # SigningKeyLost, or not an Ed25519 key
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(first, 2) from None


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


WRAPPER_FIELDS = frozenset({"state", "document", "issuer"})


def unwrap(item: Any) -> tuple[Any, Any, Any]:
    """(document, state, issuer) of one item of an export. A bare document counts as
    ``active``, signed by the exporting gateway (issuer None). Others are wrapped,
    ``{"document": D}`` with ``"state": S`` (a document in another state than active) and/or
    ``"issuer": E`` (a document the exporting gateway imported: its issuer's key, endorsed by
    the exporter, ``binding.Signer.endorse``); a wrapper without ``state`` is active."""
    if isinstance(item, dict) and "document" in item and set(item) <= WRAPPER_FIELDS:
        return item["document"], item.get("state", "active"), item.get("issuer")
    return item, "active", None


def _document_key(doc: Any, issuer: Any, key: Any) -> tuple[Any, str | None]:
    """(the key ``doc`` verifies with, None): ``key``, the exporting gateway's, for a bare
    document; the issuer key an item carries (``issuer``) if ``key`` endorsed it for this
    document. (None, what is wrong) if it did not."""
    if issuer is None:
        return key, None
    endorsed = binding.endorsed_key(issuer, doc, key)
    return (endorsed.key, None) if endorsed.ok else (None, endorsed.reason)


class _Keys:
    """The keys documents are checked with: ``--public-key`` (a file's exporting gateway's)
    alone when given; else this data directory's (``binding.data_dir_keys``): for a document
    (or an issuer key's endorsement) whose proof names one of them, that one (an earlier
    signing key, kept as ``signing-key.FINGERPRINT.pub.pem`` when it was lost, verifies what
    it signed), else its signing key's, ``signing-key.pub.pem`` (a one-line error, exit 2,
    if it is not there, when first needed)."""

    def __init__(self, given: Path | None, settings: Any) -> None:
        self.given = given
        self.settings = settings
        held = {} if given is not None else binding.data_dir_keys(settings.server.data_dir)
        self.held = {k: (key, _source(path)) for k, (key, path) in held.items()}
        self._default: tuple[Any, str] | None = None

    def default(self) -> tuple[Any, str]:
        """(the key, where it is from) of ``--public-key``, else of the data directory."""
        if self._default is None:
            path = self.given or self.settings.server.data_dir / binding.PUBLIC_KEY_FILE
            self._default = (_public_key(self.given, self.settings), str(path))
        return self._default

    def named(self, key_id: Any) -> tuple[Any, str]:
        """(key, where it is from) for the key ``key_id`` names: this data directory's of
        that id, else ``default``."""
        held = self.held.get(key_id) if isinstance(key_id, str) else None
        return held if held is not None else self.default()

    def of(self, doc: Any, issuer: Any) -> tuple[Any, str | None, str]:
        """(the key ``doc`` verifies with, what is wrong before that check, where the key is
        from): the key its proof names, or the issuer key an export carries beside it if
        the key of the exporter that endorsed it (``_document_key``) is this one."""
        if issuer is None:
            key, source = self.named(binding.proof_key_id(doc))
            return key, None, source
        by = issuer.get("endorsedBy") if isinstance(issuer, dict) else None
        trusted, source = self.named(by)
        key, reason = _document_key(doc, issuer, trusted)
        return key, reason, f"the issuer's, endorsed by {binding.key_id(trusted)}, {source}"


def _source(path: Path) -> str:
    """How ``docs verify`` names a key file of the data directory."""
    if path.name == binding.PUBLIC_KEY_FILE:
        return str(path)
    return f"{path}, an earlier signing key of this data directory"


def _name(doc: Any, number: int) -> str:
    """How errors name the ``number``-th document of a file (1-based): with its id if any."""
    doc_id = doc.get("@id") if isinstance(doc, dict) else None
    return f"document {number} ({doc_id})" if isinstance(doc_id, str) else f"document {number}"


def _public_key(given: Path | None, settings: Any) -> Any:
    """The Ed25519 public key in PEM file ``given`` (``--public-key``), else in the data
    directory's; a one-line error (exit 2) if it is not, naming the file it looked for."""
    from cryptography.exceptions import UnsupportedAlgorithm

    path = given or settings.server.data_dir / binding.PUBLIC_KEY_FILE
    if not path.exists():
        if given is None:  # run in another directory than the gateway's, likely
            raise fail(
                f"public key not found: {path.resolve()}, the data directory's (the default): "
                "give the exporting gateway's with --public-key",
                2,
            )
        raise fail(f"public key not found: {path.resolve()} (--public-key)", 2)
    try:
        return binding.load_public_key(path)
    except (OSError, ValueError, UnsupportedAlgorithm) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(f"{path} is not an Ed25519 public key in PEM: {first}", 2) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, refusing a name given twice (``object_pairs_hook``)."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise json.JSONDecodeError(f"duplicate member name {name!r}", name, 0)
        out[name] = value
    return out


def _loads(text: str) -> Any:
    """``json.loads``, with what Python's parser refuses beyond JSON's grammar (nesting deeper
    than the recursion limit, integers of over 4300 digits) as a JSONDecodeError too, and an
    object that names a member twice refused: RFC 8785 (JCS, what a document's signature is
    over) and I-JSON forbid it, and Python keeps the last, so a trial's document with an
    unsigned "name" before the signed one verified valid while a reader taking the first
    saw the unsigned text."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text[:64], 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        raise json.JSONDecodeError("an integer literal is too long", text[:64], 0) from None


def _read_file(name: str) -> list[Any]:
    """The documents in file ``name`` (``-``: stdin); a one-line error (exit 2) if it cannot
    be read or holds no JSON or NDJSON. UTF-8, a byte-order mark at its start skipped (as
    request bodies and batch input files skip one; a trial's file was refused as no JSON)."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        return list(read_documents(text.removeprefix("\ufeff")))
    except json.JSONDecodeError as exc:
        raise fail(f"{name} is not JSON or NDJSON: {exc}", 2) from None
    except FileNotFoundError:
        raise fail(f"no such file: {Path(name).resolve()}", 2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {name}: {exc}", 2) from None


def read_documents(text: str) -> Iterator[Any]:
    """One JSON document, a JSON array of them, or NDJSON, whose lines end at "\\n" only
    (JSONDecodeError if none)."""
    text = text.strip()
    if not text:
        return
    try:
        data = _loads(text)
    except json.JSONDecodeError:
        offset = 0
        # lines end at "\n" only: U+2028, U+2029 and U+0085 inside a JSON string are text
        # (an answer holding one made a whole export unreadable with splitlines: a trial)
        for raw in text.split("\n"):
            line = raw + "\n"
            if line.strip():
                try:
                    yield _loads(line)
                except json.JSONDecodeError as exc:
                    # the place in the file, not in its line (a duplicate member's error said
                    # "line 1 column 1" whatever line it was on: a re-check's finding)
                    raise json.JSONDecodeError(exc.msg, text, offset + exc.pos) from None
            offset += len(line)
        return
    if isinstance(data, list):
        yield from data
    else:
        yield data


@docs_app.command("list")
def docs_list(
    state: Annotated[
        ExportState | None,
        typer.Option(help="Only documents in this state (all: every state, as without it)."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Bound documents, newest first."""
    from . import out

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


@docs_app.command("show")
def docs_show(doc_id: DocIdArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print a document's signed JSON-LD."""
    with _opened(config, data_dir) as (_, store):
        row = asyncio.run(store.get_document(doc_id))
    if row is None:
        raise fail(f"no document {doc_id!r}", 2)
    print(json.dumps(json.loads(row.body), indent=2, ensure_ascii=False))


@docs_app.command("verify")
def docs_verify(
    file_or_id: Annotated[
        str,
        typer.Argument(
            help="A file of documents (JSON-LD or NDJSON, as docs export writes; '-': stdin), "
            "or the id of a document in the store."
        ),
    ],
    public_key: PublicKeyOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Check documents offline: content ids, signatures and contents.

    Exits 1 if any document fails; so does a validly signed document whose fields docs
    import would refuse. A file is checked with the exporting gateway's key (--public-key;
    default: this data directory's), and a document it carries with an issuer key (one that
    gateway imported) with that key, if the exporter endorsed it. A document in the store is
    checked with the key it was verified with at import, else with --public-key, else with
    the data directory's key its proof names: its signing key, or an earlier one kept when
    that was lost (signing-key.FINGERPRINT.pub.pem). Each valid document is printed with the
    key that verified it and where that key came from."""
    from . import _settings, out

    settings = _settings(config, data_dir=data_dir)
    path = Path(file_or_id)
    # (document, state, the key to check it with, what is wrong before that check, where the
    # key is from)
    checks: list[tuple[Any, str, Any, str | None, str]] = []
    keys = _Keys(public_key, settings)
    if file_or_id == "-" or path.exists():
        docs = _read_file(file_or_id)  # the file, then the key
        keys.default()
        for item in docs:
            doc, state, issuer = unwrap(item)
            checks.append((doc, state, *keys.of(doc, issuer)))
    else:
        from . import no_store, opened_store, store_missing

        if store_missing(settings):  # a mistyped file name, or an id looked up elsewhere
            raise fail(f"no file {file_or_id!r}; as a document id: {no_store(settings)}", 2)
        with opened_store(settings, existing=True) as store:
            row = asyncio.run(store.get_document(doc_id_of(file_or_id)))
        if row is None:
            raise fail(f"no file or document {file_or_id!r}", 2)
        checks.append(_stored_check(row, keys))
    if not checks:  # an empty or truncated export verifies nothing: never "all valid"
        raise fail(f"no documents in {file_or_id}: nothing to verify", 1)
    bad = 0
    for number, (doc, state, doc_key, wrong, source) in enumerate(checks, 1):
        name = _name(doc, number)
        reason = wrong or _export_problem(doc, doc_key, state, settings)
        if reason is None:
            marked = "" if state == "active" else f" ({state}: not imported by docs import)"
            by = f", key {binding.key_id(doc_key)} ({source})"
            out.print(
                f"[green]valid[/green]   {escape(name + marked + by)}", markup=True, highlight=False
            )
        else:
            mine = public_key is None and not source.startswith("the issuer's")
            if mine and reason.startswith("signed by another key"):
                reason += ": no public key of it in this data directory: give it with --public-key"
            bad += 1
            out.print(
                f"[red]INVALID[/red] {escape(f'{name}: {reason}')}", markup=True, highlight=False
            )
    if bad:
        raise typer.Exit(1)


def _stored_check(row: Any, keys: _Keys) -> tuple[Any, str, Any, str | None, str]:
    """(document, state, the key to check it with, what is wrong before that check, where
    the key is from) of a stored document: an imported one carries its issuer's key (this
    directory's is not needed); one of its own, the key its proof names (an earlier one
    where the key was lost)."""
    from ..reuse.documents import verifying_key

    try:
        body = json.loads(row.body)
    except ValueError as exc:  # a store changed by hand: a re-check's '{not json' traceback
        return {}, row.state, None, f"its stored text is no JSON ({exc})", ""
    try:
        if row.public_key is not None:
            issuer = verifying_key(row, None)
            return body, row.state, issuer, None, "the issuer's, kept at import"
        return body, row.state, *keys.of(body, None)
    except ValueError as exc:
        return body, row.state, None, f"its stored key: {exc}", ""


def _state_problem(state: Any) -> str | None:
    """What is wrong with an export item's ``state`` (None: one of ``DocState``): a trial's
    "state": {} or "ACTIVE" counted silently as not active, and ``docs verify`` called a
    "bogus" state valid where ``docs import`` refused it."""
    if isinstance(state, str) and state in DocState.__members__:
        return None
    # as the file spells it: a JSON null was printed 'None' (a trial)
    return f"state must be one of {', '.join(DocState)}, not {json.dumps(state)}"


def _export_problem(doc: Any, key: Any, state: Any, settings: Any) -> str | None:
    """What keeps an exported document from being imported here (``docs verify`` and
    ``docs import`` say the same): its signature or content (``_problem``), its state
    (``_state_problem``), a question no request could ask (``_unaskable``); or None."""
    return (
        _problem(doc, key)
        or _state_problem(state)
        or _unaskable(doc, settings.server.max_body_bytes)
    )


def _unaskable(doc: dict[str, Any], max_body_bytes: int) -> str | None:
    """Why no request could ask ``doc``'s question here, or None: it is longer than a request
    body may be (``server.max_body_bytes``; a request holds it JSON-escaped, never shorter).
    A trial's document with a 5 MB question took ~745 MB to import (its embedding) for an
    answer no request could reach."""
    size = len(str(doc.get("name", "")).encode())
    if size <= max_body_bytes:
        return None
    return (
        f"validly signed, but name: the question is {size} bytes, longer than any request "
        f"may be here (server.max_body_bytes, {max_body_bytes}): it could never be asked"
    )


def _self_check(settings: Any) -> Callable[[Any], str | None]:
    """What is wrong with a stored document's own text, as ``docs verify`` would find it
    (``_problem``), or None; a data directory without its public key cannot check its own
    documents (those pass, as stored)."""
    keys = _Keys(None, settings)
    own_keys = (settings.server.data_dir / binding.PUBLIC_KEY_FILE).exists()

    def check(row: Any) -> str | None:
        if row.public_key is None and not own_keys:
            return None
        doc, _, doc_key, wrong, _ = _stored_check(row, keys)
        return wrong or _problem(doc, doc_key)

    return check


def _problem(doc: Any, key: Any) -> str | None:
    """What is wrong with a document (its signature, else its content), or None."""
    result = binding.verify(doc, key)
    if not result.ok:
        return result.reason
    try:
        binding.parse(doc)
    except binding.DocumentError as exc:
        return f"validly signed, but {exc.message}"
    return None


@docs_app.command("export")
def docs_export(
    fmt: Annotated[
        str, typer.Option("--format", help="jsonld (a JSON array) or ndjson")
    ] = "jsonld",
    state: Annotated[
        ExportState,
        typer.Option(
            help="Documents in this state, or all. Any but active are written wrapped, "
            '{"state": S, "document": D}, which docs import does not import. The marker is '
            "not signed: it revokes nothing elsewhere."
        ),
    ] = ExportState.active,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="File (default stdout).")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write the active signed documents exactly as stored.

    With --state: documents in other states too, marked as such. Imported documents are
    written with their issuer's key, endorsed by this gateway's."""
    if fmt not in ("jsonld", "ndjson"):
        raise typer.BadParameter("--format must be jsonld or ndjson")
    with _opened(config, data_dir) as (settings, store):
        wanted = None if state is ExportState.all else state.value
        rows = asyncio.run(store.documents(state=wanted))
    signer: binding.Signer | None = None
    held = binding.data_dir_keys(settings.server.data_dir)
    signer_loaded = False

    def current() -> binding.Signer | None:
        nonlocal signer, signer_loaded
        if not signer_loaded:
            signer, signer_loaded = _signer(settings), True
        return signer

    def earlier_key(row: Any) -> Any:
        """The earlier signing key of this data directory that signed ``row``, one of its
        own documents, if the key signing now can vouch for it; else None (bare)."""
        named = held.get(binding.proof_key_id(json.loads(row.body)) or "")
        if named is None or named[1].name == binding.PUBLIC_KEY_FILE or current() is None:
            return None
        return named[0]

    def item(row: Any) -> str:
        earlier = earlier_key(row) if row.public_key is None else None
        if row.state == "active" and row.public_key is None and earlier is None:
            return str(row.body)
        parts = [] if row.state == "active" else [f'"state":{json.dumps(row.state)}']
        parts.append(f'"document":{row.body}')
        if row.public_key is not None or earlier is not None:
            # imported: its issuer's key, endorsed by this one; signed here with an earlier
            # key (lost since): that key, endorsed by the one signing now
            endorser = current()
            if endorser is None:  # a key made now would endorse with a key nobody trusts
                path = (settings.server.data_dir / binding.PRIVATE_KEY_FILE).resolve()
                raise fail(
                    f"document {row.id} was imported: its issuer's key is endorsed with this "
                    f"gateway's signing key, and {path} is not there",
                    2,
                )
            try:
                issuer = earlier or binding.public_key_from_pem(row.public_key)
            except ValueError as exc:
                raise fail(f"document {row.id}: its stored key: {exc}") from None
            endorsement = endorser.endorse(str(json.loads(row.body).get("@id")), issuer)
            parts.append(f'"issuer":{json.dumps(endorsement, separators=(",", ":"))}')
        return "{" + ",".join(parts) + "}"

    # every document is checked as docs verify checks it: one whose stored text fails its
    # own check (a store changed by hand, a disk fault) was exported silently, and every
    # import of the file stopped at it, nothing after it imported (an operator's trial)
    check = _self_check(settings)
    bodies, failed = [], []
    for r in track(rows, "exporting documents", machine_output=output is None):
        if (problem := check(r)) is None:
            bodies.append(item(r))
        else:
            failed.append(f"{r.id}: {problem}")
    if fmt == "ndjson":
        text = "".join(b + "\n" for b in bodies)  # none: an empty file, not a blank line
    else:
        text = "[" + ",\n".join(bodies) + "]\n"
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            _write_atomically(output, text)
        except OSError as exc:  # a directory that is not there, no permission, a full disk
            raise cannot_write(output, exc) from None
    for line in failed:
        err.print(
            f"error: not exported: {line} (boundgate docs check lists every such document)",
            markup=False,
            highlight=False,
        )
    # a trial's empty export said nothing, and docs verify then refused the file it wrote: a
    # file's export says how many (stderr), an export to stdout only when there was none
    if output is not None or not bodies:
        which = "" if state is ExportState.all else f" {state.value}"
        err.print(
            f"exported {len(bodies)}{which} document{'s' if len(bodies) != 1 else ''}",
            markup=False,
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, renamed over it: a
    failure (or a kill) midway leaves ``path`` as it was, never a truncated export. The file
    gets the mode a plain write would give it (the umask's)."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@docs_app.command("import")
def docs_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="The documents to import (JSON-LD or NDJSON, as docs export writes; '-': stdin)."
        ),
    ],
    public_key: PublicKeyOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Verify signed documents and import them, so the gateway serves their answers.

    Documents are verified with --public-key, the exporting gateway's key (default: this
    data directory's). They are imported into the store of --config's (or --data-dir's)
    data directory, by default ./.boundgate: give the server's config to import into the
    store it serves from.

    A document the exporting gateway imported itself is verified with the issuer key it
    carries, if the exporter endorsed it; the key each document verified with is kept with
    it. Stops at the first document that fails (exit 1), naming it and the field; the ones
    before it stay imported and are counted (all are verified before the store is opened,
    so a file whose first document fails creates nothing). A document exported in another
    state than active is verified but not imported.

    Says on stderr which store it imports into, and warns when the import creates it (no
    server uses it yet)."""
    from . import _settings, opened_store, out, store_missing, store_pointed

    settings = _settings(config, data_dir=data_dir)
    # the file and then the key first: a mistake there leaves no store behind, and a file
    # that is not there is named as such, not as a key missing for it
    docs = _read_file(str(file))
    keys = _Keys(public_key, settings)
    keys.default()  # a key that is not there or not one: said before anything else
    if not docs:  # an empty or truncated export: as docs verify says, nothing to import
        raise fail(f"no documents in {file}: nothing to import", 1)
    # every document is verified before the store is opened: a file whose first document
    # fails leaves no store (and no signing key) behind, as a bad key or file does
    verified: list[tuple[dict[str, Any], str, Any]] = []
    failure: str | None = None
    for number, item in enumerate(docs, 1):
        doc, state, issuer = unwrap(item)
        doc_key, reason, _ = keys.of(doc, issuer)
        reason = reason or _export_problem(doc, doc_key, state, settings)
        if reason is not None and public_key is None and reason.startswith("signed by another"):
            reason += ": give the exporting gateway's public key with --public-key"
        if reason is not None:
            failure = f"{_name(doc, number)}: {reason}"
            break
        verified.append((doc, state, doc_key))
    added = skipped = inactive = 0
    if failure is None and verified and all(state != "active" for _, state, _ in verified):
        # a file of revoked (stale, superseded) documents has nothing to serve here: exit 1
        # and no store, as an empty file (a trial's import of one revoked document exited 0)
        raise fail(
            f"nothing to import: {len(verified)} document(s) verified, none active "
            "(documents in another state are not imported)",
            1,
        )

    def counts() -> str:
        return f"imported {added}, already present {skipped}" + (
            f", not active (not imported) {inactive}" if inactive else ""
        )

    if verified:
        created = store_missing(settings)
        with opened_store(settings) as store:
            _say_where(settings, created, pointed=store_pointed(config, data_dir))
            engine = _engine(settings, store, embedder=True, signer=_signer(settings))

            async def import_all() -> None:
                # one event loop for the whole file: a loop per document (asyncio.run each)
                # gave each its own worker threads, and the store a reader connection per
                # thread: a trial's 600 documents ran out of file descriptors (1,024)
                nonlocal added, skipped, inactive
                for number, (doc, state, doc_key) in enumerate(
                    track(verified, "importing documents"), 1
                ):
                    if state != "active":
                        inactive += 1  # verified, never served here
                        continue
                    other = await engine.documents.displaced_by(doc)
                    if await engine.documents.import_document(doc, public_key=doc_key) is None:
                        skipped += 1
                        continue
                    added += 1
                    if other is not None:  # the newest document is served: say whose place
                        err.print(
                            f"warning: {_name(doc, number)} takes the place of {other}, active "
                            "for the same question in the same scope, which is no longer "
                            "served (`boundgate docs revoke` the one not wanted)",
                            markup=False,
                            highlight=False,
                        )

            asyncio.run(import_all())
    if failure is not None:
        raise fail(f"{failure}; before it: {counts()}; nothing after it imported")
    out.print(counts())


def _say_where(settings: Any, created: bool, *, pointed: bool) -> None:
    """Tell (stderr) which store ``docs import`` writes to; warn if it has just created it
    (a note only when ``pointed``: --config or --data-dir named it, ``store_pointed``)."""
    from . import store_named, warn_new_store

    where = store_named(settings)
    data_dir = settings.server.data_dir.resolve()
    err.print(f"importing into {where} (data directory {data_dir})", markup=False, highlight=False)
    if created:
        warn_new_store("that store", "this import", "import into a server's store", pointed=pointed)


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
            raise fail(f"no stored answer {answer_id!r}", 2)
        signer = _signer(settings, store)
        row = asyncio.run(_engine(settings, store, signer=signer).documents.bind(entry.key))
    if row is None:
        raise fail(f"answer {answer_id!r} cannot be bound (revoked?)")
    print(row.id)


@docs_app.command("revoke")
def docs_revoke(doc_id: DocIdArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop serving a document's answer (the document stays, marked revoked)."""
    with _opened(config, data_dir) as (settings, store):
        ok = asyncio.run(_engine(settings, store).documents.revoke(doc_id))  # signs nothing
    if not ok:
        raise fail(f"no document {doc_id!r}", 2)
    print(f"revoked {doc_id}")


@docs_app.command("check")
def docs_check(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Put what is found right, in the safe direction (what the server does at "
            "every start).",
        ),
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Find documents and stored answers that disagree; exit 1 if any (with --repair: repair
    them, exit 0).

    A gateway from before a bind, an import and a revocation were each one write could leave
    a revoked document an answer still serves, a current document no answer serves (or whose
    answer does not name it), an answer naming a document never stored, or a revocation a
    rebind undid. The server repairs at every start what cannot be valid (never serving
    what was revoked); a current document no answer serves and an answer naming a document
    never stored (also what an older replica's import looks like between its two writes)
    are repaired only here, with --repair, once no older replica runs."""
    from ..store.consistency import describe
    from . import out

    with _opened(config, data_dir) as (settings, store):
        found = asyncio.run(
            store.repair_documents(everything=True) if repair else store.document_problems()
        )
        check = _self_check(settings)
        current = [r for r in asyncio.run(store.documents()) if r.state in ("active", "stale")]
        failing = [(r.id, p) for r in current if (p := check(r))]
    # a current document whose own text fails its check (changed in the store by hand, a
    # disk fault) is not exported; nothing here can restore its text (a trial was sent here
    # by docs export and told all agreed); revoked, it is served no more and not listed
    for doc_id, problem in failing:
        out.print(
            f"{doc_id} (fails its own check): {problem}; not exported. Restore the store "
            f"from a backup, or stop serving it: boundgate docs revoke {doc_id}",
            markup=False,
            highlight=False,
        )
    if not found and not failing:
        out.print("documents and their stored answers agree", highlight=False)
        return
    for problem in found:
        what, done = describe(problem)
        line = f"{problem.document} ({problem.kind}): {what}"
        out.print(line + (f"; repaired: {done}" if repair else ""), markup=False, highlight=False)
    if repair:
        out.print(f"repaired {len(found)}", highlight=False)
        if failing:
            raise typer.Exit(1)
        return
    if not found:  # only documents that fail their own check: --repair cannot mend them
        raise typer.Exit(1)
    err.print(
        f"{len(found)} found: `boundgate docs check --repair` repairs them (so does the "
        "server's next start)",
        markup=False,
        highlight=False,
    )
    raise typer.Exit(1)


@docs_app.command("new-key")
def docs_new_key(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Start a new signing key where this data directory's is lost.

    The server refuses to start, and docs bind to sign, without the key while the store
    holds documents it signed: restore signing-key.pem from a backup (or another replica)
    if you can. Otherwise this makes a new key pair. Documents signed with the lost key
    then verify with its public key, kept as signing-key.FINGERPRINT.pub.pem when
    signing-key.pub.pem still held it: docs verify uses it for them, and docs export
    carries it beside them endorsed by the new key (without that file, give the old public
    key to docs verify with --public-key). Exit 2 where a signing key is there."""
    from . import _settings, out

    settings = _settings(config, data_dir=data_dir)
    where = settings.server.data_dir
    if not where.is_dir():
        raise fail(f"no data directory {where.resolve()}: give --config or --data-dir", 2)
    existing = _signer(settings)
    if existing is not None:
        raise fail(
            f"{(where / binding.PRIVATE_KEY_FILE).resolve()} is there (key "
            f"{binding.key_id(existing.public)}): nothing to do",
            2,
        )
    signer = binding.Signer.load_or_create(where)
    out.print(f"new signing key {binding.key_id(signer.public)} in {where.resolve()}")
    for kept in sorted(where.glob(binding.kept_public_key_file("*"))):
        out.print(f"an earlier key's public key: {kept.resolve()}", highlight=False)
