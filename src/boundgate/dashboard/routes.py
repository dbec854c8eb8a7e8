"""The operator dashboard at /dashboard: server-rendered pages, bundled assets only.

Every page needs a dashboard session (see :mod:`.session`); every POST needs the session's
CSRF token. Pages render with Jinja2 (autoescaped); charts are drawn by the bundled Chart.js
from JSON embedded in the page. A strict Content-Security-Policy keeps everything on this
origin: no inline script, no CDN, no external font.
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import posixpath
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..fmt import utc_time
from ..gateway import Gateway
from ..jsontext import NUL_REFUSED, nul_in_url
from ..store import LedgerQuery, StoreUnavailableError
from . import views
from .session import Session, Sessions

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
PAGE_SIZE = 100
CSV_CHUNK = 5000
NOTICES = {
    "revoked": "Document revoked: its answer is no longer served.",
    "bound": "Answer bound into a signed document.",
    "not-bound": "That answer could not be bound (unknown id, or already bound).",
    "logged-out": "Signed out.",
}

_env = Environment(
    loader=PackageLoader("boundgate.dashboard", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["utc"] = utc_time
_env.filters["num"] = views.num
_env.filters["pct"] = views.pct
templates = Jinja2Templates(env=_env)


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class Forbidden(Exception):
    pass


# wrong admin keys sent to the login form, per client address, before it answers 429 until
# the oldest of them is LOGIN_WINDOW_S old (per process; a key's secret has 256 random bits,
# so this stops noise and scripted guessing, not a search that could succeed)
LOGIN_FAILURES = 10
LOGIN_WINDOW_S = 900.0


@dataclass
class LoginThrottle:
    """Recent failed logins per client address (monotonic seconds), at most
    ``LOGIN_FAILURES`` each; an address without one in ``LOGIN_WINDOW_S`` is forgotten."""

    failures: dict[str, deque[float]] = field(default_factory=dict)

    def wait_s(self, client: str, now: float) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        recent = self.failures.get(client)
        if recent is None or len(recent) < LOGIN_FAILURES:
            return 0.0
        return max(0.0, recent[0] + LOGIN_WINDOW_S - now)

    def failed(self, client: str, now: float) -> None:
        """Count a failed login of ``client`` at ``now``."""
        for old in [c for c, q in self.failures.items() if q[-1] + LOGIN_WINDOW_S < now]:
            del self.failures[old]  # so the map cannot grow without end
        self.failures.setdefault(client, deque(maxlen=LOGIN_FAILURES)).append(now)


@dataclass(frozen=True)
class DashboardConfig:
    sessions: Sessions
    logins: LoginThrottle = field(default_factory=LoginThrottle)


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _sessions(request: Request) -> Sessions:
    cfg: DashboardConfig = request.app.state.dashboard
    return cfg.sessions


async def session(request: Request) -> Session:
    """Dependency: the signed-in session; in open local mode one is made on the spot."""
    gw = _gateway(request)
    sessions = _sessions(request)
    current = await sessions.read(request, gw.store)
    if current is not None:
        return current
    if not await gw.store.has_keys():
        fresh = sessions.new("local", None, admin=True)
        request.state.new_session = fresh
        return fresh
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    # after the login a browser GETs the target: a form's POST path is no page (a re-check's
    # sign-out with an ended session led, after a new login, to a 405 on /dashboard/logout)
    raise LoginRequired(target if request.method == "GET" else "/dashboard")


SessionDep = Annotated[Session, Depends(session)]


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


async def _open_mode(gw: Gateway) -> bool:
    """Whether the gateway has no keys (open local mode); False while the store cannot say
    (its outage page is rendered without it)."""
    try:
        return not await gw.store.has_keys()
    except StoreUnavailableError:
        return False


async def render(
    request: Request, s: Session | None, name: str, nav: str, status: int = 200, **ctx: Any
) -> Response:
    gw = _gateway(request)
    sessions = _sessions(request)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    response = templates.TemplateResponse(
        request,
        name,
        {
            "nav": nav,
            "session": s,
            "csrf": sessions.csrf_token(s) if s is not None else "",
            "open_mode": await _open_mode(gw),
            "notice": notice,
            "zone": gw.grid_zone,
            **ctx,
        },
        status_code=status,
    )
    fresh = getattr(request.state, "new_session", None)
    if fresh is not None:
        sessions.issue(response, request, fresh)
    return _secure(response)


def _redirect(url: str) -> Response:
    return _secure(RedirectResponse(url, status_code=303))


def _safe_next(url: str | None) -> str:
    """Only local dashboard paths (no open redirect to another site)."""
    if not url:
        return "/dashboard"
    parts = urlsplit(url)
    # "/dashboard/../metrics" is /metrics to the browser, and so is "/dashboard/%2e%2e/metrics"
    # (a re-check): the path as it resolves, decoded, counts
    path = posixpath.normpath(unquote(parts.path)) if parts.path else ""
    if parts.scheme or parts.netloc or not (path == "/dashboard" or path.startswith("/dashboard/")):
        return "/dashboard"
    return url if path == parts.path else urlunsplit(parts._replace(path=quote(path)))


def _check_csrf(request: Request, s: Session, token: str | None) -> None:
    if not _sessions(request).csrf_ok(request, s, token):
        raise Forbidden()


def dashboard_page(path: str) -> bool:
    """Whether ``path`` is under the dashboard's pages (its static assets are not pages)."""
    return (path == "/dashboard" or path.startswith("/dashboard/")) and not path.startswith(
        "/dashboard/static/"
    )


def plain_query(request: Request) -> None:
    """Every page reads its query as the API reads one: a NUL in the path or in a query
    parameter, or a parameter given more than once, is refused, here with the 400 page
    (``on_bad_request``). A break-it trial: ``?q=%00`` got the API's JSON and
    ``?range=24h&range=30d`` showed the last one silently; the API refuses both."""
    problems: list[dict[str, Any]] = []
    where = nul_in_url(request.scope["path"], request.scope.get("query_string", b""))
    if where is not None:
        problems.append({"loc": ("query", where), "msg": NUL_REFUSED, "type": "value_error"})
    names = [name for name, _ in request.query_params.multi_items()]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            said = f"given {names.count(name)} times: which one counts is not guessed"
            problems.append({"loc": ("query", name[:100]), "msg": said, "type": "value_error"})
    if problems:
        raise RequestValidationError(problems)


router = APIRouter(
    prefix="/dashboard", include_in_schema=False, dependencies=[Depends(plain_query)]
)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    gw = _gateway(request)
    if not await gw.store.has_keys():
        return _redirect(_safe_next(next))
    return await render(request, None, "login.html", "login", next=_safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=400)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/dashboard",
) -> Response:
    gw = _gateway(request)
    sessions = _sessions(request)
    target = _safe_next(next)
    if not await gw.store.has_keys():
        return _redirect(target)
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if urlsplit(origin).netloc != request.headers.get("host", request.url.netloc):
        return await render(
            request, None, "login.html", "login", status=403, next=target,
            error="This form must be sent from the dashboard's own page.",
        )  # fmt: skip
    logins: LoginThrottle = request.app.state.dashboard.logins
    client = request.client.host if request.client else ""
    wait = logins.wait_s(client, time.monotonic())
    if wait > 0:
        response = await render(
            request, None, "login.html", "login", status=429, next=target,
            error=f"Too many wrong keys from this address: try again in {math.ceil(wait)} s.",
        )  # fmt: skip
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    found = await gw.store.verify_key(key.strip()) if key.strip() else None
    if found is None or not found.admin:
        logins.failed(client, time.monotonic())
        error = "That key is not an admin key." if found else "Unknown or revoked key."
        # the form again with the reason, as 200: a browser logs any 4xx page load as a
        # console error, and this is an expected outcome of a form, not a failed resource
        return await render(request, None, "login.html", "login", next=target, error=error)
    response = _redirect(target)
    sessions.issue(response, request, sessions.new(found.tenant, found.id, admin=True))
    return response


@router.post("/logout")
async def logout(
    s: SessionDep, request: Request, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    _check_csrf(request, s, csrf_token)
    has_keys = await _gateway(request).store.has_keys()
    response = _redirect("/dashboard/login?notice=logged-out" if has_keys else "/dashboard")
    await _sessions(request).end(response, s, _gateway(request).store)
    return response


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)  # as a browser may be given it (no redirects)
async def overview(
    s: SessionDep,
    request: Request,
    range: Annotated[str, Query(pattern="^(24h|7d|30d)$")] = "24h",
) -> Response:
    data = await views.overview(_gateway(request), range)
    return await render(request, s, "overview.html", "overview", data=data)


@router.get("/documents", response_class=HTMLResponse)
async def documents(
    s: SessionDep,
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    state: Annotated[str, Query(pattern="^(|active|stale|superseded|revoked)$")] = "",
) -> Response:
    data = await views.documents(_gateway(request), q, state or None)
    return await render(request, s, "documents.html", "documents", data=data)


@router.get("/documents/{doc_id}.jsonld")
async def document_file(s: SessionDep, request: Request, doc_id: str) -> Response:
    row = await _gateway(request).store.get_document(doc_id)
    if row is None:
        return await render(request, s, "missing.html", "documents", status=404, what=doc_id)
    return _secure(
        Response(
            row.body,
            media_type="application/ld+json",
            headers={"Content-Disposition": f'attachment; filename="{row.id}.jsonld"'},
        )
    )


@router.get("/documents/{doc_id}", response_class=HTMLResponse)
async def document(s: SessionDep, request: Request, doc_id: str) -> Response:
    data = await views.document(_gateway(request), doc_id)
    if data is None:
        return await render(request, s, "missing.html", "documents", status=404, what=doc_id)
    return await render(request, s, "document.html", "documents", data=data)


@router.post("/documents/{doc_id}/revoke")
async def revoke(
    s: SessionDep, request: Request, doc_id: str, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    _check_csrf(request, s, csrf_token)
    gw = _gateway(request)
    if gw.reuse is None or not await gw.reuse.documents.revoke(doc_id):
        return await render(request, s, "missing.html", "documents", status=404, what=doc_id)
    return _redirect(f"/dashboard/documents/{doc_id}?notice=revoked")


@router.post("/documents/bind")
async def bind(
    s: SessionDep,
    request: Request,
    answer_id: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(request, s, csrf_token)
    gw = _gateway(request)
    key = gw.reuse.entry_key(answer_id.strip()) if gw.reuse is not None else None
    row = await gw.reuse.documents.bind(key) if gw.reuse is not None and key is not None else None
    if row is None:
        return _redirect("/dashboard/documents?notice=not-bound")
    return _redirect(f"/dashboard/documents/{row.id}?notice=bound")


def _ledger_params(request: Request) -> tuple[dict[str, str], LedgerQuery | None, str | None]:
    keys = ("tenant", "model", "outcome", "reuse", "since", "until")
    params = {k: request.query_params.get(k, "")[:200] for k in keys}
    for name in request.query_params:  # ?bogus=1 was a 200 showing every row
        if name not in (*keys, "page"):
            return (
                params,
                None,
                f"unknown ledger filter {name[:100]!r} (filters: {', '.join(keys)})",
            )
    if params["outcome"] not in ("", *views.OUTCOMES):
        return params, None, f"unknown outcome {params['outcome']!r}"
    if params["reuse"] not in ("", *views.REUSE_RESULTS):
        return params, None, f"unknown reuse result {params['reuse']!r}"
    try:
        return params, views.ledger_query(params), None
    except ValueError:
        return params, None, "since/until must be dates like 2026-01-31T12:00 (UTC)"


@router.get("/ledger", response_class=HTMLResponse)
async def ledger(
    s: SessionDep, request: Request, page: Annotated[int, Query(ge=1, le=100_000)] = 1
) -> Response:
    return await _ledger_page(s, request, page)


async def _ledger_page(s: Session | None, request: Request, page: int) -> Response:
    """The ledger page for the request's filters (400 with the error when they are bad)."""
    gw = _gateway(request)
    params, q, error = _ledger_params(request)
    rows = []
    if q is not None:
        rows = await gw.store.query_ledger(q, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    facets = await gw.store.ledger_facets(None)
    filters = {k: v for k, v in params.items() if v}
    return await render(
        request, s, "ledger.html", "ledger",
        status=400 if error else 200,
        error=error, params=params, facets=facets,
        outcomes=views.OUTCOMES, reuse_results=views.REUSE_RESULTS,
        rows=rows[:PAGE_SIZE], page=page, more=len(rows) > PAGE_SIZE,
        query=urlencode(filters),
    )  # fmt: skip


@router.get("/ledger.csv")
async def ledger_csv(s: SessionDep, request: Request) -> Response:
    gw = _gateway(request)
    _, q, _ = _ledger_params(request)
    if q is None:  # a bad filter: the ledger page says what is wrong with it
        return await _ledger_page(s, request, 1)
    query = q

    async def body() -> AsyncIterator[str]:
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(views.LEDGER_CSV_COLUMNS)
        offset = 0
        while True:
            rows = await gw.store.query_ledger(query, CSV_CHUNK, offset)
            for row in rows:
                record = views.ledger_record(row)
                out.writerow([views.csv_safe(record[c]) for c in views.LEDGER_CSV_COLUMNS])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            if len(rows) < CSV_CHUNK:
                return
            offset += CSV_CHUNK

    return _secure(
        StreamingResponse(
            body(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="boundgate-ledger.csv"'},
        )
    )


@router.get("/grid", response_class=HTMLResponse)
async def grid(s: SessionDep, request: Request) -> Response:
    data = await views.grid(_gateway(request))
    return await render(request, s, "grid.html", "grid", data=data)


@router.get("/tenants", response_class=HTMLResponse)
async def tenants(s: SessionDep, request: Request) -> Response:
    data = await views.tenants(_gateway(request))
    return await render(request, s, "tenants.html", "tenants", data=data)


async def _answer(response: Response | Awaitable[Response]) -> Response:
    """What an exception handler returned (handlers may be sync or async)."""
    return await response if inspect.isawaitable(response) else response


def install(app: FastAPI, sessions: Sessions) -> None:
    """Serve the dashboard on ``app``: pages, bundled assets, and its two error pages."""
    app.state.dashboard = DashboardConfig(sessions=sessions)

    @app.exception_handler(LoginRequired)
    async def on_login_required(request: Request, exc: LoginRequired) -> Response:
        return _redirect("/dashboard/login?" + urlencode({"next": exc.next_url}))

    @app.exception_handler(Forbidden)
    async def on_forbidden(request: Request, exc: Forbidden) -> Response:
        return await render(
            request, None, "missing.html", "", status=403,
            what=None, forbidden="The form was stale or came from another site; reload the "
            "page and try again.",
        )  # fmt: skip

    # A browser on the dashboard gets pages for its errors, the API keeps its JSON: a bad
    # query, an unknown page or a wrong method under /dashboard is answered in HTML.
    api_bad_request = app.exception_handlers.get(
        RequestValidationError, request_validation_exception_handler
    )
    api_http_error = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)

    def on_page(request: Request) -> bool:
        return dashboard_page(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def on_bad_request(request: Request, exc: RequestValidationError) -> Response:
        if not on_page(request):
            return await _answer(api_bad_request(request, exc))
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ())[1:]) or "request"
            problems.append(f"{where}: {e.get('msg', 'invalid value')}")
        return await render(
            request, None, "missing.html", "", status=400, problem="; ".join(problems)
        )

    api_store_down = app.exception_handlers[StoreUnavailableError]

    @app.exception_handler(StoreUnavailableError)
    async def on_store_down(request: Request, exc: StoreUnavailableError) -> Response:
        """A page, not the API's JSON, while the store cannot be reached (a trial's outage
        answered every page and the login form with a JSON body)."""
        answer = await _answer(api_store_down(request, exc))
        if not on_page(request):
            return answer
        response = await render(
            request, None, "missing.html", "", status=503,
            unavailable="The gateway cannot reach its store (database) right now. This page "
            "is back once it can; try again shortly.",
        )  # fmt: skip
        response.headers["Retry-After"] = answer.headers.get("Retry-After", "5")
        return response

    def on_static(request: Request) -> bool:
        return request.url.path.startswith("/dashboard/static/")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if on_static(request) and exc.status_code in (404, 405):
            # an asset the pages ask for: a plain answer, neither a page nor the API's JSON
            plain = PlainTextResponse(f"{exc.status_code} {exc.detail}", exc.status_code)
            if exc.status_code == 405:
                plain.headers["Allow"] = (exc.headers or {}).get("Allow", "GET, HEAD")
            return _secure(plain)
        if not on_page(request) or exc.status_code not in (404, 405):
            return await _answer(api_http_error(request, exc))
        if exc.status_code == 404 and nul_in_url(request.scope["path"], b"") is not None:
            # a NUL in a path no page has is the 400 a NUL is anywhere (``plain_query``)
            return await render(
                request, None, "missing.html", "", status=400, problem=f"path: {NUL_REFUSED}"
            )
        if exc.status_code == 404:
            return await render(
                request, None, "missing.html", "", status=404, page=request.url.path
            )
        # the API's answer names every method the path takes (Starlette's, only the first
        # route's: PUT /dashboard/login said "Allow: GET", a re-check)
        api = await _answer(api_http_error(request, exc))
        allow = api.headers.get("Allow") or (exc.headers or {}).get("Allow", "")
        response = await render(
            request, None, "missing.html", "", status=405, heading="Method not allowed",
            problem=f"{request.method} is not allowed on {request.url.path}; use {allow}.",
        )  # fmt: skip
        response.headers["Allow"] = allow
        return response

    app.include_router(router)
    app.mount(
        "/dashboard/static",
        StaticFiles(packages=[("boundgate.dashboard", "static")]),
        name="dashboard-static",
    )
