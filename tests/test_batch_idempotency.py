"""``Idempotency-Key`` on ``POST /v1/batches`` and ``POST /v1/files``: a client retrying a
request whose answer it never got gets the object the first request made, never a second batch
that runs (and spends its energy) twice (``server/batches/idempotency.py``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from boundgate.assembly import build_app, build_gateway
from boundgate.clock import FakeClock
from boundgate.gateway import Gateway
from boundgate.server.batches.files import new_file
from boundgate.server.batches.objects import create_batch
from boundgate.store import SQLiteStore, Store
from boundgate.tenants import Tenant
from boundgate.testing import ThreadedServer
from helpers import Live, arun, assert_error, fake_settings
from test_batches import START, lines

BATCH = {"endpoint": "/v1/chat/completions", "completion_window": "24h"}


class LosesFirstAnswer(httpx.BaseTransport):
    """A connection that loses the gateway's first answer to a POST on ``path``, after the
    gateway made what was asked: what a client sees when the gateway dies, or the network
    fails, between the store's commit and the response. The SDK retries it."""

    def __init__(self, path: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.path = path
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == self.path and not self.lost:
            response.read()
            response.close()
            self.lost += 1
            raise httpx.ReadError("the connection dropped before the answer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def live_at(tmp_path: Path) -> Any:
    """A gateway on a real port at START (a fake clock), with two keys of acme and one of
    globex: ``(live, clock, {name: secret})``."""
    settings = fake_settings(tmp_path)
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    keys = {
        name: asyncio.run(store.create_key(tenant)).secret
        for name, tenant in (("acme1", "acme"), ("acme2", "acme"), ("globex", "globex"))
    }
    store.close()
    clock = FakeClock(start=START)
    app = build_app(settings, clock=clock)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        yield live, clock, keys
        live.http.close()


def _auth(secret: str, key: str | bytes | None = None) -> dict[str, str | bytes]:
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {secret}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def test_a_batch_retried_after_its_answer_was_lost_is_made_once(live_at: Any) -> None:
    """An audit's finding: a gateway that stored a batch and died (or lost the connection)
    before its answer arrived got the request again from the SDK's retry, and both batches
    ran: twice the cost and the energy. Under one ``Idempotency-Key`` the retry gets the
    batch the first request made."""
    live, _, keys = live_at
    lossy = LosesFirstAnswer("/v1/batches")
    client = openai.OpenAI(
        base_url=live.url, api_key=keys["acme1"], max_retries=2,
        http_client=httpx.Client(transport=lossy, timeout=60),
    )  # fmt: skip
    f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, **BATCH, extra_headers={"Idempotency-Key": "retry-me"}
    )  # type: ignore[call-overload]
    assert lossy.lost == 1  # the first answer was lost: this one is the retry's
    assert [x.id for x in client.batches.list()] == [b.id]
    (job,) = arun(live.gateway.store.jobs())
    assert job.id == b.model_extra["boundgate"]["job_id"]
    again = client.batches.create(
        input_file_id=f.id, **BATCH, extra_headers={"Idempotency-Key": "retry-me"}
    )  # type: ignore[call-overload]
    assert again.id == b.id and len(arun(live.gateway.store.jobs())) == 1
    client.close()


def test_a_key_is_its_api_keys_for_a_day_and_refuses_other_parameters(live_at: Any) -> None:
    live, clock, keys = live_at
    http: httpx.Client = live.http

    def upload(secret: str) -> str:
        files = {"file": ("in.jsonl", lines(2))}
        r = http.post("/v1/files", headers=_auth(secret), files=files, data={"purpose": "batch"})
        return str(r.json()["id"])

    inputs = {name: upload(secret) for name, secret in keys.items()}

    def create(name: str, key: str | bytes | None = "k-1", **extra: Any) -> httpx.Response:
        body = {"input_file_id": inputs[name], **BATCH, **extra}
        return http.post("/v1/batches", headers=_auth(keys[name], key), json=body)

    first = create("acme1")
    assert first.status_code == 200
    assert create("acme1").json()["id"] == first.json()["id"]
    # an empty metadata object sets nothing, as an absent one (a trial's retry with
    # "metadata": {} was a 409)
    assert create("acme1", metadata={}).json()["id"] == first.json()["id"]
    # the key with other parameters: 409, and no batch made
    conflict = create("acme1", metadata={"run": "2"})
    err = assert_error(conflict, 409, code="idempotency_key_reused")
    assert err["type"] == "invalid_request_error" and "k-1" not in err["message"]
    # the OpenAI SDKs retry a 409 unless told not to (a trial: 3 requests before the caller
    # saw it)
    assert conflict.headers["x-should-retry"] == "false"
    # two keys: which governs the retry would be a guess (a trial's were read as the first)
    body = {"input_file_id": inputs["acme1"], **BATCH}
    two = [("Authorization", f"Bearer {keys['acme1']}"), ("Idempotency-Key", "k-1")]
    two.append(("Idempotency-Key", "k-2"))
    assert_error(
        http.post("/v1/batches", headers=two, json=body),
        400,
        param="Idempotency-Key",
        code="invalid_value",
    )
    # another API key (of the same tenant, or another's) has keys of its own
    ids = {first.json()["id"], create("acme2").json()["id"], create("globex").json()["id"]}
    assert len(ids) == 3
    # a day later the key is free again
    clock.advance(24 * 3600)
    assert create("acme1").json()["id"] not in ids
    assert len(arun(live.gateway.store.jobs())) == 4
    for bad in ("", "x" * 256, "tab\there", "caf\u00e9".encode("latin-1")):
        assert_error(create("acme1", key=bad), 400, param="Idempotency-Key", code="invalid_value")


def test_an_upload_under_a_key_is_stored_once_until_its_file_is_deleted(live_at: Any) -> None:
    live, _, keys = live_at
    http: httpx.Client = live.http

    def upload(content: bytes, key: str = "up-1") -> httpx.Response:
        return http.post(
            "/v1/files", headers=_auth(keys["acme1"], key),
            files={"file": ("in.jsonl", content)}, data={"purpose": "batch"},
        )  # fmt: skip

    first = upload(lines(2)).json()
    assert upload(lines(2)).json() == first
    assert_error(upload(lines(3)), 409, code="idempotency_key_reused")
    listed = http.get("/v1/files", headers=_auth(keys["acme1"])).json()["data"]
    assert [f["id"] for f in listed] == [first["id"]]
    assert http.delete(f"/v1/files/{first['id']}", headers=_auth(keys["acme1"])).json()["deleted"]
    again = upload(lines(3)).json()  # the key went with its file
    assert again["id"] != first["id"] and again["bytes"] == len(lines(3))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_creating_a_batch_under_one_key_at_once_make_one(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two gateway processes (workers, replicas) get the same request under one key at once
    (a retry that overtook the first): one batch and one job, and both answer with it."""
    settings = fake_settings(tmp_path)
    settings.reuse.enabled = False
    clock = FakeClock(start=START)

    def store() -> Store | None:  # None: the settings' SQLite file
        if kind == "sqlite":
            return None
        from boundgate.store.postgres import PostgresStore

        return PostgresStore(request.getfixturevalue("postgres_schema"), max_size=4)

    gateways = [build_gateway(settings, store=store(), clock=clock) for _ in range(2)]
    for gw in gateways:
        gw.store.open()
    try:

        async def scenario() -> tuple[list[dict[str, Any]], int, int]:
            f = await new_file(gateways[0], "acme", "batch", "in.jsonl", lines(2))

            async def create(gw: Gateway) -> dict[str, Any]:
                ctx = gw.context(Tenant(name="acme"), "/v1/batches")
                return await create_batch(
                    gw, ctx, input_file_id=f.id, **BATCH, metadata=None, request_s=2.0,
                    idempotency_key="same",
                )  # fmt: skip

            made = list(await asyncio.gather(*(create(gw) for gw in gateways)))
            store = gateways[0].store
            return made, len(await store.batches()), len(await store.jobs())

        made, batches, jobs = asyncio.run(scenario())
    finally:
        for gw in gateways:
            gw.store.close()
    assert made[0]["id"] == made[1]["id"] and (batches, jobs) == (1, 1)
    assert json.loads(json.dumps(made[0]))["status"] == "in_progress"
