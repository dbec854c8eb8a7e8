"""HTTP/1.1 connections: uvicorn's h11 protocol with a deadline for a request's headers.

uvicorn bounds the wait *between* requests on a kept-alive connection (``timeout_keep_alive``)
but not the wait for a request's headers: a client that opens a connection and sends nothing,
or trickles its header lines a byte at a time (slowloris), holds the connection and its
memory for as long as it likes (a break-it trial held one for minutes). Proxies bound it
(nginx's ``client_header_timeout``, 60 s; Apache's ``RequestReadTimeout header=20-40``);
a gateway served without one needs its own. :class:`HeaderTimeoutProtocol` is uvicorn's
``H11Protocol`` with that deadline (``server.header_read_timeout_s``): from a connection's
start, and from the first byte of each later request, its headers must be complete in time,
else the connection is closed: with a 408 ``request_timeout`` in OpenAI's error shape when part
of a request came, silently when nothing did (as nginx does; a browser's preconnected socket
is not an error). The body's own wait is ``BodyLimit``'s (``server.body_read_timeout_s``).

The deadline is read from the uvicorn ``Config`` (:func:`with_header_timeout` sets it there), so
the class itself is importable by name and survives uvicorn's worker processes, which receive
the ``Config`` pickled.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import RequestTimeoutError

# the uvicorn Config attribute holding the deadline, seconds
_CONFIG_ATTRIBUTE = "boundgate_header_read_timeout_s"
DEFAULT_HEADER_READ_TIMEOUT_S = 60.0


def with_header_timeout(config: Any, header_read_timeout_s: float) -> Any:
    """``config`` (a ``uvicorn.Config``) serving HTTP/1.1 with :class:`HeaderTimeoutProtocol`
    and a deadline of ``header_read_timeout_s`` seconds for each request's headers. Returns
    ``config``, changed in place (before the server loads it)."""
    config.http = HeaderTimeoutProtocol
    setattr(config, _CONFIG_ATTRIBUTE, float(header_read_timeout_s))
    return config


def _timeout_response(timeout_s: float) -> bytes:
    err = RequestTimeoutError(
        f"the request's headers did not arrive complete within {timeout_s:g} s "
        "(server.header_read_timeout_s)"
    )
    body = json.dumps(err.to_dict()).encode()
    head = [
        "HTTP/1.1 408 Request Timeout",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete
    within the deadline (see the module's docstring)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_read_timeout_s = float(
            getattr(config, _CONFIG_ATTRIBUTE, DEFAULT_HEADER_READ_TIMEOUT_S)
        )
        self._header_deadline: asyncio.TimerHandle | None = None
        self._received = False  # any byte of the request being waited for

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            # part of a request's head is buffered: the deadline runs from its first byte
            self._received = True
            self._arm()
        elif self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in (or the connection is done)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

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

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._received:
            self.transport.write(_timeout_response(self.header_read_timeout_s))
        self.transport.close()
