"""Open local mode's guard against web pages (docs/deployment.md, "Open local mode and web
pages").

With no API keys the gateway answers whoever reaches it, and the local user's browser reaches
it for every page that user opens: any site can post to ``http://127.0.0.1:8080`` without
asking first (a CORS "simple request": a form, ``text/plain``, a body with no Content-Type,
a file upload; no preflight), and a DNS-rebinding page (its own name, re-pointed at
127.0.0.1) can even read the answers, the ledger among them. So while no key exists:

- a request must name this machine as its ``Host``: a loopback name or address, a name in
  ``server.allowed_hosts``, or, when the operator bound another address (``--allow-open``),
  that address and any IP address (a rebinding page's Host is its own name, never an
  address). A page cannot choose the Host its browser sends.
- a request carrying another origin's ``Origin`` header is refused: browsers send one with
  every cross-origin fetch and every POST, and programs (the SDK, curl) send none. The
  dashboard's pages check their forms' origin and CSRF token themselves (``dashboard/session.py``).
- a JSON body must say ``Content-Type: application/json`` (``StrictJSONRoute``), which a
  simple request cannot.

Once a key exists every request needs one and a page has none: nothing here applies then,
and clients with keys reach the gateway under any name.

Whether a key exists is the store's to say. While it cannot be reached (PostgreSQL down),
the last answer it gave stands, and each route says what it can: ``/metrics`` still renders
(an outage must be seen while it lasts; a trial's scrapes were refused 503 and its counter
of refused requests read only afterwards), the dashboard answers a page, the API 503
``store_unavailable``. Before the store has said (no request yet since start), a request is
refused 503 ``store_unavailable``, but for the probes (``/healthz``, ``/readyz``), which say
nothing a page could use and must answer then above all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ErrorCode, InvalidRequestError, PermissionDeniedError
from ..gateway import Gateway
from ..store import StoreUnavailableError
from .common import send_error, store_unavailable

DASHBOARD = "/dashboard"  # checks its forms' origin itself, and answers in HTML
PROBES = frozenset({"/healthz", "/readyz"})  # answered whether or not the store can be reached
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, no port) is this machine's loopback interface:
    ``localhost`` or a name under it (RFC 6761; no public DNS answers for them), 127.0.0.0/8,
    ``::1`` (also IPv4-mapped)."""
    name = host.strip().rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _address(name)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]").split("%", 1)[0])
    except ValueError:
        return None


def split_host(value: str) -> tuple[str, int | None]:
    """A Host header (or an URL's authority) → its lower-case name without a final dot, and
    its port (None: not given, or not a number)."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8080
        name, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:  # a name, an IPv4 address, or a bare IPv6 address
        name, port = value, ""
    return name.rstrip("."), int(port) if port.isdigit() else None


@dataclass(frozen=True)
class LocalHosts:
    """The Host values open local mode answers: ``bind``, the address the server listens on
    (``server.host``), and ``allowed``, the operator's own names (``server.allowed_hosts``:
    exact names, ``*.example.org`` for a domain's names, ``*`` for any)."""

    bind: str = "127.0.0.1"
    allowed: tuple[str, ...] = ()

    def allows(self, host: str) -> bool:
        name, _ = split_host(host)
        if is_loopback(name):
            return True
        for pattern in self.allowed:
            pattern = pattern.strip().rstrip(".").lower()
            if pattern == "*" or name == pattern:
                return True
            if pattern.startswith("*.") and name.endswith(pattern[1:]):
                return True
        if is_loopback(self.bind):
            return False
        # bound to another address (--allow-open): that one, and any address, which no
        # rebinding page can give as its Host
        return _address(name) is not None or name == split_host(self.bind)[0]


def same_origin(origin: str, host: str | None, scheme: str) -> bool:
    """Whether an ``Origin`` header names the origin this request was sent to (its ``Host``
    under ``scheme``); ``null`` (a sandboxed page, a local file) never does."""
    if host is None or origin.strip().lower() == "null":
        return False
    parts = urlsplit(origin.strip().lower())
    if not parts.scheme or not parts.netloc:
        return False
    name, port = split_host(parts.netloc)
    here, here_port = split_host(host)
    default = DEFAULT_PORTS.get(scheme, 80)
    return (parts.scheme, name, port or DEFAULT_PORTS.get(parts.scheme, 80)) == (
        scheme,
        here,
        here_port or default,
    )


class LocalOnly:
    """Pure ASGI: while no API key exists, refuse what a web page could send (see the module's
    docstring): 400 ``untrusted_host`` for a Host that is not this machine's, 403
    ``cross_origin`` for another origin's request (``RequestLine``, outside it, has refused
    more than one Host header)."""

    def __init__(self, app: ASGIApp, gateway: Gateway, hosts: LocalHosts) -> None:
        self.app = app
        self.gateway = gateway
        self.hosts = hosts
        self.keyed: bool | None = None  # the store's last answer: does a key exist

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        store = self.gateway.store
        try:
            if self.keyed is not None and store.out_of_reach():
                # the store's last answer stands, without waiting its bound each time (a
                # re-check: every probe and scrape of an outage took 5 s here)
                raise StoreUnavailableError("the store is out of reach")
            keyed = self.keyed = await store.has_keys()
        except StoreUnavailableError as exc:
            if scope["path"] in PROBES:
                await self.app(scope, receive, send)
                return
            if self.keyed is None:
                err = store_unavailable(exc)
                self.gateway.metrics.count_unledgered(err)
                await send_error(send, err)
                return
            keyed = self.keyed  # the routes answer 503 themselves, in their own form
        if keyed:
            await self.app(scope, receive, send)
            return
        host = headers.get("host")
        if host is not None and not self.hosts.allows(host):
            name, _ = split_host(host)  # the port is no part of the check (nor of the list)
            await send_error(
                send,
                InvalidRequestError(
                    f"this gateway is in open local mode (no API keys exist) and answers "
                    f"requests for this machine only, not for Host {name!r}: create an API key "
                    f"(`boundgate keys create`) to serve other names, or add {name!r} to "
                    "server.allowed_hosts",
                    code=ErrorCode.UNTRUSTED_HOST,
                ),
            )
            return
        origin = headers.get("origin")
        path = str(scope["path"])
        on_dashboard = path == DASHBOARD or path.startswith(DASHBOARD + "/")
        foreign = origin is not None and not same_origin(origin, host, scope["scheme"])
        if foreign and not on_dashboard:
            await send_error(
                send,
                PermissionDeniedError(
                    f"this gateway is in open local mode (no API keys exist) and refuses "
                    f"requests from web pages of another origin ({origin}); call it from a "
                    "program, or create an API key (`boundgate keys create`)",
                    code=ErrorCode.CROSS_ORIGIN,
                ),
            )
            return
        await self.app(scope, receive, send)
