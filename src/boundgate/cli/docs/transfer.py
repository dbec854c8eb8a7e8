"""Documents moved between gateways: ``docs export`` (written atomically) and ``docs import``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ...reuse import binding
from ..console import cannot_write, err, fail
from ..progress import track
from .checks import _export_problem, _self_check
from .common import ConfigOpt, DataDirOpt, ExportState, PublicKeyOpt, _engine, _opened
from .files import _name, _read_file, unwrap
from .keys import _Keys, _signer


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
    from .. import _settings, opened_store, out, store_missing, store_pointed

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
    from .. import store_named, warn_new_store

    where = store_named(settings)
    data_dir = settings.server.data_dir.resolve()
    err.print(f"importing into {where} (data directory {data_dir})", markup=False, highlight=False)
    if created:
        warn_new_store("that store", "this import", "import into a server's store", pointed=pointed)
