"""``boundgate.testing.PgCountingProxy`` (counts a client's round trips and statements to
PostgreSQL for tests and benchmarks) ends cleanly: CI warned of its connections' coroutines
destroyed pending, in whatever test ran after one that used it."""

from __future__ import annotations

import gc
import logging
import socket
import socketserver
import threading
import warnings

import pytest

from boundgate.testing import PgCountingProxy

STARTUP = (8).to_bytes(4, "big") + (196608).to_bytes(4, "big")  # protocol 3.0, no params
QUERY = b"Q" + (9).to_bytes(4, "big") + b"SELE\x00"


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


def test_closing_the_proxy_ends_its_connections_with_nothing_left_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = PgCountingProxy(server.server_address[1])
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.sendall(STARTUP)
        assert client.recv(len(STARTUP)) == STARTUP  # echoed: an answer ends a round trip
        client.sendall(QUERY)
        assert client.recv(len(QUERY)) == QUERY
        assert (proxy.flights, proxy.statements) == (2, 1)
        with warnings.catch_warnings(record=True) as warned, caplog.at_level(logging.ERROR):
            warnings.simplefilter("always")
            proxy.close()  # the connection still open
            assert client.recv(1) == b""  # the proxy hung up
            del proxy
            gc.collect()
    server.shutdown()
    server.server_close()
    assert not warned and not caplog.records, (warned, caplog.records)
