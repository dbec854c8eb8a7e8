"""Creativity buffer (pre-generated variants for popular creative prompts) and novelty budgets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from boundgate.assembly import build_app
from boundgate.scheduler.handlers import background_tenant
from boundgate.testing import ThreadedServer
from helpers import Live, assert_error, fake_settings, wait_until

HAIKU = "Write a haiku about autumn."


def ask(live: Live, user: str, content: str = HAIKU, temperature: float = 1.0) -> Any:
    return live.http.post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": content}],
            "temperature": temperature,
            "user": user,
        },
    )


def first_exact(live: Live) -> str:
    """The exact key of the one creative prompt in these tests (from the jobs queued)."""
    import json

    (job, *_) = [j for j in asyncio.run(live.gateway.store.jobs()) if j.kind == "variants"]
    return str(json.loads(job.payload)["exact"])


def serve(tmp_path: Path, min_askers: int = 2, **limits: Any) -> tuple[ThreadedServer, Live]:
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    settings.creativity.min_askers = min_askers
    settings.creativity.variants = 3
    for k, v in limits.items():
        setattr(settings.limits, k, v)
    app = build_app(settings)
    srv = ThreadedServer(app).__enter__()
    return srv, Live(srv, app)


def test_popular_creative_prompt_gets_variants_never_repeated_to_one_user(
    tmp_path: Path,
) -> None:
    srv, live = serve(tmp_path)
    try:
        store = live.gateway.store
        first = ask(live, "u1")
        assert first.headers["x-boundgate-reuse"] == "bypass"  # fresh: above the dial
        assert ask(live, "u2").headers["x-boundgate-reuse"] == "bypass"
        # two askers: a round of 3 variants is generated (policy "now": at once)
        wait_until(
            lambda: any(
                j.kind == "variants" and j.state == "done" for j in asyncio.run(store.jobs())
            )
        )
        served = []
        for _ in range(3):
            r = ask(live, "u1")
            assert r.headers["x-boundgate-reuse"] == "hit-variant", r.headers
            assert float(r.headers["x-boundgate-energy-avoided-wh"]) > 0
            served.append(r.headers["x-boundgate-document"])
        assert len(set(served)) == 3  # never the same variant twice to one user
        # every variant has been served once: the next round is queued and made
        wait_until(lambda: asyncio.run(store.variant_count(first_exact(live))) == 6)
        live.gateway.creativity.jobs = None  # no further rounds from here on
        # u2 may get variants u1 had; u1 gets only new ones
        assert ask(live, "u2").headers["x-boundgate-reuse"] == "hit-variant"
        for _ in range(3):
            r = ask(live, "u1")
            assert r.headers["x-boundgate-reuse"] == "hit-variant", r.headers
            served.append(r.headers["x-boundgate-document"])
        assert len(set(served)) == 6
        # no more rounds: u1 has seen them all, so a fresh answer
        assert ask(live, "u1").headers["x-boundgate-reuse"] == "bypass"
        rows = live.ledger().values()
        assert sum(r.reuse == "hit-variant" for r in rows) == 7
        # the fresh ones, and the six variants: each a fresh creative generation
        assert sum(bool(r.extra.get("novel")) for r in rows) == 3 + 6
        # a deterministic request is untouched by all this
        assert ask(live, "u1", temperature=0).headers["x-boundgate-reuse"] == "miss"
        # nor is another temperature: variants drawn at 1.0 are no draws at 1.5 (a trial's
        # finding: a new asker at 1.5 was served one)
        assert ask(live, "u3", temperature=1.5).headers["x-boundgate-reuse"] == "bypass"
        assert ask(live, "u2", temperature=1.0).headers["x-boundgate-reuse"] == "hit-variant"
    finally:
        live.http.close()
        srv.__exit__()


def test_a_request_that_asks_for_fresh_content_is_never_served_a_variant(
    tmp_path: Path,
) -> None:
    """A helper's audit: `Cache-Control: no-cache`, a max-age and a time-sensitive question
    were checked only after the temperature dial, so a variant made a week before was served
    to "no-cache, max-age=0" and to "… today's news"."""
    srv, live = serve(tmp_path)
    news = "Write a haiku about today's news."
    try:
        store = live.gateway.store
        for content in (HAIKU, news):
            assert ask(live, "u1", content).headers["x-boundgate-reuse"] == "bypass"
            assert ask(live, "u2", content).headers["x-boundgate-reuse"] == "bypass"
        wait_until(
            lambda: any(
                j.kind == "variants" and j.state == "done" for j in asyncio.run(store.jobs())
            )
        )
        # none is made for the time-sensitive prompt: none could be served
        assert sum(j.kind == "variants" for j in asyncio.run(store.jobs())) == 1
        body = {"messages": [{"role": "user", "content": HAIKU}], "temperature": 1.0}
        for headers, extra in (
            ({"Cache-Control": "no-cache"}, {}),
            ({"Cache-Control": "max-age=3600"}, {}),
            ({}, {"boundgate": {"max_age": 3600}}),
        ):
            r = live.http.post(
                "/v1/chat/completions", json=body | extra | {"user": "u3"}, headers=headers
            )
            assert r.status_code == 200 and r.headers["x-boundgate-reuse"] == "bypass", headers
        assert ask(live, "u3", news).headers["x-boundgate-reuse"] == "bypass"
        assert ask(live, "u3").headers["x-boundgate-reuse"] == "hit-variant"  # the others may
    finally:
        live.http.close()
        srv.__exit__()


def test_novelty_budget_gives_429_when_spent_and_no_variant_is_left(tmp_path: Path) -> None:
    srv, live = serve(tmp_path, min_askers=100, novelty_per_day=2)  # no variants in this test
    try:
        assert ask(live, "a", "Invent a word.").status_code == 200
        assert ask(live, "b", "Invent a colour.").status_code == 200
        r = ask(live, "c", "Invent a planet.")
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "novelty_budget_exhausted"
        assert "no pre-generated variant is left" in r.json()["error"]["message"]
        assert int(r.headers["retry-after"]) > 0
        # deterministic requests don't draw on the novelty budget
        assert ask(live, "c", "Invent a planet.", temperature=0).status_code == 200
        row = live.ledger()[r.headers["x-request-id"]]
        # the lookup's decision is on its row, so /metrics counts it as the stats do
        assert row.status == 429 and row.reuse == "bypass", row
        metrics = live.http.get("/metrics").text
        assert 'boundgate_reuse_total{model="fake",result="bypass"} 3.0' in metrics, [
            line for line in metrics.splitlines() if line.startswith("boundgate_reuse_total")
        ]
        # a request that takes no stored answer is told so, not that none is left (a trial)
        body = {"messages": [{"role": "user", "content": "Invent a planet."}], "temperature": 1}
        r = live.http.post(
            "/v1/chat/completions", json=body | {"user": "c"}, headers={"Cache-Control": "no-cache"}
        )
        message = r.json()["error"]["message"]
        assert r.status_code == 429 and "is left" not in message, message
        assert "takes no stored answer" in message, message
    finally:
        live.http.close()
        srv.__exit__()


def test_a_request_that_opts_out_of_reuse_still_counts_against_the_novelty_budget(
    tmp_path: Path,
) -> None:
    """A trial: with the novelty budget spent, ``Cache-Control: no-store`` (or
    ``"boundgate": {"reuse": "off"}``) at temperature 1 was answered every time: a fresh
    creative generation all the same, it is counted and refused like any other."""
    srv, live = serve(tmp_path, min_askers=100, novelty_per_day=2)  # no variants here
    try:
        body = {"messages": [{"role": "user", "content": "Invent a word."}], "temperature": 1}
        r = live.http.post("/v1/chat/completions", json=body, headers={"Cache-Control": "no-store"})
        assert r.status_code == 200 and r.headers["x-boundgate-reuse"] == "bypass", r.text
        assert live.ledger()[r.headers["x-request-id"]].extra.get("novel") == 1
        assert ask(live, "b", "Invent a colour.").status_code == 200  # the budget is spent
        for headers, extra in (
            ({"Cache-Control": "no-store"}, {}),
            ({"Cache-Control": "private, no-store"}, {}),
            ({}, {"boundgate": {"reuse": "off"}}),
        ):
            r = live.http.post("/v1/chat/completions", json=body | extra, headers=headers)
            err = assert_error(r, 429, code="novelty_budget_exhausted")
            assert "takes no stored answer" in err["message"], err
        # at or below the dial an opted-out request is no creative one
        cold = body | {"temperature": 0}
        r = live.http.post("/v1/chat/completions", json=cold, headers={"Cache-Control": "no-store"})
        assert r.status_code == 200, r.text
    finally:
        live.http.close()
        srv.__exit__()


def test_reject_mode_refuses_even_with_variants(tmp_path: Path) -> None:
    srv, live = serve(tmp_path, novelty_per_day=2, novelty_exhausted="reject")
    try:
        assert ask(live, "u1").status_code == 200
        assert ask(live, "u2").status_code == 200
        store = live.gateway.store
        wait_until(
            lambda: any(
                j.kind == "variants" and j.state == "done" for j in asyncio.run(store.jobs())
            )
        )
        refused = ask(live, "u3")
        assert refused.status_code == 429
        # an operator's trial: the message said no variant was left, though "reject" never
        # serves one; it names the request's temperature, which made it a creative one
        message = refused.json()["error"]["message"]
        assert "variant" not in message and "this request's temperature 1 is" in message, message
    finally:
        live.http.close()
        srv.__exit__()


@pytest.mark.parametrize("mode", ["variants", "reject"])
def test_only_if_cached_above_the_dial_is_a_504_not_the_novelty_budgets_429(
    tmp_path: Path, mode: str
) -> None:
    """A re-check's finding: ``Cache-Control: only-if-cached`` above the dial with the novelty
    budget spent got the budget's 429 (a Retry-After of hours, which the SDKs wait out) for a
    generation it never asked for. It gets the 504 ``not_stored``, in either mode, and the
    budget is neither refused nor counted."""
    srv, live = serve(tmp_path, novelty_per_day=1, novelty_exhausted=mode)
    try:
        only = {"Cache-Control": "only-if-cached"}
        body = {"messages": [{"role": "user", "content": "A limerick on rain."}], "temperature": 1}
        for spent in (False, True):
            r = live.http.post("/v1/chat/completions", json=body, headers=only)
            assert r.status_code == 504 and r.json()["error"]["code"] == "not_stored", r.text
            if not spent:  # the one fresh generation of the day: the 504 counted nothing
                assert ask(live, "u1").status_code == 200
        assert ask(live, "u2").status_code == 429
    finally:
        live.http.close()
        srv.__exit__()


def test_variants_run_under_the_limits_of_the_key_that_queued_them(tmp_path: Path) -> None:
    """A round of variants is work a key caused: it runs as that key (its ledger rows carry
    the key), each variant counts against the tenant's novelty budget, and the round stops,
    keeping what it made, when the budget is spent (issue #13)."""
    srv, live = serve(tmp_path, novelty_per_day=4)
    try:
        store = live.gateway.store
        new = asyncio.run(store.create_key("acme"))
        auth = {"Authorization": f"Bearer {new.secret}"}
        body = {"messages": [{"role": "user", "content": HAIKU}], "temperature": 1.0}
        for user in ("u1", "u2"):  # two askers, two fresh generations: 2 of 4 used
            r = live.http.post("/v1/chat/completions", json=body | {"user": user}, headers=auth)
            assert r.status_code == 200, r.text

        def done() -> list[Any]:
            return [
                j for j in asyncio.run(store.jobs()) if j.kind == "variants" and j.state == "done"
            ]

        wait_until(lambda: bool(done()))
        import json

        result = json.loads(done()[0].result or "{}")
        # 3 variants asked for, 2 left in the budget: the round stops after two
        assert result["variants"] == 2, result
        assert "fresh creative generations" in result["stopped"]
        rows = [r for r in live.ledger().values() if r.tenant == "acme"]
        assert len(rows) == 4 and all(r.key_id == new.key.id for r in rows)
        assert sum(bool(r.extra.get("novel")) for r in rows) == 4
        # the budget is spent, but what the round made is served
        r = live.http.post("/v1/chat/completions", json=body | {"user": "u3"}, headers=auth)
        assert r.headers["x-boundgate-reuse"] == "hit-variant", r.text
    finally:
        live.http.close()
        srv.__exit__()


def test_a_round_that_made_no_variant_lets_the_next_round_be_queued(tmp_path: Path) -> None:
    """A round that made none (the novelty budget spent by the askers) ended done under the
    key ``variants:<exact>:0``, the one the next round takes too, so no round was ever queued
    again for that prompt. A finished job's key can be used again: the next ask, on a day
    with budget, queues a round that makes variants (while the budget is spent, an ask queues
    no round: it could make none, and each 429 would have queued one)."""
    import json

    from boundgate.clock import FakeClock

    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    settings.creativity.min_askers = 2
    settings.creativity.variants = 3
    settings.limits.novelty_per_day = 2
    clock = FakeClock(start=1_700_000_000.0)
    app = build_app(settings, clock=clock)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        store = live.gateway.store

        def rounds() -> list[Any]:
            return [j for j in asyncio.run(store.jobs()) if j.kind == "variants"]

        try:
            assert ask(live, "u1").status_code == 200
            assert ask(live, "u2").status_code == 200  # the day's budget is spent
            (first,) = wait_until(lambda: [j for j in rounds() if j.state == "done"])
            assert json.loads(first.result or "{}")["variants"] == 0
            # while the budget is spent, asks queue no round that could make none
            assert ask(live, "u3").status_code == 429
            assert len(rounds()) == 1
            clock.advance(86400)  # the next UTC day: a budget again
            ask(live, "u3")
            assert len(rounds()) == 2  # queued with the ask (was: never again)
            second = wait_until(lambda: [j for j in rounds()[1:] if j.state == "done"])[0]
            assert second.dedupe == first.dedupe
            assert json.loads(second.result or "{}")["variants"] >= 1
        finally:
            live.http.close()


def test_background_work_for_a_tenant_takes_its_strictest_keys_limits(tmp_path: Path) -> None:
    """A rebind belongs to the tenant, not to one key: it runs under the strictest limits its
    active keys carry (0 = unlimited is the loosest), or the named key's when one caused it."""
    srv, live = serve(tmp_path)
    try:
        store = live.gateway.store
        limiter = live.gateway.limiter
        assert asyncio.run(background_tenant(store, limiter, "nobody")).rpm is None  # defaults
        loose = asyncio.run(store.create_key("acme", rpm=0, daily_tokens=50_000))
        tight = asyncio.run(store.create_key("acme", rpm=5))
        gone = asyncio.run(store.create_key("acme", rpm=1, daily_tokens=10))
        asyncio.run(store.revoke_key(gone.key.id))
        asyncio.run(store.create_key("other", rpm=2, daily_tokens=1))
        t = asyncio.run(background_tenant(store, limiter, "acme"))
        assert (t.name, t.rpm, t.daily_tokens, t.key_id) == ("acme", 5, 50_000, None)
        by_key = asyncio.run(background_tenant(store, limiter, "acme", loose.key.id))
        assert (by_key.rpm, by_key.key_id) == (0, loose.key.id)
        assert asyncio.run(background_tenant(store, limiter, "acme", tight.key.id)).rpm == 5
    finally:
        live.http.close()
        srv.__exit__()


def test_a_variant_refused_by_the_keys_rpm_gives_its_novelty_unit_back(tmp_path: Path) -> None:
    """Issue #13: a variant's novelty unit is taken before it is generated; when the key's
    requests-per-minute limit then refuses the generation (429), the unit is refunded, so the
    budget counts only fresh generations made."""
    srv, live = serve(tmp_path, novelty_per_day=4)
    try:
        store = live.gateway.store
        new = asyncio.run(store.create_key("acme", rpm=3))
        auth = {"Authorization": f"Bearer {new.secret}"}
        body = {"messages": [{"role": "user", "content": HAIKU}], "temperature": 1.0}
        for user in ("u1", "u2"):  # two fresh generations: 2 of 4 novelty, 2 of 3 rpm
            r = live.http.post("/v1/chat/completions", json=body | {"user": user}, headers=auth)
            assert r.status_code == 200, r.text

        def done() -> list[Any]:
            return [
                j for j in asyncio.run(store.jobs()) if j.kind == "variants" and j.state == "done"
            ]

        wait_until(lambda: bool(done()))
        import json

        result = json.loads(done()[0].result or "{}")
        # the first variant takes the last request of the minute; the second is refused
        assert result["variants"] == 1, result
        assert "requests per minute" in result["stopped"]
        novel = [r for r in live.ledger().values() if r.extra.get("novel")]
        assert len(novel) == 3  # made: two asks and one variant
        buffer = live.gateway.creativity
        assert asyncio.run(buffer.budget_left("acme"))  # 3 of 4 used, not 4
        asyncio.run(buffer.admit_novel("acme"))  # the fourth unit is there
        assert not asyncio.run(buffer.budget_left("acme"))
    finally:
        live.http.close()
        srv.__exit__()


def test_a_reasoning_models_variant_reports_its_reasoning_tokens(tmp_path: Path) -> None:
    """A re-check: a variant of a reasoning model's answer was served with its
    completion_tokens (the reasoning counted in) and reasoning_tokens 0; it reports what its
    generation used, as a stored answer's hit does."""
    from boundgate.backends.fake import FakeBackend

    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    settings.creativity.min_askers = 2
    settings.creativity.variants = 3
    backends = {"fake": FakeBackend("fake", reasoning=True, thinking_tokens=50)}
    app = build_app(settings, backends=backends)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        try:
            fresh = ask(live, "u1")
            assert fresh.headers["x-boundgate-reuse"] == "bypass"
            generated = fresh.json()["usage"]
            assert generated["completion_tokens_details"]["reasoning_tokens"] > 0
            assert ask(live, "u2").headers["x-boundgate-reuse"] == "bypass"
            wait_until(lambda: asyncio.run(live.gateway.store.variant_count(first_exact(live))))
            r = ask(live, "u3")
            assert r.headers["x-boundgate-reuse"] == "hit-variant", r.headers
            usage = r.json()["usage"]
            assert usage["completion_tokens"] == generated["completion_tokens"]
            assert usage["completion_tokens_details"] == generated["completion_tokens_details"]
        finally:
            live.http.close()
