"""An OpenAI-compatible upstream behind the gateway: pass-through, retries, timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from boundgate.assembly import build_app
from boundgate.backends.fake import FakeUpstreamServer, Fault, fake_answer
from boundgate.settings import load_settings
from boundgate.testing import ThreadedServer
from helpers import Live, assert_error, write_config

MSG = [{"role": "user", "content": "What is boundgate?"}]


@pytest.fixture
def upstream() -> Iterator[FakeUpstreamServer]:
    with FakeUpstreamServer() as up:
        yield up


def upstream_config(
    tmp_path: Path, upstream: FakeUpstreamServer, extra: str = "", timeout_s: float = 30.0
) -> Path:
    """A gateway on the fake upstream. ``timeout_s`` is generous but for the timeout test: an
    answer must never time out only because the machine is busy."""
    return write_config(
        tmp_path / "b.toml",
        f"""
[server]
data_dir = "{tmp_path / "data"}"
grid_zone = "GB"
{extra}

[models.my-upstream]
backend = "openai"
base_url = "{upstream.url}"
api_key_env = "UPSTREAM_API_KEY"
upstream_model = "gpt-4o-mini"
params_b = 8
timeout_s = {timeout_s}
max_retries = 2
backoff_s = 0.01
default = true
""",
    )


@pytest.fixture
def live(
    tmp_path: Path, upstream: FakeUpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Live]:
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-test")
    app = build_app(load_settings(upstream_config(tmp_path, upstream)))
    with ThreadedServer(app) as srv:
        yield Live(srv, app)


def test_non_stream_pass_through(live: Live, upstream: FakeUpstreamServer) -> None:
    raw = live.openai().chat.completions.with_raw_response.create(
        model="my-upstream",
        messages=MSG,
        max_tokens=50,
        temperature=0.2,
        seed=7,
        extra_body={"presence_penalty": 0.5},
    )
    c = raw.parse()
    assert c.choices[0].message.content == fake_answer(MSG[0]["content"])
    sent = upstream.control.last_body
    assert sent is not None
    assert sent["model"] == "gpt-4o-mini" and sent["seed"] == 7
    assert sent["presence_penalty"] == 0.5 and sent["temperature"] == 0.2
    assert raw.headers["x-boundgate-energy-method"] == "estimate"
    assert raw.headers["x-boundgate-grid-zone"] == "GB"
    row = live.ledger()[raw.headers["x-request-id"]]
    assert row.backend == "openai" and row.completion_tokens == c.usage.completion_tokens
    assert row.wh > 0


def test_sampling_parameters_left_out_are_not_sent_upstream(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    """A trial's finding: every upstream call carried ``temperature`` 1 and ``top_p`` 1 that
    the client never sent, which OpenAI's reasoning models refuse (``top_p``) and some
    upstreams refuse together. Left out, the upstream's own default applies; sent, each is
    passed on as sent, on chat and plain completions alike."""
    live.openai().chat.completions.create(model="my-upstream", messages=MSG, max_tokens=8)
    sent = upstream.control.last_body
    assert sent is not None and "temperature" not in sent and "top_p" not in sent
    live.openai().chat.completions.create(
        model="my-upstream", messages=MSG, max_tokens=8, top_p=0.5
    )
    sent = upstream.control.last_body
    assert sent is not None and sent["top_p"] == 0.5 and "temperature" not in sent
    live.openai().completions.create(
        model="my-upstream", prompt="Once upon", max_tokens=8, temperature=0
    )
    sent = upstream.control.last_body
    assert sent is not None and sent["temperature"] == 0 and "top_p" not in sent


def test_the_operators_default_temperature_is_sent_upstream(
    tmp_path: Path, upstream: FakeUpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reuse.default_temperature`` is the temperature a request without one is generated
    (and reused) at, so the upstream is told it; ``top_p`` stays the upstream's."""
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-test")
    config = upstream_config(tmp_path, upstream, "\n[reuse]\ndefault_temperature = 0\n")
    app = build_app(load_settings(config))
    with ThreadedServer(app) as srv:
        Live(srv, app).openai().chat.completions.create(
            model="my-upstream", messages=MSG, max_tokens=8
        )
    sent = upstream.control.last_body
    assert sent is not None and sent["temperature"] == 0 and "top_p" not in sent


def test_the_fake_upstream_says_length_for_an_answer_cut_by_its_limit(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    """It said ``stop`` for every answer (a trial's finding): the gateway then reused a cut
    answer for larger limits, which a real upstream's ``length`` prevents."""
    short = live.openai().chat.completions.create(
        model="my-upstream", messages=MSG, max_tokens=3, temperature=0
    )
    assert short.choices[0].finish_reason == "length" and short.usage is not None
    assert short.usage.completion_tokens == 3
    longer = live.openai().chat.completions.with_raw_response.create(
        model="my-upstream", messages=MSG, max_tokens=200, temperature=0
    )
    assert longer.parse().choices[0].finish_reason == "stop"
    assert longer.headers["x-boundgate-reuse"] == "miss"  # the cut answer does not fit 200


def test_a_participant_name_reaches_the_upstream(live: Live, upstream: FakeUpstreamServer) -> None:
    """``name`` was dropped before the model saw it (a trial's finding)."""
    live.openai().chat.completions.create(
        model="my-upstream",
        messages=[{"role": "user", "content": "What is my name?", "name": "Carol"}],
        max_tokens=20,
    )
    sent = upstream.control.last_body
    assert sent is not None
    assert sent["messages"] == [{"role": "user", "content": "What is my name?", "name": "Carol"}]


def test_model_version_names_the_model_not_the_upstream_address(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    """Signed documents and exports carry the model version: it must identify the model (the
    configured name and the upstream's model id), not the address it is reached at."""
    models = {m.id: m for m in live.openai().models.list().data}
    version = models["my-upstream"].model_extra["boundgate"]["version"]
    assert version == "my-upstream#gpt-4o-mini"
    host = upstream.url.split("//", 1)[1].split("/", 1)[0]
    assert host not in version and "http" not in version


def test_stream_pass_through(live: Live) -> None:
    chunks = list(
        live.openai().chat.completions.create(
            model="my-upstream", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == fake_answer(MSG[0]["content"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_retries_5xx_and_429_then_succeeds(live: Live, upstream: FakeUpstreamServer) -> None:
    upstream.control.push(Fault(status=503), Fault(status=429, retry_after=0.01))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    assert r.status_code == 200
    assert upstream.control.requests == 3


def retries_counted(live: Live) -> dict[tuple[str, str], float]:
    """``boundgate_retries_total`` on the app's /metrics, by (operation, model)."""
    families = text_string_to_metric_families(live.http.get("/metrics").text)
    (family,) = [f for f in families if f.name == "boundgate_retries"]
    return {
        (s.labels["operation"], s.labels["model"]): s.value
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_upstream_retries_show_on_the_apps_metrics(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    """stamina's retries were counted in prometheus_client's default registry (its own
    ``stamina_retries_total``), which the app's /metrics does not serve: an upstream failing
    now and then was invisible to operators. Each retry counts in the app's registry now,
    under the model retried; the job runner's poll has its series, at 0."""
    before = retries_counted(live)
    assert before[("upstream", "my-upstream")] == 0.0
    assert before[("job_poll", "")] == 0.0
    upstream.control.push(Fault(status=503), Fault(status=429, retry_after=0.01))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    assert r.status_code == 200
    assert upstream.control.requests == 3
    after = retries_counted(live)
    assert after[("upstream", "my-upstream")] == 2.0
    assert after[("job_poll", "")] == 0.0


def test_a_failed_creative_generation_gives_its_novelty_unit_back(
    tmp_path: Path, upstream: FakeUpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #13: the novelty budget counts fresh generations made; one whose upstream fails
    (502 here) takes no unit, so the next creative request is still served."""
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-test")
    cfg = upstream_config(tmp_path, upstream, "[limits]\nnovelty_per_day = 1\n")
    body = {"messages": MSG, "temperature": 1.0}
    with Live.in_process(build_app(load_settings(cfg))) as live:
        upstream.control.push(*[Fault(status=500)] * 3)
        assert_error(live.http.post("/v1/chat/completions", json=body), 502)
        r = live.http.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text  # the one unit of the day is still there
        r = live.http.post("/v1/chat/completions", json=body)
        assert_error(r, 429, code="novelty_budget_exhausted")  # and now it is used


def test_persistent_5xx_is_502(live: Live, upstream: FakeUpstreamServer) -> None:
    upstream.control.push(*[Fault(status=500)] * 3)
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    err = assert_error(r, 502, code="upstream_error")
    # which model failed (a ladder's last rung said only "upstream answered 500": a trial)
    assert err["message"].startswith("model 'my-upstream': upstream answered 500"), err
    # the upstream's own words stay in the server log (a 5xx body may name its internals)
    assert "injected" not in err["message"], err
    assert upstream.control.requests == 3  # one try + two retries, then give up
    assert live.ledger()[r.headers["x-request-id"]].status == 502


@pytest.mark.parametrize("status", [501, 505, 520, 529])
def test_another_5xx_is_a_502_without_the_upstreams_words(
    live: Live, upstream: FakeUpstreamServer, status: int
) -> None:
    """A re-check: a 5xx outside the retried ones (501, 505, 520, 529) passed through with
    its status and body (a host name and a password in the trial's)."""
    upstream.control.push(Fault(status=status))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    err = assert_error(r, 502, code="upstream_error")
    assert f"upstream answered {status}" in err["message"] and "injected" not in err["message"]
    assert upstream.control.requests == 1  # not retried


def test_4xx_passes_through_without_retry(live: Live, upstream: FakeUpstreamServer) -> None:
    upstream.control.push(Fault(status=400))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    err = assert_error(r, 400, code="fake_400")
    assert "injected" in err["message"]
    assert upstream.control.requests == 1


@pytest.mark.parametrize(
    ("status", "raw", "said"),
    [
        (400, b"prompt is too long for this model\n", "prompt is too long for this model"),
        (413, b"<html><body>413 Request Entity Too Large</body></html>", "Too Large"),
        (422, b'{"error": "temperature must be below 2"}', "temperature must be below 2"),
        (400, b'{"detail": "unknown field: seed"}', "unknown field: seed"),
        (400, b"", "(no body)"),
    ],
)
def test_an_upstream_4xx_in_another_shape_keeps_its_words(
    live: Live, upstream: FakeUpstreamServer, status: int, raw: bytes, said: str
) -> None:
    """A break-it trial: an upstream's 4xx whose body is not OpenAI's error object (plain
    text, a proxy's HTML page, Ollama's or TGI's ``{"error": "…"}``, FastAPI's ``detail``)
    reached the client as "upstream answered 400" alone. Its words are passed on, with its
    status, not retried."""
    upstream.control.push(Fault(status=status, raw=raw))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG, "max_tokens": 3})
    err = assert_error(r, status)
    assert err["message"].startswith(f"upstream answered {status}: ")
    assert said in err["message"], err
    assert upstream.control.requests == 1


def test_an_upstream_4xx_with_odd_fields_is_passed_on_as_strings(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    """A re-check: an upstream's 400 whose ``code`` was an object was passed through; the
    ledger could not store it and the client got a 500. OpenAI's ``code``, ``param`` and
    ``type`` are strings or null: a number is written as one, anything else dropped; a
    message that is no string is the body's words."""
    raw = b'{"error": {"message": "m", "code": {"x": 1}, "param": ["a"], "type": 5}}'
    upstream.control.push(Fault(status=400, raw=raw))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG, "max_tokens": 3})
    err = assert_error(r, 400)
    assert err == {"message": "m", "type": "5", "param": None, "code": None}, err
    upstream.control.push(Fault(status=422, raw=b'{"error": {"message": 12345}}'))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG, "max_tokens": 3})
    err = assert_error(r, 422)
    assert err["message"].startswith("upstream answered 422: ") and "12345" in err["message"]
    said = ("字" * 300).encode()  # 3 bytes a character: cut at 200 characters, not bytes
    upstream.control.push(Fault(status=400, raw=said))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG, "max_tokens": 3})
    assert assert_error(r, 400)["message"].endswith("字" * 200)


@pytest.mark.parametrize("status", [401, 403])
def test_an_upstream_refusing_the_gateways_credentials_is_a_502_without_its_words(
    live: Live, upstream: FakeUpstreamServer, status: int
) -> None:
    """A trial: an upstream's 401 was passed through, so the client read its own key
    refused (and a ladder stopped climbing); OpenAI's 401 quotes part of the key, which
    reached the client. It is the gateway's configuration failing: a 502 naming the model
    and where its credentials are configured, the upstream's words in the server log only."""
    upstream.control.push(Fault(status=status))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    err = assert_error(r, 502, code="upstream_error")
    assert "'my-upstream'" in err["message"] and "api_key_env" in err["message"]
    assert "injected" not in err["message"]
    assert upstream.control.requests == 1
    assert live.ledger()[r.headers["x-request-id"]].status == 502


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_404_for_its_configured_model_is_a_502(
    live: Live, upstream: FakeUpstreamServer, stream: bool
) -> None:
    """The client named a model the gateway serves; its upstream does not know the model the
    gateway is configured with (``upstream_model``). That 404 was passed through: the client
    read it as its own request refused ("model not found"), and background work as refused
    for good. It is the gateway's failure: a 502 ``upstream_error``, as the upstream's
    failures are, naming the model and its upstream model, not retried."""
    upstream.control.models = {"gpt-4o"}
    r = live.http.post("/v1/chat/completions", json={"messages": MSG, "stream": stream})
    err = assert_error(r, 502, code="upstream_error")
    assert err["type"] == "server_error"
    assert "'my-upstream'" in err["message"] and "'gpt-4o-mini'" in err["message"]
    assert "does not exist" in err["message"]  # the upstream's own words
    assert upstream.control.requests == 1
    assert live.ledger()[r.headers["x-request-id"]].status == 502


def test_a_round_of_variants_the_upstream_404s_is_retried_not_refused(
    tmp_path: Path, upstream: FakeUpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round of variants whose upstream answers 404 for the configured model (its
    configuration wrong, or the upstream's model gone for a while) ended ``done`` as refused
    for good, no variant made: the 404 was taken for the client's request refused. It is an
    upstream failure now: the runner holds the job for a retry after its backoff, as for a
    5xx, and fails it only once its attempts are spent."""
    from boundgate.assembly import build_gateway
    from boundgate.backends.base import GenerationRequest, Message
    from boundgate.clock import FakeClock
    from boundgate.tenants import Tenant
    from helpers import job_runner

    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-test")
    settings = load_settings(upstream_config(tmp_path, upstream, '[reuse]\nembedder = "hash"'))
    settings.reuse.persist_index = False
    settings.scheduler.policy = "now"
    settings.creativity.min_askers = 2
    settings.creativity.variants = 3

    async def main() -> None:
        clock = FakeClock(start=1_900_000_000.0)
        gw = build_gateway(settings, clock=clock)
        gw.store.open()
        try:
            assert gw.reuse is not None
            await gw.reuse.load()
            for user in ("u1", "u2"):  # two askers of a creative prompt earn a round
                req = GenerationRequest(
                    model="my-upstream",
                    messages=[Message("user", "Write a haiku about autumn.")],
                    temperature=1.0,
                    max_tokens=100,
                    user=user,
                )
                await gw.complete(gw.context(Tenant("acme"), "/v1/chat/completions"), req)
            await gw.drain()
            (queued,) = [j for j in await gw.store.jobs() if j.kind == "variants"]
            upstream.control.models = {"gpt-4o"}  # no longer serves gpt-4o-mini
            assert await job_runner(gw, clock).run_once()
            (job,) = [j for j in await gw.store.jobs() if j.id == queued.id]
            result = json.loads(job.result or "{}")
            assert (job.state, job.attempts) == ("pending", 1), job
            assert "refused" not in result and "404" in result["error"], result
            assert job.hold_until > clock.time()  # held for its retry's backoff
        finally:
            for backend in gw.backends.values():
                await backend.aclose()
            gw.store.close()

    asyncio.run(main())


def test_timeout_is_504(
    tmp_path: Path, upstream: FakeUpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-test")
    cfg = upstream_config(tmp_path, upstream, timeout_s=0.5)
    with Live.in_process(build_app(load_settings(cfg))) as live:
        upstream.control.push(*[Fault(delay_s=1.0)] * 3)
        r = live.http.post("/v1/chat/completions", json={"messages": MSG})
        assert_error(r, 504, code="upstream_timeout")


def test_stream_error_before_first_token_is_http_error(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    upstream.control.push(*[Fault(status=502)] * 3)
    r = live.http.post("/v1/chat/completions", json={"messages": MSG, "stream": True})
    assert_error(r, 502)


@pytest.mark.parametrize("fault", [Fault(truncate_after=2), Fault(error_after=2)])
def test_a_broken_stream_is_an_error_and_never_stored(
    live: Live, upstream: FakeUpstreamServer, fault: Fault
) -> None:
    """Issue #13.2: two content chunks, then the body ends with no finish_reason, usage or
    [DONE] (or an error event comes): the client gets an error event and no [DONE], the
    ledger an error row, the store nothing, and the next identical request is a miss."""
    body = {"messages": MSG, "stream": True, "temperature": 0}
    upstream.control.push(fault)
    with live.http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert "injected" not in error["message"], error  # the upstream's words: the server log
    row = live.ledger()[r.headers["x-request-id"]]
    assert row.outcome == "error"
    again = live.http.post("/v1/chat/completions", json={**body, "stream": False})
    assert again.status_code == 200 and again.headers["x-boundgate-reuse"] == "miss"


def test_a_completion_without_finish_reason_is_502_and_never_stored(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    body = {"messages": MSG, "temperature": 0}
    upstream.control.push(Fault(truncate_after=2))
    assert_error(live.http.post("/v1/chat/completions", json=body), 502)
    again = live.http.post("/v1/chat/completions", json=body)
    assert again.status_code == 200 and again.headers["x-boundgate-reuse"] == "miss"


def test_missing_upstream_key_fails_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from boundgate.settings import ConfigError

    monkeypatch.delenv("NOPE_KEY", raising=False)
    cfg = write_config(
        tmp_path / "b.toml",
        f"""
[server]
data_dir = "{tmp_path / "data"}"

[models.up]
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "NOPE_KEY"
""",
    )
    with pytest.raises(ConfigError, match=r"models\.up\.api_key_env"):
        build_app(load_settings(cfg))


def test_retry_after_sets_the_wait_and_is_capped() -> None:
    """stamina's hook: a 429/5xx waits its Retry-After (at most 10 s), else backs off; a
    4xx is not retried; connection failures and timeouts are."""
    import httpx

    from boundgate.backends.openai_upstream import OpenAIBackend, _retry_or_wait
    from boundgate.errors import UpstreamClientError

    backend = OpenAIBackend(
        "up", base_url="http://127.0.0.1:9/v1", timeout_s=1.0, max_retries=0, backoff_s=0.0
    )

    def error(status: int, retry_after: str | None = None) -> Exception:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        resp = httpx.Response(status, headers=headers)
        return backend._error_for(resp, b'{"error": {"message": "x"}}')

    assert _retry_or_wait(error(429, "0.25")) == 0.25
    assert _retry_or_wait(error(503, "3600")) == 10.0
    assert _retry_or_wait(error(503)) is True
    # an HTTP date (RFC 9110 §10.2.3): past, now; ahead, that long (capped as seconds are)
    assert _retry_or_wait(error(503, "Wed, 21 Oct 2026 07:28:00 GMT")) == 0.0
    assert _retry_or_wait(error(503, "Fri, 01 Jan 2100 00:00:00 GMT")) == 10.0
    assert _retry_or_wait(error(503, "soon")) is True
    assert isinstance(error(400), UpstreamClientError)
    assert _retry_or_wait(error(400)) is False
    assert _retry_or_wait(httpx.ConnectError("refused")) is True
    assert _retry_or_wait(httpx.ReadTimeout("slow")) is True


def test_a_persistent_429_is_a_429_with_the_upstreams_retry_after(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    """An upstream still rate limiting once the retries are spent: the client gets a 429
    (its code says whose limit) and the upstream's Retry-After, not a 502 (a trial)."""
    upstream.control.push(
        *[Fault(status=429, retry_after=0.01)] * 2, Fault(status=429, retry_after=7)
    )
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    err = assert_error(r, 429, code="upstream_rate_limited")
    assert err["type"] == "rate_limit_error" and "my-upstream" in err["message"]
    # OpenAI's 429 names the gateway's organisation and limits: the server log has them
    assert "injected" not in err["message"], err
    assert r.headers["retry-after"] == "7"
    assert upstream.control.requests == 3


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 10**30, "completion_tokens": 5, "total_tokens": 10**30},
        {"prompt_tokens": 1e300, "completion_tokens": 5, "total_tokens": 1e300},
        {"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000, "total_tokens": -2_000_000},
        {"prompt_tokens": 3.5, "completion_tokens": True, "total_tokens": 4},
    ],
    ids=["huge", "float", "negative", "not-whole"],
)
def test_token_counts_that_are_none_are_estimated(
    live: Live, upstream: FakeUpstreamServer, usage: dict[str, object], stream: bool
) -> None:
    """An upstream's usage that is no token count (10**30 stopped the ledger's write with a
    500 and cut streams; negative counts refilled a daily budget): the answer is served with
    the estimate (about 4 characters a token), and ledgered with it."""
    upstream.control.push(Fault(usage=usage))
    body = {"messages": MSG, "stream": stream, "stream_options": {"include_usage": True}}
    if stream:
        body["stream_options"] = {"include_usage": True}
        with live.http.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
        assert events[-1] == "[DONE]"
        got = json.loads(events[-2])["usage"]
    else:
        del body["stream_options"]
        r = live.http.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        got = r.json()["usage"]
    assert 0 < got["prompt_tokens"] < 100 and 0 < got["completion_tokens"] < 100
    row = live.ledger()[r.headers["x-request-id"]]
    assert (row.prompt_tokens, row.completion_tokens) == (
        got["prompt_tokens"],
        got["completion_tokens"],
    )


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("content", [12345, {"text": "x"}, [{"type": "text", "text": 5}]])
def test_an_answer_whose_text_is_not_text_is_a_502(
    live: Live, upstream: FakeUpstreamServer, content: object, stream: bool
) -> None:
    """A number or an object for the answer's text is the upstream's fault: 502, as other
    malformed answers are, never a 500 (a trial); the ledger has its row."""
    upstream.control.push(Fault(content=content, replace_content=True))
    body = {"messages": MSG, "stream": stream}
    if stream:
        with live.http.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                r.read()
                assert_error(r, 502, code="upstream_error")
                return
            events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
        assert json.loads(events[-1])["error"]["code"] == "upstream_error"
    else:
        r = live.http.post("/v1/chat/completions", json=body)
        assert_error(r, 502, code="upstream_error")
    assert live.ledger()[r.headers["x-request-id"]].status == 502


def test_content_parts_are_joined(live: Live, upstream: FakeUpstreamServer) -> None:
    """A list of content parts (as some OpenAI-compatible servers answer) is its text parts'
    text, other parts left out."""
    parts = [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "Hello "}]
    upstream.control.push(
        Fault(content=[*parts, {"type": "text", "text": "there"}], replace_content=True)
    )
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello there"


def test_an_answer_without_its_text_field_is_a_502(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    """A chat choice without its message, or a text completion without its text (a chat-shaped
    reply to /v1/completions), was served as an empty answer."""
    from boundgate.backends.fake import ABSENT

    upstream.control.push(Fault(content=ABSENT, replace_content=True))
    r = live.http.post("/v1/completions", json={"prompt": "What is boundgate?"})
    assert_error(r, 502, code="upstream_error")
    assert "text" in r.json()["error"]["message"]


def test_a_model_named_with_a_slash_is_retrieved(
    tmp_path: Path, upstream: FakeUpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial: ``[models."org/up"]`` was listed by GET /v1/models, but GET
    /v1/models/org/up was "no route" (upstreams name their models "org/model")."""
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-test")
    cfg = upstream_config(tmp_path, upstream)
    cfg.write_text(cfg.read_text().replace("[models.my-upstream]", '[models."org/up"]'))
    app = build_app(load_settings(cfg))
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        assert "org/up" in [m["id"] for m in live.http.get("/v1/models").json()["data"]]
        r = live.http.get("/v1/models/org/up")
        assert r.status_code == 200 and r.json()["id"] == "org/up", r.text
        assert_error(live.http.get("/v1/models/org/nope"), 404, code="model_not_found")
        live.http.close()


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("raw", "headers", "stream"),
    [
        (DEEP, {"content-type": "application/json"}, False),
        (
            b"not gzip at all",
            {"content-type": "application/json", "content-encoding": "gzip"},
            False,
        ),
        (b"data: " + DEEP + b"\n\n", {"content-type": "text/event-stream"}, True),
        (b"data: {}\n\n", {"content-type": "text/event-stream", "content-encoding": "gzip"}, True),
    ],
    ids=["deep-json", "bad-gzip", "deep-json-event", "bad-gzip-stream"],
)
def test_a_body_no_reader_takes_is_a_502(
    live: Live, upstream: FakeUpstreamServer, raw: bytes, headers: dict[str, str], stream: bool
) -> None:
    """A re-check: a JSON body nested 100,000 deep (RecursionError) or one that is not the
    gzip its Content-Encoding says was a 500 ``internal_error``: they are the upstream's
    malformed answers, 502 ``upstream_error`` (in a begun stream its last event)."""
    upstream.control.push(Fault(raw=raw, raw_headers=headers))
    body = {"messages": MSG, "stream": stream}
    with live.http.stream("POST", "/v1/chat/completions", json=body) as r:
        r.read()
    if r.status_code == 200:
        events = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        assert json.loads(events[-1])["error"]["code"] == "upstream_error", events[-1]
    else:
        assert_error(r, 502, code="upstream_error")


@pytest.mark.parametrize(
    ("retry_after", "told"), [(None, "1"), (1e20, "86400"), (float("nan"), "1")]
)
def test_an_upstream_429s_retry_after_is_one_a_client_can_use(
    live: Live, upstream: FakeUpstreamServer, retry_after: float | None, told: str
) -> None:
    """A re-check: an upstream 429 without Retry-After gave a 429 without one (api.md: every
    429 has one), and 99999999999999999999 was passed on as 100000000000000000000 s."""
    faults = [Fault(status=429)] * 2  # retried at once; the last one's header is passed on
    upstream.control.push(*faults, Fault(status=429, retry_after=retry_after))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    assert_error(r, 429, code="upstream_rate_limited")
    assert r.headers["retry-after"] == told


def _answer(live: Live, body: dict[str, object]) -> tuple[httpx.Response, str, str | None]:
    """Ask ``body`` (streamed or not): the response, the answer's text, its finish_reason."""
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    chat = "messages" in body
    if not body.get("stream"):
        r = live.http.post(path, json=body)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        return r, choice["message"]["content"] if chat else choice["text"], choice["finish_reason"]
    with live.http.stream("POST", path, json=body) as r:
        assert r.status_code == 200
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    text, finish = "", None
    for event in events[:-1]:
        for choice in json.loads(event).get("choices") or []:
            text += (choice["delta"].get("content") if chat else choice["text"]) or ""
            finish = choice["finish_reason"] or finish
    return r, text, finish


def _raw_answer(said: str) -> str:
    """An upstream's chat completion whose text is "a <said> b", as JSON text (``said``
    escaped as JSON escapes it: a lone surrogate as "\\ud800")."""
    content = json.dumps(f"a {said} b")
    return (
        '{"choices":[{"index":0,"message":{"role":"assistant","content":' + content + "},"
        '"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":3}}'
    )


def test_nul_in_an_answer_is_stored_on_postgresql(
    tmp_path: Path,
    upstream: FakeUpstreamServer,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trial: an upstream answer holding NUL was a 500 on a PostgreSQL store (its text
    cannot hold it) once the answer was generated; it is stored with U+FFFD in its place."""
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-test")
    cfg = upstream_config(tmp_path, upstream)
    cfg.write_text(cfg.read_text() + f'\n[store]\nurl = "{postgres_schema}"\n')
    app = build_app(load_settings(cfg))
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        raw = _raw_answer("\u0000").encode()
        upstream.control.push(Fault(raw=raw, raw_headers={"content-type": "application/json"}))
        ask = {"messages": MSG, "temperature": 0}
        assert _answer(live, ask)[1] == "a \ufffd b"
        again, text, _ = _answer(live, ask)
        assert (again.headers["x-boundgate-reuse"], text) == ("hit-exact", "a \ufffd b")
        live.http.close()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("said", "told"), [("\ud800", "\ufffd"), ("\u0000", "\ufffd")])
def test_an_answer_holding_what_no_text_may_hold_is_served_mended(
    live: Live, upstream: FakeUpstreamServer, said: str, told: str, stream: bool
) -> None:
    """A trial: an upstream's answer holding a lone surrogate (JSON's "\\ud800" escape) was a
    500 (no UTF-8 encoder takes it), and one holding NUL a 500 on a PostgreSQL store (its text
    cannot hold it; test_nul_in_an_answer_is_stored_on_postgresql). Each is U+FFFD, served and
    stored so; the repeat is an exact hit with the same text."""
    body = _raw_answer(said)
    raw = body.encode()
    if stream:
        event = body.replace('"message"', '"delta"')
        raw = b"data: " + event.encode() + b"\n\ndata: [DONE]\n\n"
    ctype = "text/event-stream" if stream else "application/json"
    upstream.control.push(Fault(raw=raw, raw_headers={"content-type": ctype}))
    ask = {"messages": MSG, "temperature": 0, "stream": stream}
    _, text, _ = _answer(live, ask)
    assert text == f"a {told} b"
    again, text, _ = _answer(live, {**ask, "stream": False})
    assert again.headers["x-boundgate-reuse"] == "hit-exact"
    assert text == f"a {told} b"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("said", "told"),
    [
        ("end_turn", "stop"),
        ("eos_token", "stop"),
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", None),
    ],
)
def test_a_finish_reason_spelt_another_way_is_openais(
    live: Live, upstream: FakeUpstreamServer, said: str, told: str | None, stream: bool
) -> None:
    """An upstream that says why it ended as Anthropic, TGI or Gemini spell it: the client
    gets OpenAI's word (clients typed on OpenAI's values failed on "end_turn"), and a complete
    answer is stored (only stop and length are: "end_turn" was never reused; a length answer
    serves only a request for as many tokens as it has, not this one). A filtered answer is
    content_filter and never stored."""
    upstream.control.push(Fault(finish_reason=said))
    ask = {"messages": MSG, "temperature": 0, "stream": stream, "max_tokens": 64}
    _, _, finish = _answer(live, ask)
    assert finish == (told or "content_filter")
    again, _, _ = _answer(live, {**ask, "stream": False})
    stored = told == "stop"
    assert (again.headers["x-boundgate-reuse"] == "hit-exact") is stored


def test_a_finish_reason_no_server_uses_is_relayed_and_not_stored(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    upstream.control.push(Fault(finish_reason="banana"))
    ask = {"messages": MSG, "temperature": 0}
    assert _answer(live, ask)[2] == "banana"
    assert _answer(live, ask)[0].headers["x-boundgate-reuse"] != "hit-exact"


def test_a_text_completion_whose_text_is_null_is_a_502(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    """A trial: ``"text": null`` on /v1/completions was served (and stored) as "" (a chat
    message's null content is another matter: it stands beside a refusal or tool calls)."""
    upstream.control.push(Fault(content=None, replace_content=True))
    r = live.http.post("/v1/completions", json={"prompt": "What is boundgate?"})
    assert_error(r, 502, code="upstream_error")
    assert "null" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    [b'{"id": "x"}', b'{"choices": []}', b'{"choices": [{"message": 5}]}', b"[1]"],
    ids=["no-choices", "empty", "message-not-object", "array"],
)
def test_a_malformed_completions_502_says_what_is_missing_in_words(
    live: Live, upstream: FakeUpstreamServer, raw: bytes
) -> None:
    """A trial: the 502's message was Python's repr of the parsing error
    (``KeyError('message')``); it says what the answer lacks."""
    upstream.control.push(Fault(raw=raw, raw_headers={"content-type": "application/json"}))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    assert_error(r, 502, code="upstream_error")
    message = r.json()["error"]["message"]
    assert "Error(" not in message and ("choices" in message or "message" in message), message


def _event_stream(events: list[dict[str, Any]]) -> bytes:
    """An upstream's event stream of ``events``, ended by ``[DONE]``."""
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + (
        b"data: [DONE]\n\n"
    )


def _streamed_deltas(live: Live, ask: dict[str, Any]) -> list[dict[str, Any]]:
    """The deltas of choice 0 the gateway streams for ``ask``."""
    with live.http.stream("POST", "/v1/chat/completions", json=ask) as r:
        assert r.status_code == 200
        chunks = [json.loads(x[5:]) for x in r.iter_lines() if x.startswith("data: {")]
    return [c["choices"][0]["delta"] for c in chunks if c.get("choices")]


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstreams_refusal_is_relayed_and_never_stored(
    live: Live, upstream: FakeUpstreamServer, stream: bool
) -> None:
    """A trial: an upstream's refusal (``message.refusal`` beside a null ``content``, as
    OpenAI's models refuse a structured output) reached the client as an empty answer with
    ``refusal: null``. It is relayed in OpenAI's shape (``delta.refusal`` in a stream) and never
    stored: the repeat asks the upstream again."""
    said = "I'm sorry, I cannot help with that."
    if stream:
        events = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None,
                                                "refusal": said[:9]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"refusal": said[9:]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]  # fmt: skip
        raw, headers = _event_stream(events), {"content-type": "text/event-stream"}
    else:
        message = {"role": "assistant", "content": None, "refusal": said}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        raw = json.dumps({"choices": [choice]}).encode()
        headers = {"content-type": "application/json"}
    upstream.control.push(Fault(raw=raw, raw_headers=headers))
    ask = {"messages": MSG, "temperature": 0, "stream": stream}
    if stream:
        deltas = _streamed_deltas(live, ask)
        assert "".join(d.get("refusal") or "" for d in deltas) == said
        assert not "".join(d.get("content") or "" for d in deltas)
    else:
        r = live.http.post("/v1/chat/completions", json=ask)
        assert r.status_code == 200, r.text
        message = r.json()["choices"][0]["message"]
        assert (message["content"], message["refusal"]) == (None, said)
    before = upstream.control.requests
    again = live.http.post("/v1/chat/completions", json={**ask, "stream": False})
    assert again.headers["x-boundgate-reuse"] == "miss"
    assert upstream.control.requests == before + 1


@pytest.mark.parametrize(
    ("error", "told"),
    [
        ({"message": "bad thing \ud800", "type": "invalid_request_error"}, "message"),
        ({"message": "bad", "param": "p\u0000", "code": "x\u0000"}, "code"),
    ],
    ids=["surrogate-in-message", "nul-in-code"],
)
def test_an_upstreams_4xx_holding_what_no_text_may_hold_is_passed_through_mended(
    live: Live, upstream: FakeUpstreamServer, error: dict[str, str], told: str
) -> None:
    """A re-check: an upstream 400 whose message held a lone surrogate was a 500 (no UTF-8
    encoder takes it), one whose code held NUL a 500 on PostgreSQL with no ledger row. It is
    passed through, each such character U+FFFD, and ledgered."""
    raw = json.dumps({"error": error}).encode()
    upstream.control.push(Fault(status=400, raw=raw))
    r = live.http.post("/v1/chat/completions", json={"messages": MSG})
    assert r.status_code == 400, r.text
    assert "\ufffd" in r.json()["error"][told]
    assert live.ledger()[r.headers["x-request-id"]].status == 400


def test_a_finish_reason_holding_what_no_text_may_hold_is_mended(
    live: Live, upstream: FakeUpstreamServer
) -> None:
    upstream.control.push(Fault(finish_reason="stop\ud800"))  # (streamed: JSON escapes it)
    assert _answer(live, {"messages": MSG, "stream": True})[2] == "stop\ufffd"


@pytest.mark.parametrize("stream", [False, True])
def test_only_choice_0_of_an_upstreams_answer_is_relayed_and_stored(
    live: Live, upstream: FakeUpstreamServer, stream: bool
) -> None:
    """A break-it trial: an upstream streaming deltas for choices 0 and 1 (the gateway asks
    for one) had both merged into choice 0, relayed and stored, and a later request was
    served the mix. Only choice 0 is read, streamed or not, and in either order."""
    if stream:
        events = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Alpha"}}]},
            {"choices": [{"index": 1, "delta": {"role": "assistant", "content": "OTHER"}}]},
            {"choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [{"index": 0, "delta": {"content": " beta"}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        raw, headers = _event_stream(events), {"content-type": "text/event-stream"}
    else:
        choices = [
            {"index": 1, "message": {"role": "assistant", "content": "OTHER"}},
            {"index": 0, "message": {"role": "assistant", "content": "Alpha beta"}},
        ]
        raw = json.dumps({"choices": [{**c, "finish_reason": "stop"} for c in choices]}).encode()
        headers = {"content-type": "application/json"}
    upstream.control.push(Fault(raw=raw, raw_headers=headers))
    ask = {"messages": MSG, "temperature": 0, "stream": stream}
    if stream:
        deltas = _streamed_deltas(live, ask)
        assert "".join(d.get("content") or "" for d in deltas) == "Alpha beta"
    else:
        r = live.http.post("/v1/chat/completions", json=ask)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "Alpha beta"
    again = live.http.post("/v1/chat/completions", json={**ask, "stream": False})
    assert again.headers["x-boundgate-reuse"] == "hit-exact"
    assert again.json()["choices"][0]["message"]["content"] == "Alpha beta"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("numbered", [False, True])
def test_two_choices_read_as_choice_0_are_not_merged(
    live: Live, upstream: FakeUpstreamServer, stream: bool, numbered: bool
) -> None:
    """A re-check: a stream whose events each held two unnumbered choices (or two numbered
    0) had both merged into the answer, relayed and stored ("ZEONROE"), where the same
    answer not streamed gave the first ("ZERO"). The first choice read as choice 0 counts,
    in each event as in a whole answer."""
    first, second = ({"index": 0}, {"index": 0}) if numbered else ({}, {})
    if stream:
        parts = [("ZE", "ON", None), ("RO", "E", None), ("", "", "stop")]
        events = [
            {
                "choices": [
                    {**first, "delta": {"content": a} if a else {}, "finish_reason": end},
                    {**second, "delta": {"content": b} if b else {}, "finish_reason": end},
                ]
            }
            for a, b, end in parts
        ]
        raw, headers = _event_stream(events), {"content-type": "text/event-stream"}
    else:
        choices = [
            {**first, "message": {"role": "assistant", "content": "ZERO"}, "finish_reason": "stop"},
            {**second, "message": {"role": "assistant", "content": "ONE"}, "finish_reason": "stop"},
        ]  # fmt: skip
        raw, headers = (
            json.dumps({"choices": choices}).encode(),
            {"content-type": "application/json"},
        )
    upstream.control.push(Fault(raw=raw, raw_headers=headers))
    ask = {"messages": MSG, "temperature": 0, "stream": stream}
    if stream:
        text = "".join(d.get("content") or "" for d in _streamed_deltas(live, ask))
    else:
        text = live.http.post("/v1/chat/completions", json=ask).json()["choices"][0]["message"][
            "content"
        ]
    assert text == "ZERO"
    again = live.http.post("/v1/chat/completions", json={**ask, "stream": False})
    assert again.json()["choices"][0]["message"]["content"] == "ZERO"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("index", [1, "0", False])
def test_an_answer_without_choice_0_is_a_502_and_never_stored(
    live: Live, upstream: FakeUpstreamServer, stream: bool, index: object
) -> None:
    """A re-check: an upstream's only choice numbered 1 was served and stored when not
    streamed (a 502 when streamed), and an index ``false`` or ``"0"`` read as 0. Only the
    integer 0 (or no index) is choice 0; without it the answer is malformed either way."""
    if stream:
        events = [
            {"choices": [{"index": index, "delta": {"role": "assistant", "content": "OTHER"}}]},
            {"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]},
        ]
        raw, headers = _event_stream(events), {"content-type": "text/event-stream"}
    else:
        message = {"role": "assistant", "content": "OTHER"}
        choice = {"index": index, "message": message, "finish_reason": "stop"}
        raw = json.dumps({"choices": [choice]}).encode()
        headers = {"content-type": "application/json"}
    upstream.control.push(Fault(raw=raw, raw_headers=headers))
    ask = {"messages": MSG, "temperature": 0, "stream": stream}
    if stream:
        with live.http.stream("POST", "/v1/chat/completions", json=ask) as r:
            text = "".join(r.iter_lines())
        assert "OTHER" not in text and "upstream" in text
    else:
        r = live.http.post("/v1/chat/completions", json=ask)
        assert r.status_code == 502, r.text
    again = live.http.post("/v1/chat/completions", json={**ask, "stream": False})
    assert again.headers["x-boundgate-reuse"] == "miss"
