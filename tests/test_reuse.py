"""Reuse through the public HTTP API: headers, ledger, streaming replay, feedback, stats."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from boundgate.assembly import build_app
from boundgate.store import SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import Live, arun, assert_error, fake_settings, wait_until

Q = "How do I reset my password?"


def ask(live: Live, content: str = Q, **kw: Any) -> Any:
    headers = kw.pop("headers", {})
    body = {"messages": [{"role": "user", "content": content}], "temperature": 0, **kw}
    return live.http.post("/v1/chat/completions", json=body, headers=headers)


def test_the_bundled_intensity_is_reported_with_its_attribution(fake_live: Live) -> None:
    """An auditor's trial: ``grid_gco2_per_kwh`` came from Electricity Maps' data (ODbL 1.0)
    with no source beside it; ``grid_source`` names it, on every completion."""
    info = ask(fake_live).json()["boundgate"]
    assert info["grid_source"].startswith("bundled:Electricity Maps (ODbL 1.0) ")


def test_second_ask_is_an_exact_hit_with_honest_avoided_energy(fake_live: Live) -> None:
    first = ask(fake_live)
    assert first.status_code == 200
    assert first.headers["x-boundgate-reuse"] == "miss"
    doc = first.headers["x-boundgate-document"]
    assert doc.startswith("ans_")
    calls = fake_live.gateway.backends["fake"].calls

    second = ask(fake_live, "  how do I reset my password ")  # canonical form is the same
    assert second.status_code == 200
    assert second.headers["x-boundgate-reuse"] == "hit-exact"
    assert second.headers["x-boundgate-document"] == doc
    assert fake_live.gateway.backends["fake"].calls == calls  # no generation
    assert (
        second.json()["choices"][0]["message"]["content"]
        == (first.json()["choices"][0]["message"]["content"])
    )
    avoided = float(second.headers["x-boundgate-energy-avoided-wh"])
    ledger = fake_live.ledger()
    row1 = ledger[first.headers["x-request-id"]]
    row2 = ledger[second.headers["x-request-id"]]
    assert row2.reuse == "hit-exact" and row2.document_id == doc
    assert avoided == float(f"{row2.avoided_wh:.6g}")
    # the measured generation cost of the original: never more than that request's total
    # (which also paid for its own lookup)
    assert 0 < row2.avoided_wh <= row1.wh and 0 < row2.avoided_gco2 <= row1.gco2
    (report,) = asyncio.run(fake_live.gateway.store.report())
    assert report.reused == 1 and report.avoided_wh == row2.avoided_wh
    assert row2.wh > 0 and row2.method == row1.method  # the lookup itself is metered too


@pytest.mark.parametrize("stream", [False, True])
def test_a_stored_answer_is_served_with_its_age(fake_live: Live, stream: bool) -> None:
    """RFC 9111 §5.1: a cache serving a stored response must send ``Age`` (a trial found
    none on any hit); a fresh answer has none."""
    first = ask(fake_live)
    assert first.headers["x-boundgate-reuse"] == "miss" and "age" not in first.headers
    fake_live.gateway.clock = _Later(fake_live.gateway.clock, 7)
    body = {"messages": [{"role": "user", "content": Q}], "temperature": 0, "stream": stream}
    with fake_live.http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        assert 7 <= int(r.headers["age"]) <= 60, r.headers


def test_streamed_hit_replays_the_stored_text_in_chunks(fake_live: Live) -> None:
    text = ask(fake_live).json()["choices"][0]["message"]["content"]
    with fake_live.http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": Q}],
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as r:
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    pieces = [
        e["choices"][0]["delta"].get("content")
        for e in events
        if e["choices"] and e["choices"][0]["delta"].get("content")
    ]
    assert len(pieces) > 3 and "".join(pieces) == text
    assert events[-1]["usage"]["completion_tokens"] > 0
    assert events[-1]["boundgate"]["reuse"] == "hit-exact"


def test_with_include_usage_every_chunk_but_the_last_has_a_null_usage(fake_live: Live) -> None:
    """OpenAI's ``stream_options.include_usage``: "All other chunks will also include a usage
    field, but with a null value" (an SDK trial found the key left out); without it no chunk
    has the key. Chat and text completions alike."""
    for path, body in (
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Stream me."}]}),
        ("/v1/completions", {"prompt": "Stream me."}),
    ):
        for include in (True, False):
            extra = {"stream_options": {"include_usage": True}} if include else {}
            with fake_live.http.stream(
                "POST", path, json={**body, "stream": True, "temperature": 0.9, **extra}
            ) as r:
                lines = [x for x in r.iter_lines() if x.startswith("data: {")]
                events = [json.loads(x[6:]) for x in lines]
            assert len(events) > 2, path
            if include:
                assert all("usage" in e and e["usage"] is None for e in events[:-1]), path
                assert events[-1]["usage"]["total_tokens"] > 0 and events[-1]["choices"] == []
            else:
                assert not any("usage" in e for e in events), path


def test_cache_control_and_temperature_dial(fake_live: Live) -> None:
    assert ask(fake_live).headers["x-boundgate-reuse"] == "miss"
    # no-store: neither looked up nor stored
    r = ask(fake_live, headers={"Cache-Control": "no-store"})
    assert r.headers["x-boundgate-reuse"] == "bypass"
    assert "x-boundgate-document" not in r.headers
    # no-cache: not looked up, but the fresh answer is stored
    r = ask(fake_live, headers={"Cache-Control": "no-cache"})
    assert r.headers["x-boundgate-reuse"] == "bypass" and "x-boundgate-document" in r.headers
    # max-age=0: the stored answers are too old
    fake_live.gateway.reuse.clock = _Later(fake_live.gateway.reuse.clock, 5)
    assert ask(fake_live, headers={"Cache-Control": "max-age=0"}).headers["x-boundgate-reuse"] == (
        "miss"
    )
    assert ask(fake_live, boundgate={"max_age": 3600}).headers["x-boundgate-reuse"] == ("hit-exact")
    # above the temperature dial the request is novel
    r = ask(fake_live, temperature=0.9)
    assert r.headers["x-boundgate-reuse"] == "bypass"
    # bad directives are 400s in OpenAI shape
    r = ask(fake_live, boundgate={"reuse": "always"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "boundgate.reuse"
    r = ask(fake_live, headers={"Cache-Control": "max-age=soon"})
    assert r.status_code == 400


def test_every_cache_control_field_counts_and_pragma_no_cache_without_one(
    fake_live: Live,
) -> None:
    """Two Cache-Control fields are one list (RFC 9110 §5.3): a no-cache in the second field
    bypasses the store even after a max-age in the first; Pragma: no-cache is no-cache when
    the request has no Cache-Control (RFC 9111 §5.4)."""
    assert ask(fake_live).headers["x-boundgate-reuse"] == "miss"
    assert ask(fake_live).headers["x-boundgate-reuse"] == "hit-exact"
    two = ask(fake_live, headers=[("Cache-Control", "max-age=3600"), ("Cache-Control", "no-cache")])
    assert two.headers["x-boundgate-reuse"] == "bypass"
    pragma = ask(fake_live, headers={"Pragma": "no-cache"})
    assert pragma.headers["x-boundgate-reuse"] == "bypass"
    # Cache-Control present: it alone decides (Pragma is for HTTP/1.0 caches)
    both = ask(fake_live, headers={"Pragma": "no-cache", "Cache-Control": "max-age=3600"})
    assert both.headers["x-boundgate-reuse"] == "hit-exact"


def test_only_if_cached_serves_a_stored_answer_or_a_504_without_running_the_model(
    fake_live: Live,
) -> None:
    """RFC 9111 §5.2.1.7 (a trial found it ignored): a stored answer, else 504 and no
    generation; stream or not, and where reuse is bypassed (a temperature above the dial)."""
    calls = fake_live.gateway.backends["fake"].calls
    only = {"Cache-Control": "only-if-cached"}
    for extra in ({}, {"stream": True}, {"temperature": 0.9}):
        r = ask(fake_live, headers=only, **extra)
        err = assert_error(r, 504, param="Cache-Control")
        assert err["code"] == "not_stored" and err["type"] == "server_error"
    assert "temperature" in err["message"]  # why nothing could be looked up
    assert fake_live.gateway.backends["fake"].calls == calls  # the model never ran
    assert r.headers["x-boundgate-reuse"] == "bypass"  # why: the temperature above the dial
    assert ask(fake_live).headers["x-boundgate-reuse"] == "miss"
    hit = ask(fake_live, headers={"Cache-Control": "max-age=60, only-if-cached"})
    assert hit.status_code == 200 and hit.headers["x-boundgate-reuse"] == "hit-exact"
    row = fake_live.ledger()[r.headers["x-request-id"]]
    assert row.status == 504 and row.error_code == "not_stored"
    # the OpenAI SDK retries a 5xx unless told not to: an SDK trial's one miss was asked
    # three times; it is asked once, and the SDK raises at once
    import openai

    before = len(fake_live.ledger())
    with pytest.raises(openai.InternalServerError) as info:
        fake_live.openai().chat.completions.create(
            model="fake",
            messages=[{"role": "user", "content": "Never asked before?"}],
            temperature=0,
            extra_headers=only,
        )
    assert info.value.response.headers["x-should-retry"] == "false"
    assert len(fake_live.ledger()) == before + 1


def test_a_request_at_temperature_0_is_not_served_a_sampled_answer(fake_live: Live) -> None:
    """A trial's finding: an answer sampled at temperature 0.3 was served to the same question
    at temperature 0, which decodes greedily and could never have received it. A greedy
    answer still serves a sampled request (the most likely answer is one it may get)."""
    fake = fake_live.gateway.backends["fake"]
    q = "Write a one-line slogan for a bakery."
    assert ask(fake_live, q, temperature=0.3).headers["x-boundgate-reuse"] == "miss"
    assert ask(fake_live, q, temperature=0.2).headers["x-boundgate-reuse"] == "hit-exact"
    calls = fake.calls
    greedy = ask(fake_live, q, temperature=0)
    assert greedy.headers["x-boundgate-reuse"] == "miss" and fake.calls == calls + 1
    assert ask(fake_live, q, temperature=0).headers["x-boundgate-reuse"] == "hit-exact"
    assert ask(fake_live, q, temperature=0.3).headers["x-boundgate-reuse"] == "hit-exact"
    assert fake.calls == calls + 1


class _Later:
    """A clock `offset` seconds ahead of another (to age stored answers)."""

    def __init__(self, inner: Any, offset: float) -> None:
        self.inner, self.offset = inner, offset

    def time(self) -> float:
        return float(self.inner.time()) + self.offset

    def monotonic(self) -> float:
        return float(self.inner.monotonic())


def test_openai_sdk_sees_reuse_headers_and_extra_body(fake_live: Live) -> None:
    client = fake_live.openai()
    a = client.chat.completions.with_raw_response.create(
        model="fake", messages=[{"role": "user", "content": Q}], temperature=0
    )
    b = client.chat.completions.with_raw_response.create(
        model="fake",
        messages=[{"role": "user", "content": Q}],
        temperature=0,
        extra_body={"boundgate": {"reuse": "exact"}},
    )
    assert a.headers["x-boundgate-reuse"] == "miss"
    assert b.headers["x-boundgate-reuse"] == "hit-exact"
    assert b.parse().choices[0].message.content == a.parse().choices[0].message.content


def test_contexts_and_tenants_do_not_cross(tmp_path: Path) -> None:
    app = build_app(fake_settings(tmp_path))
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        store = live.gateway.store
        k1 = asyncio.run(store.create_key("acme")).secret
        k2 = asyncio.run(store.create_key("globex")).secret
        h1 = {"Authorization": f"Bearer {k1}"}
        h2 = {"Authorization": f"Bearer {k2}"}
        assert ask(live, headers=h1).headers["x-boundgate-reuse"] == "miss"
        assert ask(live, headers=h1).headers["x-boundgate-reuse"] == "hit-exact"
        assert ask(live, headers=h2).headers["x-boundgate-reuse"] == "miss"  # other tenant
        sys_msgs = [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": Q},
        ]
        r = live.http.post(
            "/v1/chat/completions", json={"messages": sys_msgs, "temperature": 0}, headers=h1
        )
        assert r.headers["x-boundgate-reuse"] == "miss"  # other system prompt
        assert ask(live, headers=h1, stop=["\n"]).headers["x-boundgate-reuse"] == "miss"
        live.http.close()


def test_semantic_hit_feedback_and_stats(tmp_path: Path) -> None:
    # A loose bound and one label of trust, so a paraphrase is served after one verification
    # (with δ = 0.01 the verifier rightly wants dozens of labels first). No prior: this is
    # about earning trust from labels (the prior is tested in test_pair_model.py).
    settings = fake_settings(tmp_path)
    settings.reuse.prior = False
    settings.reuse.error_bound = 0.5
    settings.reuse.initial_threshold = 0.8
    settings.reuse.min_observations = 1
    settings.reuse.verify_rate = 0.0
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        fake = live.gateway.backends["fake"]
        paraphrases = [
            "How can I reset my password?",
            "How do I reset my password?",
            "How should I reset my password?",
        ]
        fake.meanings = {q: "reset password" for q in paraphrases}
        miss = ask(live, paraphrases[0])
        assert miss.headers["x-boundgate-reuse"] == "miss"
        # no label yet at this similarity: the would-be hit is verified (recomputed), and the
        # fresh answer, equal to the stored one, becomes the first label
        verified = ask(live, paraphrases[1])
        assert verified.headers["x-boundgate-reuse"] == "miss"
        wait_until(lambda: live.gateway.reuse.verifier.estimate().observations >= 1)
        # ... and the paraphrase is confirmed: its own fresh answer, stored meanwhile, is
        # dropped (else it could serve the feedback check below from a second entry)
        wait_until(lambda: len(live.gateway.reuse) == 1)
        hit = ask(live, paraphrases[2])
        assert hit.headers["x-boundgate-reuse"] == "hit-semantic", hit.headers
        assert float(hit.headers["x-boundgate-similarity"]) >= 0.8
        assert (
            hit.json()["choices"][0]["message"]["content"]
            == (miss.json()["choices"][0]["message"]["content"])
        )
        # a negation flip is never served, however similar
        neg = ask(live, "How can I not reset my password?")
        assert neg.headers["x-boundgate-reuse"] == "miss"

        # feedback: only for reused answers, once per request
        r = live.http.post(
            "/v1/boundgate/feedback",
            json={"request_id": miss.headers["x-request-id"], "correct": True},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "not_a_reuse"
        r = live.http.post(
            "/v1/boundgate/feedback", json={"request_id": "req_nope", "correct": True}
        )
        assert r.status_code == 404
        r = live.http.post("/v1/boundgate/feedback", json={"request_id": 5})
        assert r.status_code == 400 and r.json()["error"]["param"] in ("request_id", "correct")
        entry = live.gateway.reuse._by_id[hit.headers["x-boundgate-document"]]
        before = live.gateway.reuse.verifier.threshold_for(entry)
        r = live.http.post(
            "/v1/boundgate/feedback",
            json={"request_id": hit.headers["x-request-id"], "correct": False},
        )
        assert r.status_code == 200 and r.json()["status"] == "recorded"
        assert live.gateway.reuse.verifier.threshold_for(entry) > before
        again = ask(live, paraphrases[2], headers={"Cache-Control": "max-age=3600"})
        assert again.headers["x-boundgate-reuse"] != "hit-semantic"
        r = live.http.post(
            "/v1/boundgate/feedback",
            json={"request_id": hit.headers["x-request-id"], "correct": False},
        )
        assert r.json()["status"] == "duplicate"

        stats = live.http.get("/v1/boundgate/stats").json()["reuse"]
        assert stats["error_bound"] == 0.5
        low, high = stats["error_rate_ci"]
        assert 0 <= low <= stats["error_rate_estimate"] <= high <= 1
        assert stats["observations_by_source"]["feedback"] == {"total": 1, "wrong": 1}
        assert stats["observations_by_source"]["verify"] == {"total": 1, "wrong": 0}

        metrics = {
            f.name: f for f in text_string_to_metric_families(live.http.get("/metrics").text)
        }
        for name in (
            "boundgate_reuse_error_rate_estimate",
            "boundgate_reuse_error_rate_upper_bound",
            "boundgate_reuse_error_bound",
            "boundgate_reuse_similarity_threshold",
            "boundgate_reuse",
            "boundgate_energy_joules",
            "boundgate_carbon_grams",
            "boundgate_documents",
            "boundgate_jobs",
            "boundgate_grid_intensity_gco2_per_kwh",
        ):
            assert name in metrics, name
        kinds = {x.labels["kind"] for x in metrics["boundgate_energy_joules"].samples}
        assert kinds == {"spent", "avoided"}
        grid = metrics["boundgate_grid_intensity_gco2_per_kwh"].samples[0]
        assert grid.labels == {"zone": "DE-LU"} and grid.value > 0
        live.http.close()


def test_embeddings_endpoint_is_openai_shaped(fake_live: Live) -> None:
    client = fake_live.openai()
    out = client.embeddings.create(model="all-MiniLM-L6-v2", input=["cat", "a small cat"])
    assert len(out.data) == 2 and len(out.data[0].embedding) == 384
    dot = sum(x * y for x, y in zip(out.data[0].embedding, out.data[1].embedding, strict=True))
    assert 0.5 < dot < 1.0
    b64 = client.embeddings.create(model="all-MiniLM-L6-v2", input="cat")  # SDK default: base64
    assert len(b64.data[0].embedding) == 384
    raw = fake_live.http.post("/v1/embeddings", json={"input": "metered"})  # the default model
    assert raw.status_code == 200 and float(raw.headers["x-boundgate-energy-wh"]) > 0
    # null is "not given", as on the chat endpoint (a break-it trial: a 400 here alone)
    null = fake_live.http.post("/v1/embeddings", json={"input": "cat", "encoding_format": None})
    assert null.status_code == 200 and len(null.json()["data"][0]["embedding"]) == 384
    row = fake_live.ledger()[raw.headers["x-request-id"]]
    assert row.endpoint == "/v1/embeddings" and row.prompt_tokens > 0 and row.wh > 0
    r = fake_live.http.post("/v1/embeddings", json={"input": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    r = fake_live.http.post("/v1/embeddings", json={"input": "x", "model": "nope"})
    assert r.status_code == 404 and "does not exist" in r.json()["error"]["message"]
    # a chat model is named as one (a trial was told it "does not exist")
    r = fake_live.http.post("/v1/embeddings", json={"input": "x", "model": "fake"})
    assert r.status_code == 404 and "generates text" in r.json()["error"]["message"]
    # longer than the model reads: refused as OpenAI does, unless truncation is asked for
    long = "The committee reviewed the budget line by line. " * 30
    r = fake_live.http.post("/v1/embeddings", json={"input": ["short", long]})
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "context_length_exceeded"
    assert err["param"] == "input" and "input 1 " in err["message"]
    assert "(1 such input); split it," in err["message"]  # was "(1 such inputs)"
    r = fake_live.http.post("/v1/embeddings", json={"input": [long, "short", long]})
    assert "input 0 " in r.json()["error"]["message"]
    assert "(2 such inputs); split them," in r.json()["error"]["message"]
    r = fake_live.http.post("/v1/embeddings", json={"input": long, "truncate": True})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 128


def test_the_embeddings_model_is_listed_in_models(fake_live: Live) -> None:
    """OpenAI lists its embedding models in ``GET /v1/models``; ours was missing, so a client
    choosing a model from the list could not find the one ``/v1/embeddings`` serves."""
    listed = {m.id: m for m in fake_live.openai().models.list().data}
    assert "all-MiniLM-L6-v2" in listed
    entry = fake_live.http.get("/v1/models").json()["data"]
    mini = next(m for m in entry if m["id"] == "all-MiniLM-L6-v2")
    assert mini["object"] == "model" and mini["owned_by"] == "boundgate"
    info = mini["boundgate"]
    assert info["backend"] == "onnx" and info["dimensions"] == 384
    assert info["context_length"] == 128 and info["default"] is False
    assert info["version"].startswith("all-MiniLM-L6-v2-int8@")
    assert "energy_profile" not in info  # metered per request, no per-token profile
    one = fake_live.http.get("/v1/models/all-MiniLM-L6-v2")
    assert one.status_code == 200 and one.json()["id"] == "all-MiniLM-L6-v2"
    # each model read alone is as the list shows it, boundgate's details included (a trial:
    # GET /v1/models/{id} had no "boundgate" object)
    for listed_model in entry:
        alone = fake_live.http.get(f"/v1/models/{listed_model['id']}")
        assert alone.status_code == 200 and alone.json() == listed_model
    # it embeds, it does not generate: a chat request naming it is told so
    r = fake_live.http.post(
        "/v1/chat/completions",
        json={"model": "all-MiniLM-L6-v2", "messages": [{"role": "user", "content": "hi"}]},
    )
    err = assert_error(r, 404, param="model", code="model_not_found")
    assert "/v1/embeddings" in err["message"]


def test_models_leave_out_the_embeddings_model_when_reuse_is_off(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.reuse.enabled = False
    with Live.in_process(build_app(settings)) as live:
        ids = [m["id"] for m in live.http.get("/v1/models").json()["data"]]
        assert "all-MiniLM-L6-v2" not in ids and "fake" in ids
        assert_error(live.http.get("/v1/models/all-MiniLM-L6-v2"), 404, code="model_not_found")


def test_a_stored_answer_is_served_only_within_the_requests_token_limit(
    fake_live: Live,
) -> None:
    """Issue #13.1: an answer cut at 3 tokens is not served to a request allowing 60, and a
    complete answer is not served to a request allowing fewer tokens than it has."""
    q = "What is the tallest mountain in the Alps?"

    def go(max_tokens: int) -> Any:
        r = ask(fake_live, q, max_tokens=max_tokens, seed=1)
        assert r.status_code == 200, r.text
        return r

    cut = go(3)
    assert cut.json()["choices"][0]["finish_reason"] == "length"
    assert go(3).headers["x-boundgate-reuse"] == "hit-exact"  # the same limit: the same answer
    full = go(60)
    assert full.headers["x-boundgate-reuse"] == "miss"
    assert full.json()["choices"][0]["finish_reason"] == "stop"
    n = full.json()["usage"]["completion_tokens"]
    assert 3 < n < 60
    longer = go(n + 1)
    assert longer.headers["x-boundgate-reuse"] == "hit-exact"
    assert (
        longer.json()["choices"][0]["message"]["content"]
        == (full.json()["choices"][0]["message"]["content"])
    )
    shorter = go(n - 1)
    assert shorter.headers["x-boundgate-reuse"] == "miss"
    assert shorter.json()["usage"]["completion_tokens"] <= n - 1


LONG = " ".join(f"w{i}" for i in range(20))  # 20 tokens for the fake: cut by limits below


def long_answers(live: Live) -> Any:
    """The fake backend answering every question with ``LONG`` (one token a word)."""
    fake = live.gateway.backends["fake"]
    fake.answers = lambda _question: LONG
    return fake


def test_a_natural_answer_serves_every_limit_above_its_length(fake_live: Live) -> None:
    """The limit is not in the scope: an answer that ended by itself at 20 tokens, stored by
    a request allowing 30, serves requests allowing 2,000, 300 or the default (a trial: an
    SDK app's requests with another ``max_tokens`` class recomputed every stored answer)."""
    fake = long_answers(fake_live)
    q = "Summarise the plot of Macbeth"
    first = ask(fake_live, q, max_tokens=30)
    assert first.headers["x-boundgate-reuse"] == "miss"
    assert first.json()["choices"][0]["finish_reason"] == "stop"
    for limit in (2000, 300, 21, None):
        body = {} if limit is None else {"max_tokens": limit}
        r = ask(fake_live, q, **body)
        assert r.headers["x-boundgate-reuse"] == "hit-exact", limit
        assert r.json()["choices"][0]["message"]["content"] == LONG
        assert r.json()["usage"]["completion_tokens"] == 20
    assert fake.calls == 1
    assert ask(fake_live, q, max_tokens=20).headers["x-boundgate-reuse"] == "miss"


def test_alternating_limits_both_hit_once_stored(fake_live: Live) -> None:
    """max_tokens 12 and 13 share a scope: each cut answer keeps its own slot, so a client
    alternating them hits with both instead of each answer replacing the other."""
    fake = long_answers(fake_live)
    q = "Describe the water cycle"
    seen = []
    for limit in (12, 13, 12, 13, 12, 13):
        r = ask(fake_live, q, max_tokens=limit)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == limit
        assert body["choices"][0]["message"]["content"] == " ".join(LONG.split()[:limit])
        seen.append(r.headers["x-boundgate-reuse"])
    assert seen == ["miss", "miss", "hit-exact", "hit-exact", "hit-exact", "hit-exact"]
    assert fake.calls == 2


def test_a_cut_answer_is_served_only_at_its_own_limit(fake_live: Live) -> None:
    """Cuts at 11, 12 and 13 are all kept and each is served only to its own limit; a limit
    with no cut of its own (14) runs the model, and its answer does not displace the others."""
    fake = long_answers(fake_live)
    q = "Explain photosynthesis"
    for limit in (11, 12, 13, 14):
        assert ask(fake_live, q, max_tokens=limit).headers["x-boundgate-reuse"] == "miss"
    assert fake.calls == 4
    for limit in (14, 13, 12, 11):
        r = ask(fake_live, q, max_tokens=limit)
        assert r.headers["x-boundgate-reuse"] == "hit-exact", limit
        assert r.json()["usage"]["completion_tokens"] == limit
        assert r.json()["choices"][0]["message"]["content"] == " ".join(LONG.split()[:limit])
    assert fake.calls == 4
    r = ask(fake_live, q, max_tokens=10)
    assert r.headers["x-boundgate-reuse"] == "miss"
    assert r.json()["usage"]["completion_tokens"] == 10


def test_a_natural_answer_serves_larger_limits_beside_a_cut(fake_live: Live) -> None:
    """An answer that ended by itself (20 tokens, asked with 30) serves any limit above 20 in
    its class, even after a shorter limit stored its own cut answer. At exactly 20 the model
    stops at the limit (``length``), so the natural answer, which says ``stop``, is not what
    that request would have received."""
    fake = long_answers(fake_live)
    q = "Summarise the plot of Hamlet"
    full = ask(fake_live, q, max_tokens=30)
    assert full.json()["choices"][0]["finish_reason"] == "stop"
    assert full.json()["usage"]["completion_tokens"] == 20
    cut = ask(fake_live, q, max_tokens=12)
    assert cut.headers["x-boundgate-reuse"] == "miss"
    assert cut.json()["choices"][0]["finish_reason"] == "length"
    for limit in (25, 21, 64, 30):
        r = ask(fake_live, q, max_tokens=limit)
        assert r.headers["x-boundgate-reuse"] == "hit-exact", limit
        assert r.json()["choices"][0]["message"]["content"] == LONG
        assert r.json()["choices"][0]["finish_reason"] == "stop"
    again = ask(fake_live, q, max_tokens=12)
    assert again.headers["x-boundgate-reuse"] == "hit-exact"
    assert again.json()["choices"][0]["finish_reason"] == "length"
    assert fake.calls == 2
    at_length = ask(fake_live, q, max_tokens=20)
    assert at_length.headers["x-boundgate-reuse"] == "miss"
    assert at_length.json()["choices"][0]["finish_reason"] == "length"
    again = ask(fake_live, q, max_tokens=20)
    assert again.headers["x-boundgate-reuse"] == "hit-exact"
    assert again.json()["choices"][0]["finish_reason"] == "length"
    assert fake.calls == 3
    # below the natural answer's length, with no cut of its own: the model runs
    assert ask(fake_live, q, max_tokens=19).headers["x-boundgate-reuse"] == "miss"


def test_an_exact_hit_needs_every_character_that_can_change_the_answer(fake_live: Live) -> None:
    """The exact key forgives only what cannot change an answer (the case and spacing of
    prose, a closing question mark); quoted text, code, formulas, a factorial sign and a
    text completion's prompt count character by character, and the semantic path vetoes what
    its uncased models cannot see (the new-user trial's inputs)."""
    pairs = [
        ("Calculate 5!", "Calculate 5"),
        ('In Python, what does print("Hi") output?', 'In Python, what does print("hi") output?'),
        ("Is the word 'ABC' written in uppercase?", "Is the word 'abc' written in uppercase?"),
        (
            "How many spaces are between a and b in 'a    b'?",
            "How many spaces are between a and b in 'a b'?",
        ),
        ("What is x² if x is 3?", "What is x2 if x is 3?"),
        # the second trial's: a capital that tells a name from a word, an instruction's material
        ("What does the word Polish mean", "What does the word polish mean"),
        ("Translate into French: You are coming?", "Translate into French: You are coming."),
        (
            "Count the capital letters in: Hello World From Berlin",
            "Count the capital letters in: hello world from berlin",
        ),
    ]
    for first, second in pairs:
        assert ask(fake_live, first).headers["x-boundgate-reuse"] == "miss"
        assert ask(fake_live, second).headers["x-boundgate-reuse"] == "miss", second
        assert ask(fake_live, first).headers["x-boundgate-reuse"] == "hit-exact"

    def complete(prompt: str) -> str:
        body = {"prompt": prompt, "max_tokens": 8, "temperature": 0}
        r = fake_live.http.post("/v1/completions", json=body)
        assert r.status_code == 200
        return r.headers["x-boundgate-reuse"]

    assert complete("def add(a, b):\n    return") == "miss"
    assert complete("DEF ADD(A, B): RETURN") == "miss"
    assert complete("def add(a, b):\n    return") == "hit-exact"


def test_a_seeded_request_gets_only_what_its_seed_and_temperature_give(fake_live: Live) -> None:
    """A trial's finding: "Invent a name for a cat." with seed 7 at temperature 0.3 was served
    the greedy answer stored at temperature 0, though the seed fixes another one. Without a
    seed a greedy answer still serves requests up to the dial. At temperature 0 a seed fixes
    nothing (greedy decoding draws nothing): seeded or not, one answer."""
    q = "Invent a name for a cat."
    assert ask(fake_live, q, temperature=0, seed=7).headers["x-boundgate-reuse"] == "miss"
    assert ask(fake_live, q, temperature=0.3, seed=7).headers["x-boundgate-reuse"] == "miss"
    assert ask(fake_live, q, temperature=0.3, seed=7).headers["x-boundgate-reuse"] == "hit-exact"
    assert ask(fake_live, q, temperature=0, seed=7).headers["x-boundgate-reuse"] == "hit-exact"
    assert ask(fake_live, q, temperature=0).headers["x-boundgate-reuse"] == "hit-exact"
    assert ask(fake_live, q, temperature=0.2).headers["x-boundgate-reuse"] == "hit-exact"


def test_who_asks_and_how_an_upstream_stores_it_do_not_split_the_scope(fake_live: Live) -> None:
    """A trial's finding: ``metadata``, ``store``, ``service_tier``, ``prompt_cache_key`` and
    ``safety_identifier`` each made a miss of an exact repeat, so a client tagging each
    request with its own metadata was never reused. What shapes the answer still does."""
    q = "What is the capital of Australia?"
    assert ask(fake_live, q, temperature=0).headers["x-boundgate-reuse"] == "miss"
    for extra in (
        {"metadata": {"trace": "a1"}},
        {"metadata": {"trace": "b2"}, "store": True},
        {"service_tier": "auto"},
        {"prompt_cache_key": "x"},
        {"safety_identifier": "hash-of-alice"},
        {"user": "alice"},
    ):
        r = ask(fake_live, q, temperature=0, **extra)
        assert r.headers["x-boundgate-reuse"] == "hit-exact", extra
    shaped = ask(fake_live, q, temperature=0, response_format={"type": "json_object"})
    assert shaped.headers["x-boundgate-reuse"] == "miss"


def test_names_and_tool_calls_are_part_of_the_context(fake_live: Live) -> None:
    """A trial's finding: "What is my name?" from Carol (``name``) was served the answer to
    no name, and histories that differed only in an assistant's ``tool_calls`` shared one
    answer: both were dropped before the model and the reuse scope saw them."""
    q = [{"role": "user", "content": "What is my name?"}]

    def status(messages: list[dict[str, Any]]) -> str:
        body = {"messages": messages, "temperature": 0}
        r = fake_live.http.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        return str(r.headers["x-boundgate-reuse"])

    assert status(q) == "miss"
    assert status([{**q[0], "name": "Carol"}]) == "miss"
    assert status([{**q[0], "name": "Carol"}]) == "hit-exact"
    assert status([{**q[0], "name": "Dave"}]) == "miss"
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turn = {"role": "assistant", "content": "", "tool_calls": [call]}
    other = {**turn, "tool_calls": [{**call, "function": {"name": "g", "arguments": "{}"}}]}
    assert status([{"role": "user", "content": "hi"}, turn, *q]) == "miss"
    assert status([{"role": "user", "content": "hi"}, other, *q]) == "miss"
    assert status([{"role": "user", "content": "hi"}, turn, *q]) == "hit-exact"
    # no calls at all and an empty list of them are one history, as before
    plain = {"role": "assistant", "content": ""}
    assert status([{"role": "user", "content": "hi"}, plain, *q]) == "miss"
    assert status([{"role": "user", "content": "hi"}, {**plain, "tool_calls": []}, *q]) == (
        "hit-exact"
    )


def test_text_parts_reach_the_model_one_per_line(tmp_path: Path) -> None:
    """A trial's finding: a message's text parts were joined without a separator, so the
    parts "What is the capital of" and "France?" reached the model (and the reuse key) as
    "What is the capital ofFrance?". They are joined one per line, as vLLM joins them."""
    from boundgate.backends.fake import FakeBackend

    echo = FakeBackend("fake", params_b=1, answers=lambda q: q)
    app = build_app(fake_settings(tmp_path), backends={"fake": echo})
    parts = [
        {"type": "text", "text": "What is the capital of"},
        {"type": "text", "text": "France?"},
    ]
    body = {"messages": [{"role": "user", "content": parts}], "temperature": 0}
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url, timeout=60) as http:
        r = http.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "What is the capital of\nFrance?"
        glued = {"messages": [{"role": "user", "content": "What is the capital ofFrance?"}]}
        r = http.post("/v1/chat/completions", json={**glued, "temperature": 0})
        assert r.headers["x-boundgate-reuse"] == "miss"  # not the parts' question
        r = http.post("/v1/chat/completions", json=body)
        assert r.headers["x-boundgate-reuse"] == "hit-exact"


def test_a_request_without_temperature_is_reused_at_the_operators_default_temperature(
    tmp_path: Path,
) -> None:
    """An operator's trial: SDK clients that leave ``temperature`` out are at OpenAI's default,
    1, above the dial, so they were never reused (and each counted against the novelty
    budget). That stays the default; ``reuse.default_temperature`` at or below the dial makes
    them generated at it and reused, while a request that gives a temperature keeps it."""
    body = {"messages": [{"role": "user", "content": Q}]}
    for extra, statuses in (
        ("", ["bypass", "bypass"]),
        ("[reuse]\ndefault_temperature = 0\n", ["miss", "hit-exact"]),
    ):
        (tmp := tmp_path / str(len(extra))).mkdir()
        app = build_app(fake_settings(tmp, extra))
        with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url) as http:
            seen = [
                http.post("/v1/chat/completions", json=body).headers["x-boundgate-reuse"]
                for _ in statuses
            ]
            assert seen == statuses, extra
            given = http.post("/v1/chat/completions", json={**body, "temperature": 0.9})
            assert given.headers["x-boundgate-reuse"] == "bypass"  # it said so: generated at 0.9


def test_max_completion_tokens_limits_reuse_as_max_tokens_does(fake_live: Live) -> None:
    """Issue #13.1 with the newer name of the limit: an answer cut at 3 tokens is served only
    at exactly that limit, never to a request allowing more."""
    q = "Which river flows through Vienna?"
    cut = ask(fake_live, q, max_completion_tokens=3, seed=2)
    assert cut.json()["choices"][0]["finish_reason"] == "length"
    again = ask(fake_live, q, max_completion_tokens=3, seed=2)
    assert again.headers["x-boundgate-reuse"] == "hit-exact"
    more = ask(fake_live, q, max_completion_tokens=60, seed=2)
    assert more.headers["x-boundgate-reuse"] == "miss"
    assert more.json()["choices"][0]["finish_reason"] == "stop"


def trusting_settings(tmp_path: Path) -> Any:
    """Settings whose verifier serves by meaning after one label (no prior, δ = 0.5)."""
    settings = fake_settings(tmp_path)
    settings.reuse.prior = False
    settings.reuse.error_bound = 0.5
    settings.reuse.initial_threshold = 0.8
    settings.reuse.min_observations = 1
    settings.reuse.verify_rate = 0.0
    return settings


def test_a_semantic_hit_is_served_only_within_the_requests_token_limit(tmp_path: Path) -> None:
    """Issue #13.1 for reuse by meaning: a paraphrase whose limit (in the same limit class,
    so the same scope) is below the stored answer's length is computed, not served."""
    with Live.in_process(build_app(trusting_settings(tmp_path))) as live:
        fake = live.gateway.backends["fake"]
        paraphrases = [
            "How can I reset my password?",
            "How do I reset my password?",
            "How should I reset my password?",
            "How would I reset my password?",
        ]
        fake.meanings = {q: "reset password" for q in paraphrases}
        first = ask(live, paraphrases[0], max_tokens=60)
        n = first.json()["usage"]["completion_tokens"]
        assert first.json()["choices"][0]["finish_reason"] == "stop" and 3 < n < 60
        ask(live, paraphrases[1], max_tokens=60)  # verified: the first label
        wait_until(lambda: live.gateway.reuse.verifier.estimate().observations >= 1)
        hit = ask(live, paraphrases[2], max_tokens=60)
        assert hit.headers["x-boundgate-reuse"] == "hit-semantic", hit.headers
        short = ask(live, paraphrases[3], max_tokens=n - 1)
        assert short.headers["x-boundgate-reuse"] == "miss"
        assert short.json()["usage"]["completion_tokens"] <= n - 1


def documented_header_fields() -> dict[str, str]:
    """docs/api.md's header tables: each ``x-boundgate-*`` header (and ``x-request-id``) with
    the ``boundgate`` body field that carries the same value."""
    api = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    rows = re.findall(r"^\| `(x-[a-z-]+)` \| `([a-z_]+)` \|", api, flags=re.M)
    return dict(rows)


def assert_body_agrees_with_headers(headers: Any, info: dict[str, Any]) -> None:
    """Every ``x-boundgate-*`` header sent is in docs/api.md's tables, and the body's
    ``boundgate`` object has its field with the same value; a header not sent is null there."""
    documented = documented_header_fields()
    sent = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-boundgate-")}
    assert set(sent) <= set(documented), set(sent) - set(documented)
    for header, value in sent.items():
        field = info[documented[header]]
        if isinstance(field, list):
            low, high = (float(x) for x in value.split("-"))
            assert [low, high] == pytest.approx(field, rel=1e-4), header
        elif isinstance(field, float):
            assert float(value) == pytest.approx(field, rel=1e-3, abs=1e-4), header
        else:
            assert value == field, header
    for header in ("x-boundgate-similarity", "x-boundgate-pair-score", "x-boundgate-document"):
        if header not in sent:
            assert info[documented[header]] is None, header


def test_the_body_carries_every_reuse_header_streamed_or_not(tmp_path: Path) -> None:
    """The ``boundgate`` object says what the headers say, the pair model's score included
    (``pair_score``; it was in the headers only), in a body and in a stream's last chunk."""
    with Live.in_process(build_app(trusting_settings(tmp_path))) as live:
        paraphrases = [
            "How can I reset my password?",
            "How do I reset my password?",
            "How should I reset my password?",
            "How would I reset my password?",
        ]
        live.gateway.backends["fake"].meanings = {q: "reset password" for q in paraphrases}
        miss = ask(live, paraphrases[0])
        assert miss.headers["x-boundgate-reuse"] == "miss"
        assert_body_agrees_with_headers(miss.headers, miss.json()["boundgate"])
        ask(live, paraphrases[1])  # verified: the first label
        wait_until(lambda: live.gateway.reuse.verifier.estimate().observations >= 1)
        hit = ask(live, paraphrases[2])
        assert hit.headers["x-boundgate-reuse"] == "hit-semantic", hit.headers
        info = hit.json()["boundgate"]
        header = float(hit.headers["x-boundgate-pair-score"])
        assert info["pair_score"] == pytest.approx(header, abs=1e-4)
        assert_body_agrees_with_headers(hit.headers, info)
        streamed = live.http.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": paraphrases[3]}],
                "temperature": 0,
                "stream": True,
            },
        )
        assert streamed.headers["x-boundgate-reuse"] == "hit-semantic", streamed.headers
        events = [json.loads(line[6:]) for line in streamed.text.splitlines() if "{" in line]
        last = events[-1]["boundgate"]
        header = float(streamed.headers["x-boundgate-pair-score"])
        assert last["pair_score"] == pytest.approx(header, abs=1e-4)
        assert_body_agrees_with_headers(streamed.headers, last)


def test_a_miss_says_which_guard_vetoed_the_question_that_reads_alike(tmp_path: Path) -> None:
    """A trial could not tell why a question that reads like a stored one was not served
    its answer: ``x-boundgate-veto`` (and ``guard_veto``) name the guards' conflicts with the
    nearest stored question they vetoed; absent where none was vetoed, and on a hit."""
    with Live.in_process(build_app(trusting_settings(tmp_path))) as live:
        first = ask(live, "How many miles is it from Paris to Lyon?")
        assert (
            "x-boundgate-veto" not in first.headers
            and first.json()["boundgate"]["guard_veto"] is None
        )
        other = ask(live, "How many kilometers is it from Paris to Lyon?")
        assert other.headers["x-boundgate-reuse"] == "miss", other.headers
        assert other.headers["x-boundgate-veto"] == "unit", other.headers
        # which stored question: the first's answer (trials took the similarity and pair
        # headers, which speak of the best candidate let through, for the vetoed one's)
        assert other.headers["x-boundgate-veto-document"] == first.headers["x-boundgate-document"]
        assert_body_agrees_with_headers(other.headers, other.json()["boundgate"])
        assert first.json()["boundgate"]["guard_veto_document"] is None
        # and so is a request that asked for a stored answer or none (a new user's 504 did
        # not say that a look-alike was vetoed)
        only = ask(
            live,
            "How many yards is it from Paris to Lyon?",
            headers={"Cache-Control": "only-if-cached"},
        )
        assert_error(only, 504, param="Cache-Control")
        assert only.headers["x-boundgate-reuse"] == "miss", only.headers
        assert only.headers["x-boundgate-veto"], only.headers  # a look-alike: vetoed


def assert_a_paraphrase_is_served_by_meaning(live: Live) -> None:
    """The control of the exact-only tests: under ``trusting_settings`` an English paraphrase
    is served by meaning once the verifier has its first label."""
    chat = ["How can I reset my password?", "How do I reset my password?"]
    live.gateway.backends["fake"].meanings.update({q: "reset" for q in chat})
    ask(live, chat[0])
    ask(live, chat[1])  # labelled: the verifier's first observation
    wait_until(lambda: live.gateway.reuse.verifier.estimate().observations >= 1)
    served = ask(live, "How should I reset my password?")
    assert served.headers["x-boundgate-reuse"] == "hit-semantic", served.headers


def test_a_question_in_another_language_is_reused_exactly_only(tmp_path: Path) -> None:
    """A trial was served "¿Cuánto dura el vuelo de Madrid a París?"'s answer for "… de París
    a Madrid?" (pair 0.98): the guards' lists and the pair model read English, so another
    language is reused on an exact repeat only (an English paraphrase, under the same
    trusting settings, is reused by meaning)."""
    with Live.in_process(build_app(trusting_settings(tmp_path))) as live:
        spanish = [
            "¿Cuánto dura el vuelo de Madrid a París?",
            "¿Cuánto dura el vuelo de París a Madrid?",
        ]
        assert_a_paraphrase_is_served_by_meaning(live)
        assert ask(live, spanish[0]).headers["x-boundgate-reuse"] == "miss"
        assert ask(live, spanish[1]).headers["x-boundgate-reuse"] == "miss"
        assert ask(live, spanish[0]).headers["x-boundgate-reuse"] == "hit-exact"


def test_a_text_completion_is_reused_exactly_only(tmp_path: Path) -> None:
    """A trial's finding: "The largest planet is " (a trailing space) was served the stored
    continuation of "The largest planet is" as a semantic hit; a completion's continuation
    depends on every character, so a prompt is reused when it is the same, never by meaning
    (a chat paraphrase, under the same trusting settings, is)."""
    with Live.in_process(build_app(trusting_settings(tmp_path))) as live:

        def complete(prompt: str) -> str:
            body = {"prompt": prompt, "max_tokens": 8, "temperature": 0}
            r = live.http.post("/v1/completions", json=body)
            assert r.status_code == 200, r.text
            return str(r.headers["x-boundgate-reuse"])

        prompts = ["The largest planet is", "The largest planet is ", "the largest planet is"]
        live.gateway.backends["fake"].meanings = {q: "planet" for q in prompts}
        assert [complete(q) for q in prompts] == ["miss", "miss", "miss"]
        assert complete(prompts[1]) == "hit-exact"
        assert_a_paraphrase_is_served_by_meaning(live)


@pytest.fixture
def two_tenants(tmp_path: Path) -> Any:
    settings = fake_settings(tmp_path)
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    acme = arun(store.create_key("acme")).secret
    globex = arun(store.create_key("globex")).secret
    store.close()
    with Live.in_process(build_app(settings)) as live:
        yield live, {"Authorization": f"Bearer {acme}"}, {"Authorization": f"Bearer {globex}"}


@pytest.mark.parametrize("correct", ["no", "false", "true", 0, 1, None, [True]])
def test_feedback_correct_must_be_a_boolean(two_tenants: Any, correct: Any) -> None:
    """``"correct": "no"`` was taken for False and, on an exact hit, deleted the entry."""
    live, acme, _ = two_tenants
    r = live.http.post(
        "/v1/boundgate/feedback", json={"request_id": "req_x", "correct": correct}, headers=acme
    )
    assert_error(r, 400, param="correct", code="invalid_value")


def test_feedback_on_another_tenants_request_is_an_unknown_request(two_tenants: Any) -> None:
    """It was a 403 "that request belongs to another tenant": it told the id exists."""
    live, acme, globex = two_tenants
    r = live.http.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Name a colour."}], "temperature": 0},
        headers=acme,
    )
    theirs = r.headers["x-request-id"]
    other = live.http.post(
        "/v1/boundgate/feedback", json={"request_id": theirs, "correct": True}, headers=globex
    )
    unknown = live.http.post(
        "/v1/boundgate/feedback", json={"request_id": "req_nope", "correct": True}, headers=globex
    )
    assert assert_error(other, 404) == assert_error(unknown, 404)
    own = live.http.post(
        "/v1/boundgate/feedback", json={"request_id": theirs, "correct": True}, headers=acme
    )
    assert_error(own, 400, code="not_a_reuse")  # its owner gets the real answer


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_revoked_behind_the_gateways_back_is_not_served_from_memory(
    tmp_path: Path, stream: bool
) -> None:
    """A hit comes from memory once its answer was read; the ledger row's statement checks it
    is still live (a streamed hit's row is committed before its replay begins). Here another
    process (the store, written directly) revokes it before this gateway heard (no follower
    runs: no lifespan): the check fails, so the answer is forgotten and generated afresh, and
    no hit row is written for it."""
    from boundgate.backends.base import GenerationRequest, Message
    from boundgate.gateway import Finished
    from boundgate.tenants import Tenant

    app = build_app(fake_settings(tmp_path))
    gw = app.state.gateway
    store = gw.store
    store.open()
    backend = gw.backends["fake"]

    async def main() -> None:
        async def complete() -> Any:
            req = GenerationRequest(model="fake", messages=[Message("user", Q)], temperature=0)
            ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
            if not stream:
                return await gw.complete(ctx, req)
            events = [e async for e in gw.stream(ctx, req)]
            assert isinstance(events[-1], Finished) and len(events) > 1
            return events[-1]

        assert (await complete()).reuse.status == "miss"
        first = await complete()  # read from the store, then kept
        assert first.reuse.status == "hit-exact" and not first.reuse.unchecked
        again = await complete()
        assert again.reuse.status == "hit-exact" and again.reuse.unchecked
        calls = backend.calls
        await store.set_entry_document(first.reuse.entry.key, None, revoked=True)
        after = await complete()
        assert after.reuse.status == "miss" and backend.calls == calls + 1
        assert gw.reuse.meta(first.reuse.entry.key) is None  # forgotten
        assert gw.reuse.counters["dropped_answer"] == 1
        await gw.drain()
        rows = await store.ledger()
        assert [r.reuse for r in reversed(rows)] == ["miss", "hit-exact", "hit-exact", "miss"]

    try:
        arun(main())
    finally:
        store.close()


def test_a_new_answer_replaces_the_one_in_its_slot(fake_live: Live) -> None:
    """A fresh answer to a question already answered (here forced by ``no-cache``) takes the
    old one's slot, and the old one is deleted: one slot does not pile up answers that no
    exact lookup reaches any more (a trial found three identical rows under one key)."""
    first = ask(fake_live)
    assert first.headers["x-boundgate-reuse"] == "miss"
    engine = fake_live.gateway.reuse
    assert len(engine) == 1
    again = ask(fake_live, headers={"Cache-Control": "no-cache"})
    assert again.headers["x-boundgate-reuse"] == "bypass"
    assert len(engine) == 1
    assert engine.entry_key(first.headers["x-boundgate-document"]) is None
    hit = ask(fake_live)
    assert hit.headers["x-boundgate-reuse"] == "hit-exact"
    assert hit.headers["x-boundgate-document"] == again.headers["x-boundgate-document"]
    stats = fake_live.http.get("/v1/boundgate/stats").json()["reuse"]
    assert stats["entries"] == 1


def test_a_streamed_hit_whose_client_leaves_during_the_replay_is_ledgered_once_as_cancelled(
    tmp_path: Path,
) -> None:
    """A streamed hit's row is committed (as served) before the replay begins; a client that
    leaves during the replay turns that row into a cancelled one (499), not a second row."""
    from boundgate.backends.base import Chunk, GenerationRequest, Message
    from boundgate.tenants import Tenant

    app = build_app(fake_settings(tmp_path))
    gw = app.state.gateway
    store = gw.store
    store.open()

    async def main() -> None:
        def request() -> tuple[Any, GenerationRequest]:
            req = GenerationRequest(model="fake", messages=[Message("user", Q)], temperature=0)
            return gw.context(Tenant("acme"), "/v1/chat/completions"), req

        assert (await gw.complete(*request())).reuse.status == "miss"
        ctx, req = request()
        events = gw.stream(ctx, req)
        first = await events.__anext__()
        assert isinstance(first, Chunk) and first.text
        await events.aclose()  # the client went away after one chunk
        await gw.drain()
        rows = [r for r in await store.ledger() if r.id == ctx.request_id]
        assert len(rows) == 1
        assert (rows[0].reuse, rows[0].outcome, rows[0].status) == ("hit-exact", "cancelled", 499)

    try:
        arun(main())
    finally:
        store.close()


def test_a_client_leaving_a_long_streamed_hit_over_http_is_heard_and_ledgered_cancelled(
    tmp_path: Path,
) -> None:
    """Over a real socket: a replay yields to the event loop as it goes, so a client that
    closes its stream after the first bytes of a long stored answer is heard as gone, and the
    hit's row becomes cancelled (a trial saw every such row stay ``ok``: nothing in a replay
    waits, so it ran to its end, blocking the server meanwhile)."""
    from boundgate.backends.fake import FakeBackend

    words = 20_000
    backend = FakeBackend("fake", params_b=1, answers=lambda q: "word " * words)
    app = build_app(fake_settings(tmp_path), backends={"fake": backend})
    body = {"messages": [{"role": "user", "content": Q}], "temperature": 0, "max_tokens": 30_000}
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url, timeout=120) as http:
        assert http.post("/v1/chat/completions", json=body).headers["x-boundgate-reuse"] == "miss"
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            assert r.headers["x-boundgate-reuse"] == "hit-exact"
            request_id = r.headers["x-request-id"]
            next(r.iter_raw())  # the first bytes, then the client goes away
        store = app.state.gateway.store

        def row() -> Any:
            found = [x for x in arun(store.ledger()) if x.id == request_id]
            return found if found and found[0].outcome == "cancelled" else None

        rows = wait_until(row)
        assert len(rows) == 1 and (rows[0].reuse, rows[0].status) == ("hit-exact", 499)


def test_null_tools_are_left_out_as_every_null_parameter(fake_live: Live) -> None:
    """A trial: ``"tools": null`` or ``"functions": null`` (what some SDK wrappers send) made
    every request a bypass, never looked up nor stored; null means left out (docs/api.md)."""
    q = "Which planet is known as the red planet?"
    assert ask(fake_live, q, tools=None).headers["x-boundgate-reuse"] == "miss"
    for body in ({"tools": None}, {"functions": None}, {}):
        assert ask(fake_live, q, **body).headers["x-boundgate-reuse"] == "hit-exact", body


@pytest.mark.parametrize("developer_role", [False, True])
def test_developer_and_system_share_a_scope_where_the_model_reads_them_alike(
    tmp_path: Path, developer_role: bool
) -> None:
    """A trial: the local model (whose prompt format has no developer role, so it reads a
    developer message as the system message) answered the same text under either role with
    the same answer, and each missed the other's stored one. Where the model reads them
    alike they are one scope; where its format has the role, two."""
    from boundgate.backends.fake import FakeBackend

    fake = FakeBackend("fake", developer_role=developer_role)
    app = build_app(fake_settings(tmp_path), backends={"fake": fake})
    with Live.in_process(app) as live:

        def ask_as(role: str) -> str:
            body = {
                "messages": [
                    {"role": role, "content": "Answer in one sentence."},
                    {"role": "user", "content": "What is a haiku?"},
                ],
                "temperature": 0,
            }
            r = live.http.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
            prompt_tokens.append(r.json()["usage"]["prompt_tokens"])
            return str(r.headers["x-boundgate-reuse"])

        prompt_tokens: list[int] = []
        assert ask_as("system") == "miss"
        assert ask_as("developer") == ("miss" if developer_role else "hit-exact")
        assert ask_as("developer") == "hit-exact"
        if not developer_role:  # the count made for the system message, not an estimate
            assert prompt_tokens[1] == prompt_tokens[0]
            # and the other way round: an answer a developer message stored counts for a
            # system message's hit as made (a re-check: 55 tokens reported for 32)
            fake.answers = lambda _q: "Another answer."
            body = {
                "messages": [
                    {"role": "developer", "content": "Be brief."},
                    {"role": "user", "content": "What is a sonnet?"},
                ],
                "temperature": 0,
            }
            fresh = live.http.post("/v1/chat/completions", json=body)
            assert fresh.headers["x-boundgate-reuse"] == "miss"
            body["messages"][0]["role"] = "system"
            hit = live.http.post("/v1/chat/completions", json=body)
            assert hit.headers["x-boundgate-reuse"] == "hit-exact"
            counted = fresh.json()["usage"]["prompt_tokens"]
            assert hit.json()["usage"]["prompt_tokens"] == counted


@pytest.mark.parametrize("reads_passthrough", [False, True])
def test_parameters_the_model_ignores_leave_the_scope_alone(
    tmp_path: Path, reads_passthrough: bool
) -> None:
    """A trial: presence_penalty 0.5, logit_bias, top_k 40 and a JSON response_format each
    recomputed the identical answer on the local model, which ignores them. Where the model
    ignores them they do not split the scope; where it reads them (an upstream) they do."""
    from boundgate.backends.fake import FakeBackend

    fake = FakeBackend("fake", reads_passthrough=reads_passthrough)
    app = build_app(fake_settings(tmp_path), backends={"fake": fake})
    q = "What is the speed of light?"
    with Live.in_process(app) as live:
        assert ask(live, q).headers["x-boundgate-reuse"] == "miss"
        for extra in (
            {"presence_penalty": 0.5},
            {"logit_bias": {"50256": 0}},
            {"top_k": 40},
            {"response_format": {"type": "json_object"}},
        ):
            got = ask(live, q, **extra).headers["x-boundgate-reuse"]
            assert got == ("miss" if reads_passthrough else "hit-exact"), extra
