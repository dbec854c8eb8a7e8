"""HTTP plumbing shared by the endpoint families: body limits, validation, auth, SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Mapping,
    Sequence,
)
from functools import partial
from typing import Any, TypeVar

import anyio
from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from ..errors import (
    AuthenticationError,
    BoundgateError,
    ErrorCode,
    InvalidRequestError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from ..gateway import Gateway, RequestContext
from ..jsontext import (
    MAX_JSON_DEPTH,
    NUL_REFUSED,
    loads,
    lone_surrogate,
    nested_too_deeply,
    nul_at,
)
from ..store import Store, StoreUnavailableError
from ..tenants import OPEN_TENANT, UNAUTHENTICATED, Tenant
from .chat.protocol import UNKNOWN_PARAMETER, near_miss

# the tags pydantic puts in a location for the branch of a union it tried ("stop.str")
_TYPE_TAGS = frozenset(["str", "int", "float", "bool", "list", "dict", "none", "bytes"])


def check_no_nul(value: Any, path: str = "") -> None:
    """Raise a 400 ``invalid_value`` naming the first string (or key) of a parsed JSON value
    that holds U+0000; return if none does. JSON may carry it (``\\u0000``) and SQLite stores
    it, but PostgreSQL's ``text`` cannot (SQLSTATE 22021), so such a request was a 500 on a
    shared store after it ran: refused the same way on both stores, before it runs."""
    bad = nul_at(value, path)
    if bad is not None:
        where = bad[0]
        raise InvalidRequestError(
            f"{where or 'body'}: {NUL_REFUSED}", param=where or None, code=ErrorCode.INVALID_VALUE
        )


def non_finite_number(value: Any) -> str | None:
    """The place of the first non-finite number in a parsed JSON value, as an OpenAI-style
    param (``temperature``, ``metadata.a[1]``; ``""`` for the value itself), or None.

    Python's json reads JSON's non-standard ``NaN``, ``Infinity`` and ``-Infinity`` literals,
    and a number beyond a double's range (``1e999``) as infinity; none is a value any
    parameter may take, nor one an upstream or the store could carry on."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        place, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return place
        if isinstance(v, dict):
            stack.extend(
                (f"{place}.{k}" if place else str(k), item) for k, item in reversed(v.items())
            )
        elif isinstance(v, list):
            stack.extend((f"{place}[{i}]", item) for i, item in reversed(list(enumerate(v))))
    return None


TOO_DEEP = f"it is nested too deeply (more than {MAX_JSON_DEPTH} levels)"


NON_FINITE = "must be a finite number (not NaN, Infinity or a number beyond ±1.8e308)"


def check_finite(value: Any) -> None:
    """Raise a 400 ``invalid_value`` naming the first non-finite number in a parsed JSON
    body (see ``non_finite_number``); return if there is none."""
    place = non_finite_number(value)
    if place is not None:
        raise InvalidRequestError(
            f"{place or 'body'}: {NON_FINITE}",
            param=place or None,
            code=ErrorCode.INVALID_VALUE,
        )


def _json_content_type(value: str | None) -> bool:
    """Whether FastAPI reads a body with this content type as JSON (application/json or
    application/*+json; a body without one is given application/json first)."""
    if not value:
        return True
    kind = value.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


class StrictJSONRequest(Request):
    """A request whose JSON body must be valid Unicode: JSON's ``\\uXXXX`` escapes can carry
    a lone surrogate, which no UTF-8 text (tokenizers, SQLite, the upstream) can hold. Such a
    body is refused like malformed JSON (400 ``invalid_json``) instead of failing later. A
    UTF-8 byte order mark at the start is skipped."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                # strict UTF-8: json.loads(bytes) would let encoded surrogates through
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError(
                    f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})",
                    body.decode("utf-8", "replace"),
                    exc.start,
                ) from None
            # a byte order mark, as many Windows tools write (batch input files skip it too);
            # json.loads refuses it in Python's words ("decode using utf-8-sig")
            text = text.removeprefix("\ufeff")
            if text.startswith("\ufeff"):
                raise json.JSONDecodeError("more than one byte order mark (U+FEFF)", text, 0)
            try:
                value = loads(text)  # a member given twice is refused
            except RecursionError:
                raise json.JSONDecodeError(TOO_DEEP, text[:64], 0) from None
            except ValueError as exc:
                if isinstance(exc, json.JSONDecodeError):
                    raise
                # Python's limit on integer literals (4300 digits)
                raise json.JSONDecodeError("an integer literal is too long", text[:64], 0) from None
            if nested_too_deeply(value):
                raise json.JSONDecodeError(TOO_DEEP, text[:64], 0)
            if b"\\ud" in body or b"\\uD" in body:  # \uXXXX escapes can carry surrogates
                bad = lone_surrogate(value)
                if bad is not None:
                    text = body.decode("utf-8", "replace")
                    raise json.JSONDecodeError(
                        f"lone surrogate {bad[1]} is not Unicode text", text, 0
                    )
            self._json = value
        return self._json


class StrictJSONRoute(APIRoute):
    """The route class of every API router: the caller's key is checked before the body is
    read (OpenAI's order: without a valid key, a malformed body is a 401 too, and an upload is
    not read at all); JSON bodies are parsed by ``StrictJSONRequest``, and one holding a
    non-finite number anywhere is a 400 ``invalid_value`` naming its place (``check_finite``)
    before any model reads it. The check runs here because FastAPI turns any other exception
    raised while it parses a body into a bare 400 without our shape, and the key is checked
    here because FastAPI reads and parses the body before it runs any dependency."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        auth = authenticator(self.dependant)
        has_body = self.body_field is not None
        # a JSON body, not a form (file uploads)
        json_body = has_body and not any(
            type(p.field_info).__name__ in ("Form", "File") for p in self.dependant.body_params
        )

        async def strict(request: Request) -> Response:
            req = StrictJSONRequest(request.scope, request.receive)
            if auth is not None:
                await auth(req)  # (FastAPI's call of the dependency finds it done)
            if json_body and not req.headers.get("content-type", "").strip():
                if not await gateway_of(req).store.has_keys():
                    # open local mode: what a web page can post without a preflight is not
                    # taken (server/local.py)
                    raise InvalidRequestError(
                        "the request body must be JSON, sent as Content-Type: "
                        "application/json (got none; open local mode requires it, so that no "
                        "web page can post to the gateway)",
                        code=ErrorCode.INVALID_VALUE,
                    )
                # a body sent with a key and without a Content-Type is read as JSON, as this
                # route expects (FastAPI would not parse it: "not a valid dictionary")
                scope = req.scope
                headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
                headers.append((b"content-type", b"application/json"))
                req = StrictJSONRequest({**scope, "headers": headers}, request.receive)
            content_type = req.headers.get("content-type")
            if json_body and not _json_content_type(content_type):
                # else pydantic's "Input should be a valid dictionary" for a JSON text
                raise InvalidRequestError(
                    f"the request body must be JSON, sent as Content-Type: application/json "
                    f"(got {content_type})",
                    code=ErrorCode.INVALID_VALUE,
                )
            if has_body and _json_content_type(content_type):
                body = await req.body()
                if body:
                    try:
                        value = await req.json()
                    except json.JSONDecodeError:
                        value = None  # FastAPI answers it (invalid_json) as it parses again
                    check_finite(value)
                    if b"\\u0000" in body:  # JSON carries a NUL only as this escape
                        check_no_nul(value)
            return await handler(req)

        return strict


async def send_error(send: Send, err: BoundgateError, request_id: str | None = None) -> None:
    """Answer ``err`` from pure-ASGI code, outside the app's error handlers, with the
    request's ``x-request-id`` where it has one."""
    headers = err.headers()
    if request_id is not None:
        headers["x-request-id"] = request_id
    resp = JSONResponse(err.to_dict(), status_code=err.status_code, headers=headers)
    await resp({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - never awaited by JSONResponse
    return {"type": "http.disconnect"}


def unknown_parameter(param: str, known: str) -> InvalidRequestError:
    """400 ``unknown_parameter``: ``param`` is spelled almost like ``known`` (``near_miss``)."""
    return InvalidRequestError(
        UNKNOWN_PARAMETER.format(name=param, known=known),
        param=param,
        code=ErrorCode.UNKNOWN_PARAMETER,
    )


def misspellings_error(
    misspelled: Sequence[tuple[str, str]], then: str | None = None
) -> InvalidRequestError:
    """400 ``unknown_parameter`` for the first of ``misspelled`` (``(param, the name it
    resembles)``, at least one), naming the others after it, at most ``NAMED_AT_MOST``, and
    then ``then``, another problem of the request (a docs trial: a second misspelling, or a
    missing ``messages``, went unnamed)."""
    err = unknown_parameter(*misspelled[0])
    also = _misspellings_named(misspelled[1:])
    if then is not None:
        also.append(then)
    if also:
        err.message += f" (and {'; '.join(also)})"
    return err


def _misspellings_named(misspelled: Sequence[tuple[str, str]]) -> list[str]:
    """The messages of ``misspelled`` (``(param, the name it resembles)``), at most
    ``NAMED_AT_MOST``, the rest counted."""
    named = [unknown_parameter(*m).message for m in misspelled[:NAMED_AT_MOST]]
    if len(misspelled) > NAMED_AT_MOST:
        named.append(f"{len(misspelled) - NAMED_AT_MOST} more misspelt keys")
    return named


def body_misspellings(model: type[BaseModel] | None, body: Any) -> list[tuple[str, str]]:
    """The keys of ``body`` the request ``model`` reads as misspellings though they are no
    validation error (an endpoint that forwards unknown names, or reads them itself: the
    model's ``misspellings(body)``, ``(key, the name it resembles)``); none for a model
    without such a check. ``request_error`` names them with the validation's problems (a
    docs trial's ``{"max_token": 3}`` was told only that ``messages`` is missing)."""
    check = getattr(model, "misspellings", None)
    if not isinstance(body, dict) or check is None:
        return []
    return list(check(body))


def refuse_unknown_query(request: Request, known: tuple[str, ...]) -> None:
    """400 ``unknown_parameter`` for a query parameter the route does not take (an admin
    route's ``?tenant=acme`` or ``?sinse=1`` was ignored, so the answer looked filtered and
    was not); the message names the near miss (``near_miss``) or what the route takes. A
    parameter given more than once is 400 ``invalid_value`` (``?state=active&state=revoked``
    answered for the last alone, a trial; repeated headers and JSON members are refused
    too)."""
    names = [name for name, _ in request.query_params.multi_items()]
    for name in names:
        if names.count(name) > 1 and name in known:
            raise InvalidRequestError(
                f"query parameter {name!r} is given {names.count(name)} times: give it once",
                param=name,
                code=ErrorCode.INVALID_VALUE,
            )
    for name in request.query_params:
        if name in known:
            continue
        if (close := near_miss(name, known)) is not None:
            raise unknown_parameter(name, close)
        takes = ", ".join(known) if known else "no query parameters"
        raise InvalidRequestError(
            f"Unknown query parameter: {name[:100]!r}; {request.url.path} takes {takes}",
            param=name[:100],
            code=ErrorCode.UNKNOWN_PARAMETER,
        )


def unsupported_parameter(param: str, why: str = "yet") -> InvalidRequestError:
    """400 ``unsupported_parameter``: ``param`` is an OpenAI parameter this gateway does not
    implement (the SDK sends it; a silent default would not be what the caller asked for);
    ``why``: what the message adds, ``yet`` or a reason in parentheses."""
    return InvalidRequestError(
        f"'{param}' is not supported by this gateway {why}",
        param=param,
        code=ErrorCode.UNSUPPORTED_PARAMETER,
    )


# the further problems an error message names at most, the rest counted: a message names
# what to mend first, not every one of 20,000 messages
NAMED_AT_MOST = 10


def request_error(
    errors: Sequence[Mapping[str, Any]],
    body: Any,
    known: Collection[str] = (),
    typos: Sequence[tuple[str, str]] = (),
) -> InvalidRequestError:
    """A request model's validation ``errors`` (pydantic's, locations from the body, or
    FastAPI's, under ``body``) as one 400 naming a parameter. A required field reported
    missing, or a key an endpoint forbids, beside a key of the body spelled almost like it is
    the typo it is (``unknown_parameter``, naming the key given; ``known``: the body model's
    fields, what a forbidden top-level key is compared with); otherwise the first error
    (``missing_required_parameter`` when it is a required parameter not given, as OpenAI
    says it, else ``invalid_value``). Further problems are named after it. ``typos``: keys
    of the body misspelt though no validation error says so (``body_misspellings``): named
    after a misspelling the errors reveal, else first, the errors' problem after them."""
    typo = _misspelling(errors, body, known)
    if typo is not None:
        typos = [t for t in typos if t[0] != typo[0]]  # (not named twice)
    if typo is None:
        param, text = _describe(errors)
        # the error described may be another union branch's than the first ("content": a
        # string, or parts of which one has no "text": the part's missing text is named, a
        # break-it trial's code said invalid_value)
        missing = param is not None and any(
            e.get("type") == "missing" and loc_to_param(tuple(e.get("loc", ()))) == param
            for e in errors
        )
        code = ErrorCode.MISSING_REQUIRED_PARAMETER if missing else ErrorCode.INVALID_VALUE
        if typos:
            return misspellings_error(typos, then=text)
        return InvalidRequestError(text, param=param, code=code)
    param, close, explained = typo
    err = unknown_parameter(param, close)
    rest = [e for i, e in enumerate(errors) if i not in explained]
    # the further misspellings, one after another (not one call within the next: a trial's
    # 955 messages with a misspelt key each were a RecursionError, a 500), at most
    # ``NAMED_AT_MOST`` of them named
    also = _misspellings_named(typos)
    while rest and (more := _misspelling(rest, body, known)) is not None:
        if len(also) >= NAMED_AT_MOST:
            also.append("more misspelt keys")
            break
        also.append(unknown_parameter(more[0], more[1]).message)
        rest = [e for i, e in enumerate(rest) if i not in more[2]]
    else:
        if rest:
            also.append(_describe(rest)[1])
    if also:
        err.message += f" (and {'; '.join(also)})"
    return err


def body_model(request: Request) -> type[BaseModel] | None:
    """The request model the matched route reads its JSON body into, or None."""
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    return None


def body_fields(request: Request) -> tuple[str, ...]:
    """The field names of the request model the matched route reads its JSON body into
    (what ``request_error`` compares a forbidden key with), or none."""
    model = body_model(request)
    return tuple(model.model_fields) if model is not None else ()


def _describe(errors: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """The param and message of the first of ``errors``: "param: what is wrong", then the
    other parameters with a problem: "(also invalid: n, stop)". A union's branches (one
    error each for the same parameter) are one problem: "stop: Input should be a valid
    string or a valid list" (a trial read "(and 1 more)" as a second problem, unnamed)."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    params = [loc_to_param(tuple(e.get("loc", ()))) for e in errors]  # each error's
    param = loc_to_param(tuple(first.get("loc", ())))
    # a union reports one error per branch ("not a string", "part 1 is bad"): name the most
    # specific place within the same parameter
    for e, other in zip(errors[1:], params[1:], strict=True):
        if param and other and other != param and _within(other, param):
            first, param = e, other
    msg = str(first.get("msg", "invalid value"))
    branches = [
        str(e.get("msg", ""))
        for e, at in zip(errors, params, strict=True)
        if at == param and str(e.get("type", "")).endswith("_type")
    ]
    if first.get("type") == "missing":
        # no parameter named: the body itself is missing (empty request)
        msg = "required parameter is missing" if param else "request body is missing"
    elif first.get("type") == "finite_number":
        msg = NON_FINITE
    elif first.get("type") == "value_error":
        msg = msg.removeprefix("Value error, ")  # our validators' own words
    elif len(branches) > 1 and all(b.startswith("Input should be ") for b in branches):
        msg = "Input should be " + " or ".join(
            dict.fromkeys(b.removeprefix("Input should be ") for b in branches)
        )
    text = f"{param}: {msg}" if param else msg
    others = dict.fromkeys(
        other
        for at in params
        if (other := at or "body") != (param or "body")
        and not (param and (_within(other, param) or _within(param, other)))
    )
    # each named once, not also within another named one ("messages[3]" covers
    # "messages[3].content"): by each path's own ancestors, not every pair of paths (a
    # trial's 20,000 invalid messages took 80 s of the event loop, pair by pair)
    named = [o for o in others if others.keys().isdisjoint(_ancestors(o))]
    if len(named) > NAMED_AT_MOST:
        named[NAMED_AT_MOST:] = [f"{len(named) - NAMED_AT_MOST} more"]
    if named:
        text += f" (also invalid: {', '.join(named)})"
    return param, text


def _ancestors(path: str) -> list[str]:
    """The parameter paths ``path`` lies within, itself left out: "messages[3].content" →
    "messages", "messages[3]" (``_within``'s relation, read off the path)."""
    return [path[:i] for i, c in enumerate(path) if c in ".[" and i]


def _within(inner: str, outer: str) -> bool:
    """Whether parameter path ``inner`` is ``outer`` or inside it ("stop[0]" in "stop";
    "stream_options" is not in "stream")."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def _misspelling(
    errors: Sequence[Mapping[str, Any]], body: Any, known: Collection[str]
) -> tuple[str, str, set[int]] | None:
    """The first misspelled key ``errors`` reveal in ``body``: its param, the name it
    resembles, and the indexes of the errors it explains (the missing field, the forbidden
    key). A trial's ``{"mesages": [...]}`` was told "messages: required parameter is
    missing", the typo unnamed."""
    # the errors by the object they are in, once (not every error's siblings sought among
    # all of them: 20,000 messages missing their content were 4·10⁸ comparisons)
    by_parent: dict[tuple[Any, ...], list[tuple[int, Mapping[str, Any]]]] = {}
    for j, other in enumerate(errors):
        by_parent.setdefault(tuple(other.get("loc", ()))[:-1], []).append((j, other))
    for i, e in enumerate(errors):
        loc = tuple(e.get("loc", ()))
        ctx = e.get("ctx")
        if e.get("type") == ErrorCode.UNKNOWN_PARAMETER and isinstance(ctx, dict):
            # a model's own check (ChatMessage's keys): the key is in the object at ``loc``
            prefix = loc_to_param(loc)
            name = str(ctx["name"])
            return (f"{prefix}.{name}" if prefix else name), str(ctx["known"]), {i}
        if e.get("type") not in ("missing", "extra_forbidden") or not loc:
            continue
        if not isinstance(loc[-1], str):
            continue
        where = loc[:-1]
        parent = _value_at(body, where)
        if not isinstance(parent, dict):
            continue
        top = where in ((), ("body",))
        siblings = by_parent[where]
        missing = [str(o["loc"][-1]) for _, o in siblings if o.get("type") == "missing"]
        if e.get("type") == "missing":
            wrong = next(
                (
                    k
                    for k in parent
                    if isinstance(k, str)
                    and not (top and k in known)
                    and near_miss(k, [loc[-1]]) is not None
                ),
                None,
            )
            close = loc[-1] if wrong is not None else None
        else:
            wrong = loc[-1]
            close = near_miss(wrong, [*missing, *(known if top else ())])
        if wrong is None or close is None:
            continue
        explained = {
            j
            for j, o in siblings
            if (o.get("type"), o["loc"][-1]) in (("missing", close), ("extra_forbidden", wrong))
        }
        prefix = loc_to_param(where)
        return (f"{prefix}.{wrong}" if prefix else wrong), close, explained | {i}
    return None


def _value_at(body: Any, loc: tuple[int | str, ...]) -> Any:
    """The value at a pydantic location in a parsed body (FastAPI's leading ``body`` and
    union branches' tags skipped), or None where it leads nowhere."""
    value = body
    for n, part in enumerate(loc):
        if n == 0 and part == "body":
            continue
        if isinstance(part, int):
            if not (isinstance(value, list) and 0 <= part < len(value)):
                return None
            value = value[part]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        elif not (part in _TYPE_TAGS or "[" in part or "-" in part):
            return None
    return value


def loc_to_param(loc: tuple[int | str, ...]) -> str | None:
    """pydantic location → OpenAI-style param name, e.g. ``messages[0].role``; union-branch
    tags are left out (``stop.str`` → ``stop``, ``messages[0].content.list[...][1]`` →
    ``messages[0].content[1]``); so is where a value came from (``query.since`` → ``since``)."""
    if loc and loc[0] in ("query", "path", "header", "cookie"):
        loc = loc[1:]
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("body",) or part in _TYPE_TAGS or "[" in part or "-" in part:
            continue
        else:
            out += ("." if out else "") + part
    return out or None


def scheme_and_credentials(header: str) -> tuple[str, str]:
    """An ``Authorization`` header's scheme and credentials, parted by any whitespace
    ("Bearer<TAB>key" too, which a trial was told was one word); "" for a missing part."""
    scheme, *rest = header.split(None, 1) or [""]
    return scheme, rest[0] if rest else ""


async def authenticate(request: Request, store: Store) -> Tenant:
    """Bearer key → tenant. With no keys in the store the gateway is in open local mode."""
    if not await store.has_keys():
        return OPEN_TENANT
    sent = request.headers.getlist("authorization")
    if len(sent) > 1:  # which one counts would be a guess (a trial's good key then bad one)
        raise InvalidRequestError(
            f"send one Authorization header, not {len(sent)}", param="Authorization"
        )
    header = sent[0].strip() if sent else ""
    scheme, secret = scheme_and_credentials(header)
    if header and not secret and scheme.lower() != "bearer":
        # one word: most likely the key itself, sent without its scheme (not echoed)
        raise AuthenticationError(
            "the Authorization header is one word, not a scheme and a key: send the API key "
            "as 'Authorization: Bearer <key>'"
        )
    if header and scheme.lower() != "bearer":
        raise AuthenticationError(
            f"unsupported authorization scheme {scheme[:20]!r}: send the API key as "
            "'Authorization: Bearer <key>'"
        )
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError(
            "missing API key: send 'Authorization: Bearer <key>' (create one with "
            "`boundgate keys create --tenant NAME`)"
        )
    key = await store.verify_key(secret.strip())
    if key is None:
        raise AuthenticationError("invalid or revoked API key")
    return Tenant.of_key(key)


def require_admin(tenant: Tenant) -> None:
    if not tenant.admin:
        raise PermissionDeniedError("this route needs an admin key")


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def request_cache_control(request: Request) -> str | None:
    """The request's cache directives: every ``Cache-Control`` header field, joined as one
    list (RFC 9110 §5.3: several fields are one comma-separated list), or, when there is
    none, ``no-cache`` for ``Pragma: no-cache`` (RFC 9111 §5.4). None: no directive."""
    fields = request.headers.getlist("cache-control")
    if fields:
        return ", ".join(fields)
    pragma = request.headers.get("pragma", "")
    if "no-cache" in (d.strip().lower() for d in pragma.split(",")):
        return "no-cache"
    return None


async def context(request: Request) -> RequestContext:
    """FastAPI dependency: open the request's context and authenticate it, once per request
    (``StrictJSONRoute`` calls it before the body is read; FastAPI's call then returns the
    context made).

    The context exists before authentication so that a refused request still gets a ledger
    row (the error handler finds it on ``request.state``).
    """
    done: RequestContext | None = getattr(request.state, "ctx", None)
    if done is not None:
        return done
    gateway = gateway_of(request)
    ctx = gateway.context(OPEN_TENANT, request.url.path)
    request.state.ctx = ctx
    ctx.cache_control = request_cache_control(request)
    try:
        ctx.tenant = await authenticate(request, gateway.store)
    except (AuthenticationError, InvalidRequestError):
        # refused before a key was read (a bad key, two Authorization headers): its ledger
        # row is no tenant's, not open mode's (authenticate refuses only when keys exist)
        ctx.tenant = UNAUTHENTICATED
        raise
    return ctx


async def admin_context(request: Request) -> RequestContext:
    ctx = await context(request)
    require_admin(ctx.tenant)
    return ctx


def authenticator(dependant: Dependant) -> Callable[[Request], Awaitable[RequestContext]] | None:
    """The dependency of a route (its ``dependant``) that authenticates the caller's API key,
    ``context`` or ``admin_context``; None for a route without a key (``/healthz``)."""
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is context or dep.call is admin_context:
            return dep.call
        stack.extend(dep.dependencies)
    return None


class SSEResponse(StreamingResponse):
    """Server-sent events that stop the producer as soon as the client goes away.

    A disconnect is noticed even while nothing is being sent (a request waiting for the model),
    and the body iterator is always closed, so generation is cancelled promptly.
    """

    def __init__(self, content: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers}
        super().__init__(content, media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def run_then_cancel(func: Any) -> None:
                    await func()
                    tg.cancel_scope.cancel()

                tg.start_soon(run_then_cancel, partial(self.stream_response, send))
                await run_then_cancel(partial(self.listen_for_disconnect, receive))
        except OSError:
            pass  # client vanished while we were writing
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()


def sse_event(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def sse_error(err: BoundgateError) -> bytes:
    return sse_event(err.to_dict())


# when a client refused for a store out of reach is told to come back (s): a database restart
# or a failover takes seconds, and each replica's pool reconnects on the next request
STORE_RETRY_AFTER_S = 5.0


def store_unavailable(exc: StoreUnavailableError) -> ServiceUnavailableError:
    """What a client is told when the store cannot be reached: 503 ``store_unavailable`` with
    ``Retry-After`` (OpenAI's SDKs retry a 503 by themselves). The reason (libpq's message,
    which may name hosts) stays in the server log."""
    return ServiceUnavailableError(
        "the gateway cannot reach its store (database) right now; try again shortly",
        code=ErrorCode.STORE_UNAVAILABLE,
        retry_after=STORE_RETRY_AFTER_S,
    )


def to_response(
    content: dict[str, Any] | AsyncIterator[bytes], headers: dict[str, str]
) -> Response:
    if isinstance(content, dict):
        return Response(
            json.dumps(content, separators=(",", ":")),
            media_type="application/json",
            headers=headers,
        )
    return SSEResponse(content, headers)


_T = TypeVar("_T")


async def until_disconnected(request: Request, work: Awaitable[_T]) -> _T | None:
    """Run ``work`` (a request's handling, its body already read); if the client disconnects
    first, cancel it and return None, so a generation nobody waits for stops (the gateway
    ledgers it as cancelled). vLLM's ``with_cancellation`` does the same: the ASGI receive
    channel, once the body is read, yields ``http.disconnect`` when the client goes.
    Streamed responses need no such watch (Starlette's StreamingResponse listens itself)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler itself is cancelled (shutdown): so is the work
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
