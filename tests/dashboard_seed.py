"""A gateway with a seeded store for the dashboard tests (HTTP and browser)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from boundgate.assembly import build_app
from boundgate.clock import FakeClock
from boundgate.store import LedgerRow
from boundgate.testing import ThreadedServer
from helpers import Live, arun, fake_settings

# 2023-06-01 05:00 UTC: inside the bundled grid history, so the forecast is deterministic
START = datetime(2023, 6, 1, 5, tzinfo=UTC).timestamp()


@dataclass
class Seeded:
    live: Live
    clock: FakeClock
    doc_id: str
    admin_key: str | None
    user_key: str | None
    db_path: Path


def seed(live: Live, clock: FakeClock, headers: dict[str, str]) -> str:
    """Real traffic through the API (misses, hits, a bound document, a queued batch), plus
    a day of older ledger rows so the charts have history. Returns the bound document id."""
    http = live.http
    answer_id = ""
    for i in range(6):
        r = http.post(
            "/v1/chat/completions",
            headers=headers,
            json={
                "model": "fake",
                "messages": [{"role": "user", "content": f"How tall is mountain {i % 3}?"}],
                "temperature": 0,
                "user": f"user-{i}",
            },
        )
        assert r.status_code == 200, r.text
        answer_id = answer_id or r.headers["x-boundgate-document"]
    bound = http.post("/v1/boundgate/documents", headers=headers, json={"answer_id": answer_id})
    assert bound.status_code == 200, bound.text
    # an error row, so outcomes differ
    bad = http.post("/v1/chat/completions", headers=headers, json={"model": "nope", "messages": []})
    assert bad.status_code in (400, 404)
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "fake", "messages": [{"role": "user", "content": "Hi?"}]},
    }
    f = http.post(
        "/v1/files",
        headers=headers,
        files={"file": ("in.jsonl", json.dumps(line).encode())},
        data={"purpose": "batch"},
    )
    assert f.status_code == 200, f.text
    b = http.post(
        "/v1/batches",
        headers=headers,
        json={
            "input_file_id": f.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    assert b.status_code == 200, b.text
    store = live.gateway.store
    now = clock.time()
    for h in range(1, 24):
        arun(
            store.record(
                LedgerRow(
                    id=f"req_seed{h}",
                    ts=now - h * 3600,
                    tenant="acme" if h % 3 else "=HYPERLINK(evil)",
                    endpoint="/v1/chat/completions",
                    model="fake",
                    prompt_tokens=10,
                    completion_tokens=20,
                    latency_ms=30.0 + h,
                    wh=0.01 * h,
                    wh_low=0.008 * h,
                    wh_high=0.012 * h,
                    gco2=0.004 * h,
                    reuse="hit-semantic" if h % 2 else "miss",
                    avoided_wh=0.02 if h % 2 else 0.0,
                    avoided_gco2=0.008 if h % 2 else 0.0,
                )
            )
        )
    return str(bound.json()["id"])


def start(tmp_path: Path, keyed: bool) -> Iterator[Seeded]:
    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n')
    settings.scheduler.poll_s = 0.05
    clock = FakeClock(start=START)
    app = build_app(settings, clock=clock)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        admin_key = user_key = None
        headers: dict[str, str] = {}
        if keyed:
            store = live.gateway.store
            admin_key = arun(store.create_key("ops", admin=True)).secret
            user_key = arun(store.create_key("acme")).secret
            headers = {"Authorization": f"Bearer {admin_key}"}
        doc_id = seed(live, clock, headers)
        yield Seeded(live, clock, doc_id, admin_key, user_key, settings.db_path)
        live.http.close()
