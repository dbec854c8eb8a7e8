"""``model: "auto"`` (issue #15): routing by task, escalation, the route header, the ledger.

Three fake rungs of different sizes, scripted per question (``FakeBackend(answers=...)``),
a ``FakeTaskClassifier`` mapping the questions to tasks, real HTTP, real SQLite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boundgate.assembly import build_app
from boundgate.backends.base import Completion, GenerationRequest, Message, Usage
from boundgate.backends.fake import FakeBackend
from boundgate.energy import FakeMeter, Measurement, Work
from boundgate.energy.estimate import TokenEstimateMeter
from boundgate.errors import ModelNotFoundError, ServiceUnavailableError
from boundgate.routing.ladder import Router
from boundgate.routing.tasks import FakeTaskClassifier, Task
from boundgate.settings import ConfigError, EnergySettings, RoutingSettings, load_settings
from boundgate.testing import ThreadedServer
from helpers import Live, arun, assert_error, wait_until, write_config

MATH = "What is 12 times 12?"
LOOKUP = "What is the capital of Australia?"
CREATIVE = "Write a haiku about rain."
REWRITE = "Summarise the following text: the cat sat on the mat."
CODE = "Write a Python function that reverses a string."
BROKEN = "Tell me about the weather."  # the small rung fails with 503
DOWN = "Write a limerick about an outage."  # every rung fails with 503
UNSURE = "What is 17 times 23?"  # the small rung answers wrong, with a low log-probability

TASKS = {
    MATH: Task.MATH,
    LOOKUP: Task.LOOKUP,
    CREATIVE: Task.CREATIVE,
    REWRITE: Task.REWRITE,
    CODE: Task.CODE,
    BROKEN: Task.CONVERSATION,
    UNSURE: Task.MATH,
}

CONFIG = """
[server]
data_dir = "{data}"
grid_zone = "DE-LU"

[limits]
default_max_tokens = 16
daily_tokens = {daily_tokens}

[reuse]
embedder = "hash"
scorer = "cosine"

[routing.ladders]
default = ["small", "medium", "large"]
short = ["medium", "large"]

[routing.policy.code]
ladder = "default"
first_rung = 1
reasoning = true

[routing.policy.math]     # the built-in policy starts mathematics and lookups at rung 1
first_rung = 0
reasoning = true
logprob = true

[routing.policy.lookup]
first_rung = {lookup_rung}

[models.small]
backend = "fake"
default = true
params_b = 0.135

[models.medium]
backend = "fake"
params_b = 8

[models.large]
backend = "fake"
params_b = 70
aliases = ["big"]
"""


def _down(question: str) -> None:
    if question == DOWN:
        raise ServiceUnavailableError("every model is down")


def small_answers(question: str) -> str:
    _down(question)
    if question == MATH:
        return "144"
    if question == LOOKUP:
        return "I'm sorry, but I can't help with that."
    if question == CREATIVE:
        return "   "
    if question == REWRITE:
        return " ".join(["cat"] * 40)  # runs into the 16-token default limit
    if question == BROKEN:
        raise ServiceUnavailableError("the small model's queue is full")
    if question == UNSURE:
        return "The answer is 381."
    return "small answer"


def small_logprobs(question: str) -> float:
    """The small rung's mean token log-probability (nats per token), when asked for it."""
    return -2.5 if question == UNSURE else -0.2


def medium_answers(question: str) -> str:
    _down(question)
    return {LOOKUP: "Canberra.", CREATIVE: "Grey clouds gather, soft rain falls."}.get(
        question, f"medium answer to {question}"
    )


def large_answers(question: str) -> str:
    _down(question)
    return f"large answer to {question}"


def top_rung_estimate(params_b: float, usage: Usage, pue: float) -> Measurement:
    """EcoLogits' per-token estimate (``TokenEstimateMeter``), computed here independently of
    the gateway: what the counterfactual is for a top rung without a measured profile."""
    meter = TokenEstimateMeter(pue=pue)
    work = Work(
        backend_kind="counterfactual",
        params_b=params_b,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
    )
    return meter.stop(meter.start(), work)


def rungs() -> dict[str, FakeBackend]:
    return {
        "small": FakeBackend(
            "small", params_b=0.135, answers=small_answers, logprobs=small_logprobs
        ),
        "medium": FakeBackend("medium", params_b=8, answers=medium_answers),
        "large": FakeBackend("large", params_b=70, answers=large_answers),
    }


def routed_live(
    tmp_path: Path,
    classifier: FakeTaskClassifier | None,
    extra: str = "",
    lookup_rung: int = 0,
    daily_tokens: int = 0,
) -> Live:
    text = CONFIG.format(data=tmp_path / "data", lookup_rung=lookup_rung, daily_tokens=daily_tokens)
    text += extra
    cfg = write_config(tmp_path / "boundgate.toml", text)
    meter = FakeMeter(wh=0.001)
    app = build_app(
        load_settings(cfg),
        backends=rungs(),
        meter_for=lambda backend: meter,
        reuse_meter=FakeMeter(wh=0.0001),
        task_classifier=classifier,
    )
    srv = ThreadedServer(app).__enter__()
    live = Live(srv, app)
    live.srv_exit = srv.__exit__  # type: ignore[attr-defined]
    return live


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    lv = routed_live(tmp_path, FakeTaskClassifier(TASKS))
    yield lv
    lv.http.close()
    lv.srv_exit(None, None, None)  # type: ignore[attr-defined]


def chat(live: Live, content: str, **kw: Any) -> Any:
    body = {"model": "auto", "messages": [{"role": "user", "content": content}], **kw}
    return live.http.post("/v1/chat/completions", json=body)


def backend(live: Live, name: str) -> FakeBackend:
    b = live.gateway.backends[name]
    assert isinstance(b, FakeBackend)
    return b


# --- routing by task ----------------------------------------------------------------------


def test_math_is_answered_by_the_smallest_rung(live: Live) -> None:
    r = chat(live, MATH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "small"
    assert body["choices"][0]["message"]["content"] == "144"
    assert r.headers["x-boundgate-route"] == "small;answered"
    assert body["boundgate"]["task"] == "math"
    assert (backend(live, "medium").calls, backend(live, "large").calls) == (0, 0)


def test_the_policy_picks_the_first_rung(live: Live) -> None:
    r = chat(live, CODE)  # policy: code starts at rung 1 (medium)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "medium"
    assert r.headers["x-boundgate-route"] == "medium;answered"
    assert backend(live, "small").calls == 0


def test_a_named_ladder_starts_at_its_first_rung(live: Live) -> None:
    r = chat(live, MATH, model="auto:short")
    assert r.status_code == 200, r.text
    assert r.headers["x-boundgate-route"] == "medium;answered"


def test_a_named_model_is_not_routed(live: Live) -> None:
    r = chat(live, LOOKUP, model="small")
    assert r.status_code == 200
    assert "x-boundgate-route" not in r.headers
    assert "sorry" in r.json()["choices"][0]["message"]["content"]
    row = live.ledger()[r.headers["x-request-id"]]
    assert (row.task, row.route, row.counterfactual_wh) == (None, None, None)


# --- escalation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "route", "answer"),
    [
        (LOOKUP, "small;escalated=refusal, medium;answered", "Canberra."),
        (
            CREATIVE,
            "small;escalated=empty, medium;answered",
            "Grey clouds gather, soft rain falls.",
        ),
        (REWRITE, "small;escalated=length, medium;answered", f"medium answer to {REWRITE}"),
        (BROKEN, "small;escalated=error, medium;answered", f"medium answer to {BROKEN}"),
    ],
)
def test_each_trigger_escalates_to_the_next_rung(
    live: Live, question: str, route: str, answer: str
) -> None:
    r = chat(live, question)
    assert r.status_code == 200, r.text
    assert r.headers["x-boundgate-route"] == route
    assert r.json()["model"] == "medium"
    assert r.json()["choices"][0]["message"]["content"] == answer
    row = live.ledger()[r.headers["x-request-id"]]
    assert (row.model, row.route) == ("medium", route)
    reason = route.split("=")[1].split(",")[0]
    metrics = live.http.get("/metrics").text
    assert (
        f'boundgate_routing_escalations_total{{from_model="small",reason="{reason}"}} 1.0'
        in metrics
    )


def test_a_truncation_the_client_asked_for_is_kept(live: Live) -> None:
    r = chat(live, REWRITE, max_tokens=5)
    assert r.status_code == 200
    assert r.headers["x-boundgate-route"] == "small;answered"
    assert r.json()["choices"][0]["finish_reason"] == "length"


def test_the_last_rung_answers_whatever_it_says(tmp_path: Path) -> None:
    live = routed_live(tmp_path, FakeTaskClassifier(TASKS), lookup_rung=2)
    try:
        live.gateway.backends["large"].answers = small_answers  # the top rung refuses too
        r = chat(live, LOOKUP)
        assert r.status_code == 200
        assert r.headers["x-boundgate-route"] == "large;answered"
        assert "sorry" in r.json()["choices"][0]["message"]["content"]
        row = live.ledger()[r.headers["x-request-id"]]
        assert row.rightsizing_avoided_wh == 0.0  # the top rung answered: nothing right-sized
        assert row.counterfactual_wh is not None and row.counterfactual_wh > 0
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_a_task_whose_policy_allows_no_reasoning_gets_none_on_a_reasoning_rung(
    live: Live,
) -> None:
    """The policy table says whether a task may reason: a lookup (not allowed) that climbs to
    a reasoning model is sent with ``reasoning_effort: none`` (cap 0), unless the client asked
    for an effort itself; the same model asked by name reasons at the default effort."""
    medium = backend(live, "medium")
    medium.reasoning, medium.thinking_tokens = True, 12
    r = chat(live, LOOKUP, max_tokens=60)
    assert r.status_code == 200, r.text
    assert r.headers["x-boundgate-route"].endswith("medium;answered")
    assert r.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    asked = chat(live, LOOKUP, max_tokens=60, reasoning_effort="low")
    thought = asked.json()["usage"]["completion_tokens_details"]["reasoning_tokens"]
    assert thought >= 12
    body = {"model": "medium", "messages": [{"role": "user", "content": LOOKUP}], "max_tokens": 60}
    direct = live.http.post("/v1/chat/completions", json=body)
    assert direct.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == thought


# --- what it saved ------------------------------------------------------------------------


def test_ledger_records_task_route_counterfactual_and_savings(live: Live) -> None:
    r = chat(live, LOOKUP)
    row = live.ledger()[r.headers["x-request-id"]]
    assert row.task == "lookup" and row.model == "medium"
    assert row.route == "small;escalated=refusal, medium;answered"
    # both rungs ran: two generations metered at 0.001 Wh each, plus two reuse lookups
    assert row.wh == pytest.approx(2 * 0.001 + 2 * 0.0001)
    usage = r.json()["usage"]
    # the top rung is a local (fake) model: this machine's PUE, energy.pue = 1.0
    answer = Usage(usage["prompt_tokens"], usage["completion_tokens"])
    expected = top_rung_estimate(70, answer, 1.0)
    assert row.counterfactual_wh == pytest.approx(expected.wh)
    assert row.counterfactual_wh >= row.wh
    assert row.rightsizing_avoided_wh == pytest.approx(row.counterfactual_wh - row.wh)
    assert row.rightsizing_avoided_gco2 == pytest.approx(
        row.rightsizing_avoided_wh * row.gco2_per_kwh / 1000.0
    )
    # both rungs' tokens are in the ledger, the answering rung's in the response
    assert row.completion_tokens > usage["completion_tokens"]
    info = r.json()["boundgate"]
    assert info["rightsizing_avoided_wh"] == pytest.approx(row.rightsizing_avoided_wh)
    assert info["counterfactual_wh"] == pytest.approx(row.counterfactual_wh)


def test_the_counterfactual_comes_from_the_top_rungs_measured_profile(live: Live) -> None:
    """With an energy profile of the top rung measured on this host (``boundgate models
    profile``), the counterfactual is that profile's rates times the answer's tokens, not the
    per-token estimate."""
    from boundgate.profiles import host_info
    from boundgate.store import EnergyProfileRow

    gw = live.gateway
    host, cpu = host_info()[0], "test CPU"
    large = gw.backends["large"]
    profile = EnergyProfileRow(
        model="large", model_version=large.version, measured_at=1.0, host=host, cpu=cpu,
        method="rapl", prompt_wh_per_1k_tokens=2.0, prompt_wh_per_1k_tokens_low=1.0,
        prompt_wh_per_1k_tokens_high=3.0, output_wh_per_1k_tokens=20.0,
        output_wh_per_1k_tokens_low=10.0, output_wh_per_1k_tokens_high=30.0,
        prompt_tokens_per_s=100.0, output_tokens_per_s=10.0, runs=3, prompt_tokens=512,
        output_tokens=64,
    )  # fmt: skip
    arun(gw.store.put_profile(profile))
    arun(gw.profiles.refresh())
    r = chat(live, LOOKUP)
    row = live.ledger()[r.headers["x-request-id"]]
    usage = r.json()["usage"]
    expected = (usage["prompt_tokens"] * 2.0 + usage["completion_tokens"] * 20.0) / 1000.0
    assert row.counterfactual_wh == pytest.approx(expected)
    assert row.rightsizing_avoided_wh == pytest.approx(max(0.0, expected - row.wh))


def test_savings_are_never_negative_nor_above_the_counterfactual() -> None:
    from boundgate.routing.ladder import Route, RoutePlan

    plan = RoutePlan("math", "default", ("s", "l"), "l", reasoning=True)
    cf = top_rung_estimate(70, Usage(10, 20), 1.2)
    for spent in (0.0, cf.wh / 2, cf.wh, cf.wh * 10):
        route = Route(plan)
        route.answered("s", reused=False)
        route.savings(cf, spent, 400.0, reused=False)
        assert 0.0 <= route.avoided_wh <= route.counterfactual_wh
        assert route.avoided_wh == pytest.approx(max(0.0, cf.wh - spent))
    route = Route(plan)
    route.answered("s", reused=True)
    route.savings(cf, 0.0, 400.0, reused=True)
    assert route.avoided_wh == 0.0  # reuse claims its own avoided energy


def test_report_and_admin_ledger_show_right_sizing(live: Live) -> None:
    chat(live, MATH)
    chat(live, LOOKUP)
    rows = live.http.get("/v1/boundgate/ledger").json()["data"]
    routed = [r for r in rows if r["route"]]
    assert {r["task"] for r in routed} == {"math", "lookup"}
    assert all(r["rightsizing_avoided_wh"] > 0 for r in routed)
    report = live.http.get("/v1/boundgate/report").json()["data"]
    assert sum(r["routed"] for r in report) == 2
    assert sum(r["rightsizing_avoided_wh"] for r in report) == pytest.approx(
        sum(r["rightsizing_avoided_wh"] for r in routed)
    )
    metrics = live.http.get("/metrics").text
    assert 'boundgate_routing_requests_total{model="small",task="math"} 1.0' in metrics
    assert 'boundgate_routing_requests_total{model="medium",task="lookup"} 1.0' in metrics
    assert "boundgate_routing_avoided_energy_joules_total" in metrics


# --- the log-probability trigger ------------------------------------------------------------

LOGPROB = "\n[routing.logprob_thresholds]\nsmall = -1.0\n"


def test_a_low_logprob_answer_escalates_and_is_not_stored(tmp_path: Path) -> None:
    live = routed_live(tmp_path, FakeTaskClassifier(TASKS), LOGPROB)
    try:
        r = chat(live, UNSURE, temperature=0)
        assert r.status_code == 200, r.text
        assert r.headers["x-boundgate-route"] == "small;escalated=logprob, medium;answered"
        assert r.json()["choices"][0]["message"]["content"] == f"medium answer to {UNSURE}"
        row = live.ledger()[r.headers["x-request-id"]]
        assert row.route == "small;escalated=logprob, medium;answered"
        metrics = live.http.get("/metrics").text
        assert 'boundgate_routing_escalations_total{from_model="small",reason="logprob"} 1.0' in (
            metrics
        )
        # a confident answer of the same rung is kept
        r = chat(live, MATH, temperature=0)
        assert r.headers["x-boundgate-route"] == "small;answered"
        # the unsure answer was not stored: a repeat asks the small rung again (a stored
        # answer has no log-probability to check) and the medium rung's own answer is reused
        r = chat(live, UNSURE, temperature=0)
        assert r.headers["x-boundgate-route"] == "small;escalated=logprob, medium;reused"
        assert backend(live, "small").calls == 3
        assert backend(live, "medium").calls == 1
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_a_rung_never_serves_an_answer_its_logprob_check_did_not_keep(tmp_path: Path) -> None:
    """A helper's audit: a request naming "small" stored its unsure answer; an auto request
    for the same question then got it as "small;reused", where fresh it escalates (a stored
    answer has no log-probability to check). The rung's scope now holds its threshold."""
    live = routed_live(tmp_path, FakeTaskClassifier(TASKS), LOGPROB)
    try:
        r = chat(live, UNSURE, temperature=0, model="small")
        assert r.json()["choices"][0]["message"]["content"] == "The answer is 381."
        again = chat(live, UNSURE, temperature=0, model="small")
        assert again.headers["x-boundgate-reuse"] == "hit-exact"  # its own repeat, as before
        r = chat(live, UNSURE, temperature=0)
        assert r.headers["x-boundgate-route"] == "small;escalated=logprob, medium;answered"
        # a confident rung answer is stored in the rung's scope and reused there
        assert chat(live, MATH, temperature=0).headers["x-boundgate-route"] == "small;answered"
        assert chat(live, MATH, temperature=0).headers["x-boundgate-route"] == "small;reused"
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_without_a_threshold_a_low_logprob_answer_is_kept(live: Live) -> None:
    r = chat(live, UNSURE)  # the fake rungs' versions have no shipped calibration
    assert r.headers["x-boundgate-route"] == "small;answered"
    assert r.json()["choices"][0]["message"]["content"] == "The answer is 381."


# --- reuse --------------------------------------------------------------------------------


def test_a_repeat_is_reused_from_the_rung_that_answered(live: Live) -> None:
    chat(live, MATH, temperature=0)
    r = chat(live, MATH, temperature=0)
    assert r.headers["x-boundgate-route"] == "small;reused"
    assert r.headers["x-boundgate-reuse"] == "hit-exact"
    assert backend(live, "small").calls == 1
    row = live.ledger()[r.headers["x-request-id"]]
    assert row.reuse == "hit-exact" and row.rightsizing_avoided_wh == 0.0


def test_a_reused_refusal_still_escalates_and_no_answer_crosses_models(live: Live) -> None:
    chat(live, LOOKUP, temperature=0)
    r = chat(live, LOOKUP, temperature=0)
    # the small rung's stored refusal is checked like a fresh one; the medium rung's own
    # stored answer is served, never the small rung's under the medium's name
    assert r.headers["x-boundgate-route"] == "small;escalated=refusal, medium;reused"
    assert r.json()["choices"][0]["message"]["content"] == "Canberra."
    assert (backend(live, "small").calls, backend(live, "medium").calls) == (1, 1)


def test_a_stored_answer_on_any_rung_is_served_when_the_budget_is_spent(tmp_path: Path) -> None:
    """With the daily budget spent, ``model: "auto"`` still serves a stored answer (hits use
    no tokens), found on whichever rung holds it, and refuses a question none holds."""
    # room for a lookup's climb: each rung's worst case (about 50 tokens here) is held in turn
    live = routed_live(tmp_path, FakeTaskClassifier(TASKS), daily_tokens=100)
    try:
        math, lookup = chat(live, MATH, temperature=0), chat(live, LOOKUP, temperature=0)
        assert (math.status_code, lookup.status_code) == (200, 200), lookup.text
        spent = [chat(live, f"Tell me fact number {i}.", temperature=0) for i in range(12)]
        assert spent[-1].status_code == 429, [r.status_code for r in spent]
        calls = {n: backend(live, n).calls for n in ("small", "medium", "large")}
        again = chat(live, MATH, temperature=0)
        assert again.status_code == 200, again.text
        assert again.headers["x-boundgate-route"] == "small;reused"
        found = chat(live, LOOKUP, temperature=0)  # the small rung's refusal, then the medium's
        assert found.status_code == 200, found.text
        assert found.json()["choices"][0]["message"]["content"] == "Canberra."
        assert found.headers["x-boundgate-route"].endswith("medium;reused")
        new = chat(live, "What is the capital of Peru?", temperature=0)
        assert new.status_code == 429
        assert new.json()["error"]["code"] == "daily_token_budget_exceeded"
        assert {n: backend(live, n).calls for n in calls} == calls  # nothing generated
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


# --- streams and text completions ---------------------------------------------------------


def _events(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def test_a_stream_is_escalated_before_any_token_is_sent(live: Live) -> None:
    body = {
        "model": "auto",
        "stream": True,
        "messages": [{"role": "user", "content": LOOKUP}],
    }
    with live.http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["x-boundgate-route"] == "small;escalated=refusal, medium;answered"
        events = _events(r.read().decode())
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text == "Canberra."
    assert {e["model"] for e in events} == {"medium"}
    assert events[-1]["boundgate"]["route"] == "small;escalated=refusal, medium;answered"
    row = live.ledger()[r.headers["x-request-id"]]
    assert row.stream and row.model == "medium" and row.outcome == "ok"


def test_a_client_leaving_a_long_routed_stream_over_http_is_heard_and_ledgered_cancelled(
    tmp_path: Path,
) -> None:
    """Over a real socket: a model "auto" answer is replayed as a stream once a rung gave it,
    and that replay yields to the event loop as it goes, as a stored answer's does, so a
    client that closes its stream after the first bytes of a long answer is heard as gone and
    its row is cancelled (it was not: nothing in the replay waited, so it ran to its end and
    the row said ``ok``, blocking the server meanwhile)."""
    text = CONFIG.format(data=tmp_path / "data", lookup_rung=0, daily_tokens=0)
    cfg = write_config(tmp_path / "boundgate.toml", text)
    words = 20_000
    backends = {
        name: FakeBackend(name, params_b=b.params_b, answers=lambda q: "word " * words)
        for name, b in rungs().items()
    }
    app = build_app(
        load_settings(cfg), backends=backends, task_classifier=FakeTaskClassifier(TASKS)
    )
    body = {
        "model": "auto",
        "stream": True,
        "max_tokens": 30_000,
        "messages": [{"role": "user", "content": MATH}],
    }
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url, timeout=120) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.headers["x-boundgate-route"] == "small;answered"
            request_id = r.headers["x-request-id"]
            next(r.iter_raw())  # the first bytes, then the client goes away
        store = app.state.gateway.store
        rows = wait_until(lambda: [x for x in arun(store.ledger()) if x.id == request_id])
        assert len(rows) == 1
        assert (rows[0].outcome, rows[0].status, rows[0].route) == (
            "cancelled",
            499,
            "small;answered",
        )


def test_text_completions_are_routed(live: Live) -> None:
    r = live.http.post("/v1/completions", json={"model": "auto", "prompt": LOOKUP})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "medium"
    assert r.json()["choices"][0]["text"] == "Canberra."
    assert r.headers["x-boundgate-route"] == "small;escalated=refusal, medium;answered"


# --- models and errors --------------------------------------------------------------------


def test_auto_is_listed_in_models(live: Live) -> None:
    data = {m["id"]: m for m in live.http.get("/v1/models").json()["data"]}
    assert {"small", "medium", "large", "auto", "auto:default", "auto:short"} <= set(data)
    assert data["auto"]["boundgate"]["ladders"]["default"] == ["small", "medium", "large"]
    assert data["auto:short"]["boundgate"]["ladders"] == {"short": ["medium", "large"]}
    assert live.http.get("/v1/models/auto").json()["id"] == "auto"
    assert_error(live.http.get("/v1/models/auto:nope"), 404, code="model_not_found")


def test_an_unknown_ladder_or_model_is_404(live: Live) -> None:
    err = assert_error(chat(live, MATH, model="auto:nope"), 404, "model", "model_not_found")
    assert "ladder" in err["message"]
    assert_error(chat(live, MATH, model="nope"), 404, "model", "model_not_found")
    rows = [r for r in live.ledger().values() if r.status == 404]
    assert len(rows) == 2


def test_a_bad_parameter_on_auto_is_400(live: Live) -> None:
    assert_error(chat(live, MATH, logprobs=True), 400, "logprobs", "unsupported_parameter")


def test_without_a_classifier_requests_are_unclassified(tmp_path: Path) -> None:
    live = routed_live(tmp_path, None, "\n[routing.unclassified]\nfirst_rung = 1\n")
    try:
        r = chat(live, MATH)
        assert r.status_code == 200
        assert r.headers["x-boundgate-route"] == "medium;answered"
        assert r.json()["boundgate"]["task"] == "unclassified"
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ('[routing.ladders]\ndefault = ["small", "missing"]\n', "routing.ladders.default[1]"),
        ("[routing.ladders]\nempty = []\n", "routing.ladders.empty"),
        ('[routing.policy.math]\nladder = "nope"\n', "routing.policy.math.ladder"),
        ("[routing.policy.math]\nfirst_rung = 3\n", "routing.policy.math.first_rung"),
        ('[routing.policy.poetry]\nladder = "default"\n', "routing.policy.poetry"),
        ('[routing]\nauto_model = "small"\n', "routing.auto_model"),
        ("[routing.logprob_thresholds]\nmissing = -1.0\n", "routing.logprob_thresholds.missing"),
        ("[routing.logprob_thresholds]\nsmall = 0.5\n", "routing.logprob_thresholds.small"),
    ],
)
def test_bad_routing_config_is_a_config_error_naming_the_setting(
    tmp_path: Path, extra: str, names: str
) -> None:
    cfg = write_config(
        tmp_path / "b.toml",
        f"""
{extra}
[models.small]
backend = "fake"
default = true
""",
    )
    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("]", r"\]")):
        load_settings(cfg)


def test_aliases_may_be_rungs(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "b.toml",
        """
[routing.ladders]
default = ["small", "big"]
[models.small]
backend = "fake"
default = true
[models.large]
backend = "fake"
aliases = ["big"]
""",
    )
    s = load_settings(cfg)
    router = Router(
        s.routing, s.energy, default_model="small", aliases={"big": "large"}, classifier=None
    )
    assert router.ladders["default"] == ("small", "large")


# --- the router's checks, without a server ------------------------------------------------


def _router(**kw: Any) -> Router:
    return Router(
        RoutingSettings(ladders={"default": ["s", "l"]}, **kw),
        EnergySettings(),
        default_model="s",
        aliases={},
        classifier=FakeTaskClassifier({MATH: Task.MATH}),
    )


def _c(text: str, finish: str = "stop", tokens: int = 3) -> Completion:
    return Completion(text, finish, Usage(5, tokens))


@pytest.mark.parametrize(
    ("completion", "max_tokens", "client_limit", "reason"),
    [
        (_c("144"), 16, False, None),
        (_c(""), 16, False, "empty"),
        (_c(" \n"), 16, False, "empty"),
        (_c("cat " * 16, "length", 16), 16, False, "length"),  # the gateway's default limit
        (_c("cat " * 16, "length", 16), 16, True, None),  # the client's own limit
        (_c("cat " * 9, "length", 9), 16, True, "length"),  # cut before it: context ran out
        (_c("I cannot help with that request."), 16, False, "refusal"),
        (_c("As an AI language model, I don't have opinions."), 16, False, "refusal"),
        (_c("Sorry, I can't do that."), 16, False, "refusal"),
        (_c("The answer is 4. I can't stress enough how easy that was."), 16, False, None),
    ],
)
def test_escalation_checks(
    completion: Completion, max_tokens: int, client_limit: bool, reason: str | None
) -> None:
    assert _router().escalation(completion, max_tokens, client_limit) == reason


def test_triggers_can_be_turned_off() -> None:
    router = _router(escalate_on=["length"])
    assert router.escalation(_c(""), 16, False) is None
    assert router.escalation(_c("I cannot help with that."), 16, False) is None


def _lp(text: str, mean: float | None) -> Completion:
    return Completion(text, "stop", Usage(5, 3), mean)


@pytest.mark.parametrize(
    ("completion", "threshold", "reason"),
    [
        (_lp("381", -2.5), -1.0, "logprob"),
        (_lp("391", -0.2), -1.0, None),
        (_lp("391", -1.0), -1.0, None),  # at the threshold: kept (below escalates)
        (_lp("391", None), -1.0, None),  # reused or upstream: no log-probability, kept
        (_lp("391", -2.5), None, None),  # the rung has no threshold
        (_lp("", -2.5), -1.0, "empty"),  # the cheaper checks name the reason first
        (_lp("I cannot help with that.", -3.0), -1.0, "refusal"),
    ],
)
def test_the_logprob_check(completion: Completion, threshold: float | None, reason: str) -> None:
    assert _router().escalation(completion, 16, False, threshold) == reason


def test_a_rungs_logprob_threshold_comes_from_settings_else_the_shipped_calibration() -> None:
    from boundgate.routing.ladder import load_logprob_thresholds

    shipped = load_logprob_thresholds()
    assert shipped and all(t < 0 for t in shipped.values())
    version, calibrated = next(iter(shipped.items()))
    local = FakeBackend("s", version=version)
    other = FakeBackend("l", version="another-model@sha256:0")
    assert _router().logprob_threshold(local) == calibrated
    assert _router().logprob_threshold(other) is None
    configured = _router(logprob_thresholds={"s": -1.5, "l": -0.9})
    assert configured.logprob_threshold(local) == -1.5
    assert configured.logprob_threshold(other) == -0.9
    assert _router(logprob_thresholds={"s": 0.0}).logprob_threshold(local) is None  # off
    off = _router(escalate_on=["empty", "length", "refusal", "error"])
    assert off.logprob_threshold(local) is None
    local.remote = True  # an upstream model reports no log-probabilities
    assert _router().logprob_threshold(local) is None


def test_plan_runs_the_classifier_and_follows_the_policy() -> None:
    router = _router()

    def plan(text: str, model: str = "auto") -> Any:
        req = GenerationRequest(model=model, messages=[Message("user", text)])
        return asyncio.run(router.plan(req))

    p = plan(MATH)  # the built-in policy: mathematics from rung 1, with the logprob check
    assert (p.task, p.ladder, p.rungs, p.top, p.reasoning, p.logprob) == (
        "math", "default", ("l",), "l", True, True,
    )  # fmt: skip
    hello = plan("hello")
    assert hello.task == "conversation" and not hello.reasoning and not hello.logprob
    assert hello.rungs == ("s", "l")
    with pytest.raises(ModelNotFoundError):
        plan(MATH, "auto:nope")


def test_the_built_in_policy_fits_a_one_rung_ladder_and_survives_configuring_a_task() -> None:
    one_rung = Router(
        RoutingSettings(),  # no ladders: the default ladder is the default model alone
        EnergySettings(),
        default_model="s",
        aliases={},
        classifier=FakeTaskClassifier({MATH: Task.MATH}),
    )
    req = GenerationRequest(model="auto", messages=[Message("user", MATH)])
    assert asyncio.run(one_rung.plan(req)).rungs == ("s",)  # rung 1 clamped to the top
    configured = RoutingSettings(policy={"code": {"first_rung": 1}})
    assert configured.policy["math"].first_rung == 1 and configured.policy["math"].logprob
    assert configured.policy["code"].first_rung == 1 and not configured.policy["code"].logprob


def test_the_built_in_policy_survives_the_settings_round_trip_to_workers(tmp_path: Path) -> None:
    """``serve --workers`` hands each worker the settings as JSON: the built-in policy's
    rung 1 on a one-rung ladder must still be taken as the built-in one (clamped), while a
    configured rung past the ladder stays an error."""
    from boundgate.settings import Settings

    cfg = write_config(tmp_path / "b.toml", '[models.small]\nbackend = "fake"\ndefault = true\n')
    settings = load_settings(cfg)
    again = Settings(**json.loads(settings.model_dump_json()))
    assert again.routing.policy["math"].first_rung == 1
    with pytest.raises(ValueError, match=r"routing\.policy\.math\.first_rung"):
        Settings(**{**json.loads(settings.model_dump_json()),
                    "routing": {"policy": {"math": {"first_rung": 2}}}})  # fmt: skip


def test_the_logprob_check_applies_to_the_tasks_whose_policy_says_so(tmp_path: Path) -> None:
    live = routed_live(tmp_path, FakeTaskClassifier({**TASKS, UNSURE: Task.CREATIVE}), LOGPROB)
    try:  # a creative answer with a low log-probability is only a less predictable text
        r = chat(live, UNSURE)
        assert r.headers["x-boundgate-route"] == "small;answered"
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_refusal_patterns_can_come_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "refusals.txt"
    f.write_text("# mine\n^nope\\b\n")
    router = _router(refusal_patterns=f)
    assert router.escalation(_c("Nope, not today."), 16, False) == "refusal"
    assert router.escalation(_c("I cannot help with that."), 16, False) is None


def test_the_dashboard_shows_right_sizing_beside_reuse(live: Live) -> None:
    chat(live, LOOKUP)
    overview = live.http.get("/dashboard").text
    assert "Avoided by right-sizing" in overview and "Energy avoided" in overview
    assert "1 auto-routed request:" in overview
    ledger = live.http.get("/dashboard/ledger").text
    assert 'title="route: small;escalated=refusal, medium;answered"' in ledger
    assert "right-sized" in ledger
    csv_text = live.http.get("/dashboard/ledger.csv").text
    header, first = csv_text.splitlines()[:2]
    assert "route" in header.split(",") and "rightsizing_avoided_wh" in header.split(",")
    assert "small;escalated=refusal, medium;answered" in first


def test_batch_lines_are_routed(tmp_path: Path) -> None:
    live = routed_live(
        tmp_path, FakeTaskClassifier(TASKS), '\n[scheduler]\npolicy = "now"\npoll_s = 0.05\n'
    )
    try:
        client = live.openai()
        lines = [
            {
                "custom_id": name,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "auto", "messages": [{"role": "user", "content": q}]},
            }
            for name, q in (("math", MATH), ("lookup", LOOKUP))
        ]
        data = "\n".join(json.dumps(x) for x in lines).encode()
        f = client.files.create(file=("in.jsonl", data), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
        out = {
            o["custom_id"]: o["response"]["body"]
            for o in map(json.loads, client.files.content(done.output_file_id).text.splitlines())
        }
        assert out["math"]["model"] == "small"
        assert out["lookup"]["model"] == "medium"
        assert out["lookup"]["boundgate"]["route"] == "small;escalated=refusal, medium;answered"
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_a_failed_creative_auto_request_gives_its_novelty_unit_back(tmp_path: Path) -> None:
    """An auto request above the dial counts one novelty unit at its first rung's lookup
    (``ctx.novel``, so later rungs do not count it again); when the route then fails, nothing
    fresh was made and the unit is given back, as for a named model (it was kept: the next
    creative request of the day got 429, a helper's reading of the split pipeline)."""
    live = routed_live(
        tmp_path,
        FakeTaskClassifier(TASKS),
        "\n[creativity]\nmin_askers = 100\n",
    )
    live.gateway.creativity.limits.novelty_per_day = 1
    live.gateway.creativity.limits.novelty_exhausted = "reject"
    try:
        failed = chat(live, DOWN, temperature=1.2)
        assert failed.status_code == 503, failed.text
        r = chat(live, CREATIVE, temperature=1.2)
        assert r.status_code == 200, r.text
        assert_error(chat(live, MATH, temperature=1.2), 429, code="novelty_budget_exhausted")
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_an_escalated_creative_request_counts_once_against_the_novelty_budget(
    tmp_path: Path,
) -> None:
    live = routed_live(
        tmp_path,
        FakeTaskClassifier(TASKS),
        "\n[creativity]\nmin_askers = 100\n",
    )
    live.gateway.creativity.limits.novelty_per_day = 1
    live.gateway.creativity.limits.novelty_exhausted = "reject"
    try:
        r = chat(live, CREATIVE, temperature=1.2)  # above the dial: novel, empty → escalated
        assert r.status_code == 200, r.text
        assert r.headers["x-boundgate-route"] == "small;escalated=empty, medium;answered"
        row = live.ledger()[r.headers["x-request-id"]]
        assert row.extra.get("novel") == 1
        assert_error(chat(live, MATH, temperature=1.2), 429, code="novelty_budget_exhausted")
    finally:
        live.http.close()
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]
