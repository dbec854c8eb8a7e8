"""Feedback from non-admin keys moves the one threshold every tenant is served under only up
to a per-tenant daily quota (``reuse.feedback_labels_per_tenant_per_day``): one tenant
labelling every hit it gets wrong could otherwise switch semantic reuse off for everyone.
Beyond the quota a label is noted and still protects its own tenant."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from boundgate.assembly import build_app
from boundgate.clock import FakeClock
from boundgate.settings import Settings
from boundgate.store import SQLiteStore
from helpers import Live, arun, fake_settings, live_server, semantic_hit, wait_until

DAY = 86_400.0
NOON = datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()


TENANTS = {"acme": "acme", "globex": "globex", "admin": "ops"}
TENANT_OF: dict[str, str] = {}  # Authorization header → its key's tenant


def make_keys(settings: Settings) -> dict[str, dict[str, str]]:
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    try:
        secrets = {
            who: asyncio.run(store.create_key(tenant, admin=who == "admin")).secret
            for who, tenant in TENANTS.items()
        }
    finally:
        store.close()
    for who, secret in secrets.items():
        TENANT_OF[f"Bearer {secret}"] = TENANTS[who]
    return {who: {"Authorization": f"Bearer {s}"} for who, s in secrets.items()}


@contextlib.contextmanager
def serving(settings: Settings, clock: FakeClock | None = None) -> Iterator[Live]:
    app = build_app(settings, clock=clock) if clock is not None else build_app(settings)
    with live_server(app) as live:
        yield live


def feedback_labels(live: Live, headers: dict[str, str]) -> dict[str, Any]:
    r = live.http.get("/v1/boundgate/stats", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["reuse"]["feedback_labels"])


def learned_feedback(live: Live) -> dict[str, int]:
    """What the shared verifier learned from feedback (labels, wrong ones)."""
    return dict(live.gateway.reuse.verifier.by_source().get("feedback", {}))


def ask(live: Live, question: str, headers: dict[str, str]) -> str:
    body = {"messages": [{"role": "user", "content": question}], "temperature": 0}
    r = live.http.post("/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return str(r.headers["x-boundgate-reuse"])


def feedback(live: Live, request_id: str, correct: bool, headers: dict[str, str]) -> str:
    r = live.http.post(
        "/v1/boundgate/feedback",
        json={"request_id": request_id, "correct": correct},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def label(live: Live, headers: dict[str, str], question: str, correct: bool) -> tuple[str, str]:
    """Label a semantic hit of ``question``'s stored answer (``semantic_hit``): the
    feedback's ``status`` and the hit's request id."""
    request_id = semantic_hit(live, TENANT_OF[headers["Authorization"]], question)
    return feedback(live, request_id, correct, headers), request_id


def label_a_hit(live: Live, headers: dict[str, str], question: str, *, correct: bool) -> str:
    return label(live, headers, question, correct)[0]


def test_one_tenants_wrong_labels_move_the_shared_verifier_at_most_by_its_quota(
    tmp_path: Path,
) -> None:
    """The weakness: every ``correct: false`` of any key was learned by the verifier all
    tenants share, so one key labelling every hit wrong raised the threshold for all. With
    the default quota (10 a day) its 11th and 12th labels are noted, not learned; they still
    stop the wrong answer being served to it, and leave other tenants' quotas alone."""
    settings = fake_settings(tmp_path)
    keys = make_keys(settings)
    with serving(settings, FakeClock(start=NOON)) as live:
        questions = [f"What does the word number {i} mean in gateway speak?" for i in range(12)]
        labelled = [label(live, keys["acme"], q, False) for q in questions]
        assert [status for status, _ in labelled] == ["recorded"] * 10 + ["noted"] * 2
        assert learned_feedback(live) == {"total": 10, "wrong": 10}
        # noted, the judged answer gets its own floor all the same
        judged = arun(live.gateway.store.get_row(labelled[-1][1]))
        assert judged is not None and judged.document_id is not None
        entry = live.gateway.reuse.entry_key(judged.document_id)
        assert entry is not None
        assert live.gateway.reuse.verifier.threshold_for(entry) > 0.93
        # a second "wrong" on a noted request is a duplicate; an admin's label is learned
        noted = labelled[-1][1]
        assert feedback(live, noted, False, keys["acme"]) == "duplicate"
        assert feedback(live, noted, False, keys["admin"]) == "recorded"
        assert learned_feedback(live) == {"total": 11, "wrong": 11}
        # another tenant's quota is its own
        assert label_a_hit(live, keys["globex"], "What is a cache?", correct=False) == "recorded"
        assert label_a_hit(live, keys["globex"], "What is a proxy?", correct=True) == "noted"

        # per-tenant counts: an admin sees every tenant's, a tenant only its own
        everyone = feedback_labels(live, keys["admin"])
        assert everyone["quota_per_tenant"] == 10
        assert everyone["day"] == "2026-12-01"
        assert everyone["tenants"] == {
            "acme": {"learned": 10, "admin": 0, "noted": 2},
            "globex": {"learned": 1, "admin": 0, "noted": 1},
            "ops": {"learned": 0, "admin": 1, "noted": 0},
        }
        assert feedback_labels(live, keys["acme"])["tenants"] == {
            "acme": {"learned": 10, "admin": 0, "noted": 2}
        }
        assert feedback_labels(live, keys["globex"])["tenants"] == {
            "globex": {"learned": 1, "admin": 0, "noted": 1}
        }


def test_an_admins_labels_are_not_limited(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, "[reuse]\nfeedback_labels_per_tenant_per_day = 1\n")
    keys = make_keys(settings)
    with serving(settings) as live:
        statuses = [
            label_a_hit(live, keys["admin"], f"What is the colour number {i}?", correct=False)
            for i in range(4)
        ]
        assert statuses == ["recorded"] * 4
        assert label_a_hit(live, keys["admin"], "What is a gateway?", correct=True) == "recorded"
        assert learned_feedback(live) == {"total": 5, "wrong": 4}
        assert feedback_labels(live, keys["admin"])["tenants"] == {
            "ops": {"learned": 0, "admin": 5, "noted": 0}
        }


def test_the_quota_is_per_utc_day_and_survives_a_restart(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, "[reuse]\nfeedback_labels_per_tenant_per_day = 2\n")
    keys = make_keys(settings)
    clock = FakeClock(start=NOON)
    acme = keys["acme"]
    with serving(settings, clock) as live:
        labelled = [label(live, acme, f"What is the river number {i}?", False) for i in range(3)]
        assert [status for status, _ in labelled] == ["recorded", "recorded", "noted"]
        noted = labelled[-1][1]
    with serving(settings, clock) as live:  # a restart: the day's count is in the store
        assert learned_feedback(live) == {"total": 2, "wrong": 2}
        assert feedback(live, noted, False, acme) == "duplicate"
        assert label_a_hit(live, acme, "What is the lake number 1?", correct=False) == "noted"
        assert feedback_labels(live, acme) == {
            "day": "2026-12-01",
            "quota_per_tenant": 2,
            "tenants": {"acme": {"learned": 2, "admin": 0, "noted": 2}},
        }
        clock.advance(12 * 3600)  # midnight UTC: a new day, a new quota
        assert label_a_hit(live, acme, "What is the lake number 2?", correct=False) == "recorded"
        assert learned_feedback(live) == {"total": 3, "wrong": 3}
        assert feedback_labels(live, acme) == {
            "day": "2026-12-02",
            "quota_per_tenant": 2,
            "tenants": {"acme": {"learned": 1, "admin": 0, "noted": 0}},
        }
        # old days' counters are pruned as old days' budgets are (days before yesterday)
        store = live.gateway.store
        first_day = NOON - 12 * 3600
        assert arun(store.counters_used("feedback:", first_day)) != {}
        clock.advance(2 * DAY)
        assert label_a_hit(live, acme, "What is the sea number 1?", correct=False) == "recorded"
        assert arun(store.counters_used("feedback:", first_day)) == {}


def test_a_noted_wrong_semantic_hit_is_not_served_to_its_tenant_again(tmp_path: Path) -> None:
    """Quota 0: a tenant's feedback is never learned by the shared curve, but the entry it
    judged wrong gets its own floor above the score that failed (the entry is in that
    tenant's scope), in this process and after a restart."""
    settings = fake_settings(tmp_path, "[reuse]\nfeedback_labels_per_tenant_per_day = 0\n")
    # as test_reuse's semantic test: a loose bound and one label of trust, no prior
    settings.reuse.prior = False
    settings.reuse.error_bound = 0.5
    settings.reuse.initial_threshold = 0.8
    settings.reuse.min_observations = 1
    settings.reuse.verify_rate = 0.0
    keys = make_keys(settings)
    acme = keys["acme"]
    paraphrases = [
        "How can I reset my password?",
        "How do I reset my password?",
        "How should I reset my password?",
    ]
    with serving(settings) as live:
        reuse = live.gateway.reuse
        live.gateway.backends["fake"].meanings = {q: "reset password" for q in paraphrases}
        assert ask(live, paraphrases[0], acme) == "miss"
        assert ask(live, paraphrases[1], acme) == "miss"  # verified: the first label
        wait_until(lambda: reuse.verifier.estimate().observations >= 1)
        wait_until(lambda: len(reuse) == 1)
        body = {"messages": [{"role": "user", "content": paraphrases[2]}], "temperature": 0}
        hit = live.http.post("/v1/chat/completions", json=body, headers=acme)
        assert hit.headers["x-boundgate-reuse"] == "hit-semantic", hit.headers
        entry = reuse._by_id[hit.headers["x-boundgate-document"]]
        threshold, floor = reuse.verifier.threshold, reuse.verifier.threshold_for(entry)
        shared = reuse.verifier.estimate()
        assert feedback(live, hit.headers["x-request-id"], False, acme) == "noted"
        # noted "wrong": open to an admin's label only (a re-check: a "right" after it was
        # noted and counted again)
        assert feedback(live, hit.headers["x-request-id"], True, acme) == "duplicate"
        assert feedback_labels(live, keys["admin"])["tenants"]["acme"]["noted"] == 1
        assert reuse.verifier.threshold == threshold and reuse.verifier.estimate() == shared
        assert learned_feedback(live) == {}
        assert reuse.verifier.threshold_for(entry) > floor
        assert ask(live, paraphrases[2], acme) != "hit-semantic"
    with serving(settings) as live:  # the entry's floor is stored, not only remembered
        assert live.gateway.reuse.verifier.threshold_for(entry) > floor
        assert learned_feedback(live) == {}
        assert feedback(live, hit.headers["x-request-id"], False, acme) == "duplicate"


class PruneFails(SQLiteStore):
    """A store whose housekeeping delete fails (a locked database, a full disk)."""

    async def prune_counters(self, before: float) -> None:
        raise sqlite3.OperationalError("database is locked")


def test_a_failing_prune_of_old_counters_never_fails_the_feedback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Counting a label prunes old daily counters at most hourly; a failure there failed the
    feedback request (HTTP 500) although the label was already taken. It is logged now."""
    settings = fake_settings(tmp_path)
    keys = make_keys(settings)
    store = PruneFails(settings.db_path)
    app = build_app(settings, clock=FakeClock(start=NOON), store=store)
    with live_server(app) as live:
        assert label_a_hit(live, keys["acme"], "What is a prune?", correct=False) == "recorded"
        assert learned_feedback(live) == {"total": 1, "wrong": 1}
    assert "pruning old counters failed" in caplog.text


def test_a_wrong_exact_hit_judges_the_answer_and_leaves_the_shared_threshold(
    tmp_path: Path,
) -> None:
    """A new user's trial: on `make serve`'s small model, two ``correct: false`` labels of
    exact hits (its answers' wrong facts), learned as wrong reuses at pair score 1.0, raised
    the threshold from 0.89 to ``none_proven`` and switched reuse by meaning off for every
    tenant. A label of an exact hit judges the answer, not a match: noted, nothing learned,
    no quota taken, and a wrong answer is no longer served (the model runs again); a second
    label of it, from any key, is a duplicate."""
    settings = fake_settings(tmp_path)
    keys = make_keys(settings)
    with serving(settings) as live:
        verifier = live.gateway.reuse.verifier
        threshold, decided_by = verifier.threshold, verifier.estimate().decided_by
        for who in ("acme", "admin"):
            question = f"What is the largest planet, asked by {who}?"
            status, request_id = exact_label(live, keys[who], question)
            assert status == "noted"
            assert ask(live, question, keys[who]) == "miss"  # the wrong answer is gone
            assert feedback(live, request_id, False, keys["admin"]) == "duplicate"
        after = verifier.estimate()
        assert (verifier.threshold, after.decided_by, after.observations) == (
            threshold,
            decided_by,
            0,
        )
        assert learned_feedback(live) == {}
        assert feedback_labels(live, keys["admin"])["tenants"] == {
            "acme": {"learned": 0, "admin": 0, "noted": 1},
            "ops": {"learned": 0, "admin": 0, "noted": 1},
        }


def exact_label(live: Live, headers: dict[str, str], question: str) -> tuple[str, str]:
    """Ask ``question`` twice (the second an exact hit) and label the hit wrong: the
    feedback's ``status`` and the hit's request id."""
    assert ask(live, question, headers) == "miss"
    body = {"messages": [{"role": "user", "content": question}], "temperature": 0}
    hit = live.http.post("/v1/chat/completions", json=body, headers=headers)
    assert hit.headers["x-boundgate-reuse"] == "hit-exact"
    request_id = hit.headers["x-request-id"]
    return feedback(live, request_id, False, headers), request_id


def test_a_tenants_right_label_sent_again_is_a_duplicate_and_counted_once(
    tmp_path: Path,
) -> None:
    """A docs trial: a non-admin key's ``correct: true`` sent twice was ``noted`` twice and
    counted twice, of a semantic hit and of an exact one, where api.md says a second label of
    an exact hit is a duplicate from any key and duplicates are not counted. The semantic
    hit's request stays open to a ``correct: false`` (learned) after the repeat."""
    settings = fake_settings(tmp_path)
    keys = make_keys(settings)
    acme = keys["acme"]
    with serving(settings, FakeClock(start=NOON)) as live:
        status, semantic_id = label(live, acme, "What is a gateway?", True)
        assert status == "noted"
        assert feedback(live, semantic_id, True, acme) == "duplicate"
        assert feedback(live, semantic_id, False, acme) == "recorded"
        question = "What is the largest moon of Saturn?"
        assert ask(live, question, acme) == "miss"
        body = {"messages": [{"role": "user", "content": question}], "temperature": 0}
        hit = live.http.post("/v1/chat/completions", json=body, headers=acme)
        assert hit.headers["x-boundgate-reuse"] == "hit-exact"
        exact_id = hit.headers["x-request-id"]
        assert feedback(live, exact_id, True, acme) == "noted"
        assert feedback(live, exact_id, True, acme) == "duplicate"
        assert feedback(live, exact_id, True, keys["admin"]) == "duplicate"
        assert ask(live, question, acme) == "hit-exact"  # a "right" keeps the answer
        assert feedback_labels(live, keys["admin"])["tenants"] == {
            "acme": {"learned": 1, "admin": 0, "noted": 2}
        }
