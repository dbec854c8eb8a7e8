"""``Gateway.settled``: what answered requests left running lands before it returns, so a
benchmark that waits for it after each request sees the verifier learn in request order
(``bench/reuse_quality.py --settle``), on the server's own loop (``ThreadedServer.call``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from boundgate.assembly import build_app
from boundgate.backends.base import Completion, Usage
from boundgate.tenants import Tenant
from boundgate.testing import ThreadedServer
from helpers import engine_lookup, fake_settings


def test_settled_waits_for_labels_and_rows_started_in_the_background(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.reuse.initial_threshold = 0.999  # nothing proven: the near candidate is observed
    settings.reuse.prior = False
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        gw = app.state.gateway

        async def probe() -> tuple[bool, bool, dict[str, int], bool, dict[str, int], bool]:
            stored = await engine_lookup(gw.reuse, "how do I reset my password")
            await gw.reuse.remember(
                stored,
                Completion("Open the settings.", "stop", Usage(3, 3)),
                tenant="t",
                model="m",
                model_version="v",
                cost_wh=0.1,
                cost_gco2=0.05,
            )
            asked = await engine_lookup(gw.reuse, "how do I reset my password please")
            assert asked.candidate is not None and asked.entry is None
            ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
            # started, not awaited: nothing of either has run yet
            gw.reuse.settle_soon(asked, "Open the settings.", ctx.request_id)
            gw.ledger.commit_soon(gw.ledger.row(ctx, None, None, stream=False))
            busy = (gw.reuse.idle, gw.ledger.idle)
            before = dict(gw.reuse.verifier.by_source())
            await gw.settled()
            after = dict(gw.reuse.verifier.by_source())
            written = ctx.request_id in {r.id for r in await gw.store.ledger()}
            return *busy, before, gw.reuse.idle, after, written and gw.ledger.idle

        reuse_idle, ledger_idle, before, idle, after, written = srv.call(probe)
    assert not reuse_idle and not ledger_idle
    assert before == {} and after == {"observe": {"total": 1, "wrong": 0}}
    assert idle and written


def test_call_runs_on_the_servers_loop_and_refuses_once_it_stopped(tmp_path: Path) -> None:
    import asyncio
    import threading

    app = build_app(fake_settings(tmp_path))
    srv = ThreadedServer(app)
    with srv:

        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert srv.call(where) != threading.current_thread().name
        with pytest.raises(ZeroDivisionError):

            async def fails() -> None:
                raise ZeroDivisionError

            srv.call(fails)
    with pytest.raises(RuntimeError, match="not running"):
        srv.call(where)
