"""Server-sent events: our code against the libraries issue #12 names, per event.

- **upstream parsing** (``backends/openai_upstream.py``): the hand-written loop the backend had
  (``aiter_lines``, keep the ``data:`` lines) against ``httpx-sse``'s ``EventSource``, which
  the backend now uses; a 300-event chat stream through an in-memory transport.
- **upstream streams over loopback**: the same two loops on whole streamed answers of the
  in-package fake upstream (a real HTTP server on 127.0.0.1), as the backend reads them:
  what a request pays, connection and server included.
- **the response to the client** (``server/common.py``): our ``SSEResponse`` (Starlette's
  ``StreamingResponse`` plus a disconnect listener) against sse-starlette's
  ``EventSourceResponse`` (a send lock and a timeout scope per event, ping and shutdown
  tasks per response), driven at the ASGI level with a send that costs nothing.

Both in one run, interleaved rounds, best round of each; the ratio is library / ours.
Needs ``pip install sse-starlette`` for the second part (not a dependency of the gateway).

    python bench/sse_libraries.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from httpx_sse import EventSource

from boundgate.backends.fake import FakeUpstreamServer
from boundgate.server.common import SSEResponse

EVENTS = 300
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0}]}


def upstream_body() -> list[bytes]:
    events = [
        {**CHUNK, "choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}]}
        for i in range(EVENTS)
    ]
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return [text[i : i + 256].encode() for i in range(0, len(text), 256)]


class Body(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


async def parse_lines(resp: httpx.Response) -> int:
    """The backend's loop before httpx-sse."""
    n = 0
    async for line in resp.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        json.loads(payload)
        n += 1
    return n


async def parse_sse(resp: httpx.Response) -> int:
    """The backend's loop now."""
    n = 0
    async for sse in EventSource(resp).aiter_sse():
        payload = sse.data.strip()
        if not payload:
            continue
        if payload == "[DONE]":
            break
        json.loads(payload)
        n += 1
    return n


async def client_stream() -> AsyncIterator[bytes]:
    line = f"data: {json.dumps(CHUNK, separators=(',', ':'))}\n\n".encode()
    for _ in range(EVENTS):
        yield line
        await asyncio.sleep(0)


async def respond(make: Callable[[AsyncIterator[bytes]], Any]) -> None:
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    await make(client_stream())({"type": "http", "method": "POST"}, receive, send)


async def compare(
    title: str,
    variants: dict[str, Callable[[], Awaitable[object]]],
    rounds: int,
    events: int = EVENTS,
) -> None:
    best = dict.fromkeys(variants, float("inf"))
    for fn in variants.values():  # warm up
        await fn()
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(20):
                await fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / 20)
    ours, lib = best.values()
    print(f"{title} ({events} events)")
    for name, seconds in best.items():
        print(f"  {name:<36} {seconds / events * 1e6:8.2f} µs/event")
    print(f"  {'library / ours':<36} {lib / ours:8.2f}")


async def main(rounds: int) -> None:
    chunks = upstream_body()
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(
            lambda _: httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=Body(chunks)
            )
        )
    )

    def parse(fn: Callable[[httpx.Response], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            async with client.stream("POST", "http://upstream/v1/chat/completions") as r:
                return await fn(r)

        return run

    await compare(
        "upstream parsing",
        {"hand-written (aiter_lines)": parse(parse_lines), "httpx-sse": parse(parse_sse)},
        rounds,
    )
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with FakeUpstreamServer() as up:
        async with httpx.AsyncClient(base_url=up.url) as real:

            def loopback(
                fn: Callable[[httpx.Response], Awaitable[int]],
            ) -> Callable[[], Awaitable[int]]:
                async def run() -> int:
                    async with real.stream("POST", "/chat/completions", json=body) as r:
                        return await fn(r)

                return run

            per_stream = await loopback(parse_lines)()
            await compare(
                "upstream streams over loopback, whole answers",
                {
                    "hand-written (aiter_lines)": loopback(parse_lines),
                    "httpx-sse": loopback(parse_sse),
                },
                rounds,
                per_stream,
            )
    try:
        from sse_starlette import EventSourceResponse
    except ImportError:
        print("response: needs sse-starlette (pip install sse-starlette)")
        return
    await compare(
        "response to the client",
        {
            "ours (SSEResponse)": lambda: respond(lambda s: SSEResponse(s, {})),
            "sse-starlette (EventSourceResponse)": lambda: respond(
                lambda s: EventSourceResponse(s, sep="\n")
            ),
        },
        rounds,
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    asyncio.run(main(ap.parse_args().rounds))
