"""Documents checked: ``docs verify`` (a file's, or one in the store), what keeps one from being
imported (``_export_problem``), a stored document's own text (``_self_check``), and
``docs check`` (documents against the stored answers serving them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ...reuse import binding
from ..console import err, fail
from .common import ConfigOpt, DataDirOpt, DocState, PublicKeyOpt, _opened, doc_id_of
from .files import _name, _read_file, unwrap
from .keys import _Keys


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
    from .. import _settings, out

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
        from .. import no_store, opened_store, store_missing

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
    from ...reuse.documents import verifying_key

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
    from ...store.consistency import describe
    from .. import out

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
