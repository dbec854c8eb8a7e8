"""A batch's input file read and checked (``POST /v1/batches`` reads it whole at creation, its
run again without the checks): UTF-8 JSON Lines, OpenAI's four keys a line, ``custom_id``
unique, ``method`` POST, ``url`` the batch's endpoint, each ``body`` checked as its endpoint
checks a request. Every error is a 400 on ``input_file_id`` naming the line as an editor
numbers it (docs/api.md, Batches in clean hours)."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from pydantic import ValidationError

from ...errors import ErrorCode, InvalidRequestError
from ...jsontext import NUL_REFUSED, loads, lone_surrogate, nested_too_deeply
from ...reuse.policy import check_options
from .. import generation
from ..chat.protocol import ChatCompletionRequest, near_miss
from ..common import (
    NON_FINITE,
    TOO_DEEP,
    body_misspellings,
    check_no_nul,
    non_finite_number,
    request_error,
)
from ..completions.protocol import CompletionRequest
from ..embeddings.protocol import EmbeddingRequest
from ..embeddings.serving import check_request

LINE_KEYS = ("custom_id", "method", "url", "body")  # OpenAI's batch input line, all of it
MAX_LINES = 50_000
# OpenAI's Batch API: "/v1/embeddings batches are also restricted to a maximum of 50,000
# embedding inputs across all requests in the batch" (POST /v1/batches, ``endpoint``)
MAX_EMBEDDING_INPUTS = 50_000
TOO_MANY_DIGITS = f"an integer literal has more than {sys.get_int_max_str_digits()} digits"


def bad_input(message: str) -> InvalidRequestError:
    """A 400 about the batch's input file (``param: input_file_id``)."""
    return InvalidRequestError(message, param="input_file_id", code=ErrorCode.INVALID_VALUE)


def check_body(
    endpoint: str, body: dict[str, Any]
) -> ChatCompletionRequest | CompletionRequest | EmbeddingRequest:
    """One line's ``body`` checked as the online endpoint checks a request before it runs:
    Unicode text only (no lone surrogate, no NUL: ``check_no_nul``), the endpoint's request
    model (strict types, value ranges), no unsupported parameter. Raises InvalidRequestError
    naming the parameter. A line is never streamed (its answer goes to the output file):
    ``stream`` and ``stream_options`` are checked as online (``stream_options`` with
    ``stream: true`` only), then ignored."""
    bad = lone_surrogate(body)
    if bad is not None:
        where, esc = bad
        raise InvalidRequestError(
            f"{where or 'body'}: lone surrogate {esc} is not Unicode text",
            param=where or None,
            code=ErrorCode.INVALID_VALUE,
        )
    check_no_nul(body)
    if endpoint == "/v1/embeddings":
        try:
            embedding = EmbeddingRequest.model_validate(body)
        except ValidationError as exc:
            typos = body_misspellings(EmbeddingRequest, body)
            raise request_error(exc.errors(), body, typos=typos) from None
        check_request(embedding)  # the model, dimensions, lengths: when the line runs
        return embedding
    model: type[ChatCompletionRequest] | type[CompletionRequest] = (
        ChatCompletionRequest if endpoint == "/v1/chat/completions" else CompletionRequest
    )
    try:
        req = model.model_validate(body)
    except ValidationError as exc:
        # the misspelt keys first, as the endpoint names them (a re-check)
        typos = body_misspellings(model, body)
        raise request_error(exc.errors(), body, typos=typos) from None
    generation.refuse_unsupported(req)  # suffix included (CompletionRequest.unsupported)
    check_options((req.model_extra or {}).get("boundgate"))  # "reuse": "bogus" ran, then failed
    return req.model_copy(update={"stream": False, "stream_options": None})


def _check_keys(where: str, item: dict[str, Any]) -> None:
    """The line (``where``: ``_line_label``) has no key but OpenAI's four: a misspelt
    ``custom_id`` or a ``metadata`` meant for the batch was dropped unseen."""
    for key in item:
        if key in LINE_KEYS:
            continue
        if (close := near_miss(key, LINE_KEYS)) is not None:
            hint = f"did you mean '{close}'?"
        elif key == "metadata" or near_miss(key, ("metadata",)):
            hint = "a batch's metadata goes with the request that creates it (POST /v1/batches)"
        else:
            hint = "a line has only custom_id, method, url and body"
        raise bad_input(f"{where}: unknown key {key!r}; {hint}")


def _line_label(n: int, item: dict[str, Any]) -> str:
    """How an error names line ``n``: ``line 3 (custom_id 'q3')``, or ``line 3`` where the
    line has no usable ``custom_id`` (missing, not a string, not Unicode text)."""
    cid = item.get("custom_id")
    if isinstance(cid, str) and cid and lone_surrogate(cid) is None:
        return f"line {n} (custom_id {cid!r})"
    return f"line {n}"


BOM = "\ufeff"  # a byte order mark, as many Windows tools write at a file's start
# a file's start that holds no request: its byte order mark and ASCII white space
# (str.isspace's: \t \n \v \f \r, \x1c-\x1f, space)
_BLANK_START = re.compile(rb"(?:\xef\xbb\xbf)?[\t\n\v\f\r\x1c-\x1f ]*")


def has_requests(content: bytes) -> bool:
    """Whether ``content`` has a line that is not blank, as :func:`parse_lines` reads it
    (after a byte order mark; a line of white space only, Unicode's included, is blank).
    Cheap on a large file: a request's line starts with an ASCII character, so only a file
    whose first one after white space is not ASCII is decoded (content that is not UTF-8
    has something in it: creating its batch says what is wrong)."""
    start = _BLANK_START.match(content)
    assert start is not None  # (the pattern matches the empty string)
    rest = start.end()
    if rest == len(content):
        return False
    if content[rest] < 0x80:
        return True
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return bool(text.removeprefix(BOM).strip())


def parse_lines(
    content: bytes, endpoint: str, *, check: bool = True, max_body_bytes: int | None = None
) -> list[dict[str, Any]]:
    """The batch's lines. ``check``: also check every line's keys, that it has a ``method``,
    and every body as the endpoint would (at creation; at run time a line whose body fails the
    check fails alone, in the error file, and a line with another key or without ``method``,
    accepted before they were checked, runs), its size too: a body over ``max_body_bytes``
    (``server.max_body_bytes``, as compact JSON), which the endpoint would refuse with a 413,
    is refused (a trial's 2 MiB line ran)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = content.count(b"\n", 0, exc.start) + 1  # numbered as below
        raise bad_input(
            f"the input file is not UTF-8: line {at} has byte 0x{content[exc.start]:02x} "
            f"(byte {exc.start} of the file: {exc.reason})"
        ) from None
    text = text.removeprefix(BOM)
    # JSON Lines ends a line at "\n" only ("\r\n" too): str.splitlines() also split at
    # U+2028, U+2029 and U+0085, which JSON strings may hold unescaped. Numbered as an
    # editor numbers them, blank lines counted and skipped.
    lines = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not lines:
        raise bad_input("the input file has no requests")
    if len(lines) > MAX_LINES:
        raise bad_input(f"at most {MAX_LINES} requests per batch")
    seen: dict[str, int] = {}  # custom_id → its line
    out = []
    for n, line in lines:
        try:
            item = loads(line)
        except RecursionError:
            raise bad_input(f"line {n} is not JSON: {TOO_DEEP}") from None
        except json.JSONDecodeError as exc:
            raise bad_input(f"line {n} is not JSON: {exc.msg}") from None
        except ValueError:  # Python's limit on integer literals (4300 digits)
            raise bad_input(f"line {n} is not JSON: {TOO_MANY_DIGITS}") from None
        if not isinstance(item, dict):
            raise bad_input(f"line {n} is not an object")
        where = _line_label(n, item)
        if nested_too_deeply(item):
            raise bad_input(f"{where}: {TOO_DEEP}")
        place = non_finite_number(item)
        if place is not None:
            raise bad_input(f"{where}: {place}: {NON_FINITE}")
        if check:
            _check_keys(where, item)
        cid = item.get("custom_id")
        if cid is None:
            raise bad_input(f"line {n}: custom_id is required")
        if cid == "":  # given, and empty (a trial was told it was missing)
            raise bad_input(f"line {n}: custom_id must not be empty")
        if not isinstance(cid, str):
            raise bad_input(f"line {n}: custom_id must be a string (got {json.dumps(cid)})")
        if lone_surrogate(cid) is not None:
            raise bad_input(f"line {n}: custom_id is not Unicode text (a lone surrogate)")
        if "\x00" in cid:
            raise bad_input(f"line {n}: custom_id {NUL_REFUSED}")
        if cid in seen:
            raise bad_input(f"{where}: duplicate custom_id (line {seen[cid]} has it too)")
        seen[cid] = n
        method = item.get("method")
        if method is None and check:  # (a line without one, accepted before, still runs)
            raise bad_input(f'{where}: method is required (it must be "POST")')
        if method not in (None, "POST"):
            raise bad_input(f"{where}: method must be POST (got {json.dumps(method)})")
        if item.get("url") != endpoint:
            got = json.dumps(item.get("url"))
            raise bad_input(f"{where}: url must be the batch's endpoint {endpoint} (got {got})")
        if not isinstance(item.get("body"), dict):
            raise bad_input(f"{where}: body must be an object")
        if check and max_body_bytes is not None:
            compact = json.dumps(item["body"], separators=(",", ":"), ensure_ascii=False)
            size = len(compact.encode("utf-8", "surrogatepass"))  # (a lone one: refused below)
            if size > max_body_bytes:
                raise bad_input(
                    f"{where}: body is {size} bytes; {endpoint} takes at most {max_body_bytes} "
                    "(server.max_body_bytes)"
                )
        if check:
            try:
                check_body(endpoint, item["body"])
            except InvalidRequestError as err:
                field = f"body.{err.param}" if err.param else "body"
                detail = err.message.removeprefix(f"{err.param}: ") if err.param else err.message
                raise InvalidRequestError(
                    f"{where}: {field}: {detail}",
                    param="input_file_id",
                    code=err.code,
                ) from None
        out.append(item)
    if check and endpoint == "/v1/embeddings":
        inputs = sum(_inputs(item["body"]) for item in out)
        if inputs > MAX_EMBEDDING_INPUTS:
            raise bad_input(
                f"an embeddings batch takes at most {MAX_EMBEDDING_INPUTS} inputs across its "
                f"lines, as OpenAI's; this one has {inputs}"
            )
    return out


def _inputs(body: dict[str, Any]) -> int:
    """How many inputs an embeddings line's body holds (a string: one)."""
    value = body.get("input")
    return len(value) if isinstance(value, list) else 1


def lines_model(lines: list[dict[str, Any]]) -> str | None:
    """The batch's ``model`` (OpenAI's Batch object names the model its lines use): the
    ``model`` every line's body names, as asked (``"auto"`` stays ``"auto"``); None when lines
    name different models or one names none."""
    named = {item["body"].get("model") for item in lines}
    model = named.pop() if len(named) == 1 else None
    return model if isinstance(model, str) else None
