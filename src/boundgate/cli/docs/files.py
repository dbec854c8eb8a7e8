"""Document files, read: JSON, a JSON array or NDJSON (``read_documents``), parsed strictly
(``_loads``), and the items of an export, bare or wrapped (``unwrap``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..console import fail

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


def _name(doc: Any, number: int) -> str:
    """How errors name the ``number``-th document of a file (1-based): with its id if any."""
    doc_id = doc.get("@id") if isinstance(doc, dict) else None
    return f"document {number} ({doc_id})" if isinstance(doc_id, str) else f"document {number}"


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
