"""The pair model and its place in reuse: the shipped cross-encoder, the verifier's prior,
candidate choice by pair score, and answers that teach the cache (issue #11)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from boundgate.assembly import build_app
from boundgate.backends.base import Completion, Usage
from boundgate.clock import FakeClock
from boundgate.reuse.embedder import Embedder, HashEmbedder, OnnxEmbedder
from boundgate.reuse.engine import Lookup, ReuseEngine
from boundgate.reuse.guards import compare
from boundgate.reuse.guards.lexicon import (
    acronyms_spelled,
    lead_in_dropped,
    self_described,
    spelled_out,
)
from boundgate.reuse.pair import (
    EXACT_FROM,
    FakePairScorer,
    OnnxPairScorer,
    PairScorer,
    packaged_model_dir,
    read_alike,
    reads_further,
    typos_matched,
)
from boundgate.reuse.prior import Prior
from boundgate.reuse.scoring import CosineScorer, PairModelScorer
from boundgate.reuse.verifier import Observation, Verdict, Verifier
from boundgate.settings import ReuseSettings
from boundgate.store import SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import Live, engine_lookup, fake_settings, wait_until


@pytest.fixture(scope="module")
def scorer() -> OnnxPairScorer:
    return OnnxPairScorer(threads=1)


@pytest.fixture(scope="module")
def prior(scorer: OnnxPairScorer) -> Prior:
    return Prior.load(packaged_model_dir() / "calibration.json", scorer.name)


# (asked, stored paraphrase, stored near-copy with another meaning). Swapped roles ("from
# London to Paris" / "from Paris to London") are left to the guards: the model scores them as
# paraphrases (0.95), having seen few such pairs.
CASES = [
    (
        "How do I turn on two-factor authentication?",
        "How can I enable two-factor authentication?",
        "How do I turn off two-factor authentication?",
    ),
    (
        "What is the best way to learn Python?",
        "How should I go about learning Python?",
        "What is the worst way to learn Python?",
    ),
    (
        "Why is my phone charging slowly?",
        "Why does my phone charge so slowly?",
        "Why is my phone not charging?",
    ),
    (
        "How many calories are in 2 eggs?",
        "What is the calorie count of two eggs?",
        "How many calories are in 6 eggs?",
    ),
    (
        "How can I improve my English speaking skills?",
        "What is the best way to improve my spoken English?",
        "How can I improve my French speaking skills?",
    ),
]


@pytest.mark.parametrize(("asked", "same", "other"), CASES)
def test_packaged_pair_model_separates_a_paraphrase_from_a_changed_meaning(
    scorer: OnnxPairScorer, asked: str, same: str, other: str
) -> None:
    s_same, s_other = scorer.score_pairs([(asked, same), (asked, other)])
    assert s_same > 0.5 > s_other, (s_same, s_other)


# A long prompt (about 75 tokens, within the embedder's 128) whose meaning is in its last words.
LONG = (
    "I am writing a report for my manager about our quarterly sales figures across the three "
    "regional offices in Lyon, Porto and Gdansk, and I need to explain why revenue dropped in "
    "the second quarter while costs stayed flat compared with last year, given that the "
    "marketing budget was cut by a fifth and two of our largest customers delayed their "
    "orders until the autumn. "
)


def test_the_pair_model_reads_two_long_prompts_whole(scorer: OnnxPairScorer) -> None:
    """Cut to the 96 tokens it was trained on, two long prompts that differ only in their
    last words looked identical to the model (it scored every such pair alike)."""
    french, german = LONG + "Write the summary in French.", LONG + "Write the summary in German."
    paraphrase = LONG + "Please write that summary in French."
    embedder = OnnxEmbedder()
    assert all(embedder.fits(t) for t in (french, german, paraphrase))
    assert not scorer.tokenizer.encode(french, german).overflowing
    s_same, s_other = scorer.score_pairs([(french, paraphrase), (french, german)])
    assert s_same > 0.5 > s_other, (s_same, s_other)


def test_the_pair_model_reads_the_question_not_its_closing_punctuation(
    scorer: OnnxPairScorer,
) -> None:
    """The model shipped before the nineteenth session read the question marks: "what is the
    largest planet in our solar system" / "biggest planet in the solar system" scored 0.05
    with neither ending in "?", 0.98 with both (chatbot pairs in training set a question
    against a bare fragment, and rule-made negatives copied their source's ending). Trained
    with each side's ending flipped at random (``--style-noise``), it scores the four
    spellings alike."""
    a, b = "what is the largest planet in our solar system", "biggest planet in the solar system"
    scores = [scorer.score(a + x, b + y) for x in ("", "?") for y in ("", "?")]
    assert min(scores) > 0.5 and max(scores) - min(scores) < 0.2, scores


def test_pair_scores_are_symmetric_probabilities(scorer: OnnxPairScorer) -> None:
    a, b = "Why is the sky blue?", "What makes the sky look blue?"
    ab, ba = scorer.score_pairs([(a, b), (b, a)])
    assert 0.0 <= ab <= 1.0 and abs(ab - ba) < 1e-6
    assert len(scorer.score_pairs([])) == 0
    assert scorer.name.startswith("boundgate-pair-minilm-int8@")


def test_the_ensemble_reads_every_member_where_a_threshold_could_serve(
    scorer: OnnxPairScorer,
) -> None:
    """The cascade: a pair no reading of the second member could bring to the ensemble's
    ``exact_from`` (config.json's, else ``EXACT_FROM``) keeps the first's score; any other
    gets every member's mean, in both orders."""
    assert len(scorer.sessions) == 2  # the shipped ensemble
    assert reads_further([0.79, 0.79], 2) and not reads_further([0.78, 0.79], 2)
    assert reads_further([0.5, 0.5], 2, 0.75) and not reads_further([0.49, 0.5], 2, 0.75)
    exact_from = scorer.exact_from
    assert 0.5 <= exact_from <= EXACT_FROM
    close = ("Why is the sky blue?", "What causes the blue color of the sky?")
    far = ("Why is the sky blue?", "How do I bake sourdough bread?")
    for pair, whole in ((close, True), (far, False)):
        read = scorer.readings(*pair)  # members × orders
        assert read.shape == (2, 2)
        assert reads_further(list(read[0]), 2, exact_from) is whole
        expected = read.mean() if whole else read[0].mean()
        assert scorer.score_pairs([pair])[0] == pytest.approx(expected, abs=1e-6)
        if not whole:
            assert read.mean() < exact_from
    assert scorer.score(*close) > scorer.score(*far)


def test_a_pairs_score_does_not_depend_on_the_pairs_scored_with_it(
    scorer: OnnxPairScorer,
) -> None:
    """A trial: the int8 model's dynamic quantization takes one scale over its whole input,
    so a pair scored in one batch with other candidates scored up to 0.26 apart from the
    same pair alone ("keep rice from getting sticky" 0.937 alone, 0.948 with others), and a
    look-alike near the threshold was served in one lookup and not in the next."""
    pair = ("How do I make rice more sticky?", "how can i keep my rice from getting sticky")
    others = [
        ("What is the capital of France?", "capital city of france?"),
        (
            "How do I copy a directory from my local machine to a remote server with scp, "
            "keeping its permissions and timestamps?",
            "scp a file from local to a remote server how",
        ),
        ("a", "b"),
    ]
    alone = scorer.score_pairs([pair])[0]
    for k in range(1, len(others) + 1):
        scores = scorer.score_pairs([*others[:k], pair])
        assert scores[-1] == alone
        assert list(scores[:-1]) == [scorer.score_pairs([p])[0] for p in others[:k]]


def test_prior_serves_from_the_first_lookups_and_labels_take_over(prior: Prior) -> None:
    """Without the prior a fresh verifier verifies every would-be hit until it has labels;
    with it, a high pair score is served as soon as the first lookups show what share of
    traffic scores high (h(t)). A stream of non-duplicates that score high (traffic unlike
    the calibration data) is caught by the gateway's own labels: the threshold rises, the
    estimate at the threshold in force stays within δ, and the share of lookups served a
    wrong answer stays within δ."""
    cold = Verifier(ReuseSettings(), scorer=PairModelScorer(), rng=random.Random(1))
    warm = Verifier(ReuseSettings(), scorer=PairModelScorer(), prior=prior, rng=random.Random(1))
    for v in (cold, warm):  # 100 lookups, one in twenty with a high-scoring candidate
        for i in range(100):
            v.note_lookup(0.9, pair=0.97) if i % 20 == 0 else v.note_lookup(None)
    assert all(cold.decide(1, 0.9, pair=0.97) is Verdict.VERIFY for _ in range(100))
    # served, but for the sampled verification (20 % while only the prior vouches)
    served = sum(warm.decide(1, 0.9, pair=0.97) is Verdict.SERVE for _ in range(100))
    assert 60 <= served < 100
    est = warm.estimate()
    assert est.decided_by == "prior" and est.error_high <= warm.delta
    assert warm.decide(1, 0.9, pair=0.3) is not Verdict.SERVE

    # then a stream of non-duplicates: the highest-scoring ones of the calibration, far more
    # often than the calibration saw them
    start = warm.threshold
    rng = random.Random(7)
    hard = [s for s in prior.non_duplicates if s >= 0.5]
    served_wrong = []
    lookups = 4000
    for i in range(lookups):
        score = rng.choice(hard)
        warm.note_lookup(0.9, pair=score)
        verdict = warm.decide(i, 0.9, pair=score)
        if verdict is Verdict.SERVE:
            served_wrong.append(i)
        elif verdict in (Verdict.VERIFY, Verdict.OBSERVE):
            warm.add(Observation(0.9, False, verdict.value, i, pair=score))
        est = warm.estimate()
        if est.decided_by not in ("initial_threshold", "none_proven"):
            assert est.error_high <= warm.delta + 1e-9  # the estimate never exceeds δ
    # the wrong labels have raised the threshold, and once they have (the second half of the
    # stream) wrong answers are served to at most δ of the lookups
    assert warm.threshold > start
    late = [i for i in served_wrong if i >= lookups // 2]
    assert len(late) / (lookups // 2) <= warm.delta, (len(served_wrong), len(late))
    assert warm.estimate().prior_weight < 1.0  # labels have taken weight from the prior


def test_a_fresh_gateways_first_near_repeats_do_not_shut_reuse(prior: Prior) -> None:
    """A new user asks a question, then paraphrases of it: three of the first ten lookups
    score 0.99. Taken as a window of their own, those ten made h(t) 0.3 (the calibration's
    is 0.02 there) and the threshold rose to 0.99 with the prior's precision, so every
    paraphrase was recomputed after a handful of requests (a new user's trial). A window not
    full yet counts its missing lookups at the calibration's share: they are still served."""
    v = Verifier(ReuseSettings(), scorer=PairModelScorer(), prior=prior, rng=random.Random(1))
    for i in range(10):
        v.note_lookup(0.95, pair=0.99) if i % 3 == 0 else v.note_lookup(None)
    est = v.estimate()
    assert est.decided_by == "prior" and v.threshold < 0.98, (v.threshold, est.decided_by)
    served = sum(v.decide(1, 0.95, pair=0.99) is Verdict.SERVE for _ in range(100))
    assert served >= 60  # all but the sampled verification (20 % while the prior vouches)
    # a window that fills with near-repeats: 100 lookups, half of them at 0.93. The former
    # estimate (the calibration's wrong share among hits × h(t)) took each as wrong as often
    # as the calibration's hits were and raised the threshold; the split prior takes them as
    # the repeats they score like (ρ rises) and bounds the wrong answers by the novel
    # lookups' rate, so the threshold stays. (That they are right is the assumption the
    # sampled verification checks: a stream of wrong ones is caught by the labels, see
    # test_prior_serves_from_the_first_lookups_and_labels_take_over.)
    unsplit = Verifier(
        ReuseSettings(),
        scorer=PairModelScorer(),
        prior=dataclasses.replace(prior, novel=None, novel_lookups=None),
        rng=random.Random(1),
    )
    for i in range(10):  # the same first ten lookups as v's
        unsplit.note_lookup(0.95, pair=0.99) if i % 3 == 0 else unsplit.note_lookup(None)
    calm = {id(w): w.threshold for w in (v, unsplit)}
    rho_before = v.estimate().repeat_share_low
    for w in (v, unsplit):
        for i in range(100):
            w.note_lookup(0.95, pair=0.93) if i % 2 == 0 else w.note_lookup(None)
    assert unsplit.threshold > calm[id(unsplit)]
    assert v.threshold <= calm[id(v)], (v.threshold, calm)
    rho_after = v.estimate().repeat_share_low
    assert rho_before is not None and rho_after is not None and rho_after > rho_before


def test_novel_traffic_does_not_pull_the_threshold_below_the_calibrations_traffic(
    prior: Prior,
) -> None:
    """A fresh gateway whose first lookups all find nothing (h(t) = 0 everywhere) would, on
    its own windows, prove any threshold: the first near-repeats would then be served at a
    pair score the calibration shows to be wrong one time in five. The calibration's share of
    lookups above t, H(t), pooled into the windows, keeps the threshold where the calibration's
    own traffic would keep δ."""
    assert prior.lookups is not None and prior.lookups >= prior.pairs
    pairs_only = dataclasses.replace(prior, lookups=None)
    after = {}
    for name, p in (("lookups", prior), ("pairs only", pairs_only)):
        v = Verifier(ReuseSettings(), scorer=PairModelScorer(), prior=p, rng=random.Random(1))
        for _ in range(200):
            v.note_lookup(None)
        after[name] = v.threshold
        est = v.estimate()
        assert est.decided_by == "prior"
        if name == "lookups":
            # the bound holds for traffic like the calibration's: H(t) times the error
            h = p.hit_share(v.threshold)
            assert h is not None and h * (1 - est.hit_precision) <= v.delta  # type: ignore[operator]
    assert after["pairs only"] < after["lookups"]
    # the calibration's precision just below the threshold would break δ on its own traffic
    t = after["lookups"] - 0.05
    n, e = prior.above(t)
    assert (prior.hit_share(t) or 0.0) * e / n > 0.01


def test_own_labels_prove_a_threshold_the_prior_cannot_vouch_for(prior: Prior) -> None:
    """Traffic unlike the calibration data in the other direction: every lookup is a
    paraphrase of a stored question (h(t) near 1), and they are right. The Quora prior vouches
    only for its high scores (its novel lookups' look-alikes score up to there), so pooled with
    it the threshold would stay there for thousands of labels; the gateway's own labels, once
    they are enough to prove a threshold by themselves, lower it, and the bound they prove
    holds. (While the prior vouches, hits above its threshold are served, not labelled, so the
    labels that prove more take longer to come than they did when the prior held the threshold
    near 0.99: 3,000 lookups here.)"""
    v = Verifier(ReuseSettings(), scorer=PairModelScorer(), prior=prior, rng=random.Random(3))
    rng = random.Random(5)
    start = None
    for i in range(3000):
        score = rng.uniform(0.6, 1.0)
        v.note_lookup(0.9, pair=score)
        if start is None:
            start = v.threshold
        verdict = v.decide(i, 0.9, pair=score)
        if verdict in (Verdict.VERIFY, Verdict.OBSERVE):
            v.add(Observation(0.9, True, verdict.value, i, pair=score))
    est = v.estimate()
    assert start is not None and est.threshold < start - 0.1, (start, est)
    assert est.decided_by == "labels"
    # the bound on the gateway's own labels alone holds at the threshold in force
    assert est.observations_above >= v.min_observations
    assert est.prior_weight > 0  # the prior still counts; the labels decided


def _stream(v: Verifier, n: int, seed: int, right_cosine: float, wrong_cosine: float) -> int:
    """``n`` lookups, nine in ten a paraphrase (right) at a cosine near ``right_cosine``, one
    in ten another question (wrong) near ``wrong_cosine``; every pair score in 0.5–0.8, where
    the calibration cannot vouch for anything. Labels as the engine makes them; returns the
    wrong answers served."""
    rng = random.Random(seed)
    served_wrong = 0
    for i in range(n):
        right = rng.random() < 0.9
        cos = min(1.0, (right_cosine if right else wrong_cosine) + rng.uniform(-0.03, 0.03))
        pair = rng.uniform(0.5, 0.8)
        v.note_lookup(cos, pair=pair)
        verdict = v.decide(i, cos, pair=pair)
        if verdict is Verdict.SERVE:
            served_wrong += 0 if right else 1
        elif verdict in (Verdict.VERIFY, Verdict.OBSERVE):
            v.add(Observation(cos, right, verdict.value, i, pair=pair))
    return served_wrong


def test_the_cosine_takes_over_where_the_labels_prove_it_serves_more(prior: Prior) -> None:
    """Traffic on which the pair model is the weaker signal (another domain): its scores sit
    where the calibration vouches for nothing, while the cosine separates right from wrong.
    The cosine's threshold, proven on the gateway's own labels, is put in force, and the
    bound holds on what is served."""
    alone = Verifier(ReuseSettings(), scorer=PairModelScorer(), prior=prior, rng=random.Random(1))
    both = Verifier(
        ReuseSettings(),
        scorer=PairModelScorer(),
        prior=prior,
        alternative=CosineScorer(),
        rng=random.Random(1),
    )
    assert _stream(alone, 1500, 2, 0.97, 0.85) == 0
    wrong = _stream(both, 1500, 2, 0.97, 0.85)
    assert alone.active_scorer.name == "pair" and alone.threshold > 0.8
    assert both.active_scorer.name == "cosine"
    assert 0.88 <= both.threshold <= 0.97, both.threshold
    assert wrong / 1500 <= both.delta
    est = both.estimate()
    assert est.decided_by == "labels" and est.error_high <= both.delta + 1e-9


def test_the_cosine_is_not_put_in_force_where_it_does_not_separate(prior: Prior) -> None:
    """The same stream with the wrong candidates as close as the right ones: no cosine
    threshold is proven, and the pair model's stays in force."""
    v = Verifier(
        ReuseSettings(),
        scorer=PairModelScorer(),
        prior=prior,
        alternative=CosineScorer(),
        rng=random.Random(1),
    )
    _stream(v, 1500, 2, 0.97, 0.97)
    assert v.active_scorer.name == "pair"


async def _remember(e: ReuseEngine, lookup: Lookup, answer: str) -> None:
    done = Completion(answer, "stop", Usage(3, 3))
    await e.remember(
        lookup, done, tenant="t", model="m", model_version="v", cost_wh=0.1, cost_gco2=0.05
    )


def _pair_engine(
    tmp_path: Path, embedder: Embedder, scorer: PairScorer, settings: ReuseSettings
) -> ReuseEngine:
    """A loaded engine that serves a pair score of 0.9 or more from its first lookup."""
    verifier = Verifier(
        ReuseSettings(error_bound=0.9, initial_threshold=0.9, verify_rate=0.0, min_observations=1),
        scorer=PairModelScorer(),
    )
    verifier.add(Observation(0.9, True, "verify", None, pair=0.99))
    store = SQLiteStore(tmp_path / "p.db")
    store.open()
    e = ReuseEngine(
        store=store,
        embedder=embedder,
        verifier=verifier,
        settings=settings,
        rebind_window_s=3600.0,
        clock=FakeClock(start=1_800_000_000.0),
        pair_scorer=scorer,
    )
    asyncio.run(e.load())
    return e


def test_the_best_pair_scored_survivor_is_the_candidate_and_only_survivors_are_scored(
    tmp_path: Path,
) -> None:
    """Retrieval ranks by cosine; the pair model picks among the survivors of the guards;
    questions below the similarity floor are never scored."""
    preferred = "reset password account now please"

    def rule(asked: str, stored: str) -> float:
        return 0.99 if stored == preferred else 0.2

    fake = FakePairScorer(rule)
    e = _pair_engine(tmp_path, HashEmbedder(), fake, ReuseSettings(pair_candidates=4))

    async def run() -> None:
        for q in ("reset password account now", preferred, "completely unrelated words here"):
            await _remember(e, await engine_lookup(e, q), f"answer to {q}")
        before = fake.calls
        got = await engine_lookup(e, "reset password account now please tell")
        assert got.status == "hit-semantic"
        assert got.entry is not None and got.entry.query == preferred
        assert got.pair == pytest.approx(0.99)
        assert fake.calls - before == 2  # the unrelated one is below the floor: never scored
        before = fake.calls
        nothing = await engine_lookup(e, "quantum chromodynamics lecture notes")
        assert nothing.status == "miss" and fake.calls == before

    asyncio.run(run())
    e.store.close()


def test_a_confirmed_paraphrase_becomes_an_exact_hit_on_its_next_arrival(tmp_path: Path) -> None:
    """Sampled verification recomputes a would-be hit; the fresh answer equals the stored
    one, so the question joins the stored entry's variants: next time it is an exact hit on
    that entry (no model call), also after a restart. A different answer is a labelled
    negative and teaches nothing to the cache."""
    settings = fake_settings(tmp_path)
    settings.reuse.verify_rate = 1.0  # every would-be hit is verified
    settings.reuse.prior = False
    settings.reuse.initial_threshold = 0.5
    first, para, other = (
        "How can I reset my password?",
        "How do I reset my password?",
        "How do I reset my router?",
    )

    def ask(live: Live, q: str) -> tuple[str, str, str]:
        r = live.http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": q}], "temperature": 0},
        )
        assert r.status_code == 200, r.text
        return (
            r.headers["x-boundgate-reuse"],
            r.headers.get("x-boundgate-document", ""),
            r.json()["choices"][0]["message"]["content"],
        )

    def confirmed(engine: ReuseEngine) -> Callable[[], bool]:
        return lambda: engine.counters.get("variant_confirmed", 0) >= 1

    for restart in (False, True):
        app = build_app(settings)
        with ThreadedServer(app) as srv:
            live = Live(srv, app)
            fake = live.gateway.backends["fake"]
            fake.meanings = {first: "reset password", para: "reset password"}
            engine = live.gateway.reuse
            assert engine is not None
            if not restart:
                status, doc, answer = ask(live, first)
                assert status == "miss"
                status, _, fresh = ask(live, para)
                assert status == "miss" and fresh == answer  # verified, not served
                wait_until(confirmed(engine))
                assert ask(live, other)[0] == "miss"
            calls = fake.calls
            status, got_doc, got = ask(live, para)
            assert status == "hit-exact" and got_doc == doc and got == answer
            assert fake.calls == calls
            live.http.close()


def test_a_refusal_labels_nothing_and_is_reused_for_its_own_wording_only(tmp_path: Path) -> None:
    """A verified would-be hit whose fresh answer declines to answer ("I'm sorry …, I don't
    have the ability to …") says nothing of whether the questions ask the same: no label, no
    confirmed variant; the refusal is stored for its own wording only."""
    settings = fake_settings(tmp_path)
    settings.reuse.verify_rate = 1.0  # every would-be hit is verified
    settings.reuse.prior = False
    settings.reuse.initial_threshold = 0.5
    first, para = "How can I reset my password?", "How do I reset my password?"
    refusal = (
        "I'm sorry for any misunderstanding, but as a chatbot, I don't have the ability to "
        "access your account."
    )
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        fake = live.gateway.backends["fake"]
        fake.answers = lambda q: refusal if q == para else f"Answer to {q}: open Settings."
        engine = live.gateway.reuse
        assert engine is not None

        def ask(q: str) -> tuple[str, str]:
            r = live.http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": q}], "temperature": 0},
            )
            assert r.status_code == 200, r.text
            return r.headers["x-boundgate-reuse"], r.json()["choices"][0]["message"]["content"]

        assert ask(first)[0] == "miss"
        assert ask(para) == ("miss", refusal)  # a would-be hit, verified: not served
        wait_until(lambda: engine.counters.get("label_skipped_refusal", 0) >= 1)
        assert engine.verifier.estimate().observations == 0
        assert "variant_confirmed" not in engine.counters
        assert engine.counters.get("refusal_exact_only") == 1
        assert ask(para) == ("hit-exact", refusal)
        live.http.close()


@pytest.mark.parametrize(
    ("stored", "fresh", "same"),
    [
        (
            "The boiling point of water at sea level is 100 °C.",
            "The boiling point of water at sea level is 120 °C.",
            False,
        ),
        (
            "Yes, it is safe to eat raw eggs in moderation.",
            "No, it is not safe to eat raw eggs.",
            False,
        ),
        ("Paris is north of Madrid.", "Madrid is north of Paris.", False),
        (
            "To reset your password, go to Settings and click 'Forgot password'.",
            "Go to Settings and click on 'Forgot password' to reset your password.",
            True,
        ),
    ],
)
def test_close_answers_that_contradict_each_other_are_not_the_same(
    tmp_path: Path, stored: str, fresh: str, same: bool
) -> None:
    """A trial (sampled verification, the real embedder): answers at cosine >= 0.90 were
    the same answer, so "… 120 °C" confirmed "… 100 °C"'s paraphrase for good, an exact
    alias serving the stored answer to a question whose own answer contradicts it."""
    settings = ReuseSettings(answer_similarity=0.01)  # the embedding says "same" to all
    store = SQLiteStore(tmp_path / "a.db")
    store.open()
    e = ReuseEngine(
        store=store,
        embedder=HashEmbedder(),
        verifier=Verifier(settings),
        settings=settings,
        rebind_window_s=3600.0,
        clock=FakeClock(start=1_800_000_000.0),
    )
    assert asyncio.run(e.same_answer(stored, fresh)) is same
    store.close()


def test_the_model_reads_short_forms_spelled_out(scorer: OnnxPairScorer) -> None:
    """A trial's chatbot paraphrases with short forms scored about 0.01 ("how many tbsp in a
    cup" / "How many tablespoons are in a cup?"): the model, trained on Quora's wording,
    reads them spelled out, both sides alike. A unit changed is the guards' to veto: the
    model trained with chat pairs scores "teaspoons" for "tbsp" as a paraphrase (0.996)."""
    same = scorer.score("how many tbsp in a cup", "How many tablespoons are in a cup?")
    assert same > 0.9
    assert compare("how many tbsp in a cup", "How many teaspoons are in a cup?").conflicts == (
        "unit",
    )
    assert spelled_out("Which ships were sunk by U-boats?") == "Which ships were sunk by U-boats?"
    assert spelled_out("how do u convert 5 ft to cm") == "how do you convert 5 feet to centimeters"


def test_the_model_reads_a_here_lead_in_as_who_asks(scorer: OnnxPairScorer) -> None:
    """Two trials' "nurse here, …" paraphrases of "as a nurse, …" scored 0.06–0.50 (1 of
    23 served): the model reads "X here, …" as "as a X, …", which it scores like "I'm a X,
    …". Who asks still counts: another person's question stays apart."""
    asked = "nurse here, which visa do i need to work in the uk"
    assert scorer.score(asked, "as a nurse, what visa should i apply for to work in the uk") > 0.9
    assert scorer.score(asked, "as a doctor, which visa do i need to work in the uk") < 0.5
    assert self_described("barista here - how do i dial in a new bean") == (
        "as a barista, how do i dial in a new bean"
    )
    assert self_described("The bride here: do i feed my vendors") == (
        "as The bride, do i feed my vendors"
    )
    for kept in ("Click here, then what?", "over here - what", "anyone here know why?"):
        assert self_described(kept) == kept


def test_a_lead_in_that_only_announces_the_question_is_not_read(scorer: OnnxPairScorer) -> None:
    """A trial's "quick q: what does chmod 755 do" / "What does chmod 755 do?" scored 0.08,
    and "I'm curious, " before a look-alike passed four times as many: the model reads the
    question without a lead-in that only announces it, so the pair scores as the plain pair.
    A lead-in's words that ask something stay ("can i ask my boss for a raise")."""
    plain = ("What does chmod 755 do?", "what does chmod 755 do")
    assert scorer.score(plain[0], "quick q: what does chmod 755 do") == scorer.score(*plain)
    assert scorer.score(plain[0], "quick q: what does chmod 755 do") > 0.9
    look_alike = ("how do I lower my cholesterol", "how do I raise my cholesterol")
    curious = (look_alike[0], "I'm curious, how do I raise my cholesterol")
    assert scorer.score(*curious) == scorer.score(*look_alike)
    assert lead_in_dropped("Quick question, when does it start") == "when does it start"
    assert lead_in_dropped("hi, quick question: how do I") == "hi, how do I"
    assert lead_in_dropped("just wondering how long it takes") == "how long it takes"
    # a "but" after the lead-in goes with it (a re-check: read "but how do I …", 0.48)
    assert lead_in_dropped("Dumb question, but how do I boil an egg?") == "how do I boil an egg?"
    assert scorer.score("Dumb question, but how do I boil an egg?", "How do I boil an egg?") > 0.9
    for kept in ("can i ask my boss for a raise", "curious george books", "question:", "so why"):
        assert lead_in_dropped(kept) == kept


def test_the_model_reads_a_misspelt_word_as_the_word_it_misspells(
    scorer: OnnxPairScorer,
) -> None:
    """A trial's paraphrases with one word misspelt scored 0.02-0.22 ("are lab grown dimonds
    real" / "are lab-grown diamonds real?"): the model reads a non-word one keystroke from
    a word of the other question as that word. Another word stays another: "dimes" is a
    word, and a name is read as typed."""
    assert scorer.score("are lab grown dimonds real", "are lab-grown diamonds real?") > 0.9
    assert scorer.read_pair("are lab grown dimes real", "are lab grown diamonds real") == (
        "are lab grown dimes real",
        "are lab grown diamonds real",
    )
    assert scorer.read_pair("whats the best finsh for a cutting board", "best finish?") == (
        "whats the best finish for a cutting board",
        "best finish?",
    )
    kept = ("Is Kotlim like Kotlin", "kotlin")
    assert scorer.read_pair(*kept) == kept


def test_a_pair_read_alike_is_one_question(scorer: OnnxPairScorer) -> None:
    """Two questions that differ only where the model's reading spells out a short form or
    an acronym scored as low as 0.12 (the same text as the model read it): read alike, they
    score 1.0. Read alike only once a misspelling is mended, the model scores them: the
    mender reads an unknown real word as the other side's ("nuxt" / "next", a re-check).
    One word apart, or a word's case aside, the model reads."""
    for a, b in [
        ("How many oz are in a lb?", "How many ounces are in a pound?"),
        ("what does a CPA do", "what does a certified public accountant do?"),
    ]:
        assert read_alike(*scorer.read_pair(a, b))
        assert scorer.score(a, b) == 1.0
        assert (scorer.readings(a, b) == 1.0).all()
    mended = ("how do I deploy a nuxt app to vercel", "how do I deploy a next app to vercel")
    assert read_alike(*scorer.read_pair(*mended))
    assert scorer.score(*mended) < 1.0
    assert (scorer.readings(*mended) < 1.0).all()
    look_alike = ("How many oz are in a lb?", "How many ounces are in a kilogram?")
    assert not read_alike(*scorer.read_pair(*look_alike))
    assert scorer.score(*look_alike) < 0.9
    assert read_alike("Is it SAFE?", "is it  safe")
    assert not read_alike("is it safe", "is it safe now")


def test_typos_are_matched_one_edit_from_one_word_of_the_other_side() -> None:
    """Damerau's four errors, one at a time, against a known word of the other side with the
    same first letter; two such words, or two edits, leave the word as typed."""
    known = {"mountain", "bike", "seeing", "cards", "card", "cart", "pictures"}.__contains__
    for typed, word in (("mountian", "mountain"), ("seing", "seeing"), ("crads", "cards")):
        assert typos_matched(f"a {typed} x", f"the {word}", known) == (f"a {word} x", f"the {word}")
    assert typos_matched("the carx", "card cart", known)[0] == "the carx"  # two words near
    assert typos_matched("the mountn", "mountain", known)[0] == "the mountn"  # two edits
    assert typos_matched("a bke", "the bike", known)[0] == "a bke"  # under four letters
    # a possessive's word is a word (a blind trial's "a Japanese cheif's knife", 0.02); a
    # contraction's is not
    chef = typos_matched("sharpen a cheif's knife", "sharpen a chef's knife", {"chef"}.__contains__)
    assert chef == ("sharpen a chef's knife", "sharpen a chef's knife")
    assert typos_matched("the cardd't", "the card", known)[0] == "the cardd't"


def test_an_acronym_is_read_as_the_other_sides_words_whose_initials_it_is() -> None:
    """Three to five capitals, read as a run of the other side's words whose initials they
    are, first and last no stopword, one run only; an acronym the other side writes too, or
    whose words its own side writes, kept; two letters kept ("SF" may be Santa Fe or San
    Francisco); one defined in brackets read as its words alone."""
    assert acronyms_spelled("what is PMI on a mortgage", "what is private mortgage insurance") == (
        "what is private mortgage insurance on a mortgage",
        "what is private mortgage insurance",
    )
    assert acronyms_spelled("drive hours under HOS", "the hours of service rules")[0] == (
        "drive hours under hours of service"
    )
    assert acronyms_spelled("what are RMDs", "required minimum distribution")[0] == (
        "what are required minimum distributions"
    )
    # the letters may leave out the linking words within (a blind trial's "PSI", "FAFSA"),
    # and a run does not begin with one ("per square inch" is not PSI)
    tires = acronyms_spelled("What PSI for my tires?", "tire pressure in pounds per square inch")
    assert tires[0] == "What pounds per square inch for my tires?"
    nasa = "the National Aeronautics and Space Administration"
    assert acronyms_spelled("When was NASA founded?", nasa)[0] == f"When was {nasa[4:]} founded?"
    assert acronyms_spelled("the DOD budget", "the Department of Defense")[0] == (
        "the Department of Defense budget"
    )
    # a hyphenated compound's parts each give a letter (a blind trial's "HYSA", "ATA")
    hysa = acronyms_spelled("Is a HYSA worth it?", "a high-yield savings account for savings")
    assert hysa[0] == "Is a high-yield savings account worth it?"
    assert acronyms_spelled("a longer ATA", "a longer axle-to-axle length")[0] == (
        "a longer axle-to-axle"
    )
    kept = [
        ("How far is SF from Denver?", "How far is Santa Fe from Denver?"),  # two letters
        ("seats during GW?", "seats during Golden Week?"),
        ("not interested in ITS", "jobs in the state"),  # "in the state": a stopword first
        ("the NBA plan", "the NBA, not the National Basketball Association"),  # written there
        ("If NATO acts, will the North Atlantic Treaty Organization", "North Atlantic Treaty"),
        ("is the ABC good", "apple banana cherry or apricot berry cake"),  # two runs spell it
    ]
    for a, b in kept:
        assert acronyms_spelled(a, b)[0] == a, (a, b)
    assert acronyms_spelled("Why did Digital Equipment Corporation (DEC) fail?", "x") == (
        "Why did Digital Equipment Corporation fail?",
        "x",
    )
    defined = acronyms_spelled("the CRR (Cash Reserve Ratio) now", "x")[0]
    assert defined == "the Cash Reserve Ratio now"
    assert acronyms_spelled("the US (or UK) rules", "x")[0] == "the US (or UK) rules"


def test_a_spelled_acronym_is_one_question_to_the_guards_and_the_model(
    scorer: OnnxPairScorer,
) -> None:
    """Quora's "Why is IPA important?" / "Why is the International Phonetic Alphabet
    important?" was vetoed as another name and scored 0.00; "DEC" was read as December.
    Read as the other side's words, both pass the guards and score as paraphrases; two
    letters are not read so ("SF" / "Santa Fe" stays another place)."""
    for a, b in (
        ("Why is IPA important?", "Why is the International Phonetic Alphabet important?"),
        ("Why did Digital Equipment Corporation (DEC) fail?",
         "Why digital equipment corporation failed?"),
    ):  # fmt: skip
        assert compare(a, b).ok, compare(a, b)
        assert scorer.score(a, b) > 0.9, (a, b)
    assert not compare("How far is SF from Denver?", "How far is Santa Fe from Denver?").ok


def test_an_acronym_read_as_words_by_chance_is_kept_out_by_the_floor(
    tmp_path: Path, scorer: OnnxPairScorer
) -> None:
    """Read as the other side's words, an acronym makes two questions one to the pair model,
    whatever the acronym stands for: "What is the ROI?" / "What is the rate of inflation?"
    scores 0.98. Only the embedder's cosine (0.35), below the floor, keeps such a pair from
    being served: a retrieval that lifted acronym pairs past the floor served 16 such
    pairs to a re-check and was taken out (bench/RESULTS.md, the forty-sixth session)."""
    e = _pair_engine(tmp_path, OnnxEmbedder(), scorer, ReuseSettings())
    pairs = [
        ("What is the ROI?", "What is the rate of inflation?"),
        ("When is the SAT?", "When is the Saturday after Thanksgiving?"),
        ("What is an IRA?", "What is the Irish Republican Army?"),
    ]

    async def run() -> None:
        for stored, _ in pairs:
            await _remember(e, await engine_lookup(e, stored), f"answer to {stored}")
        for stored, asked in pairs:
            assert scorer.score(stored, asked) > 0.9  # the model alone would serve it
            got = await engine_lookup(e, asked)
            assert got.status == "miss", (asked, got.status, got.entry)

    asyncio.run(run())
    e.store.close()


def _shift_prior(split: bool) -> Prior:
    """A calibration of 20,000 replayed lookups, half of them novel: 2,000 novel lookups found
    a (wrong) candidate scoring uniformly in 0.7–1.0, so F_N(t) = (1 − t) / 1.5; 8,000 repeats
    found their right one, uniformly in 0.7–1.0; no repeat was served a wrong one. With
    ``split`` the calibration says which lookups were novel."""
    novel = tuple(float(x) for x in np.linspace(0.7, 1.0, 2000, endpoint=False))
    right = tuple(float(x) for x in np.linspace(0.7, 1.0, 8000, endpoint=False))
    return Prior(
        right,
        novel,
        "synthetic",
        "fake",
        lookups=20_000,
        novel=novel if split else None,
        novel_lookups=10_000 if split else None,
    )


def _novel_rate(t: float) -> float:
    """F_N(t) of ``_shift_prior``: the share of novel lookups scoring ≥ t."""
    return max(0.0, 1.0 - t) / 1.5


def _shifted_threshold(prior: Prior, repeats: float, seed: int) -> float:
    """The threshold after 1,000 lookups of which ``repeats`` are repeats scoring uniformly
    in 0.85–1.0 (right) and the rest novel ones scoring as the calibration's did."""
    v = Verifier(ReuseSettings(), scorer=PairModelScorer(), prior=prior, rng=random.Random(1))
    rng = random.Random(seed)
    for _ in range(1000):
        if rng.random() < repeats:
            v.note_lookup(0.9, pair=rng.uniform(0.85, 1.0))
        elif rng.random() < 0.2:
            v.note_lookup(0.9, pair=rng.uniform(0.7, 1.0))
        else:
            v.note_lookup(None)
    assert v.estimate().decided_by == "prior"
    return v.threshold


def test_novel_traffic_is_held_to_the_novel_lookups_wrong_rate() -> None:
    """Every lookup novel: any answer served is wrong, so at most δ of them may score at or
    above the threshold. The calibration's precision times its own share H(t) counts its
    repeats' right answers too (half its lookups) and let a threshold stand at which 1.3 % of
    novel lookups were served (calibration without the split); with the split the prior
    bounds them by the novel lookups' own rate."""
    after = {split: _shifted_threshold(_shift_prior(split), 0.0, seed=2) for split in (True, False)}
    assert _novel_rate(after[False]) > 0.01  # the old estimate, too optimistic here
    assert _novel_rate(after[True]) <= 0.01, after


def test_repeat_traffic_is_not_held_to_the_calibrations_precision() -> None:
    """Half the lookups repeat a stored question and score high: h(t) rises with right
    answers. Scaling the calibration's wrong share among its hits by that h(t) (as if the new
    hits were as often wrong as the calibration's) raised the threshold where the wrong
    answers, all from the novel half, stayed few; the split prior bounds the repeat share from
    below (ρ) and keeps the threshold lower, still within δ of wrong answers per lookup."""
    after = {split: _shifted_threshold(_shift_prior(split), 0.5, seed=3) for split in (True, False)}
    assert after[True] < after[False] - 0.005, after
    assert 0.5 * _novel_rate(after[True]) <= 0.01


def test_a_calibration_split_must_fit_its_lookups(tmp_path: Path) -> None:
    """``novel_scores`` and ``novel_lookups`` come together and within the lookups."""
    base = {
        "source": "s",
        "duplicate_scores": [0.9],
        "non_duplicate_scores": [0.5, 0.8],
        "lookups": 10,
    }
    path = tmp_path / "calibration.json"
    good = base | {"novel_scores": [0.5], "novel_lookups": 4}
    path.write_text(json.dumps(good))
    p = Prior.load(path, "m")
    rates = p.wrong_rates(np.array([0.6, 0.7]))
    assert rates is not None
    assert list(rates[0]) == [0.0, 0.0] and list(rates[1]) == [1.0, 1.0] and rates[2:] == (4, 6)
    for bad in (
        base | {"novel_scores": [0.5]},
        base | {"novel_scores": [0.5], "novel_lookups": 11},
        base | {"novel_scores": [0.5, 0.6, 0.7], "novel_lookups": 5},
        {k: v for k, v in good.items() if k != "lookups"},
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            Prior.load(path, "m")


def test_a_threshold_above_the_failed_ones_says_none_is_proven() -> None:
    """Wrong labels above the initial threshold push the threshold above them: nothing is
    proven there, and the stats said "initial_threshold" beside a threshold of 0.995 (a
    trial read it as the bound broken by the initial threshold)."""
    v = Verifier(ReuseSettings(), rng=random.Random(1))
    for i in range(60):
        v.note_lookup(0.97)
        v.add(Observation(0.97, False, "observe", i))
    est = v.estimate()
    assert est.threshold > 0.97 and est.decided_by == "none_proven", est


def test_what_the_asker_did_is_read_by_the_pair_model_not_the_guards(
    scorer: OnnxPairScorer,
) -> None:
    """A sentence that tells what the asker did, added before the same question, passes the
    guards (``narration_dropped``; its numbers and negations too), so the pair model decides:
    it reads background that leaves the answer alone with the question, and an event that
    changes the answer apart, far below the threshold its prior starts at (0.87)."""
    asked = {
        "Can I take more ibuprofen?": "I took 800 mg of ibuprofen an hour ago.",
        "Can I drive?": "I drank three beers an hour ago.",
        "Can I return this jacket?": "I bought this jacket 45 days ago.",
        "Is it safe to eat?": "I left the chicken out overnight.",
    }
    changes = [(q, f"{told} {q}") for q, told in asked.items()]
    same = (
        "How long should I leave my phone in rice?",
        "I just dropped my phone in the pool and it won't turn on. How long should I leave my "
        "phone in rice?",
    )
    for a, b in [*changes, same]:
        assert compare(a, b).ok, (a, b, compare(a, b))
    assert all(scorer.score(a, b) < 0.6 for a, b in changes)
    assert scorer.score(*same) > max(scorer.score(a, b) for a, b in changes)
    # what befell another ("my dog") is no narration of the asker's: the guards keep it apart
    grapes = "My dog ate a whole bunch of grapes an hour ago and is vomiting. Can dogs eat grapes?"
    assert not compare("Can dogs eat grapes?", grapes).ok
