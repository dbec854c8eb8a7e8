"""HTTP/1.1 connections: uvicorn's protocol with a deadline for a request's headers.

uvicorn bounds the wait *between* requests on a kept-alive connection (``timeout_keep_alive``,
armed when a response completes and cancelled by any byte that arrives) but not the wait for
a request's headers: a client that opens a connection and sends nothing, trickles its header
lines a byte at a time (slowloris), or sends a byte of a body nobody reads once its response
is out, holds the connection and its memory for as long as it likes (break-it trials held
them for minutes). Proxies bound it (nginx's ``client_header_timeout``, 60 s; Apache's
``RequestReadTimeout header=20-40``); a gateway served without one needs its own.

:func:`protocol_class` is the protocol uvicorn itself would pick (``http="auto"``: httptools
when installed, as ``uvicorn[standard]`` installs it, else h11) with that deadline
(``server.header_read_timeout_s``): whenever the connection serves no request (from its
start; after a response, from the next byte that arrives) the next request's headers must be
complete in time, else the connection is closed: with a 408 ``request_timeout`` in OpenAI's
error shape when bytes came, silently when nothing did (as nginx does; a browser's
preconnected socket is not an error). While a request is served the deadline does not run;
the body's own wait is ``BodyLimit``'s (``server.body_read_timeout_s``). What the parser cannot
read is answered 400 ``invalid_http`` in OpenAI's shape (uvicorn's own answer is plain text).

The deadline is read from the uvicorn ``Config`` (:func:`with_header_timeout` sets it there),
so the classes are importable by name and survive uvicorn's worker processes, which receive
the ``Config`` pickled.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import BoundgateError, ErrorCode, InvalidRequestError, RequestTimeoutError

# the uvicorn Config attribute holding the deadline, seconds
_CONFIG_ATTRIBUTE = "boundgate_header_read_timeout_s"
DEFAULT_HEADER_READ_TIMEOUT_S = 60.0


def _error_response(status_line: str, err: BoundgateError) -> bytes:
    """``err`` as a whole HTTP/1.1 response closing its connection (``status_line``: the
    status and reason, "408 Request Timeout")."""
    body = json.dumps(err.to_dict()).encode()
    head = [
        f"HTTP/1.1 {status_line}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def _timeout_response(timeout_s: float) -> bytes:
    err = RequestTimeoutError(
        f"the request's headers did not arrive complete within {timeout_s:g} s "
        "(server.header_read_timeout_s)"
    )
    return _error_response("408 Request Timeout", err)


class _HeaderDeadline:
    """The deadline, mixed in before one of uvicorn's HTTP/1.1 protocols (which set
    ``cycle``: the request being served, None before the first; ``transport``; ``loop``)."""

    if TYPE_CHECKING:
        cycle: Any
        transport: asyncio.Transport
        loop: asyncio.AbstractEventLoop

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        self.header_read_timeout_s = float(
            getattr(config, _CONFIG_ATTRIBUTE, DEFAULT_HEADER_READ_TIMEOUT_S)
        )
        self._header_deadline: asyncio.TimerHandle | None = None
        self._received = False  # bytes came since the deadline was armed

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self.transport.is_closing():
            self._disarm()
        elif self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a request's headers are in: it is being served
        else:  # part of a request's head, or of a body nobody reads any more
            self._received = True
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.header_read_timeout_s, self._headers_late
            )

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        self._received = False

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes its parser cannot read as HTTP/1.1 (a malformed chunked
        body, a bad request line), in OpenAI's error shape: it was plain text (a trial)."""
        err = InvalidRequestError(
            f"the request is not valid HTTP/1.1: {msg}", code=ErrorCode.INVALID_HTTP
        )
        self._disarm()
        self.transport.write(_error_response("400 Bad Request", err))
        self.transport.close()

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # being served (cannot happen: headers in disarm the deadline)
        if self._received:
            self.transport.write(_timeout_response(self.header_read_timeout_s))
        self.transport.close()


class H11HeaderTimeoutProtocol(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the deadline (the module's docstring)."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
    HttpToolsHeaderTimeoutProtocol: type | None = None
else:

    class HttpToolsHeaderTimeoutProtocol(_HeaderDeadline, HttpToolsProtocol):  # type: ignore[no-redef]
        """uvicorn's httptools protocol with the deadline (the module's docstring)."""


def protocol_class() -> type:
    """The HTTP/1.1 protocol uvicorn's ``http="auto"`` would pick (httptools when it is
    installed, else h11), with the deadline."""
    return HttpToolsHeaderTimeoutProtocol or H11HeaderTimeoutProtocol


def with_header_timeout(config: Config, header_read_timeout_s: float) -> Config:
    """``config`` (a ``uvicorn.Config``) serving HTTP/1.1 with :func:`protocol_class` and a
    deadline of ``header_read_timeout_s`` seconds for each request's headers. Returns
    ``config``, changed in place (before the server loads it)."""
    config.http = protocol_class()
    setattr(config, _CONFIG_ATTRIBUTE, float(header_read_timeout_s))
    return config
