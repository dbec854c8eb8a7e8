"""Helpers for running real servers in tests and benchmarks (shipped with the package)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """Run an ASGI app under uvicorn in a background thread (context manager).

    Real sockets and real HTTP; the lifespan runs, so stores open and models load. The
    listening socket is bound here, before the server starts, and handed to uvicorn: a port
    is never released between being picked and being served (another process, such as a
    second test run beside this one, could take it meanwhile). ``header_read_timeout_s``
    serves with ``boundgate serve``'s deadline for a request's headers
    (``server.connections``); None keeps uvicorn's protocol as it is.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "on",
        start_timeout_s: float = 300.0,
        timeout_graceful_shutdown: float | None = None,
        header_read_timeout_s: float | None = None,
    ) -> None:
        import uvicorn

        from .server.connections import with_header_timeout

        self.host = host
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan=lifespan,
            # None: requests in flight at exit are waited for (uvicorn's default)
            timeout_graceful_shutdown=(
                None if timeout_graceful_shutdown is None else int(timeout_graceful_shutdown)
            ),
        )
        if header_read_timeout_s is not None:  # as ``boundgate serve`` serves
            with_header_timeout(config, header_read_timeout_s)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_timeout_s = start_timeout_s

    def _run(self) -> None:
        """uvicorn's ``Server.run``, keeping the loop for ``call``."""
        config = self._server.config
        factory = getattr(config, "get_loop_factory", None)  # uvicorn ≥ 0.36
        if factory is None:
            config.setup_event_loop()
        with asyncio.Runner(loop_factory=factory() if factory else None) as runner:
            self._loop = runner.get_loop()
            runner.run(self._server.serve(sockets=[self._socket]))

    def call(self, work: Callable[[], Awaitable[T]], timeout_s: float = 300.0) -> T:
        """Run ``work()`` on the server's event loop and return its result (what the app's
        request handlers would see: ``app.state``'s objects belong to that loop). Raises
        ``RuntimeError`` when the server is not running, ``TimeoutError`` after
        ``timeout_s``, or what ``work`` raises."""
        loop = self._loop
        if loop is None or not self._server.started or loop.is_closed():
            raise RuntimeError("the server is not running")

        async def run() -> T:
            return await work()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout_s)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + "/v1"

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        # generous: the lifespan loads models, which takes long on a busy machine
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()


class PgCountingProxy:
    """A TCP proxy on loopback (its own thread and event loop) in front of a PostgreSQL
    server that counts what clients send through it, for tests and benchmarks that count
    the database work of a request instead of timing it.

    ``flights``: round trips, each time a connection sends after the server answered (or
    sends first), so pipelined statements count once and an idle connection counts
    nothing. ``statements``: statements run, read from the wire protocol: each simple
    ``Query`` message and each ``Execute`` of the extended protocol (``BEGIN`` and
    ``COMMIT`` included). Point a client at ``port`` instead of the server's; plain
    connections only (``sslmode=disable``: an encrypted stream cannot be read).
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        import asyncio

        self.target = (target_host, target_port)
        self.flights = 0
        self.statements = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server
        self._thread = threading.Thread(target=self._run, name="pg-counting-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting proxy did not start")

    def url(self, url: str) -> str:
        """``url`` (a ``postgresql://…@host:port/…`` URI of the target) pointed at the proxy."""
        host, port = self.target
        return url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/")

    def close(self) -> None:
        """Stop listening, end every proxied connection and the proxy's thread. (Stopping
        the loop with its connections' tasks pending left their coroutines to be closed by
        the garbage collector, which warned in whatever test ran next.)"""
        import asyncio

        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        import asyncio

        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, cr: Any, cw: Any) -> None:
        import asyncio

        sr, sw = await asyncio.open_connection(*self.target)
        answered = [True]  # the client speaks first
        buf = bytearray()
        started = [False]  # past the start-up message: typed messages follow

        def count(data: bytes) -> None:
            buf.extend(data)
            while True:
                if not started[0]:  # [int32 length][int32 code]…, no type byte
                    if len(buf) < 8:
                        return
                    n = int.from_bytes(buf[:4], "big")
                    if len(buf) < n:
                        return
                    code = int.from_bytes(buf[4:8], "big")
                    started[0] = code not in (80877103, 80877104)  # SSL / GSS requests
                    del buf[:n]
                    continue
                if len(buf) < 5:
                    return
                n = int.from_bytes(buf[1:5], "big")
                if len(buf) < 1 + n:
                    return
                if buf[0] in b"QE":
                    self.statements += 1
                del buf[: 1 + n]

        async def pipe(r: Any, w: Any, up: bool) -> None:
            try:
                while data := await r.read(65536):
                    if up:
                        if answered[0]:
                            self.flights += 1
                            answered[0] = False
                        count(data)
                    else:
                        answered[0] = True
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        with contextlib.suppress(asyncio.CancelledError):  # close(): a normal end (an
            # exception, cancellation included, is logged by asyncio's stream callback)
            await asyncio.gather(pipe(cr, sw, True), pipe(sr, cw, False))
