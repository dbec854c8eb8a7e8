"""What JSON text may carry that this gateway's text cannot hold: found in a parsed value, or
mended.

JSON's ``\\uXXXX`` escapes can spell a lone UTF-16 surrogate, which no UTF-8 text holds
(tokenizers, SQLite, the upstream, our own JSON encoder), and NUL (U+0000), which
PostgreSQL's ``text`` and ``jsonb`` cannot store (SQLSTATE 22021 / 22P05). Request bodies,
batch input lines and bound documents are checked with these before they are accepted; an
upstream's answers are mended (``mend``, ``mended``).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

NUL_REFUSED = (
    "holds the NUL character (\\u0000), which no text of a request may hold "
    "(PostgreSQL's text cannot store it, so a gateway on it could not keep the request)"
)

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NUL = re.compile(r"\x00")
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def first_match(value: Any, path: str, pattern: re.Pattern[str]) -> tuple[str, str] | None:
    """The first character of a parsed JSON value's strings (keys too) that ``pattern``
    matches, in document order: (where it is, dotted from ``path`` with ``[i]`` for list
    items; its ``\\uXXXX`` escape). A key is reported at its object's place."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            if (m := pattern.search(v)) is not None:
                return where, f"\\u{ord(m.group()):04x}"
        elif isinstance(v, dict):
            for k, item in reversed(list(v.items())):
                stack.append((where, k))  # a key is where its object is
                stack.append((f"{where}.{k}" if where else str(k), item))
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]", item) for i, item in reversed(list(enumerate(v))))
    return None


def lone_surrogate(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first lone UTF-16 surrogate in a parsed JSON value (``first_match``)."""
    return first_match(value, path, _SURROGATE)


def nul_at(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first NUL (U+0000) in a parsed JSON value (``first_match``)."""
    return first_match(value, path, _NUL)


def mend(text: str) -> str:
    """``text`` with each lone surrogate and NUL replaced by U+FFFD, the replacement character
    a UTF-8 decoder puts for what it cannot read."""
    return _UNSTORABLE.sub("\ufffd", text)


def mended(value: Any) -> Any:
    """A parsed JSON value with every string (keys too) mended (``mend``)."""
    if isinstance(value, str):
        return mend(value)
    if isinstance(value, list):
        return [mended(v) for v in value]
    if isinstance(value, dict):
        return {mended(k): mended(v) for k, v in value.items()}
    return value


_SCALAR_TYPES = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}


def json_type(value: Any) -> str:
    """A parsed JSON value's type in JSON's words, for a message: "null", "a boolean", "a
    number", "a string", "an array", "an object" ("a value" for anything JSON has no name
    for)."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return _SCALAR_TYPES.get(type(value), "a value")


def loads(text: str) -> Any:
    """``json.loads`` that refuses an object naming a member twice (RFC 8259 §4: names
    SHOULD be unique, and parsers differ on which one counts; ``{"model": "a", "model":
    "b"}`` was read as "b", where a proxy reading the first would have checked "a"). Raises
    ``json.JSONDecodeError`` (malformed, or a member given twice), ``RecursionError`` (too
    deep), ``ValueError`` (an integer literal over Python's 4,300 digits)."""

    def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in pairs:
            if name in out:
                raise json.JSONDecodeError(
                    f"the member {name!r} is given twice in one object", text, 0
                )
            out[name] = value
        return out

    return json.loads(text, object_pairs_hook=unique_members)


# How deep a request body (and a bound document) may nest. OpenAI's bodies nest a few levels
# (a JSON schema in response_format or tools a few dozen at most); the scope hash and its
# canonical JSON walk a body recursively, and 500 levels of arrays overflowed Python's stack
# there (a 500; a document's parameters 480 levels deep, a traceback from `docs import`).
MAX_JSON_DEPTH = 128


def nested_too_deeply(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests arrays and objects more than ``limit`` levels
    (walked without recursion, so any depth is read)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth > limit:
                return True
            items = v.values() if isinstance(v, dict) else v
            stack.extend((item, depth + 1) for item in items)
    return False


def nul_in_url(path: str, query: bytes) -> str | None:
    """Where a request's ``path`` or ``query`` (its raw query string) holds a NUL: ``path``,
    or the query parameter's name (``query`` where the name is all NUL); None if neither
    does."""
    if "\x00" in path:
        return "path"
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None
