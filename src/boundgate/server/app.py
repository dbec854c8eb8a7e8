"""The FastAPI application factory: wiring, lifespan, and the error boundary.

Every error leaves in OpenAI's shape with the right status; an unexpected exception is
logged with its traceback on the server and answered with a generic 500, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..backends.base import model_versions
from ..dashboard import Sessions
from ..dashboard import install as install_dashboard
from ..dashboard.routes import dashboard_page
from ..errors import (
    BoundgateError,
    ErrorCode,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ServiceUnavailableError,
    shown,
)
from ..gateway import Gateway
from ..jsontext import NUL_REFUSED, nul_in_url
from ..scheduler.handlers import job_handlers, model_requirements
from ..scheduler.runner import JobRunner
from ..store import StoreUnavailableError
from .api_docs import add_api_docs
from .batches.router import router as batches_router
from .batches.running import run_batch
from .batches.upkeep import BatchRecovery, batch_failed, batch_held, batch_moved
from .chat.router import router as chat_router
from .common import (
    body_fields,
    body_misspellings,
    body_model,
    request_error,
    send_error,
    sse_error,
    store_unavailable,
)
from .completions.router import router as completions_router
from .embeddings.router import router as embeddings_router
from .local import LocalHosts, LocalOnly
from .openapi import truthful_openapi
from .reuse.router import router as reuse_router
from .system.router import router as system_router

log = logging.getLogger("boundgate")

# Paths whose every request (errors included) gets a ledger row.
GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})


class RequestLine:
    """Pure ASGI, before any check of a route's: what no route may read, in every mode. More
    than one Host header is a 400 (RFC 9112 §3.2; the first was checked and the rest let
    through), and so is more than one Content-Type (a field of one value, RFC 9110 §5.3:
    the first was read, so the order of two decided whether a body was JSON; a break-it
    trial). A NUL in the path or in a query parameter (``%00``) is a 400
    ``invalid_value`` naming where (a trial: ``?after=%00``, ``/v1/files/file-%00`` and a
    dozen more were 500s on PostgreSQL, whose text cannot hold it; on SQLite 200s and 404s),
    as in a JSON body (``check_no_nul``); under the dashboard's pages, its 400 page says so
    (``dashboard.routes.plain_query``). A ``Content-Encoding`` other than ``identity`` is a
    400 naming the header (``_content_coding``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            for name in ("Host", "Content-Type"):
                if len(headers.getlist(name)) > 1:
                    await send_error(
                        send,
                        InvalidRequestError(
                            f"more than one {name} header: which one is meant would be a guess",
                            param=name,
                        ),
                    )
                    return
            coding = _content_coding(scope)
            if coding is not None:
                await send_error(
                    send,
                    InvalidRequestError(
                        f"Content-Encoding {coding[:100]!r} is not supported: send the body "
                        "uncompressed (no Content-Encoding, or identity)",
                        param="Content-Encoding",
                    ),
                )
                return
            where = nul_in_url(scope["path"], scope.get("query_string", b""))
            if where is not None and scope["path"].startswith("/dashboard/static/"):
                # an asset's answers are plain text, neither a page nor the API's JSON
                plain = PlainTextResponse(f"400 Bad Request: the {where} {NUL_REFUSED}", 400)
                await plain(scope, receive, send)
                return
            if where is not None and not dashboard_page(scope["path"]):  # its own 400 page
                await send_error(
                    send,
                    InvalidRequestError(
                        f"{where}: {NUL_REFUSED}", param=where, code=ErrorCode.INVALID_VALUE
                    ),
                )
                return
        await self.app(scope, receive, send)


class HeadAsGet:
    """Pure ASGI, next to the routes: a HEAD request is routed as GET and answered with the
    GET's status and headers and no body (RFC 9110 §9.3.2). FastAPI routes a GET route's
    GET alone, so HEAD /v1/models, /v1/files/{id} or a dashboard page was a 405 (a break-it
    trial; the probes had a HEAD route of their own). The GET runs whole; what it sends
    after its first piece of body is dropped here (after a response's last message a
    server takes no more)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headless(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headless)


def _allowed_methods(request: Request, exc: StarletteHTTPException) -> str | None:
    """The methods every route of the request's path takes, for a 405's ``Allow`` (RFC 9110
    §10.2.1): Starlette names only the first route that matched the path, so ``PUT
    /v1/files`` said ``Allow: POST`` where GET is served too (a trial)."""
    routes = [r for r in request.app.router.routes if isinstance(r, BaseRoute)]
    methods = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]
    if "GET" in methods:  # answered by HeadAsGet
        methods.insert(methods.index("GET") + 1, "HEAD")
    return ", ".join(methods) if methods else (exc.headers or {}).get("Allow")


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _content_coding(scope: Scope) -> str | None:
    """The request's ``Content-Encoding`` when it is not ``identity`` (None without one): a
    trial's gzipped body was refused as "not UTF-8 text", and a plain body labelled ``br``
    was read as it was; bodies are read as sent, so a coding is refused, naming the header."""
    for name, value in scope["headers"]:
        if name == b"content-encoding":
            coding = value.decode("latin-1").strip()
            if coding and coding.lower() != "identity":
                return str(coding)
    return None


class BodyLimit:
    """Pure-ASGI guard: refuse bodies over ``limit`` bytes (``file_limit`` for file uploads,
    ``POST /v1/files``) before anything parses them (413 ``request_too_large``), and bodies
    whose next part does not come within ``read_timeout_s`` seconds (408
    ``request_timeout``: a break-it trial's client declared 5 bytes more than it sent and
    held its connection open for good; uvicorn has no such limit of its own)."""

    FILE_UPLOADS = "/v1/files"
    MULTIPART_SLACK = 64 << 10  # the form's boundaries and headers around the file

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        file_limit: int | None = None,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.app = app
        self.limit = limit
        self.file_limit = file_limit if file_limit is not None else limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        limit = self.limit
        named = f"{limit} bytes (server.max_body_bytes)"
        if scope["path"].rstrip("/") == self.FILE_UPLOADS:
            limit = self.file_limit + self.MULTIPART_SLACK
            # the setting, not the sum: a trial read "the limit is 209780736" as a wrong limit
            named = (
                f"{self.file_limit} bytes for the file (server.max_file_bytes) and "
                f"{self.MULTIPART_SLACK} for the form around it"
            )
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await send_error(
                        send,
                        PayloadTooLargeError(
                            f"request body is {int(value)} bytes; the limit is {named}"
                        ),
                    )
                    return
                break
        seen = 0
        refused = read = started = False

        async def limited() -> Message:
            # FastAPI turns exceptions raised while reading the body into a generic 400, so a
            # too-large or stalled body is answered here and the app sees a disconnect.
            nonlocal seen, refused, read
            if read or started:
                # the body is in, or an answer is on its way without it (a route that reads
                # none): what comes now is the client leaving, whenever
                return await receive()
            try:
                async with asyncio.timeout(self.read_timeout_s):
                    message = await receive()
            except TimeoutError:
                if not refused:
                    refused = True
                    await send_error(
                        send,
                        RequestTimeoutError(
                            f"the request body stopped arriving: no part of it for "
                            f"{self.read_timeout_s:g} s (server.body_read_timeout_s)"
                        ),
                    )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                read = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > limit and not refused:
                    refused = True
                    await send_error(
                        send,
                        PayloadTooLargeError(f"request body exceeds the limit of {named}"),
                    )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not refused:
                started = True
                await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except ClientDisconnect:
            if not refused:
                raise
            # the disconnect ``limited`` made up after answering 413: the refusal, not a
            # fault (it was logged as an unexpected error, a trial's chunked upload)


class LastWord:
    """Pure-ASGI, around every route: a request that ends in a fault still gets its answer in
    OpenAI's shape, and the connection stays usable.

    - Stopped by the server's graceful shutdown running out (uvicorn's
      ``timeout_graceful_shutdown``, then it cancels the request's task): 503
      ``server_shutting_down`` with ``Retry-After`` if no response has started, else a
      stream's last event is that error. uvicorn answered a plain-text ``Internal Server
      Error`` and logged a traceback per request, and cut streams with no error event (two
      trials' rolling restarts). Nothing else cancels a request's task at this layer (a
      client that leaves is heard as a disconnect), so the cancellation ends here.
    - An unexpected exception: ``on_error``'s response (the 500 ``internal_error``, logged
      and ledgered) if no response has started, a stream's last event if one has, and the
      exception ends here. Starlette's outermost error middleware re-raised it after its
      500, and uvicorn then closed the connection: the client's next request on it got a
      connection reset (a trial). A plain response cut in its body is the one case left to
      uvicorn, which closes the connection, as a broken body must be.
    """

    def __init__(
        self, app: ASGIApp, on_error: Callable[[Request, Exception], Awaitable[Response]]
    ) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = stream = ended = False

        async def watched(message: Message) -> None:
            nonlocal started, stream, ended
            if message["type"] == "http.response.start":
                started = True
                headers = dict(message.get("headers", []))
                stream = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                ended = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except asyncio.CancelledError:
            err = ServiceUnavailableError(
                "the gateway is shutting down and stopped this request; send it again",
                code=ErrorCode.SHUTTING_DOWN,
                retry_after=1,
            )
            # the request's id, where the route had made its context (``request.state``
            # lives in the scope): the client matches its 503 to the ledger's row by it
            ctx = scope.get("state", {}).get("ctx")
            request_id = getattr(ctx, "request_id", None)
            with contextlib.suppress(Exception):  # the connection may be gone as well
                if not started:
                    await send_error(send, err, request_id)
                elif stream and not ended:
                    event = sse_error(err)
                    await send({"type": "http.response.body", "body": event, "more_body": False})
            log.warning("request %s %s stopped by the shutdown", scope["method"], scope["path"])
        except ClientDisconnect:  # the client left while sending its body: no one to answer
            log.info("request %s %s: the client left mid-body", scope["method"], scope["path"])
        except Exception as exc:
            if not started:
                response = await self.on_error(Request(scope), exc)
                await response(scope, receive, send)
                return
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if ended:
                return  # the answer was whole: nothing for the client to hear
            if not stream:
                raise
            internal = BoundgateError(
                "internal error; the server log has the details", code=ErrorCode.INTERNAL_ERROR
            )
            with contextlib.suppress(Exception):  # the connection may be gone as well
                body = sse_error(internal)
                await send({"type": "http.response.body", "body": body, "more_body": False})


def _is_upload(request: Request) -> bool:
    """Whether ``request`` is a file upload (``POST /v1/files``)."""
    return request.method == "POST" and request.url.path.rstrip("/") == BodyLimit.FILE_UPLOADS


def _multipart_fault(exc: BaseException) -> str | None:
    """What was wrong with a multipart form Starlette could not read (its 400 is raised while
    handling the parser's ``MultiPartException``, its context): that exception's message, or
    for its bare "Invalid multipart data." what python-multipart said (the cause), e.g.
    "Maximum header size exceeded" for a part's header line over that library's limit (about
    4 KiB, a long file name in it). None for any other error."""
    context = exc.__context__
    if not isinstance(context, MultiPartException):
        return None
    said = context.message
    if said == "Invalid multipart data." and context.__cause__ is not None:
        said = str(context.__cause__).strip() or said
    if "header size" in said:
        said += " (a part's header line, the file name in it, is at most about 4 KiB)"
    return said


def error_response(request: Request, err: BoundgateError) -> JSONResponse:
    headers = err.headers()
    ctx = getattr(request.state, "ctx", None)
    if ctx is not None:
        headers["x-request-id"] = ctx.request_id
    return JSONResponse(err.to_dict(), status_code=err.status_code, headers=headers)


class StartupSteps(Protocol):
    """Told what start-up is doing (``app.state.startup``): `boundgate serve` shows it."""

    def update(self, step: str, done: int = 0, total: int | None = None) -> None: ...

    def finish(self) -> None: ...


class _QuietSteps:
    def update(self, step: str, done: int = 0, total: int | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


def create_app(
    gateway: Gateway,
    *,
    max_body_bytes: int,
    max_file_bytes: int | None = None,
    body_read_timeout_s: float = 60.0,
    job_poll_s: float,
    job_replan_s: float,
    job_lease_s: float = 300.0,
    job_drain_s: float = 0.0,
    batch_request_s: float,
    dashboard: Sessions | None = None,
    metrics_token: str | None = None,
    local_hosts: LocalHosts | None = None,
) -> FastAPI:
    """An app serving ``gateway``. Lifespan opens the store and starts the backends.
    ``metrics_token``: a bearer token ``/metrics`` requires (None: open). ``local_hosts``:
    the Host values open local mode answers (``LocalOnly``; default: loopback ones)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway.store.open()

        async def batch(payload: dict[str, Any]) -> dict[str, Any]:
            # at shutdown a batch hands its job back between lines (``job_drain_s``)
            return await run_batch(gateway, payload, stopping=lambda: runner.stopping)

        # (the seam's handlers last: a test may stand in for the batch's too)
        handlers = {"batch": batch, **app.state.job_handlers(gateway)}
        if gateway.jobs is not None:
            gateway.jobs.on_moved["batch"] = functools.partial(batch_moved, gateway)
        runner = JobRunner(
            gateway.store,
            handlers,
            clock=gateway.clock,
            poll_s=job_poll_s,
            lease_s=job_lease_s,
            replan=gateway.jobs.replan if gateway.jobs is not None else None,
            replan_s=job_replan_s,
            # batches a process that died left without a job (or ended job): at start, then
            # every replan_s, in every process (safe: server/batches/upkeep.py)
            recover=BatchRecovery(gateway, batch_request_s),
            on_failure={"batch": functools.partial(batch_failed, gateway)},
            on_held={"batch": functools.partial(batch_held, gateway)},
            # its models at their versions: a rebind for another version is left alone
            accepts=model_requirements(gateway),
            # a poll the store failed, retried: counted on this app's /metrics
            on_retry=gateway.metrics.retry_counter("job_poll"),
        )
        steps: StartupSteps = app.state.startup or _QuietSteps()
        background: list[asyncio.Task[None]] = []  # the tasks started below
        try:
            try:
                if gateway.reuse is not None:
                    steps.update("loading stored answers")
                    await gateway.reuse.load(
                        lambda done, total: steps.update("loading stored answers", done, total),
                    )
                for k, (name, backend) in enumerate(gateway.backends.items()):
                    steps.update(f"starting model {name}", k, len(gateway.backends))
                    await backend.start()
                if gateway.reuse is not None:
                    # versions are known once models are loaded (the gguf hash)
                    steps.update("checking stored answers against model versions")
                    await gateway.reuse.documents.mark_stale(model_versions(gateway.backends))
                await gateway.profiles.refresh()  # versions known: profiles can be checked
            finally:
                steps.finish()
            start_grid = getattr(gateway.carbon, "start", None)
            if start_grid is not None:  # a live source: refresh in the background
                start_grid()
            app.state.runner = runner
            runner.start()
            # this process's generations in progress, and those of processes that died
            background.append(asyncio.create_task(gateway.ledger.keep_open_requests()))
            # the budget holds of requests still running, renewed before their lease ends
            background.append(asyncio.create_task(gateway.limiter.keep_held()))
            if gateway.reuse is not None:
                background.append(asyncio.create_task(gateway.reuse.keep_index_saved()))
                # what other workers and replicas on this store change (engine.follow)
                background.append(asyncio.create_task(gateway.reuse.follow()))
                # stored answers another embedder made vectors for (reuse/reembed.py)
                background.append(asyncio.create_task(gateway.reuse.keep_embedded()))
            app.state.ready = True
            yield
        finally:
            app.state.ready = False
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await runner.stop(drain_s=job_drain_s)
            stop_grid = getattr(gateway.carbon, "stop", None)
            if stop_grid is not None:
                await asyncio.to_thread(stop_grid)
            await gateway.drain()
            if gateway.reuse is not None:
                try:  # a restart can rebuild what is not saved; shutdown must go on
                    written = await asyncio.to_thread(gateway.reuse.save_index)
                    log.info("ANN index: saved %d changed scopes", written)
                except Exception:
                    log.exception("ANN index: not saved; the next start rebuilds from the store")
            for backend in gateway.backends.values():
                await backend.aclose()
            gateway.store.close()

    app = FastAPI(
        title="boundgate",
        version=__version__,
        description="OpenAI-compatible gateway that meters energy and carbon per request.",
        lifespan=lifespan,
        docs_url=None,  # served without a CDN: api_docs.py
        redoc_url=None,
        # a path with a trailing slash is a 404 in OpenAI's shape naming the path without
        # it, not Starlette's bare 307 (answered before a key was even asked for)
        redirect_slashes=False,
    )
    add_api_docs(app)
    app.state.gateway = gateway
    app.state.started = time.time()
    app.state.ready = False
    app.state.startup = None  # a StartupSteps to tell what start-up is doing
    app.state.max_file_bytes = max_file_bytes if max_file_bytes is not None else max_body_bytes
    app.state.max_body_bytes = max_body_bytes  # a batch line's body, as a request's
    app.state.batch_request_s = batch_request_s
    # gateway → its handlers, beside the batch's (a test seam: it may replace that too)
    app.state.job_handlers = job_handlers
    app.state.metrics_token = metrics_token

    async def record(request: Request, err: BoundgateError) -> None:
        """Ledger a refused generation request. A store that cannot be reached (PostgreSQL
        down) is logged, and the error is still answered in OpenAI's shape: a trial got a
        plain-text 500 from the handler's own failure."""
        if request.url.path not in GENERATION_PATHS or err.recorded:
            return
        try:
            ctx = getattr(request.state, "ctx", None)
            if ctx is None:
                from ..tenants import OPEN_TENANT, UNAUTHENTICATED

                ctx = gateway.context(OPEN_TENANT, request.url.path)
                # refused before its key was read: open local mode's tenant when there are
                # no keys (every request is), else no tenant's
                if await gateway.store.has_keys():
                    ctx.tenant = UNAUTHENTICATED
                request.state.ctx = ctx
            await gateway.record_error(ctx, err)
        except StoreUnavailableError as exc:  # an outage: the error is answered, not ledgered
            gateway.metrics.count_unledgered(err)
            log.warning(
                "could not ledger the error of %s %s: %s", request.method, request.url.path, exc
            )
        except Exception:
            log.exception("could not ledger the error of %s %s", request.method, request.url.path)

    @app.exception_handler(BoundgateError)
    async def on_boundgate_error(request: Request, err: BoundgateError) -> JSONResponse:
        await record(request, err)
        return error_response(request, err)

    @app.exception_handler(StoreUnavailableError)
    async def on_store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        """The store cannot be reached: 503 at once, and no try to ledger it (the ledger is
        what cannot be reached; the try would wait as long again)."""
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
        err = store_unavailable(exc)
        gateway.metrics.count_unledgered(err)
        return error_response(request, err)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            ctx_info = first.get("ctx")
            detail = ctx_info.get("error", "") if isinstance(ctx_info, dict) else ""
            err = InvalidRequestError(
                f"request body is not valid JSON: {detail}".rstrip(": "),
                code=ErrorCode.INVALID_JSON,
            )
        else:
            typos = body_misspellings(body_model(request), exc.body)
            err = request_error(errors, exc.body, body_fields(request), typos)
            content_type = request.headers.get("content-type", "")
            upload = _is_upload(request)  # not the list (GET), whose query got this hint
            if upload and any(
                tuple(e.get("loc", ()))[-1:] == ("file",) and "UploadFile" in str(e.get("msg"))
                for e in errors
            ):  # a text field named file (curl's -F file=<path): was "Expected UploadFile, ..."
                err = InvalidRequestError(
                    "file must be a file part of the form with a file name (curl: -F "
                    "file=@path); this part has none: a text field, or filename* alone "
                    "(RFC 5987's form, not read here)",
                    param="file",
                )
            elif upload and not content_type.startswith("multipart/form-data"):
                # a trial sent JSON and was told only which form fields were missing
                sent = f"not {content_type}" if content_type else "and none was sent"
                err.message += (
                    f" (POST {BodyLimit.FILE_UPLOADS} takes a multipart/form-data upload with "
                    f"fields file and purpose, {sent})"
                )
        await record(request, err)
        return error_response(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        allow = _allowed_methods(request, exc) if exc.status_code == 405 else None
        if exc.status_code == 404:
            path = request.url.path
            message = f"no route {request.method} {shown(path)}"
            if len(path) > 1 and path.endswith("/"):
                message += f" (without the trailing slash: {shown(path.rstrip('/'))})"
            err: BoundgateError = NotFoundError(message)
        else:
            message = str(exc.detail)
            if allow:  # say what the route takes (the Allow header says it too, RFC 9110)
                message = f"{request.method} is not allowed on {request.url.path}; use {allow}"
            # a documented code where there is one (400: e.g. malformed multipart data)
            code = {400: ErrorCode.INVALID_VALUE, 413: ErrorCode.REQUEST_TOO_LARGE}.get(
                exc.status_code, f"http_{exc.status_code}"
            )
            param = None
            why = _multipart_fault(exc)
            if why is not None:  # was "Invalid multipart data." alone (a trial's long file name)
                message = f"the multipart form could not be read: {why}"
                param = "file" if _is_upload(request) else None
            err = BoundgateError(message, code=code, param=param)
            err.status_code = exc.status_code
            err.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        response = error_response(request, err)
        if allow:
            response.headers["Allow"] = allow
        return response

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        err = BoundgateError(
            "internal error; the server log has the details", code=ErrorCode.INTERNAL_ERROR
        )
        await record(request, err)
        return error_response(request, err)

    routers = [
        chat_router,
        completions_router,
        embeddings_router,
        batches_router,
        reuse_router,
        system_router,
    ]
    for router in routers:
        app.include_router(router)
    if dashboard is not None:
        install_dashboard(app, dashboard)
    app.add_middleware(HeadAsGet)  # innermost: only the routes see a HEAD as GET
    app.add_middleware(
        BodyLimit,
        limit=max_body_bytes,
        file_limit=max_file_bytes,
        read_timeout_s=body_read_timeout_s,
    )
    # a web page's request to an open gateway is refused before anything else
    app.add_middleware(LocalOnly, gateway=gateway, hosts=local_hosts or LocalHosts())
    # ... but a request line no route may read (two Hosts, a NUL)
    app.add_middleware(RequestLine)
    # around everything: a request the shutdown stops, or a fault, is answered in OpenAI's
    # shape, and the connection kept
    app.add_middleware(LastWord, on_error=on_unexpected)
    truthful_openapi(app, routers)
    return app
