"""Reasoning models: reasoning_effort → a cap on reasoning tokens, the daily reasoning budget,
and reasoning tokens in usage, ledger and reports (issue #15)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boundgate.assembly import build_app, build_gateway
from boundgate.backends.base import CancelToken, GenerationRequest, Usage
from boundgate.backends.fake import FakeBackend, FakeUpstreamServer
from boundgate.backends.llama_cpp import LlamaCppBackend
from boundgate.backends.reasoning import CLOSE_THINKING, ThinkBudget
from boundgate.settings import REASONING_EFFORTS, ReasoningSettings
from boundgate.store import SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import Live, arun, assert_error, fake_settings

MSG = [{"role": "user", "content": "why is the sky blue?"}]
CAPS = """
[reasoning.effort_tokens]
minimal = 2
low = 5
medium = 10
"""


@pytest.fixture
def thinking(tmp_path: Path) -> Iterator[Live]:
    """A gateway with a simulated local reasoning model (``think``: 50 thinking tokens before
    each answer) and a plain one (``fake``), caps low = 5, medium = 10 (the default effort)."""
    settings = fake_settings(tmp_path, CAPS)
    backends = {
        "fake": FakeBackend("fake"),
        "think": FakeBackend("think", reasoning=True, thinking_tokens=50),
    }
    app = build_app(settings, backends=backends)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        yield live
        live.http.close()


def _chat(live: Live, **body: object) -> httpx.Response:
    return live.http.post("/v1/chat/completions", json={"messages": MSG, **body})


def _reasoning(usage: dict[str, object]) -> int:
    details = usage["completion_tokens_details"]
    assert isinstance(details, dict)
    return int(details["reasoning_tokens"])


def test_default_caps_cover_every_openai_effort() -> None:
    r = ReasoningSettings()
    assert set(r.effort_tokens) == set(REASONING_EFFORTS)
    caps = [r.cap(e) for e in REASONING_EFFORTS]
    assert caps == sorted(caps) and caps[0] == 0  # more effort, never a smaller cap
    assert (r.cap("low"), r.cap("medium"), r.cap("high")) == (1024, 8192, 24576)
    assert r.cap(None) == r.cap(r.default_effort)
    partial = ReasoningSettings(effort_tokens={"low": 7})  # the others keep their defaults
    assert partial.cap("low") == 7 and partial.cap("high") == 24576


@pytest.mark.parametrize("effort", REASONING_EFFORTS)
def test_each_effort_maps_to_its_cap_on_each_kind_of_model(tmp_path: Path, effort: str) -> None:
    settings = fake_settings(tmp_path, CAPS + "[reuse]\nenabled = false\n")
    local = FakeBackend("think", reasoning=True)
    upstream = FakeBackend("remote", reasoning=True)
    upstream.remote = True
    plain = FakeBackend("fake")
    gw = build_gateway(settings, backends={"fake": plain, "think": local, "remote": upstream})
    cap = settings.reasoning.effort_tokens[effort]  # type: ignore[index]

    def request(max_tokens: int = 100) -> GenerationRequest:
        return GenerationRequest(
            model="x", prompt="q", max_tokens=max_tokens, passthrough={"reasoning_effort": effort}
        )

    req = request()
    assert gw.reasoning_cap(local, req) == min(cap, 100)
    assert req.max_reasoning_tokens == cap and req.passthrough["reasoning_effort"] == effort
    req = request(3)
    assert gw.reasoning_cap(local, req) == min(cap, 3)  # never more than max_tokens
    req = request()  # upstream: the effort goes along; its worst case is max_tokens, or none
    assert gw.reasoning_cap(upstream, req) == (0 if effort == "none" else 100)
    assert req.max_reasoning_tokens is None and req.passthrough["reasoning_effort"] == effort
    req = request()  # not a reasoning model: ignored, and not sent on
    assert gw.reasoning_cap(plain, req) == 0
    assert req.max_reasoning_tokens is None and "reasoning_effort" not in req.passthrough


def test_no_effort_means_the_default_effort(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, CAPS + "[reuse]\nenabled = false\n")
    local = FakeBackend("think", reasoning=True)
    gw = build_gateway(settings, backends={"think": local})
    req = GenerationRequest(model="think", prompt="q", max_tokens=100)
    assert gw.reasoning_cap(local, req) == 10
    assert req.passthrough["reasoning_effort"] == "medium"


def test_think_budget_counts_after_the_opening_tag_and_cuts_at_the_cap() -> None:
    b = ThinkBudget(3)
    cuts = [b.feed(p) for p in ["<", "think", ">", " a", " b", " c"]]
    assert cuts == [False, False, False, False, False, True] and b.reasoning_tokens == 3
    b.cut()
    assert not b.thinking and not b.feed(" answer") and b.reasoning_tokens == 3
    free = ThinkBudget(None)  # no cap: counted up to the token closing the thinking
    for p in ["<think>", " x", "</", "think>", " answer"]:
        assert not free.feed(p)
    assert free.reasoning_tokens == 3
    none = ThinkBudget(0)  # effort none: cut as soon as thinking starts
    assert none.feed("<think>") and none.reasoning_tokens == 0
    plain = ThinkBudget(0)  # text without thinking is never cut
    assert not any(plain.feed(p) for p in ["no", " thinking", " here"])
    opened = ThinkBudget(2, thinking=True)  # the prompt opened it: counted from the start
    assert opened.thinking and not opened.feed(" a") and opened.feed(" b")
    assert ThinkBudget(0, thinking=True).must_cut()


def test_local_reasoning_is_cut_at_the_cap_and_reported(thinking: Live) -> None:
    r = _chat(thinking, model="think", reasoning_effort="low", max_tokens=200)
    assert r.status_code == 200, r.text
    body = r.json()
    text = body["choices"][0]["message"]["content"]
    assert _reasoning(body["usage"]) == 5
    assert text.startswith("<think>") and CLOSE_THINKING in text and "step5" not in text
    assert text.split(CLOSE_THINKING)[1].startswith("Answer ")  # then it answers
    row = thinking.ledger()[r.headers["x-request-id"]]
    assert row.reasoning_tokens == 5 and row.completion_tokens == body["usage"]["completion_tokens"]

    r = _chat(thinking, model="think", reasoning_effort="none")
    assert _reasoning(r.json()["usage"]) == 0
    r = _chat(thinking, model="think")  # default effort: medium, capped at 10 here
    assert _reasoning(r.json()["usage"]) == 10


def test_streamed_usage_carries_reasoning_tokens(thinking: Live) -> None:
    body = {
        "messages": MSG,
        "model": "think",
        "reasoning_effort": "minimal",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    usage = None
    with thinking.http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                usage = json.loads(line[6:]).get("usage") or usage
        rid = resp.headers["x-request-id"]
    assert usage is not None and _reasoning(usage) == 2
    assert thinking.ledger()[rid].reasoning_tokens == 2


def test_completions_take_reasoning_effort_too(thinking: Live) -> None:
    r = thinking.http.post(
        "/v1/completions", json={"model": "think", "prompt": "why?", "reasoning_effort": "low"}
    )
    assert r.status_code == 200 and _reasoning(r.json()["usage"]) == 5


def test_other_models_accept_reasoning_effort_and_ignore_it(thinking: Live) -> None:
    r = _chat(thinking, model="fake", reasoning_effort="high")
    assert r.status_code == 200
    assert _reasoning(r.json()["usage"]) == 0
    assert "<think>" not in r.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize("effort", ["extreme", "", "HIGH", 3])
def test_an_unknown_effort_is_a_400_naming_the_parameter(
    thinking: Live, path: str, effort: object
) -> None:
    body: dict[str, object] = {"model": "think", "reasoning_effort": effort}
    body.update({"messages": MSG} if "chat" in path else {"prompt": "why?"})
    assert_error(thinking.http.post(path, json=body), 400, param="reasoning_effort")


def test_upstream_gets_the_effort_and_its_reasoning_tokens_are_read(tmp_path: Path) -> None:
    with FakeUpstreamServer() as up:
        up.control.reasoning_tokens = 7
        extra = f"""
[models.o-remote]
backend = "openai"
base_url = "{up.url}"
reasoning = true

[models.gpt-remote]
backend = "openai"
base_url = "{up.url}"
"""
        app = build_app(fake_settings(tmp_path, extra))
        with ThreadedServer(app) as srv:
            live = Live(srv, app)
            r = _chat(live, model="o-remote", reasoning_effort="high")
            assert r.status_code == 200, r.text
            assert up.control.last_body is not None
            assert up.control.last_body["reasoning_effort"] == "high"
            # OpenAI's reasoning models refuse max_tokens: the limit goes as
            # max_completion_tokens (a trial saw max_tokens sent to an o3-mini upstream)
            assert "max_tokens" not in up.control.last_body
            assert isinstance(up.control.last_body["max_completion_tokens"], int)
            assert _reasoning(r.json()["usage"]) == 7
            assert live.ledger()[r.headers["x-request-id"]].reasoning_tokens == 7

            body = {
                "messages": MSG,
                "model": "o-remote",
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            usage = None
            with live.http.stream("POST", "/v1/chat/completions", json=body) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data: {"):
                        usage = json.loads(line[6:]).get("usage") or usage
            assert usage is not None and _reasoning(usage) == 7
            assert up.control.last_body["reasoning_effort"] == "medium"  # the default effort

            r = _chat(live, model="gpt-remote", reasoning_effort="high")
            assert r.status_code == 200
            assert "reasoning_effort" not in up.control.last_body  # not a reasoning model
            assert "max_completion_tokens" not in up.control.last_body
            assert isinstance(up.control.last_body["max_tokens"], int)
            live.http.close()


def test_daily_reasoning_budget_is_exact_under_concurrency(tmp_path: Path) -> None:
    """16 concurrent requests, each reasoning exactly its cap of 10 tokens, against a budget of
    55: exactly 5 fit, however they interleave (the in-flight ones are reserved), and the
    rest get 429 daily_reasoning_budget_exceeded."""
    settings = fake_settings(tmp_path, "[limits]\ndaily_reasoning_tokens = 55\n" + CAPS)
    think = FakeBackend("think", reasoning=True, thinking_tokens=50, token_delay_s=0.002)
    app = build_app(settings, backends={"think": think, "fake": FakeBackend("fake")})
    with ThreadedServer(app) as srv:
        live = Live(srv, app)

        async def fire() -> list[httpx.Response]:
            body = {"messages": MSG, "model": "think", "max_tokens": 100}
            async with httpx.AsyncClient(base_url=live.base, timeout=60) as c:
                return await asyncio.gather(
                    *[c.post("/v1/chat/completions", json=body) for _ in range(16)]
                )

        responses = asyncio.run(fire())
        ok = [r for r in responses if r.status_code == 200]
        limited = [r for r in responses if r.status_code == 429]
        assert len(ok) == 5 and len(limited) == 11, [r.status_code for r in responses]
        for r in limited:
            assert_error(r, 429, code="daily_reasoning_budget_exceeded")
            assert int(r.headers["retry-after"]) >= 1
        assert sum(_reasoning(r.json()["usage"]) for r in ok) == 50
        rows = [r for r in live.ledger().values() if r.status == 200]
        assert sum(r.reasoning_tokens for r in rows) == 50
        # the budget is for reasoning: other models still answer
        assert _chat(live, model="fake").status_code == 200
        # a cheaper effort still fits in what is left (5)
        assert _chat(live, model="think", reasoning_effort="low").status_code == 200
        assert_error(
            _chat(live, model="think", reasoning_effort="minimal"),
            429,
            code="daily_reasoning_budget_exceeded",
        )
        live.http.close()


def test_spent_reasoning_is_read_back_from_the_ledger_after_a_restart(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, "[limits]\ndaily_reasoning_tokens = 12\n" + CAPS)

    def serve() -> ThreadedServer:
        think = FakeBackend("think", reasoning=True, thinking_tokens=50)
        return ThreadedServer(build_app(settings, backends={"think": think}))

    with serve() as srv:
        assert httpx.post(f"{srv.base_url}/v1/chat/completions", json={"messages": MSG}).is_success
    with serve() as srv:  # 10 of 12 spent: another medium (10) does not fit, a low (5) neither
        r = httpx.post(f"{srv.base_url}/v1/chat/completions", json={"messages": MSG})
        assert_error(r, 429, code="daily_reasoning_budget_exceeded")
        body = {"messages": MSG, "reasoning_effort": "minimal"}  # 2 does
        assert httpx.post(f"{srv.base_url}/v1/chat/completions", json=body).is_success


def test_report_and_admin_ledger_show_reasoning_tokens(thinking: Live) -> None:
    rid = _chat(thinking, model="think", reasoning_effort="low").headers["x-request-id"]
    _chat(thinking, model="fake")
    rows = thinking.http.get("/v1/boundgate/ledger").json()["data"]
    assert {r["id"]: r["reasoning_tokens"] for r in rows}[rid] == 5
    report = thinking.http.get("/v1/boundgate/report").json()["data"]
    by_model = {r["model"]: r["reasoning_tokens"] for r in report}
    assert by_model["think"] == 5 and by_model["fake"] == 0
    assert arun(thinking.gateway.store.reasoning_tokens_used("local", 0.0)) == 5


def test_real_local_model_thinking_is_cut_at_the_cap_then_it_answers() -> None:
    """SmolLM2 through llama.cpp, marked as a reasoning model, with a prompt that opens the
    thinking (as DeepSeek-R1's template does): the cap cuts it, the gateway closes it, the
    model goes on."""
    backend = LlamaCppBackend("smollm2-135m", n_ctx=512, queue_size=1)
    backend.reasoning = True

    def request(cap: int) -> GenerationRequest:
        return GenerationRequest(
            model="smollm2-135m",
            prompt="Question: what is two plus two? Think first.\n<think>\n",
            max_tokens=24,
            temperature=0.0,
            seed=1,
            max_reasoning_tokens=cap,
        )

    async def go() -> list[tuple[list[str], Usage]]:
        await backend.start()
        try:
            out = []
            for cap in (3, 0):
                pieces: list[str] = []
                usage = Usage(0, 0)
                async for chunk in backend.generate(request(cap), CancelToken()):
                    if chunk.text:  # (the first chunk carries only the prompt's usage)
                        pieces.append(chunk.text)
                    usage = chunk.usage or usage
                out.append((pieces, usage))
            return out
        finally:
            await backend.aclose()

    (capped, usage), (unthought, usage0) = asyncio.run(go())
    assert usage.reasoning_tokens == 3
    assert CLOSE_THINKING in capped and capped.index(CLOSE_THINKING) == 3  # 3 thinking tokens
    assert usage.completion_tokens >= 3 and usage.completion_tokens <= 24
    assert usage0.reasoning_tokens == 0 and unthought[0] == CLOSE_THINKING


def test_a_key_can_carry_its_own_daily_reasoning_budget(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, CAPS)  # no default budget
    settings.server.data_dir.mkdir(parents=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    capped = arun(store.create_key("acme", daily_reasoning_tokens=10)).secret
    free = arun(store.create_key("globex")).secret
    store.close()
    think = FakeBackend("think", reasoning=True, thinking_tokens=50)
    app = build_app(settings, backends={"think": think})
    with ThreadedServer(app) as srv:
        live = Live(srv, app)

        def ask(secret: str) -> httpx.Response:
            h = {"Authorization": f"Bearer {secret}"}
            return live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=h)

        assert ask(capped).status_code == 200  # medium: 10 of 10
        assert_error(ask(capped), 429, code="daily_reasoning_budget_exceeded")
        for _ in range(3):
            assert ask(free).status_code == 200
        live.http.close()


def test_effort_none_on_an_upstream_reasoning_model_reserves_no_reasoning(tmp_path: Path) -> None:
    """An operator's trial: an upstream reasoning model's worst case is ``max_tokens`` of
    reasoning, also for ``reasoning_effort: "none"``, so once a key's math had nearly spent
    its reasoning budget its requests that may not reason were refused for the rest of the
    day. "none" reserves nothing; what the upstream reports is charged as before."""
    with FakeUpstreamServer() as up:
        up.control.reasoning_tokens = 7
        extra = f'[models.o-remote]\nbackend = "openai"\nbase_url = "{up.url}"\nreasoning = true\n'
        settings = fake_settings(tmp_path, extra)
        settings.server.data_dir.mkdir(parents=True)
        store = SQLiteStore(settings.db_path)
        store.open()
        capped = arun(store.create_key("acme", daily_reasoning_tokens=10)).secret
        store.close()
        app = build_app(settings)
        with ThreadedServer(app) as srv:
            live = Live(srv, app)
            h = {"Authorization": f"Bearer {capped}"}

            def ask(**body: object) -> httpx.Response:
                body = {"messages": MSG, "model": "o-remote", "max_tokens": 8, **body}
                return live.http.post("/v1/chat/completions", json=body, headers=h)

            assert _reasoning(ask(reasoning_effort="low").json()["usage"]) == 7  # 7 of 10
            assert_error(ask(reasoning_effort="low"), 429, code="daily_reasoning_budget_exceeded")
            r = ask(reasoning_effort="none")
            assert r.status_code == 200, r.text
            assert up.control.last_body is not None
            assert up.control.last_body["reasoning_effort"] == "none"
            assert live.ledger()[r.headers["x-request-id"]].reasoning_tokens == 0
            live.http.close()


def test_a_reasoning_cap_larger_than_the_whole_reasoning_budget_is_a_400(tmp_path: Path) -> None:
    """A request that may reason for more than the key's whole daily reasoning budget can
    never be admitted: a 400 ``invalid_value`` naming what sets its worst case (here its
    ``reasoning_effort``), not a 429 with a Retry-After of hours. A lower effort fits."""
    settings = fake_settings(tmp_path, CAPS)
    settings.server.data_dir.mkdir(parents=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    capped = arun(store.create_key("acme", daily_reasoning_tokens=8)).secret
    store.close()
    think = FakeBackend("think", reasoning=True, thinking_tokens=50)
    app = build_app(settings, backends={"think": think})
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        h = {"Authorization": f"Bearer {capped}"}
        r = live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=h)
        assert_error(r, 400, code="invalid_value")  # medium: up to 10 of a budget of 8
        assert r.json()["error"]["param"] == "reasoning_effort"
        assert "daily reasoning-token budget of 8" in r.json()["error"]["message"]
        assert "retry-after" not in r.headers
        body = {"messages": MSG, "reasoning_effort": "low"}  # up to 5
        assert live.http.post("/v1/chat/completions", json=body, headers=h).status_code == 200
        live.http.close()


def test_a_local_reasoning_models_answers_are_reused_per_effort(tmp_path: Path) -> None:
    """A break-it trial: a local reasoning model (which reads no other parameter) had its
    answers filed without their effort, so one thought at "none" was served to "high" and
    one cut at "low" to "none". Each effort is its own scope; the default effort is the
    effort named."""
    settings = fake_settings(tmp_path, CAPS)
    backends = {
        "think": FakeBackend("think", reasoning=True, thinking_tokens=50, reads_passthrough=False)
    }
    app = build_app(settings, backends=backends)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        try:

            def reuse(**body: object) -> str:
                r = _chat(live, model="think", temperature=0, max_tokens=200, **body)
                assert r.status_code == 200, r.text
                return r.headers["x-boundgate-reuse"]

            assert reuse(reasoning_effort="low") == "miss"
            assert reuse(reasoning_effort="high") == "miss"
            assert reuse(reasoning_effort="none") == "miss"
            assert reuse(reasoning_effort="low") == "hit-exact"
            assert reuse(reasoning_effort="medium") == "miss"
            assert reuse() == "hit-exact"  # the default effort: medium
        finally:
            live.http.close()


def test_a_reused_answer_reports_the_reasoning_tokens_it_was_generated_with(
    thinking: Live,
) -> None:
    """A break-it trial: a hit on a reasoning model's answer reported its completion_tokens
    (the reasoning counted in) with reasoning_tokens 0. A hit reports the usage the answer
    was generated with, its reasoning part too, streamed or not, and its ledger row records
    that usage (as every hit's row does; no budget counts a hit's row)."""
    first = _chat(thinking, model="think", temperature=0, reasoning_effort="low", max_tokens=200)
    assert first.status_code == 200, first.text
    assert first.headers["x-boundgate-reuse"] == "miss"
    generated = first.json()["usage"]
    assert _reasoning(generated) == 5

    hit = _chat(thinking, model="think", temperature=0, reasoning_effort="low", max_tokens=200)
    assert hit.headers["x-boundgate-reuse"] == "hit-exact"
    usage = hit.json()["usage"]
    assert usage["completion_tokens"] == generated["completion_tokens"]
    assert _reasoning(usage) == 5
    row = thinking.ledger()[hit.headers["x-request-id"]]
    assert (row.completion_tokens, row.reasoning_tokens) == (usage["completion_tokens"], 5)

    body = {
        "messages": MSG,
        "model": "think",
        "temperature": 0,
        "reasoning_effort": "low",
        "max_tokens": 200,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    streamed = None
    with thinking.http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.headers["x-boundgate-reuse"] == "hit-exact"
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                streamed = json.loads(line[6:]).get("usage") or streamed
    assert streamed is not None and _reasoning(streamed) == 5
